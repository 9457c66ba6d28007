"""Finding secrets a receiver echoes back, in whatever form it chose, before its answer is quoted.

A hostile or careless receiver can answer with our secrets re-encoded: hex, percent-encoded,
``\\uXXXX`` or HTML-entity escaped, base64 at any byte offset, reversed, rot13, split by spaces or
newlines, joined by zero-width characters, or cut short. Matching the exact values misses all of
that. Two passes are run over a decoded view of the answer (escapes decoded, zero-width characters
dropped; whitespace dropped too for the first pass), and what they find is removed from the
original text:

- **what it matches**: any 8 consecutive characters of a secret we sent (``Material``), in the
  secret's plain, reversed or rot13 form, or 8 bytes of it hex- or base64-encoded (base64 and
  base64url, at offsets 0, 1 and 2);
- **what it looks like**: any run of 20 or more token characters that is high-entropy hex, or that
  mixes letters and digits (or cases) throughout, the way secret scanners find keys. Words,
  ``snake_case`` codes and ``CamelCase`` names change class rarely and are kept.

Answers are cut to ``CLEAN_LIMIT`` characters before cleaning: cleaning costs a few milliseconds on
that much, and only the first ``RESPONSE_SNIPPET`` characters are kept anyway.
"""

from __future__ import annotations

import base64
import codecs
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

REDACTED = "<redacted>"
CLEAN_LIMIT = 4096
GRAM = 8  # characters of a secret that, found together, are taken for an echo of it
_HEX_GRAM, _B64_GRAM = 2 * GRAM, 12  # the same 8 (hex) or 9 (base64) bytes, encoded
TOKEN_MIN = 20

# Escapes a receiver may wrap our text in, decoded before searching: percent, \uXXXX, \xXX, JSON's
# one-letter escapes, HTML numeric entities; and characters that render as nothing.
_ESCAPE = re.compile(
    r"%(?P<pct>[0-9A-Fa-f]{2})|\\u(?P<u>[0-9A-Fa-f]{4})|\\x(?P<x>[0-9A-Fa-f]{2})|\\(?P<json>[nrt/\\\"'])"
    r"|&#(?:[xX](?P<hx>[0-9A-Fa-f]{1,6})|(?P<dec>[0-9]{1,7}));?|(?P<zw>[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff])"
)
_JSON_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_TOKEN = re.compile(rf"[A-Za-z0-9+/=_\-]{{{TOKEN_MIN},}}")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_PLAIN_GRAM = re.compile(r"[A-Z]?[a-z]+")  # a chunk of a word ("pplicati"): too likely in ordinary text
# Prefixes that name a key whatever follows them (Slack, GitHub, GitLab, Stripe, Standard Webhooks, AWS).
_KEY_PREFIX = re.compile(r"(?:xox[abposr]-|xapp-|gh[pousr]_|github_pat_|glpat-|[sr]k_live_|whsec_|AKIA|ASIA)")


class View:
    """The text as a reader of its escapes sees it, each character mapped back to the span of the
    original it came from; ``joined`` is the same without whitespace (a value split by spaces or
    newlines reads whole again)."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        spans: list[tuple[int, int]] = []
        at = 0
        for found in _ESCAPE.finditer(text):
            chars.extend(text[at : found.start()])
            spans.extend((i, i + 1) for i in range(at, found.start()))
            decoded = _decode(found)
            if decoded:
                chars.append(decoded)
                spans.append(found.span())
            at = found.end()
        chars.extend(text[at:])
        spans.extend((i, i + 1) for i in range(at, len(text)))
        self.text = "".join(chars)
        self.spans = spans
        self.joined_at = [i for i, ch in enumerate(chars) if not ch.isspace()]
        self.joined = "".join(chars[i] for i in self.joined_at).lower()

    def original(self, start: int, end: int, joined: bool = False) -> tuple[int, int]:
        """The span of the original text that the view's [start, end) came from."""
        if joined:
            start, end = self.joined_at[start], self.joined_at[end - 1] + 1
        return self.spans[start][0], self.spans[end - 1][1]


def _decode(found: re.Match[str]) -> str:
    groups = found.groupdict()
    if groups["zw"]:
        return ""
    if groups["json"]:
        return _JSON_ESCAPES.get(groups["json"], groups["json"])
    number = next((int(groups[g], 16) for g in ("pct", "u", "x", "hx") if groups[g]), None)
    if number is None:
        number = int(groups["dec"])
    return chr(number) if number < 0x110000 else found.group()


def _rot13(value: str) -> str:
    return codecs.encode(value, "rot13")


def _base64_cores(value: bytes) -> set[str]:
    """The base64 and base64url text of ``value`` that does not depend on what surrounds it, when it
    is encoded starting at byte offset 0, 1 or 2 of a longer value."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode()
        skip = (4 * offset + 2) // 3  # characters that mix in the bytes before it
        core = encoded.rstrip("=")[skip:-2]  # the last characters mix in the bytes after it
        cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


@lru_cache(maxsize=256)
def grams(material: frozenset[str]) -> dict[int, frozenset[str]]:
    """Every window of each secret's forms, lowercased, by window length (cached per webhook's secrets)."""
    by_length: dict[int, set[str]] = {GRAM: set(), _HEX_GRAM: set(), _B64_GRAM: set()}
    spellings = {spelling for s in material for spelling in (s, "".join(s.split()))}  # "Bearer <token>" also whole
    for secret in (s for s in spellings if len(s) >= GRAM):
        raw = secret.encode()
        forms = [(GRAM, f) for f in (secret, secret[::-1], _rot13(secret))]
        forms += [(_HEX_GRAM, raw.hex())] + [(_B64_GRAM, core) for core in _base64_cores(raw)]
        for length, form in forms:
            windows = (form[i : i + length] for i in range(len(form) - length + 1))
            by_length[length] |= {w.lower() for w in windows if not _PLAIN_GRAM.fullmatch(w)}
    return {length: frozenset(found) for length, found in by_length.items() if found}


def looks_secret(token: str) -> bool:
    """A long token that reads like a key: a known key prefix (``xoxb-``, ``ghp_``, ``AKIA``...), or,
    with high entropy, hex mixing digits and letters, or characters whose class (lower, upper,
    digit) changes at least every third one or so."""
    if len(token) < TOKEN_MIN:
        return False
    if _KEY_PREFIX.match(token):
        return True
    if _entropy(token) < 3.0:
        return False
    if _HEX.fullmatch(token):
        return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
    classes = [_class(c) for c in token if c.isalnum()]
    changes = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    return changes >= 0.3 * len(classes)


def _class(ch: str) -> int:
    return 0 if ch.isdigit() else 1 if ch.isupper() else 2


def _entropy(token: str) -> float:
    counts = Counter(token).values()
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts)


def echoes(text: str, material: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Spans of ``text`` that echo a secret of ``material`` in any form, or that look like a key."""
    view = View(text)
    found = [view.original(*m.span()) for m in _TOKEN.finditer(view.text) if looks_secret(m.group())]
    for length, windows in grams(frozenset(material)).items():
        joined = view.joined
        for i in range(len(joined) - length + 1):
            if joined[i : i + length] in windows:
                found.append(view.original(i, i + length, joined=True))
    return found


def scrub(text: str, material: Iterable[str] = ()) -> str:
    """``text`` with every echo of ``material``, and every key-like token, replaced by ``REDACTED``."""
    merged: list[list[int]] = []
    for start, end in sorted(echoes(text, material)):
        if merged and start <= merged[-1][1]:  # overlapping or touching: one removal
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], REDACTED]
        at = end
    return "".join(out) + text[at:]
