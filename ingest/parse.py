"""Parse a GOV.UK Content API item into a `ParsedPage` of heading-delimited sections, or a `Skip`.

Schema-aware: guides and travel advice (`details.parts`, one URL per part), step-by-step navs
(`details.step_by_step_nav`), transactions (`introductory_paragraph`, start button,
`what_you_need_to_know`, `more_information`, `other_ways_to_apply`, variants), local
transactions, licences, manuals (`child_section_groups`), publications (`body` plus
`documents`) and anything else with `details.body`. Every HTML field may be a rendered HTML
string or a list of `{content_type, content}` (text/html preferred, else govspeak/markdown).

HTML is parsed leniently (lxml via BeautifulSoup) and reduced to plain-text blocks: paragraphs,
lists ("- " / "1. " bullets, nested lists indented), one block per table row
("Header: value; Header: value"), callouts, contacts and addresses. Link text is kept, URLs are
dropped. Sections split at h2-h6 and keep the trail of enclosing headings; a heading without an
`id` gets the id GOV.UK (kramdown auto_ids) would give it.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag

from ingest.types import ParsedPage, Section, Skip

__all__ = ["govuk_heading_id", "html_to_text", "parse_content_item"]

SKIPPED_TYPES = {"redirect", "gone", "vanish"}
HEADING_LEVELS = {"h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements whose content is never text a reader sees.
DROPPED_TAGS = {
    "script", "style", "noscript", "template", "svg", "img", "picture", "iframe", "object",
    "embed", "video", "audio", "canvas", "map", "head", "title", "meta", "link", "input",
    "select", "textarea", "button", "math",
}  # fmt: skip
DROPPED_CLASSES = {"accessibility-warning", "attachment-thumb", "reversefootnote", "js-hidden"}
# Elements that start a new text block (anything else is inline: its text flows).
BLOCK_TAGS = {
    "html", "body", "p", "div", "section", "article", "aside", "header", "footer", "main", "nav",
    "blockquote", "figure", "figcaption", "address", "pre", "h1", "dl", "dt", "dd", "details",
    "summary", "form", "fieldset", "legend", "hr", "center", "li", "caption", "tbody", "thead",
    "tfoot", "tr", "td", "th", "ul", "ol", "table", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
_WS = re.compile(r"\s+")


# ------------------------------------------------------------------ public helpers


def govuk_heading_id(text: str) -> str:
    """The anchor GOV.UK (govspeak / kramdown auto_ids) gives a heading without an explicit id.

    Lowercase, remove characters other than ASCII letters, digits, spaces, hyphens and
    underscores, turn spaces into hyphens, strip leading non-letters; "section" if nothing is
    left. De-duplication (`-1`, `-2`) is done per page/part by the parser.
    """
    gen = _WS.sub(" ", text).strip().lower()
    gen = re.sub(r"[^a-z0-9 _-]", "", gen)
    gen = gen.replace(" ", "-")
    gen = re.sub(r"^[^a-z]+", "", gen)
    return gen or "section"


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment (used for descriptions and step texts that may hold HTML)."""
    if "<" not in fragment and "&" not in fragment:
        return _WS.sub(" ", fragment).strip()
    soup = BeautifulSoup(fragment, "lxml")
    return _WS.sub(" ", _text_of(soup)).strip()


def parse_content_item(item: dict[str, Any]) -> ParsedPage | Skip:
    """Reduce a Content API item to a `ParsedPage`, or say why it is not indexed (`Skip`).

    Raises `ValueError` for a malformed item (not an object, no base_path, broken structures).
    """
    if not isinstance(item, dict):
        raise ValueError(f"content item must be a JSON object, got {type(item).__name__}")
    base_path = item.get("base_path")
    if not isinstance(base_path, str) or not base_path.startswith("/"):
        raise ValueError(f"content item has no valid base_path (got {base_path!r})")
    document_type = _opt_str(item, "document_type")
    schema_name = _opt_str(item, "schema_name")
    for kind in (document_type, schema_name):
        if kind in SKIPPED_TYPES or kind.startswith("placeholder"):
            return Skip(base_path, f"document_type:{kind}")
    locale = item.get("locale") or "en"
    if not isinstance(locale, str):
        raise ValueError(f"{base_path}: locale must be a string, got {type(locale).__name__}")
    if locale != "en":
        return Skip(base_path, f"locale:{locale}")
    if item.get("withdrawn_notice"):
        return Skip(base_path, "withdrawn")

    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{base_path}: content item has no title")
    details = item.get("details")
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise ValueError(f"{base_path}: details must be an object, got {type(details).__name__}")
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{base_path}: description must be a string")

    sections = _sections(base_path, schema_name, details)
    sections = [s for s in sections if s.blocks]
    if not sections:
        return Skip(base_path, "empty_body")
    return ParsedPage(
        base_path=base_path,
        content_id=_opt_str(item, "content_id"),
        title=_WS.sub(" ", title).strip(),
        description=html_to_text(description or ""),
        document_type=document_type,
        schema_name=schema_name,
        locale=locale,
        public_updated_at=_opt_str(item, "public_updated_at") or None,
        updated_at=_opt_str(item, "updated_at") or None,
        sections=sections,
    )


# ------------------------------------------------------------------ schema dispatch


def _opt_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _sections(base_path: str, schema_name: str, details: dict[str, Any]) -> list[Section]:
    parts = details.get("parts")
    if parts:
        return _part_sections(base_path, parts)
    step_nav = details.get("step_by_step_nav")
    if step_nav is not None and not details.get("body"):
        return _step_nav_sections(base_path, step_nav)
    sections = _HtmlSectioner(base_path).feed(_page_html(base_path, details)).sections
    for variant in _list(details, "variants", base_path):
        sections.extend(_variant_sections(base_path, variant))
    return sections


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key} must be a list, got {type(value).__name__}")
    return value


def _html_field(value: Any, where: str) -> str:
    """A body field as HTML: a string, or a list of {content_type, content} alternatives."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        by_type: dict[str, str] = {}
        for alt in value:
            if not isinstance(alt, dict) or not isinstance(alt.get("content", ""), str):
                raise ValueError(f"{where}: body alternatives must be {{content_type, content}}")
            by_type.setdefault(str(alt.get("content_type", "")), alt.get("content") or "")
        if "text/html" in by_type:
            return by_type["text/html"]
        for content_type in ("text/govspeak", "text/markdown", "text/plain", ""):
            if content_type in by_type:
                return govspeak_to_html(by_type[content_type])
        return govspeak_to_html(next(iter(by_type.values()), ""))
    raise ValueError(f"{where}: body must be HTML text or a list, got {type(value).__name__}")


def _start_button_html(details: dict[str, Any]) -> str:
    if not (details.get("transaction_start_link") or details.get("start_button_text")):
        return ""
    text = details.get("start_button_text") or "Start now"
    continues = details.get("will_continue_on")
    if isinstance(continues, str) and continues.strip():
        text = f"{text} (continues on {continues.strip()})"
    return f"<p>{html.escape(str(text))}</p>"


def _page_html(base_path: str, details: dict[str, Any]) -> str:
    """The page's HTML in reading order, from whichever body fields its schema has."""
    where = f"{base_path}: details"
    out: list[str] = []
    for key in ("introductory_paragraph", "introduction", "licence_overview"):
        out.append(_html_field(details.get(key), f"{where}.{key}"))
    out.append(_start_button_html(details))
    for key in ("what_you_need_to_know", "need_to_know", "body", "more_information"):
        out.append(_html_field(details.get(key), f"{where}.{key}"))
    other_ways = _html_field(details.get("other_ways_to_apply"), f"{where}.other_ways_to_apply")
    if other_ways.strip():
        out.append("<h2>Other ways to apply</h2>" + other_ways)
    documents = [_html_field(d, f"{where}.documents") for d in _list(details, "documents", where)]
    if any(d.strip() for d in documents):
        out.append('<h2 id="documents">Documents</h2>' + "".join(documents))
    for group in _list(details, "child_section_groups", where):
        out.append(_manual_group_html(group, where))
    return "\n".join(x for x in out if x)


def _manual_group_html(group: Any, where: str) -> str:
    if not isinstance(group, dict):
        raise ValueError(f"{where}: child_section_groups entries must be objects")
    items = []
    for child in _list(group, "child_sections", where):
        if not isinstance(child, dict):
            raise ValueError(f"{where}: child_sections entries must be objects")
        text = str(child.get("title") or "")
        if child.get("description"):
            text = f"{text}: {child['description']}" if text else str(child["description"])
        if text:
            items.append(f"<li>{html.escape(text)}</li>")
    title = group.get("title")
    heading = f"<h2>{html.escape(title)}</h2>" if isinstance(title, str) and title else ""
    return heading + (f"<ul>{''.join(items)}</ul>" if items else "")


def _part_sections(base_path: str, parts: Any) -> list[Section]:
    if not isinstance(parts, list):
        raise ValueError(f"{base_path}: details.parts must be a list")
    sections: list[Section] = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise ValueError(f"{base_path}: part {index} is not an object")
        slug, title = part.get("slug"), part.get("title")
        if not isinstance(slug, str) or not slug.strip("/ "):
            raise ValueError(f"{base_path}: part {index} has no slug")
        if title is not None and not isinstance(title, str):
            raise ValueError(f"{base_path}: part {slug!r} title must be a string")
        title = _WS.sub(" ", title or "").strip() or slug
        path = base_path if index == 0 else f"{base_path.rstrip('/')}/{slug.strip('/')}"
        body = _html_field(part.get("body"), f"{base_path}: part {slug!r} body")
        sections.extend(_HtmlSectioner(path, [title]).feed(body).sections)
    return sections


def _variant_sections(base_path: str, variant: Any) -> list[Section]:
    if not isinstance(variant, dict) or not isinstance(variant.get("slug"), str):
        raise ValueError(f"{base_path}: transaction variants must be objects with a slug")
    title = str(variant.get("title") or variant["slug"])
    path = f"{base_path.rstrip('/')}/{variant['slug'].strip('/')}"
    return _HtmlSectioner(path, [title]).feed(_page_html(path, variant)).sections


def _step_nav_sections(base_path: str, nav: Any) -> list[Section]:
    where = f"{base_path}: details.step_by_step_nav"
    if not isinstance(nav, dict):
        raise ValueError(f"{where} must be an object")
    sectioner = _HtmlSectioner(base_path)
    sectioner.feed(_html_field(nav.get("introduction"), f"{where}.introduction"))
    for number, step in enumerate(_list(nav, "steps", where), start=1):
        if not isinstance(step, dict) or not isinstance(step.get("title"), str):
            raise ValueError(f"{where}: step {number} must be an object with a title")
        title = _WS.sub(" ", step["title"]).strip()
        sectioner.start_section(2, title or f"Step {number}", None)
        for content in _list(step, "contents", f"{where}: step {number}"):
            if not isinstance(content, dict):
                raise ValueError(f"{where}: step {number} contents must be objects")
            if content.get("type") == "list":
                lines = []
                for entry in _list(content, "contents", f"{where}: step {number} list"):
                    if not isinstance(entry, dict):
                        raise ValueError(f"{where}: step {number} list entries must be objects")
                    text = html_to_text(str(entry.get("text") or ""))
                    context = html_to_text(str(entry.get("context") or ""))
                    if text and context:
                        text = f"{text} ({context})"
                    if text or context:
                        lines.append(f"- {text or context}")
                sectioner.add_block("\n".join(lines))
            else:
                sectioner.add_block(html_to_text(str(content.get("text") or "")))
    return sectioner.sections


# ------------------------------------------------------------------ HTML -> sections


def _classes(tag: Tag) -> set[str]:
    value = tag.get("class") or []
    return set(value.split() if isinstance(value, str) else value)


def _is_dropped(tag: Tag) -> bool:
    return tag.name in DROPPED_TAGS or bool(_classes(tag) & DROPPED_CLASSES)


def _is_footnote_ref(tag: Tag) -> bool:
    if tag.name != "sup":
        return False
    link = tag.find("a")
    return bool(
        (link is not None and "footnote" in _classes(link))
        or str(tag.get("id") or "").startswith("fnref")
    )


def _text_of(node: Any) -> str:
    """Single-line-ish text of a node: block children separated by spaces, URLs dropped."""
    if isinstance(node, NavigableString):
        return "" if isinstance(node, PreformattedString) else str(node)
    if not isinstance(node, Tag) or _is_dropped(node):
        return ""
    if node.name == "br":
        return " "
    if _is_footnote_ref(node):
        return f"[{_WS.sub('', node.get_text())}]"
    inner = "".join(_text_of(child) for child in node.children)
    return f" {inner} " if node.name in BLOCK_TAGS else inner


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _list_lines(lst: Tag, depth: int = 0) -> list[str]:
    ordered = lst.name == "ol"
    try:
        number = int(str(lst.get("start") or 1))
    except ValueError:
        number = 1
    indent = "  " * depth
    lines: list[str] = []
    for child in lst.children:
        if isinstance(child, Tag) and child.name in ("ul", "ol"):
            lines.extend(_list_lines(child, depth + 1))
            continue
        if isinstance(child, Tag) and _is_dropped(child):
            continue
        if not (isinstance(child, Tag) and child.name == "li"):
            text = _clean(_text_of(child))  # stray text/elements in a broken list
            if text:
                lines.append(f"{indent}{text}")
            continue
        marker = f"{number}. " if ordered else "- "
        number += 1
        head: list[str] = []
        tail: list[str] = []
        for part in child.children:
            if isinstance(part, Tag) and part.name in ("ul", "ol"):
                tail.extend(_list_lines(part, depth + 1))
            elif isinstance(part, Tag) and part.name == "table":
                tail.extend(f"{indent}  {row}" for row in _table_rows(part))
            elif tail:
                text = _clean(_text_of(part))
                if text:
                    tail.append(f"{indent}  {text}")
            else:
                head.append(_text_of(part))
        text = _clean("".join(head))
        if text:
            lines.append(f"{indent}{marker}{text}")
        lines.extend(tail)
    return lines


def _table_rows(table: Tag) -> list[str]:
    """One readable line per row: "Header: value; Header: value" (or " | " with no header)."""
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    grid: list[list[str]] = []  # cell texts, expanded by colspan so columns line up
    head_flags: list[bool] = []  # row is in <thead>
    th_flags: list[bool] = []  # row is made only of <th> cells
    for tr in rows:
        cells: list[str] = []
        kinds: list[str] = []
        for cell in tr.find_all(["td", "th"], recursive=False):
            try:
                span = max(1, min(int(str(cell.get("colspan") or 1)), 50))
            except ValueError:
                span = 1
            cells.extend([_clean(_text_of(cell))] + [""] * (span - 1))
            kinds.append(cell.name)
        grid.append(cells)
        head_flags.append(tr.find_parent("thead") is not None)
        th_flags.append(bool(kinds) and all(k == "th" for k in kinds))

    if any(head_flags):
        header_rows = [i for i, flag in enumerate(head_flags) if flag]
    else:  # no <thead>: the leading rows made only of <th> cells
        header_rows = []
        for i, flag in enumerate(th_flags):
            if not flag:
                break
            header_rows.append(i)
    headers: list[str] = []
    for i in header_rows:
        for col, text in enumerate(grid[i]):
            if col >= len(headers):
                headers.append(text)
            elif text and text not in headers[col].split(" - "):
                headers[col] = f"{headers[col]} - {text}" if headers[col] else text
    body = [cells for i, cells in enumerate(grid) if i not in header_rows]
    if not body and headers:  # a table that is all header: keep it as a plain row
        body, headers = [headers], []

    out: list[str] = []
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        text = _clean(_text_of(caption))
        if text:
            out.append(text if text.endswith(":") else f"{text}:")
    labelled = any(headers)
    for cells in body:
        parts = []
        for col, text in enumerate(cells):
            if not text:
                continue
            header = headers[col] if labelled and col < len(headers) else ""
            parts.append(f"{header}: {text}" if header and header != text else text)
        if parts:
            out.append(("; " if labelled else " | ").join(parts))
    return out


def _link_list(paragraph: Tag) -> list[str]:
    """Texts of a paragraph made only of 2+ links (step-by-step link lists), else []."""
    links = paragraph.find_all("a")
    if len(links) < 2:
        return []
    texts = [_clean(_text_of(link)) for link in links]
    rest = _clean(_text_of(paragraph))
    for text in texts:
        rest = rest.replace(text, "", 1)
    return [] if rest.strip() or not all(texts) else texts


def _attachment_text(section: Tag) -> str:
    title_tag = section.find(class_="title") or section.find(["h2", "h3", "h4"])
    title = _clean(_text_of(title_tag)) if title_tag is not None else ""
    meta_tag = section.find(class_="metadata")
    meta = _clean(_text_of(meta_tag)) if meta_tag is not None else ""
    if title and meta:
        return f"{title} ({meta})"
    return title or meta


class _HtmlSectioner:
    """Walks HTML in document order, cutting sections at h2-h6 and collecting text blocks."""

    def __init__(self, path: str, trail_prefix: list[str] | None = None) -> None:
        self.path = path
        self.prefix = list(trail_prefix or [])
        self.sections = [Section(path=path, heading_trail=list(self.prefix), heading_id=None)]
        self._stack: list[tuple[int, str]] = []
        self._used_ids: dict[str, int] = {}
        self._inline: list[str] = []

    # -- building
    def feed(self, fragment: str) -> _HtmlSectioner:
        if fragment and fragment.strip():
            self._walk(BeautifulSoup(fragment, "lxml"))
            self._flush()
        return self

    def add_block(self, text: str) -> None:
        lines = []
        for line in text.split("\n"):
            indent = line[: len(line) - len(line.lstrip(" "))]
            line = _clean(line)
            if line:
                lines.append(indent + line)
        text = "\n".join(lines)
        if text:
            self.sections[-1].blocks.append(text)

    def start_section(self, level: int, text: str, explicit_id: str | None) -> None:
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self.sections.append(
            Section(
                path=self.path,
                heading_trail=self.prefix + [t for _, t in self._stack],
                heading_id=self._heading_id(text, explicit_id),
            )
        )

    def _heading_id(self, text: str, explicit_id: str | None) -> str:
        if explicit_id:
            self._used_ids.setdefault(explicit_id, 0)
            return explicit_id
        base = govuk_heading_id(text)
        if base in self._used_ids:
            self._used_ids[base] += 1
            return f"{base}-{self._used_ids[base]}"
        self._used_ids[base] = 0
        return base

    def _flush(self) -> None:
        if self._inline:
            lines = "".join(self._inline).split("\n")
            self._inline = []
            self.add_block("\n".join(_clean(line) for line in lines))

    def _walk(self, node: Tag) -> None:
        for child in list(node.children):
            self._visit(child)

    def _visit(self, child: Any) -> None:
        if isinstance(child, NavigableString):
            if not isinstance(child, PreformattedString):  # comments, doctype, CDATA...
                self._inline.append(_WS.sub(" ", str(child)))
            return
        if not isinstance(child, Tag) or _is_dropped(child):
            return
        name = child.name
        if name in HEADING_LEVELS:
            # broken HTML can leave paragraphs, lists... inside a heading: they follow it
            spilled = _detach_blocks(child)
            text = _clean(_text_of(child))
            if text:
                raw_id = child.get("id")
                self.start_section(HEADING_LEVELS[name], text, str(raw_id) if raw_id else None)
            for node in spilled:
                self._visit(node)
        elif name == "br":
            self._inline.append("\n")
        elif name in ("ul", "ol"):
            self._flush()
            self.add_block("\n".join(_list_lines(child)))
        elif name == "table":
            self._flush()
            for row in _table_rows(child):
                self.add_block(row)
        elif name == "section" and "attachment" in _classes(child):
            self._flush()
            self.add_block(_attachment_text(child))
        elif _is_footnote_ref(child):
            self._inline.append(_text_of(child))
        elif name == "p" and (links := _link_list(child)):
            self._flush()
            self.add_block("\n".join(f"- {text}" for text in links))
        elif name in BLOCK_TAGS:
            self._flush()
            self._walk(child)
            self._flush()
        else:
            self._walk(child)  # inline element: its text flows into the current block


def _detach_blocks(heading: Tag) -> list[Any]:
    """Remove and return, in document order, the block-level content inside a heading (from
    its first block element on): what unclosed tags in broken HTML pulled into it."""
    first = next(
        (d for d in heading.descendants if isinstance(d, Tag) and d.name in BLOCK_TAGS), None
    )
    if first is None:
        return []
    moved = [first, *first.next_siblings]
    parent = first.parent
    while parent is not None and parent is not heading:
        moved.extend(parent.next_siblings)
        parent = parent.parent
    for node in moved:
        node.extract()
    return moved


# ------------------------------------------------------------------ govspeak fallback

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_GOVSPEAK_MARKERS = re.compile(r"^\s*(\$[A-Z!]+|[\^%@])\s*|\s*(\$[A-Z!]+|[\^%@])\s*$")
_GOVSPEAK_EMBEDS = re.compile(
    r"\{/?button[^}]*\}|\[(?:Contact|embed|InlineAttachment|Attachment|AttachmentLink|Image)"
    r":[^\]]*\]"
)


def _md_inline(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: m.group(1) or m.group(2), text)
    return html.escape(text, quote=False)


def govspeak_to_html(text: str) -> str:
    """Minimal govspeak/markdown to HTML: headings, lists, pipe tables, paragraphs."""
    text = _GOVSPEAK_EMBEDS.sub("", text.replace("\r\n", "\n"))
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = ""
    table: list[str] = []

    def close() -> None:
        nonlocal list_tag
        if para:
            out.append(f"<p>{_md_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append(f"<{list_tag}>{''.join(items)}</{list_tag}>")
            items.clear()
        if table:
            out.append(_md_table(table))
            table.clear()

    for raw in text.split("\n"):
        line = _GOVSPEAK_MARKERS.sub("", raw).strip()
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*$", line)
        bullet = re.match(r"^[*+-]\s+(.*)$", line)
        numbered = re.match(r"^s?\d+[.)]\s+(.*)$", line)
        if not line:
            close()
        elif heading:
            close()
            level = max(2, len(heading.group(1)))
            out.append(f"<h{level}>{_md_inline(heading.group(2))}</h{level}>")
        elif line.startswith("|"):
            if para or items:
                close()
            table.append(line)
        elif bullet or numbered:
            tag = "ul" if bullet else "ol"
            if para or table or (items and list_tag != tag):
                close()
            list_tag = tag
            items.append(f"<li>{_md_inline((bullet or numbered).group(1))}</li>")  # type: ignore[union-attr]
        else:
            if items or table:
                close()
            para.append(line)
    close()
    return "\n".join(out)


def _md_table(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    is_sep = [all(re.fullmatch(r":?-{2,}:?", c) for c in row if c) and any(row) for row in rows]
    head: list[list[str]] = []
    if len(rows) > 1 and is_sep[1]:
        head = [rows[0]]
        rows, is_sep = rows[2:], is_sep[2:]
    body = [row for row, sep in zip(rows, is_sep, strict=True) if not sep]
    thead = "".join(
        "<tr>" + "".join(f"<th>{_md_inline(c)}</th>" for c in row) + "</tr>" for row in head
    )
    tbody = "".join(
        "<tr>" + "".join(f"<td>{_md_inline(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f"<table><thead>{thead}</thead><tbody>{tbody}</tbody></table>"
