"""Schema-aware parsing of Content API items (hand-made fixtures, one per schema)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ingest.parse import govuk_heading_id, parse_content_item
from ingest.types import ParsedPage, Section, Skip

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def parse(name: str) -> ParsedPage:
    page = parse_content_item(load(name))
    assert isinstance(page, ParsedPage), page
    return page


def outline(page: ParsedPage) -> list[tuple[str, list[str], str | None]]:
    return [(s.path, s.heading_trail, s.heading_id) for s in page.sections]


def section(page: ParsedPage, heading_id: str | None, path: str | None = None) -> Section:
    matches = [
        s for s in page.sections if s.heading_id == heading_id and (path is None or s.path == path)
    ]
    assert len(matches) == 1, (heading_id, outline(page))
    return matches[0]


# ------------------------------------------------------------------ schemas


def test_guide_parts_have_their_own_urls_and_part_title_first_in_trail() -> None:
    page = parse("guide")
    assert page.schema_name == "guide"
    assert page.content_id and page.description == "Description of Statutory Test Pay"
    assert page.public_updated_at == "2024-04-01T10:00:00Z"
    assert page.updated_at == "2024-04-02T10:00:00Z"
    assert outline(page) == [
        ("/statutory-test-pay", ["Overview"], None),
        ("/statutory-test-pay", ["Overview", "What you get"], "what-you-get"),
        ("/statutory-test-pay/eligibility", ["Eligibility"], None),
        ("/statutory-test-pay/eligibility", ["Eligibility", "Employees"], "employees"),
        (
            "/statutory-test-pay/eligibility",
            ["Eligibility", "Employees", "Agency workers"],
            "agency-workers",
        ),
        (
            "/statutory-test-pay/eligibility",
            ["Eligibility", "Employees", "Agency workers"],
            "agency-workers-1",
        ),
        (
            "/statutory-test-pay/eligibility",
            ["Eligibility", "If you’re not eligible"],
            "if-youre-not-eligible",
        ),
        ("/statutory-test-pay/how-to-claim", ["How to claim", "Claim online"], "claim-online"),
    ]
    intro = section(page, None, "/statutory-test-pay")
    assert intro.blocks == [
        "You could get Statutory Test Pay (STP) for up to 39 weeks.",
        "This guide is also available in Welsh (Cymraeg).",  # callout kept, link URL dropped
    ]
    assert section(page, "what-you-get").blocks == [
        "The weekly amount is £184.03 or 90% of your average weekly earnings (whichever is lower)."
    ]
    assert section(page, None, "/statutory-test-pay/eligibility").blocks == [
        "To get STP you must:",
        "- be an employee\n- earn at least £123 a week",
    ]


def test_answer_derives_heading_ids_and_renders_tables_and_callouts() -> None:
    page = parse("answer")
    assert outline(page) == [
        ("/test-rates", [], None),
        ("/test-rates", ["Main rates"], "main-rates"),
        ("/test-rates", ["Apprentice rate (2024)"], "apprentice-rate-2024"),
        ("/test-rates", ["Main rates"], "main-rates-1"),  # kramdown de-duplication
    ]
    assert section(page, "main-rates").blocks == [
        "Age: 21 and over; Rate per hour: £11.44",
        "Age: 18 to 20; Rate per hour: £8.60",
    ]
    assert section(page, "apprentice-rate-2024").blocks == [
        "Apprentices get £6.40 an hour.",
        "Use the minimum wage calculator to check.",
    ]


def test_detailed_guide_nesting_footnotes_addresses_and_contacts() -> None:
    page = parse("detailed_guide")
    assert outline(page) == [
        ("/guidance/test-employer-duties", ["Overview"], "overview"),
        ("/guidance/test-employer-duties", ["Overview", "Records"], "records"),
        (
            "/guidance/test-employer-duties",
            ["Overview", "Records", "Paper records"],
            "paper-records",
        ),
        ("/guidance/test-employer-duties", ["Contact"], "contact"),
    ]
    assert section(page, "overview").blocks == ["Employers must keep records[1]."]
    assert section(page, "contact").blocks == [
        "Test Office\nPO Box 1234\nCoventry\nCV4 0EH",
        "Helpline\nTelephone: 0300 123 4567\nFind out about call charges",
        "1. See form TR1.",  # footnote kept, back-link arrow dropped
    ]


def test_html_publication_numbered_headings_steps_and_nested_lists() -> None:
    page = parse("html_publication")
    assert outline(page) == [
        ("/government/publications/test-report/test-report", ["1. Introduction"], "introduction"),
        (
            "/government/publications/test-report/test-report",
            ["1. Introduction", "1.1 Scope"],
            "scope",
        ),
    ]
    assert section(page, "introduction").blocks == [
        "This report covers 2023.",
        "£6bn Total spending in 2023",
    ]
    assert section(page, "scope").blocks == [
        "1. Collect data.\n2. Analyse it:\n  - by region\n  - by age"
    ]


def test_manual_lists_its_child_sections() -> None:
    page = parse("manual")
    assert outline(page) == [
        ("/guidance/test-manual", [], None),
        ("/guidance/test-manual", ["Contents"], "contents"),
    ]
    assert section(page, "contents").blocks == [
        "- Getting started: What you need before you start.\n- Advanced testing: Testing at scale."
    ]


def test_manual_section() -> None:
    page = parse("manual_section")
    assert page.schema_name == "manual_section"
    assert outline(page) == [
        ("/guidance/test-manual/getting-started", ["Before you start"], "before-you-start"),
        (
            "/guidance/test-manual/getting-started",
            ["Before you start", "Test plans"],
            "test-plans",
        ),
    ]
    assert section(page, "test-plans").blocks == ["A test plan lists what you will check."]


def test_transaction_live_fields() -> None:
    page = parse("transaction")
    assert outline(page) == [
        ("/apply-test-badge", [], None),
        ("/apply-test-badge", ["After you apply"], "after-you-apply"),
        ("/apply-test-badge", ["Other ways to apply"], "other-ways-to-apply"),
    ]
    intro = section(page, None)
    assert intro.blocks == [
        "Apply for or renew a test badge online.",
        "Start now (continues on the Test Badge service)",
        "- Takes around 20 minutes\n- Costs £10",
        "You’ll need:",
        "- a digital photo\n- your National Insurance number",
    ]
    assert not any("https://" in b for s in page.sections for b in s.blocks)
    assert section(page, "other-ways-to-apply").blocks == ["Call 0300 000 0000 to apply by phone."]


def test_transaction_flattened_body_like_the_snapshot() -> None:
    item = load("transaction")
    details = item["details"]
    item["details"] = {"body": details["introductory_paragraph"] + details["more_information"]}
    page = parse_content_item(item)
    assert isinstance(page, ParsedPage)
    assert [s.heading_id for s in page.sections] == [None, "after-you-apply"]
    assert page.sections[0].blocks[0] == "Apply for or renew a test badge online."


def test_step_by_step_nav_live_structure() -> None:
    page = parse("step_by_step_nav")
    assert page.description == "How to test a business in England."  # HTML description -> text
    assert outline(page) == [
        ("/test-a-business", [], None),
        ("/test-a-business", ["Check you can test"], "check-you-can-test"),
        ("/test-a-business", ["Register with HMRC"], "register-with-hmrc"),
        ("/test-a-business", ["Check you can test"], "check-you-can-test-1"),
    ]
    assert section(page, None).blocks == ["Check what you need to do to test a business."]
    assert section(page, "check-you-can-test").blocks == [
        "You must be over 18 to test a business.",
        "- Check if you can test\n- Get advice (£35 to £60 per session)",
    ]


def test_step_by_step_flattened_body_gets_derived_ids_and_link_lists() -> None:
    item = load("step_by_step_nav")
    item["details"] = {
        "body": "<h2>Check you can test</h2>\n<p>You must be over 18.</p>\n"
        '<p><a href="/a">Check if you can test</a> <a href="/b">Get advice</a></p>\n'
    }
    page = parse_content_item(item)
    assert isinstance(page, ParsedPage)
    assert outline(page) == [("/test-a-business", ["Check you can test"], "check-you-can-test")]
    assert page.sections[0].blocks == [
        "You must be over 18.",
        "- Check if you can test\n- Get advice",
    ]


def test_specialist_document_headerless_table() -> None:
    page = parse("specialist_document")
    assert page.document_type == "cma_case"
    assert section(page, "phase-1").blocks == [
        "1 May 2024 | Inquiry launched",
        "1 June 2024 | Decision",
    ]


def test_help_page_ignores_script_and_style() -> None:
    page = parse("help_page")
    assert section(page, "cookies-we-use").blocks == [
        "Name: _ga; Purpose: Counts visits; Expires: 2 years"
    ]
    text = "\n".join(b for s in page.sections for b in s.blocks)
    assert "alert" not in text and "color" not in text


def test_publication_documents_are_listed() -> None:
    page = parse("publication")
    assert section(page, "documents").blocks == ["Test form TF1 (PDF, 120KB, 4 pages)"]
    assert not any("assistive" in b for s in page.sections for b in s.blocks)


def test_body_as_list_prefers_html() -> None:
    page = parse("body_alternatives")
    assert outline(page) == [
        ("/guidance/test-alternatives", [], None),
        ("/guidance/test-alternatives", ["Rates"], "rates"),
    ]
    assert section(page, "rates").blocks == ["The rate is 20%."]


def test_body_as_govspeak_only() -> None:
    page = parse("govspeak_only")
    assert outline(page) == [
        ("/guidance/test-govspeak", [], None),
        ("/guidance/test-govspeak", ["How to apply"], "how-to-apply"),
        ("/guidance/test-govspeak", ["How to apply", "Deadlines"], "deadlines"),
    ]
    assert section(page, None).blocks == ["Introductory text with a link."]
    assert section(page, "how-to-apply").blocks == [
        "You need:",
        "- a passport\n- proof of address",
        "You cannot apply by post.",
        "Band: Basic; Rate: 20%",
        "Band: Higher; Rate: 40%",
    ]
    assert section(page, "deadlines").blocks == ["1. Register by 5 October\n2. Pay by 31 January"]


def test_broken_html_is_parsed_leniently() -> None:
    page = parse("broken_html")
    assert outline(page) == [
        ("/broken-test-page", [], None),
        ("/broken-test-page", ["Heading with markup"], "heading-with-markup"),
    ]
    assert section(page, None).blocks == ["First paragraph not closed", "Second paragraph"]
    assert section(page, "heading-with-markup").blocks == [
        "Text after unclosed heading markup.",
        "- one\n- two",
        "cell only £5 & 10% fee",
    ]


# ------------------------------------------------------------------ skips and errors


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("welsh", "locale:cy"),
        ("withdrawn", "withdrawn"),
        ("redirect", "document_type:redirect"),
    ],
)
def test_skipped_items(name: str, reason: str) -> None:
    result = parse_content_item(load(name))
    assert result == Skip(load(name)["base_path"], reason)


@pytest.mark.parametrize("kind", ["gone", "vanish", "placeholder_person", "placeholder"])
def test_skipped_document_types(kind: str) -> None:
    item = load("answer")
    item["document_type"] = kind
    assert parse_content_item(item) == Skip("/test-rates", f"document_type:{kind}")
    item = load("answer")
    item["schema_name"] = kind
    assert parse_content_item(item) == Skip("/test-rates", f"document_type:{kind}")


def test_empty_withdrawn_notice_is_not_withdrawn() -> None:
    item = load("answer")
    item["withdrawn_notice"] = {}
    assert isinstance(parse_content_item(item), ParsedPage)


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"body": ""},
        {"body": "<p> </p><script>x()</script>"},
        {"parts": [{"slug": "a", "title": "A", "body": "<div></div>"}]},
    ],
)
def test_pages_without_text_are_skipped(details: dict[str, Any]) -> None:
    item = load("answer")
    item["details"] = details
    assert parse_content_item(item) == Skip("/test-rates", "empty_body")


def test_missing_optional_fields() -> None:
    item = load("answer")
    for key in ("content_id", "description", "public_updated_at", "updated_at", "locale"):
        item.pop(key)
    page = parse_content_item(item)
    assert isinstance(page, ParsedPage)
    assert (page.content_id, page.description, page.locale) == ("", "", "en")
    assert page.public_updated_at is None and page.updated_at is None


def _broken(mutate: Any) -> dict[str, Any]:
    item = copy.deepcopy(load("guide"))
    mutate(item)
    return item


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (["not", "a", "dict"], "JSON object"),
        ({"title": "x", "details": {"body": "<p>x</p>"}}, "base_path"),
        ({"base_path": "", "title": "x"}, "base_path"),
        (_broken(lambda i: i.pop("title")), "title"),
        (_broken(lambda i: i.update(details=["x"])), "details"),
        (_broken(lambda i: i["details"].update(parts="x")), "parts"),
        (_broken(lambda i: i["details"]["parts"].append("x")), "part 3"),
        (_broken(lambda i: i["details"]["parts"][1].pop("slug")), "slug"),
        (_broken(lambda i: i["details"]["parts"][0].update(body=42)), "body"),
        (_broken(lambda i: i.update(details={"body": [{"content": 1}]})), "content_type"),
        (_broken(lambda i: i.update(details={"step_by_step_nav": {"steps": "x"}})), "steps"),
        (_broken(lambda i: i.update(details={"step_by_step_nav": {"steps": [{}]}})), "step 1"),
    ],
)
def test_malformed_items_raise_value_error(item: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_content_item(item)


# ------------------------------------------------------------------ heading ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Your employment rights when on leave", "your-employment-rights-when-on-leave"),
        ("What’s on GOV.UK", "whats-on-govuk"),
        ("1. Introduction", "introduction"),
        ("3.9 Businesses", "businesses"),
        ("Number - fractions", "number---fractions"),
        ("£50 fee (2024)", "fee-2024"),
        ("snake_case heading", "snake_case-heading"),
        ("2024", "section"),
    ],
)
def test_govuk_heading_id(text: str, expected: str) -> None:
    assert govuk_heading_id(text) == expected
