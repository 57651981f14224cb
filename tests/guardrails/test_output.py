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


def test_only_the_sentences_with_unsupported_figures_are_removed():
    from guardrails.output import has_substance, remove_ungrounded_sentences

    evidence = "SSP is £116.75 a week for up to 28 weeks. Employees must earn at least £123."
    g = remove_ungrounded_sentences(
        "SSP is £116.75 a week. It lasts 30 weeks. You must earn £123.\n- paid weekly\n- £500 more",
        evidence,
    )
    assert g.markdown == "SSP is £116.75 a week. You must earn £123.\n- paid weekly"
    assert g.removed == ["It lasts 30 weeks.", "- £500 more"] and g.missing == ["30", "£500"]
    assert has_substance(g.markdown)
    assert not has_substance(remove_ungrounded_sentences("It is £9 a week.", evidence).markdown)
    assert not has_substance("You must:")


def test_content_checks_flag_advice_forbidden_terms_and_personal_data():
    from guardrails.output import (
        check_advice_opinion,
        check_forbidden_terms,
        check_personal_data_in_answer,
    )

    assert not check_advice_opinion("You should invest in shares.").passed
    assert not check_advice_opinion("In my opinion the policy is wrong.").passed
    assert check_advice_opinion("You must pay into a workplace pension for eligible staff.").passed
    assert not check_forbidden_terms("As an AI language model, I can't").passed
    assert check_forbidden_terms("Keep records for 3 years.").passed
    assert not check_personal_data_in_answer("Call Sam on 07700 900123").passed
    assert check_personal_data_in_answer("Call the employer helpline.").passed


def test_labelled_output_cases_are_all_classified_correctly():
    """The development set of good and bad answers (evaluation/datasets/output_checks.jsonl)."""
    import json
    from pathlib import Path

    from bench.bench_output_checks import DATASET, flags

    for line in Path(DATASET).read_text().splitlines():
        case = json.loads(line)
        found = flags(case["answer"], case["evidence"])
        if case["problem"] == "none":
            assert not found, case["id"]
        else:
            assert case["problem"] in found, case["id"]
