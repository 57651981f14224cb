"""Turn a `ParsedPage` into retrieval chunks that follow the page's structure (DESIGN.md §2).

- One chunk per section normally, cited at `path#heading-id` (the bare path for an intro).
- `embed_text` = title [+ description, on the page's first chunk only] + heading trail + text,
  and `count_tokens(embed_text) <= max_tokens` for every chunk: an oversized section is split
  between blocks (paragraph, list, table row); a block that alone is too long is split at its
  lines (list items), then sentences, then words. Nothing is dropped or truncated. A piece that
  continues a list or table repeats its lead-in line (the "...:" paragraph before it).
- A tiny section (fewer than `min_tokens`) is merged into the following section of the same
  path (else into the previous one), keeping the first section's anchor and trail; the merged
  section's heading becomes a line of the text. Sections of different paths (guide parts) are
  never merged.
- `chunk_id = chunk_id_for(exact_path, ordinal)`, the ordinal counting chunks at the same
  exact_path, so ids do not move when an unrelated section changes.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.types import GOVUK_WEB_ROOT, Chunk, ParsedPage, chunk_id_for, digest_of

__all__ = ["chunk_page", "embed_text_for"]

# Tokens that must stay free for text after the header (title, description, trail).
_MIN_TEXT_ROOM = 24
_LIST_LINE = re.compile(r"^\s*(?:- |\d+\. )")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")


def embed_text_for(title: str, trail: list[str], text: str, description: str = "") -> str:
    """The text that is embedded: title [+ description] + heading trail + text."""
    return f"{_header(title, description, trail)}\n{text}"


def _header(title: str, description: str, trail: list[str]) -> str:
    lines = [title]
    if description:
        lines.append(description)
    if trail:
        lines.append(" > ".join(trail))
    return "\n".join(lines)


@dataclass
class _Group:
    """One or more consecutive sections of one path, cited at the first one's anchor."""

    path: str
    trail: list[str]
    heading_id: str | None
    blocks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.blocks)


@dataclass(frozen=True)
class _Unit:
    text: str
    joiner: str  # how it attaches to the previous unit: "\n" (new block/line) or " " (sentence)
    leadin: str | None  # line to repeat when a new piece starts with this unit
    repeated: bool = False  # a repeated lead-in line


def _join(units: list[_Unit]) -> str:
    if not units:
        return ""
    return units[0].text + "".join(u.joiner + u.text for u in units[1:])


def _is_structured(block: str) -> bool:
    """A list block or a table row (see ingest.parse): pieces of it read on their own."""
    if _LIST_LINE.match(block):
        return True
    return "\n" not in block and (" | " in block or ("; " in block and ": " in block))


def _leadin(blocks: list[str], index: int) -> str | None:
    """The "...:" paragraph introducing the list/table run that block `index` belongs to."""
    if not _is_structured(blocks[index]):
        return None
    j = index - 1
    while j >= 0 and _is_structured(blocks[j]):
        j -= 1
    if j >= 0 and blocks[j].rstrip().endswith(":") and "\n" not in blocks[j]:
        return blocks[j]
    return None


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class _Chunker:
    def __init__(
        self,
        page: ParsedPage,
        count_tokens: Callable[[str], int],
        max_tokens: int,
        min_tokens: int,
    ) -> None:
        if max_tokens < _MIN_TEXT_ROOM * 2:
            raise ValueError(f"max_tokens={max_tokens} is too small to hold a chunk")
        self.page = page
        self.count = count_tokens
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self._headers: dict[tuple[tuple[str, ...], bool], str] = {}
        self._counts: dict[str, int] = {}
        self._specials = count_tokens("")

    # -- headers
    def header(self, trail: list[str], first: bool) -> str:
        """Header for a chunk, shortened (never the text) if it would leave too little room."""
        key = (tuple(trail), first)
        if key not in self._headers:
            self._headers[key] = self._make_header(trail, first)
        return self._headers[key]

    def _make_header(self, trail: list[str], first: bool) -> str:
        title = self.page.title
        description = self.page.description if first else ""
        candidates = [(title, description, trail)]
        if description:
            candidates.append((title, "", trail))
        if len(trail) > 1:
            candidates.append((title, "", trail[-1:]))
        for candidate in candidates:
            header = _header(*candidate)
            if self.count(header + "\nx") <= self.max_tokens - _MIN_TEXT_ROOM:
                return header
        words = _header(*candidates[-1]).split()  # pathological: cut the header's words
        while len(words) > 1 and self.count(" ".join(words) + "\nx") > (
            self.max_tokens - _MIN_TEXT_ROOM
        ):
            words = words[: max(1, len(words) * 3 // 4)]
        return " ".join(words)

    def tokens(self, header: str, text: str) -> int:
        key = f"{header}\n{text}"
        if key not in self._counts:
            self._counts[key] = self.count(key)
        return self._counts[key]

    def at_least(self, header: str, text: str, limit: int) -> bool:
        """tokens(header, text) >= limit, counting only a prefix of a long text when that
        prefix (cut at a space, so no word is split) already reaches the limit."""
        cut = text.rfind(" ", 0, 8 * limit)
        if len(text) > 8 * limit and cut > 0 and self.tokens(header, text[:cut]) >= limit:
            return True
        return self.tokens(header, text) >= limit

    def fits(self, header: str, text: str) -> bool:
        return not self.at_least(header, text, self.max_tokens + 1)

    # -- merging tiny sections
    def groups(self) -> list[_Group]:
        sections = [
            _Group(s.path, list(s.heading_trail), s.heading_id, [b for b in s.blocks if b.strip()])
            for s in self.page.sections
        ]
        out: list[_Group] = []
        cur: _Group | None = None
        for section in sections:
            if cur is None:
                cur = section
                continue
            if section.path == cur.path and self.is_tiny(cur, first=not out):
                merged = self.merge(cur, section)
                if self.fits(self.header(merged.trail, not out), merged.text):
                    cur = merged
                    continue
            self.close(cur, out)
            cur = section
        if cur is not None:
            self.close(cur, out)
        return [g for g in out if g.blocks]

    def is_tiny(self, group: _Group, first: bool) -> bool:
        return not self.at_least(self.header(group.trail, first), group.text, self.min_tokens)

    def close(self, group: _Group, out: list[_Group]) -> None:
        """Append `group`; a tiny one that could not merge forward merges backward if it fits."""
        if out and out[-1].path == group.path and self.is_tiny(group, first=not out):
            merged = self.merge(out[-1], group)
            if self.fits(self.header(merged.trail, len(out) == 1), merged.text):
                out[-1] = merged
                return
        out.append(group)

    @staticmethod
    def merge(a: _Group, b: _Group) -> _Group:
        heading = " > ".join(b.trail[_common_prefix(a.trail, b.trail) :])
        extra = ([heading] if heading and b.blocks else []) + b.blocks
        return _Group(a.path, a.trail, a.heading_id, a.blocks + extra)

    # -- splitting oversized groups
    # Splitting first packs with an estimate (a header's and the units' own counts added up,
    # exact for word-piece tokenizers that split on whitespace), then checks every piece with
    # the real counter; if any piece is over budget the group is redone with real counts.
    def solo(self, text: str) -> int:
        """Tokens of `text` alone, without the special tokens the counter adds."""
        return self.tokens("", text) - self._specials

    def measure(self, header: str, units: list[_Unit], exact: bool) -> int:
        if exact:
            return self.tokens(header, _join(units))
        return self.tokens(header, "") + sum(self.solo(u.text) for u in units)

    def unit_fits(self, header: str, text: str, exact: bool) -> bool:
        return self.measure(header, [_Unit(text, "\n", None)], exact) <= self.max_tokens

    def split_unit(self, unit: _Unit, header: str, exact: bool, words: bool) -> list[_Unit]:
        """Smaller units: the lines of a block, else its sentences, else (if `words`) pieces
        of words that each fit. Returns [unit] when it cannot be split that way."""
        lines = unit.text.split("\n")
        if len(lines) > 1:
            return [
                _Unit(t, unit.joiner if i == 0 else "\n", unit.leadin) for i, t in enumerate(lines)
            ]
        sentences = _SENTENCE_END.split(unit.text)
        if len(sentences) > 1:
            return [
                _Unit(t, unit.joiner if i == 0 else " ", unit.leadin)
                for i, t in enumerate(sentences)
            ]
        if not words:
            return [unit]
        pieces = self.fit_words(unit.text, header, exact)
        return [_Unit(t, unit.joiner if i == 0 else " ", unit.leadin) for i, t in enumerate(pieces)]

    def fit_words(self, sentence: str, header: str, exact: bool) -> list[str]:
        """Split a sentence at spaces into pieces that each fit (a word never splits further
        unless it alone exceeds the budget, then it is cut by characters)."""
        if self.unit_fits(header, sentence, exact):
            return [sentence]
        pieces: list[str] = []
        current = ""
        for word in sentence.split(" "):
            candidate = f"{current} {word}" if current else word
            if self.unit_fits(header, candidate, exact):
                current = candidate
                continue
            if current:
                pieces.append(current)
            if self.unit_fits(header, word, exact):
                current = word
                continue
            while word:  # one enormous "word" (e.g. a long URL): cut it by characters
                size = len(word)
                while size > 1 and not self.unit_fits(header, word[:size], exact):
                    size = size * 3 // 4
                pieces.append(word[:size])
                word = word[size:]
            current = ""
        if current:
            pieces.append(current)
        return pieces

    def pieces(self, group: _Group, first: bool) -> list[tuple[str, str]]:
        """(header, text) for each chunk of a group."""
        head_first = self.header(group.trail, first)
        head_rest = self.header(group.trail, False)
        if self.fits(head_first, group.text):
            return [(head_first, group.text)]
        for exact in (False, True):
            texts = self.pack(group.blocks, head_first, head_rest, exact)
            pieces = [(head_first if i == 0 else head_rest, t) for i, t in enumerate(texts)]
            if exact or all(self.fits(h, t) for h, t in pieces):
                return pieces
        raise AssertionError("unreachable")

    def pack(self, blocks: list[str], head_first: str, head_rest: str, exact: bool) -> list[str]:
        """Greedy packing of blocks into pieces that fit, splitting a block only when it does
        not fit alone or when the piece it would start after is still tiny."""
        bigger = max(head_first, head_rest, key=lambda h: self.tokens(h, ""))

        def fits(header: str, candidate: list[_Unit]) -> bool:
            return self.measure(header, candidate, exact) <= self.max_tokens

        def tiny(header: str, candidate: list[_Unit]) -> bool:
            return self.measure(header, candidate, exact) < self.min_tokens

        queue = deque(_Unit(b, "\n", _leadin(blocks, i)) for i, b in enumerate(blocks))
        pieces: list[list[_Unit]] = []
        current: list[_Unit] = []
        while queue:
            unit = queue.popleft()
            header = head_first if not pieces else head_rest
            if fits(header, [*current, unit]):
                current.append(unit)
                continue
            if not current or not fits(bigger, [unit]):
                queue.extendleft(reversed(self.split_unit(unit, bigger, exact, words=True)))
                continue
            if tiny(header, current):
                smaller = self.split_unit(unit, bigger, exact, words=False)
                if len(smaller) > 1:  # fill the tiny piece with the first lines/sentences
                    queue.extendleft(reversed(smaller))
                    continue
            nxt: list[_Unit] = []
            if unit.leadin and len(current) > 1 and current[-1].text == unit.leadin:
                if fits(head_rest, [current[-1], unit]):
                    nxt = [current.pop()]  # don't leave a lead-in dangling at a piece's end
            elif unit.leadin and unit.leadin != unit.text:
                repeat = _Unit(unit.leadin, "\n", None, repeated=True)
                if fits(head_rest, [repeat, unit]):
                    nxt = [repeat]
            pieces.append(current)
            current = nxt
            queue.appendleft(unit)
        if current:
            pieces.append(current)
        # a tiny last piece takes trailing units of the one before it, while they fit
        while len(pieces) > 1 and tiny(head_rest, pieces[-1]) and not pieces[-1][0].repeated:
            prev, last = pieces[-2], pieces[-1]
            head_prev = head_first if len(pieces) == 2 else head_rest
            if (
                len(prev) > 1
                and fits(head_rest, [prev[-1], *last])
                and not tiny(head_prev, prev[:-1])
            ):
                last.insert(0, prev.pop())
                continue
            smaller = self.split_unit(prev[-1], bigger, exact, words=False)
            if len(smaller) < 2:
                break
            prev[-1:] = smaller  # retry with the lines/sentences of that unit
        return [_join(piece) for piece in pieces]

    # -- assembling chunks
    def chunks(self) -> list[Chunk]:
        page = self.page
        chunks: list[Chunk] = []
        ordinals: dict[str, int] = {}
        for group in self.groups():
            exact_path = group.path + (f"#{group.heading_id}" if group.heading_id else "")
            for header, text in self.pieces(group, first=not chunks):
                embed_text = f"{header}\n{text}"
                token_count = self.tokens(header, text)
                if token_count > self.max_tokens:  # cannot happen: units are sized to fit
                    raise ValueError(f"{exact_path}: chunk of {token_count} tokens over budget")
                ordinal = ordinals.get(exact_path, 0)
                ordinals[exact_path] = ordinal + 1
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id_for(exact_path, ordinal),
                        content_id=page.content_id,
                        base_path=page.base_path,
                        exact_path=exact_path,
                        url=GOVUK_WEB_ROOT + exact_path,
                        title=page.title,
                        description=page.description,
                        document_type=page.document_type,
                        schema_name=page.schema_name,
                        heading_trail=list(group.trail),
                        text=text,
                        embed_text=embed_text,
                        digest=digest_of(embed_text),
                        token_count=token_count,
                        public_updated_at=page.public_updated_at,
                        updated_at=page.updated_at,
                    )
                )
        return chunks


def chunk_page(
    page: ParsedPage,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    min_tokens: int = 48,
) -> list[Chunk]:
    """Chunks of `page`, each with `count_tokens(embed_text) <= max_tokens`. Deterministic."""
    return _Chunker(page, count_tokens, max_tokens, min_tokens).chunks()
