"""A request's own secret work (its signature headers, new with every request) is cleaned from the
answer as thoroughly as the webhook's secrets, a 2xx's kept start included, without compiling or
caching anything per request (issue #21: that cost 1 ms a POST and 17 MB of caches). No socket."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from oxoflow_notify.outbound import echoes
from oxoflow_notify.outbound.delivery import Outcome, Prepared, _snippet, prepare
from oxoflow_notify.outbound.echoes import REDACTED, View
from oxoflow_notify.pipeline.answers import judge
from tests.unit.test_echoes import EVENT, FORMS, SIGNING_SECRET, WHSEC, _leaks, _webhook


def _signed(secret: str, delivery: str = "d-1") -> tuple[Prepared, str]:
    """A request to a webhook with ``secret``, and the signature value it sent."""
    prepared = prepare(EVENT, _webhook(secrets=(secret,)), delivery, 1)
    sent = prepared.headers.get("X-Hub-Signature-256") or prepared.headers["webhook-signature"]
    return prepared, sent.split("=", 1)[1] if sent.startswith("sha256=") else sent.split(",", 1)[1]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("secret", [SIGNING_SECRET, WHSEC], ids=["hub_signature", "standard_webhooks"])
def test_no_form_of_an_echoed_signature_survives_the_cleaning_or_reaches_the_reason(secret: str, form: str) -> None:
    # given a receiver that answers 500 quoting the signature we sent, in this form
    prepared, signature = _signed(secret)
    echoed = FORMS[form](signature)
    # when the sender reads the answer and the notifier words the reason from it
    snippet = _snippet(f"upstream said {echoed} and gave up".encode(), 500, prepared)
    reason = judge("json", Outcome(500, None, 1.0, snippet=snippet), 0.0).reason
    # then neither holds any part of it, and the removal shows
    for text in (snippet, reason):
        assert _leaks(echoed, text) == [] and _leaks(signature, text) == [], text
        assert REDACTED in text and "upstream sai" in text, text  # "d": hex "3d" is "=", in hex "sha256=" ends "3d"


@pytest.mark.parametrize("secret", [SIGNING_SECRET, WHSEC], ids=["hub_signature", "standard_webhooks"])
def test_a_2xx_that_starts_with_the_signature_keeps_none_of_it(secret: str) -> None:
    # given a receiver that answers 200 with the signature we sent as its first words
    prepared, signature = _signed(secret)
    # when the sender keeps the answer's start (it goes into the hand-off log)
    kept = _snippet(f"{signature} accepted".encode(), 200, prepared)
    # then none of the signature is in it
    assert kept == REDACTED and _leaks(signature, kept) == [], kept


def test_a_2xx_that_says_ok_is_kept_as_said() -> None:
    prepared, _ = _signed(SIGNING_SECRET)
    assert _snippet(b"ok", 200, prepared) == "ok"
    assert _snippet(b'{"ok": true}', 200, prepared) == '{"ok": true}'


def test_letters_that_lowercase_to_two_characters_do_not_shift_the_removal() -> None:
    # given an answer that puts 40 dotted capital I's (lowercased: two characters each) before an echo
    prepared, _ = _signed(SIGNING_SECRET)
    answer = "\u0130" * 40 + " refused " + SIGNING_SECRET[::-1]
    # when it is cleaned, then the echo is removed where it is, and the rest is kept
    assert _snippet(answer.encode(), 500, prepared) == "\u0130" * 40 + " refused " + REDACTED


def test_one_webhooks_secrets_are_worked_out_once_however_many_requests() -> None:
    # given a cleared cache, and 300 requests to one webhook, each with its own signature
    echoes.secrets_of.cache_clear()
    echoes.grams.cache_clear()
    webhook = _webhook(secrets=(SIGNING_SECRET,))
    answer = b'{"error": "bad request", "detail": "missing field ' + b"x" * 40 + b'"}'
    # when each answer is cleaned
    for i in range(300):
        _snippet(answer, 400, prepare(EVENT, webhook, f"d-{i}", 1))
    # then the webhook's part was built once, and nothing was cached per request
    assert echoes.secrets_of.cache_info().misses == 1
    assert echoes.grams.cache_info().currsize == 1


def _answers(seed: int, material: list[str]) -> list[str]:
    """Answers made of ordinary words and pieces of the material's forms, in random cases."""
    rng = random.Random(seed)
    forms = [form for _, form in echoes._forms(material)] + ["invalid_payload", "no such hook", "\u0130\u212a\u017f"]
    answers = []
    for _ in range(200):
        parts = []
        for form in rng.sample(forms, 3):
            start = rng.randrange(len(form))
            piece = form[start : start + rng.randrange(4, 20)]
            parts.append("".join(c.upper() if rng.random() < 0.3 else c for c in piece))
        answers.append(rng.choice([" ", "\n", ""]).join(parts))
    return answers


@pytest.mark.parametrize("seed", range(5))
def test_searching_a_short_answer_finds_what_the_windows_of_every_form_find(seed: int) -> None:
    # given a request's secret material and answers that mix its forms with ordinary words
    material = [f"sha256={SIGNING_SECRET.encode().hex()}", "Bearer tok_9fK2mX7pQ4wL8zR3vN6bH1cJ", "Hooks-abcdefgh"]
    for answer in _answers(seed, material):
        view = View(answer)
        # when the short-answer search and the full windows' lookup both run, then they agree
        assert sorted(echoes._scanned(view, material)) == sorted(echoes._windows_in(view, echoes._all_grams(material))), answer


@pytest.mark.parametrize("seed", range(5))
def test_a_requests_whole_forms_are_found_as_an_ignorecase_pattern_finds_them(seed: int) -> None:
    # given the whole forms of a request's signature, and answers that hold them in any case
    forms = sorted(echoes.whole_forms([f"sha256={SIGNING_SECRET.encode().hex()}", "v1,Kx/82+mQp0Lz7Vw4Rt=="]))
    long_s, kelvin = "\u017f", "\u212a"  # what IGNORECASE matches with "s" and "k"
    folded = ["said " + f.replace("s", long_s).replace("K", kelvin) + " here" for f in forms]
    for answer in _answers(seed, forms) + folded:
        # when both search, then both find the same places (overlapping ones too)
        expected: set[Any] = set()
        for form in forms:
            expected |= {(m.start(), m.start() + len(form)) for m in re.finditer(f"(?=({re.escape(form)}))", answer, re.IGNORECASE)}
        assert set(echoes._found(answer, forms)) == expected, answer
