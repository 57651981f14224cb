from guardrails.output import figures_in, ground_links, ungrounded_figures

ALLOWED = {"https://www.gov.uk/ssp", "https://www.gov.uk/nmw#rates"}
TOKENS = {"link_1": "https://www.gov.uk/ssp", "link_2": "https://www.gov.uk/nmw#rates"}


def test_tokens_map_to_urls_and_invented_links_are_unwrapped():
    r = ground_links(
        "Pay [SSP](link_1), see [rates](link_2) and [this](https://evil.example/x).",
        TOKENS,
        ALLOWED,
    )
    assert r.markdown == (
        "Pay [SSP](https://www.gov.uk/ssp), see [rates](https://www.gov.uk/nmw#rates) and this."
    )
    assert r.dropped == ["https://evil.example/x"]


def test_bare_urls_outside_sources_are_removed_keeping_punctuation():
    r = ground_links("Go to https://made.up/page. Or https://www.gov.uk/ssp", TOKENS, ALLOWED)
    assert "made.up" not in r.markdown and r.markdown.startswith("Go to .")
    assert "https://www.gov.uk/ssp" in r.markdown


def test_unknown_link_tokens_are_dropped():
    assert ground_links("See [x](link_9) and link_3.", TOKENS, ALLOWED).markdown == "See x and ."


def test_figures_are_normalised():
    assert figures_in("£1,200 and 6 per cent, the 4th day, 28 weeks") >= {"£1200", "6%", "4", "28"}


def test_ungrounded_figures():
    sources = "SSP is £116.75 for up to 28 weeks, paid after four days. Rate: 8%."
    assert ungrounded_figures("You get £116.75 for 28 weeks from day 4, 8%", sources) == []
    assert ungrounded_figures("You get £120 for 30 weeks", sources) == ["30", "£120"]
