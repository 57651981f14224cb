"""Undo common obfuscations before jailbreak detection.

`normalise_for_detection` returns a cleaned text (invisible characters removed, NFKC, look-alike
letters folded to Latin) and extra *variants* (leetspeak folded, letter-by-letter text joined,
base64 / hex / rot13 segments decoded, text hidden in Unicode tag characters). Detection runs
over the text and every variant. The caller keeps the original text for audit; `stripped`
says which invisible characters were removed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

CONFUSABLES_FILE = Path(__file__).resolve().parent / "definitions" / "confusables.json"

_TAG_START, _TAG_END = 0xE0000, 0xE007F
_VARIATION_SELECTORS = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}
_LEET = str.maketrans(
    {"1": "i", "3": "e", "4": "a", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_LEET_CHARS = set("134057@$")
_COMMON_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "all",
        "an",
        "and",
        "any",
        "are",
        "as",
        "ask",
        "at",
        "be",
        "before",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "give",
        "have",
        "how",
        "i",
        "if",
        "ignore",
        "in",
        "instructions",
        "is",
        "it",
        "know",
        "me",
        "mode",
        "must",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "only",
        "or",
        "our",
        "output",
        "please",
        "previous",
        "print",
        "prompt",
        "reply",
        "rules",
        "say",
        "secret",
        "show",
        "system",
        "tell",
        "that",
        "the",
        "their",
        "then",
        "these",
        "this",
        "to",
        "up",
        "us",
        "user",
        "was",
        "we",
        "what",
        "when",
        "with",
        "without",
        "you",
        "your",
    ]
)

_B64_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RE = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x)?[0-9A-Fa-f]{2}[\s:,]?){8,}")
# Runs of at least four single characters separated by one separator: "i g n o r e", "s.y.s".
_SPACED_RE = re.compile(r"(?<!\S)(?:[^\s](?: {1,3}|[.\-_*|/]))+[^\s](?!\S)")


@dataclass
class Normalised:
    text: str  # invisible characters removed, NFKC, look-alikes folded
    variants: list[str] = field(default_factory=list)  # extra views to run detection over
    stripped: list[str] = field(default_factory=list)  # "U+200B ZERO WIDTH SPACE x3", ...
    variant_kinds: list[str] = field(default_factory=list)  # parallel to variants
    # invisible characters removed and NFKC, but look-alikes NOT folded: Cyrillic or Greek words
    # of a message really written in those scripts (the multilingual jailbreak terms read this)
    unfolded: str = ""

    def all_texts(self) -> list[tuple[str, str]]:
        """(kind, text) for the cleaned text and every variant."""
        return [("text", self.text), *zip(self.variant_kinds, self.variants, strict=True)]


@cache
def _confusables() -> dict[int, str]:
    data = json.loads(CONFUSABLES_FILE.read_text(encoding="utf-8"))
    return {ord(k): v for k, v in data["map"].items()}


def is_invisible(ch: str) -> bool:
    cp = ord(ch)
    if ch in "\n\t\r":
        return False
    return (
        unicodedata.category(ch) in ("Cf", "Cc", "Co")
        or cp in _VARIATION_SELECTORS
        or _TAG_START <= cp <= _TAG_END
        or ch in "\u115f\u1160\u3164\uffa0"  # Hangul fillers render blank
    )


def _strip_invisible(text: str) -> tuple[str, list[str], str]:
    """(visible text, descriptions of what was removed, ASCII hidden in tag characters)."""
    kept: list[str] = []
    counts: dict[int, int] = {}
    hidden: list[str] = []
    for ch in text:
        if not is_invisible(ch):
            kept.append(ch)
            continue
        cp = ord(ch)
        counts[cp] = counts.get(cp, 0) + 1
        if 0xE0020 <= cp <= 0xE007E:
            hidden.append(chr(cp - 0xE0000))
    stripped = []
    tags = sum(n for cp, n in counts.items() if _TAG_START <= cp <= _TAG_END)
    if tags:
        stripped.append(f"U+E0000 block TAG characters x{tags}")
    for cp, n in counts.items():
        if _TAG_START <= cp <= _TAG_END:
            continue
        name = unicodedata.name(chr(cp), "UNNAMED")
        stripped.append(f"U+{cp:04X} {name}" + (f" x{n}" if n > 1 else ""))
    return "".join(kept), stripped, "".join(hidden).strip()


def fold_confusables(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_confusables())


def fold_leetspeak(text: str) -> str:
    """Fold digits/symbols to letters, only inside tokens that also hold letters or are
    mostly leet characters (so "£116.75" and "2024" stay as they are)."""

    def fold(m: re.Match[str]) -> str:
        tok = m.group(0)
        if len(tok) > 15 or not any(c in _LEET_CHARS for c in tok):
            return tok
        letters = sum(c.isalpha() for c in tok)
        if letters == 0 and not re.search(r"[@$]", tok):
            return tok
        return tok.translate(_LEET)

    return re.sub(r"[\w@$]+", fold, text)


def despace(text: str) -> str:
    """Join letter-by-letter runs: "i g n o r e  a l l" -> "ignore all"."""

    def join(m: re.Match[str]) -> str:
        run = m.group(0)
        if sum(c.isalnum() for c in run) < 4:
            return run
        if re.search(r"[^\s][.\-_*|/][^\s]", run):  # "s.y.s.t.e.m p.r.o.m.p.t"
            words = re.split(r"\s+", run)
        elif re.search(r" {2,}| / ", run):  # "i g n o r e  a l l"
            words = re.split(r" {2,}| / ", run)
        else:
            words = [run]
        return " ".join(re.sub(r"[ .\-_*|/]", "", w) for w in words)

    return _SPACED_RE.sub(join, text)


def _word_score(text: str) -> float:
    words = re.findall(r"[a-z]+", text.lower())
    if not words:
        return 0.0
    return sum(w in _COMMON_WORDS for w in words) / len(words)


def _looks_like_words(decoded: str) -> bool:
    if len(decoded) < 6:
        return False
    printable = sum(c.isprintable() or c in "\n\t" for c in decoded) / len(decoded)
    letters = sum(c.isalpha() or c.isspace() for c in decoded) / len(decoded)
    words = re.findall(r"[A-Za-z]{2,}", decoded)
    return printable > 0.95 and letters > 0.7 and len(words) >= 2


def _decode_base64(segment: str) -> str | None:
    s = segment.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        decoded = base64.b64decode(s, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if _looks_like_words(decoded) else None


def _decode_hex(segment: str) -> str | None:
    digits = re.sub(r"0x|[\s:,]", "", segment)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        decoded = bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if _looks_like_words(decoded) else None


def decode_segments(text: str) -> list[tuple[str, str]]:
    """(kind, decoded text) for base64, hex and rot13 content that decodes to words."""
    out: list[tuple[str, str]] = []
    for m in _B64_RE.finditer(text):
        seg = m.group(0)
        if seg.isalpha() and (seg.islower() or seg.isupper()):
            continue  # a long plain word, not base64
        decoded = _decode_base64(seg)
        if decoded:
            out.append(("base64", decoded))
    for m in _HEX_RE.finditer(text):
        decoded = _decode_hex(m.group(0))
        if decoded:
            out.append(("hex", decoded))
    rot = codecs.encode(text, "rot13")
    if _word_score(rot) >= 0.3 and _word_score(rot) > 2 * _word_score(text) + 0.05:
        out.append(("rot13", rot))
    return out


def normalise_for_detection(text: str, *, _depth: int = 0) -> Normalised:
    visible, stripped, hidden = _strip_invisible(text)
    cleaned = fold_confusables(visible)
    # Invisible characters inside a word ("ig\u200bnore") are gone; collapse runs of spaces
    # that NFKC may have produced but keep double spaces (word gaps in spaced-out text).
    variants: list[tuple[str, str]] = []
    if hidden:
        variants.append(("tag_characters", fold_confusables(hidden)))
    leet = fold_leetspeak(cleaned)
    if leet != cleaned:
        variants.append(("leetspeak", leet))
    spaced = despace(cleaned)
    if spaced != cleaned:
        variants.append(("despaced", spaced))
        leet_spaced = fold_leetspeak(spaced)
        if leet_spaced != spaced:
            variants.append(("despaced+leetspeak", leet_spaced))
    for kind, decoded in decode_segments(cleaned):
        variants.append((kind, decoded))
        if _depth < 1:  # decoded text may itself be obfuscated once more
            inner = normalise_for_detection(decoded, _depth=_depth + 1)
            variants.append((kind, inner.text))
            variants.extend(
                (f"{kind}+{k}", v) for k, v in zip(inner.variant_kinds, inner.variants, strict=True)
            )
    seen = {cleaned}
    kinds: list[str] = []
    texts: list[str] = []
    for kind, v in variants:
        v = v.strip()
        if v and v not in seen:
            seen.add(v)
            kinds.append(kind)
            texts.append(v)
    return Normalised(cleaned, texts, stripped, kinds, unicodedata.normalize("NFKC", visible))


def script_stats(text: str) -> tuple[int, float]:
    """(number of letters, share of them outside the Latin script)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0, 0.0
    non_latin = sum(1 for c in letters if not unicodedata.name(c, "").startswith("LATIN"))
    return len(letters), non_latin / len(letters)


def _letter_script(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else ""


def written_in_other_script(text: str, min_share: float = 0.5) -> bool:
    """Whether `text` (before look-alike folding) is really written in a non-Latin script:
    mostly non-Latin letters, and few words mixing Latin with other letters. Homoglyph attacks
    ("Іgnоrе уоur rules") mix scripts inside words; Russian or Arabic text does not, and folding
    its Cyrillic letters to Latin look-alikes turns it into nonsense the English checks misread."""
    letters, share = script_stats(text)
    if letters < 3 or share < min_share:
        return False
    return not mixes_scripts(text)


def mixes_scripts(text: str, max_share: float = 0.2) -> bool:
    """Whether more than `max_share` of the words mix letters of two scripts, as homoglyph
    attacks do ("Іgnоrе" with Cyrillic І and о) and real writing in any one language does not."""
    words = [w for w in text.split() if any(c.isalpha() for c in w)]
    mixed = sum(1 for w in words if len({_letter_script(c) for c in w if c.isalpha()}) > 1)
    return mixed > max_share * len(words)
