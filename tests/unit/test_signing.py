"""X-Hub-Signature-256 against the shared known-answer vectors."""

from __future__ import annotations

from typing import Any

import pytest

from oxoflow_notify.signing import hub_signature, verify_hub_signature


def test_every_shared_vector_is_reproduced(vectors: dict[str, Any]) -> None:
    cases = vectors["x_hub_signature_256"]["cases"]
    assert cases, "the shared vector file has no X-Hub-Signature-256 cases"
    for case in cases:
        # given a secret and the exact body bytes / when signed / then the expected header value
        assert hub_signature(case["secret"], case["body"].encode("utf-8")) == case["expected"]


def test_verify_accepts_the_vectors_and_rejects_a_changed_body(vectors: dict[str, Any]) -> None:
    for case in vectors["x_hub_signature_256"]["cases"]:
        body = case["body"].encode("utf-8")
        assert verify_hub_signature(case["secret"], body, case["expected"])
        assert not verify_hub_signature(case["secret"], body + b" ", case["expected"])
        assert not verify_hub_signature(case["secret"] + "x", body, case["expected"])


@pytest.mark.parametrize("header", [None, "", "sha1=abc", "sha256=" + "0" * 64])
def test_verify_rejects_missing_or_wrong_headers(header: str | None) -> None:
    assert not verify_hub_signature("s", b"body", header)


def test_signature_is_lowercase_hex_of_the_exact_bytes() -> None:
    value = hub_signature("k", "é".encode())
    assert value.startswith("sha256=")
    assert value[7:] == value[7:].lower() and len(value) == 7 + 64
    assert hub_signature("k", "é".encode()) != hub_signature("k", "é".encode("latin-1"))
