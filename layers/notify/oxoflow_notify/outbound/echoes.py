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

Every answer is cleaned, a 2xx too (its start is kept in the hand-off log), so the cost is per POST:
what belongs to a webhook (its URL, headers, secrets) is worked out once per webhook (``Secrets``,
cached), and what changes with every request (its signatures) is searched for directly, never
compiled into a pattern or cached.
"""

from __future__ import annotations

import base64
import codecs
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlsplit

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
# A fragment of a secret value or URL (a path segment, a query key, a header value's word) that is
# a plain word: lowercase letters, perhaps capitalised, at most 12 ("hooks", "api", "Bearer",
# "token"). Alone it is no secret material, and removing it would garble what the receiver said;
# tokens (digits, inner capitals, symbols, or longer) are removed, and so are the whole values.
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]{0,11}")
# What re.IGNORECASE matches an ASCII letter with, one character for one (str.lower turns "İ" into
# two, which would shift every position after it): ASCII capitals and the four non-ASCII letters.
_FOLD = str.maketrans({**{chr(c): chr(c + 32) for c in range(65, 91)}, "\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


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
        self.joined = _lower("".join(chars[i] for i in self.joined_at))

    def original(self, start: int, end: int, joined: bool = False) -> tuple[int, int]:
        """The span of the original text that the view's [start, end) came from."""
        if joined:
            start, end = self.joined_at[start], self.joined_at[end - 1] + 1
        return self.spans[start][0], self.spans[end - 1][1]


def _lower(text: str) -> str:
    """``text`` lowercased one character for one, so positions in it are positions in ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch if len(low := ch.lower()) != 1 else low for ch in text)


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


def _forms(material: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Each secret's forms a receiver may echo, with the window length searched for in each."""
    spellings = {spelling for s in material for spelling in (s, "".join(s.split()))}  # "Bearer <token>" also whole
    for secret in (s for s in spellings if len(s) >= GRAM):
        raw = secret.encode()
        yield from ((GRAM, f) for f in (secret, secret[::-1], _rot13(secret)))
        yield _HEX_GRAM, raw.hex()
        yield from ((_B64_GRAM, core) for core in _base64_cores(raw))


def _all_grams(material: Iterable[str]) -> dict[int, frozenset[str]]:
    by_length: dict[int, set[str]] = {GRAM: set(), _HEX_GRAM: set(), _B64_GRAM: set()}
    for length, form in _forms(material):
        windows = (form[i : i + length] for i in range(len(form) - length + 1))
        by_length[length] |= {w.lower() for w in windows if not _PLAIN_GRAM.fullmatch(w)}
    return {length: frozenset(found) for length, found in by_length.items() if found}


@lru_cache(maxsize=256)
def grams(material: frozenset[str]) -> dict[int, frozenset[str]]:
    """Every window of each secret's forms, lowercased, by window length (cached per webhook's
    secrets: never call it with a request's own values, each would be a new entry)."""
    return _all_grams(material)


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


def echoes(text: str, material: Iterable[str] = (), fresh: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Spans of ``text`` that echo a secret of ``material`` (a webhook's: its windows cached) or of
    ``fresh`` (one request's: searched for, not cached) in any form, or that look like a key."""
    view = View(text)
    found = [view.original(*m.span()) for m in _TOKEN.finditer(view.text) if looks_secret(m.group())]
    fresh = [s for s in fresh if len(s) >= GRAM]
    if len(view.joined) < GRAM:  # no window of any form fits
        return found
    found += _windows_in(view, grams(frozenset(material)))
    if fresh and len(view.joined) > _SCAN_MAX:
        found += _windows_in(view, _all_grams(fresh))
    elif fresh:
        found += _scanned(view, fresh)
    return found


# Up to this many characters, an answer's windows are looked up in a request's own forms (a few
# finds each) rather than every window of those forms built into a set: the same spans, found in
# microseconds for a short answer (a 2xx's first 16 characters) instead of a millisecond.
_SCAN_MAX = 256


def _windows_in(view: View, windows_by_length: dict[int, frozenset[str]]) -> list[tuple[int, int]]:
    joined = view.joined
    return [
        view.original(i, i + length, joined=True)
        for length, windows in windows_by_length.items()
        for i in range(len(joined) - length + 1)
        if joined[i : i + length] in windows
    ]


def _scanned(view: View, fresh: list[str]) -> list[tuple[int, int]]:
    """The spans ``_windows_in(view, _all_grams(fresh))`` finds, by searching each of the answer's
    windows in the forms: a window counts where it occurs in a form as other than a plain word."""
    by_length: dict[int, list[tuple[str, str]]] = {}
    for length, form in _forms(fresh):
        by_length.setdefault(length, []).append((form, form.lower()))
    joined, found = view.joined, []
    for length, forms in by_length.items():
        for i in range(len(joined) - length + 1):
            window = joined[i : i + length]
            if any(_occurs(window, form, lowered) for form, lowered in forms):
                found.append(view.original(i, i + length, joined=True))
    return found


def _occurs(window: str, form: str, lowered: str) -> bool:
    at = lowered.find(window)
    while at >= 0:
        if not _PLAIN_GRAM.fullmatch(form, at, at + len(window)):
            return True
        at = lowered.find(window, at + 1)
    return False


def scrub(text: str, material: Iterable[str] = (), fresh: Iterable[str] = ()) -> str:
    """``text`` with every echo of ``material`` and ``fresh``, and every key-like token, replaced by
    ``REDACTED``."""
    return _replaced(text, echoes(text, material, fresh), touching=True)


def _replaced(text: str, spans: Iterable[tuple[int, int]], touching: bool) -> str:
    """``text`` with each span replaced by ``REDACTED``, overlapping ones (and, if ``touching``,
    adjacent ones) as one."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and (start < merged[-1][1] or (touching and start == merged[-1][1])):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], REDACTED]
        at = end
    return "".join(out) + text[at:]


# -- what one webhook's answers must not quote whole ----------------------------------------------


def secret_parts(url: str, values: Iterable[str]) -> tuple[set[str], frozenset[str]]:
    """What an answer must not quote whole (the URL, its parts, the secret values given: header
    values, secrets, signatures), and the secret material none of whose forms it may quote in part
    (the same, less the plain words)."""
    values = list(values)
    parts = urlsplit(url) if url else None
    pieces = {*values} | ({url, parts.netloc, parts.path, parts.query} if parts else set())
    fragments = {word for value in values for word in value.replace(",", " ").split()}  # "Bearer <token>", "v1,<sig> v1,<sig>"
    if parts:
        fragments |= set(unquote(parts.path).split("/")) | {v for pair in parse_qsl(parts.query) for v in pair}
    secret = {f for f in fragments if not _PLAIN_WORD.fullmatch(f)}  # "no such hook" keeps its "hook"
    secret |= {*values, (parts and parts.username) or "", (parts and parts.password) or ""}
    return pieces | secret, frozenset(s for s in secret if s and not _PLAIN_WORD.fullmatch(s))


def whole_forms(pieces: Iterable[str]) -> set[str]:
    """Each piece of 4 characters or more as written, percent-encoded or decoded, JSON-escaped,
    with escaped slashes, and base64-encoded."""
    forms: set[str] = set()
    for piece in (p for p in pieces if len(p) >= 4):
        forms |= {piece, unquote(piece), quote(piece, safe=""), json.dumps(piece)[1:-1], piece.replace("/", "\\/")}
        forms.add(base64.b64encode(piece.encode()).decode().rstrip("="))
    return {f for f in forms if len(f) >= 4}


class Secrets:
    """One webhook's secret parts, worked out once: the pattern of their whole forms (compiled here,
    not per answer) and the material whose windows ``grams`` caches."""

    def __init__(self, url: str, values: tuple[str, ...]) -> None:
        pieces, self.material = secret_parts(url, values)
        forms = whole_forms(pieces)
        alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        self.pattern = re.compile(alternatives, re.IGNORECASE) if forms else None

    def redact(self, text: str, sent: Iterable[str] = ()) -> str:
        """``text`` without anything secret of this webhook's, nor of ``sent`` (this request's
        signature values), whole or in part, in any form."""
        if len(text) < 4:  # shorter than anything searched for ("ok", "{}")
            return text
        pieces, fresh = secret_parts("", sent)
        fits = [p for p in pieces if len(p) <= 3 * len(text)]  # unquoting shortens a piece at most 3:1
        spans = [m.span() for m in self.pattern.finditer(text)] if self.pattern else []
        spans += _found(text, whole_forms(fits))
        return scrub(_replaced(text, spans, touching=False), self.material, fresh)


@lru_cache(maxsize=256)
def secrets_of(url: str, values: tuple[str, ...]) -> Secrets:
    """A webhook's ``Secrets``, built once per URL and secret values (header values, secrets)."""
    return Secrets(url, values)


def _found(text: str, forms: Iterable[str]) -> list[tuple[int, int]]:
    """Every place any of ``forms`` occurs in ``text``, in any case (as ``re.IGNORECASE`` matches
    ASCII, which a request's forms are), overlapping ones too."""
    folded, spans = text.translate(_FOLD), []
    for form in (f.translate(_FOLD) for f in forms if len(f) <= len(text)):
        at = folded.find(form)
        while at >= 0:
            spans.append((at, at + len(form)))
            at = folded.find(form, at + 1)
    return spans
