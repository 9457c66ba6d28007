"""The repo's copy of the known-answer vectors (tests/vectors/) and the shared original beside the project."""

from __future__ import annotations

import json

from tests.conftest import ROOT, VECTORS

# Developers and CI have the shared folder at ../shared/; a user's clone does not, and needs nothing from it.
SHARED_VECTORS = ROOT.parent / "shared" / "vectors" / "signatures.json"


def test_the_repo_copy_equals_the_shared_vectors_byte_for_byte_when_they_are_present() -> None:
    if not SHARED_VECTORS.is_file():
        return  # a user's clone: no ../shared, and nothing to compare (this is not a missing tool, so no skip)
    assert VECTORS.read_bytes() == SHARED_VECTORS.read_bytes(), (
        f"{VECTORS.relative_to(ROOT)} differs from {SHARED_VECTORS}; copy the shared file over it (cp {SHARED_VECTORS} {VECTORS})"
    )


def test_the_repo_copy_is_in_the_repository_and_has_cases_for_both_schemes() -> None:
    assert VECTORS.is_file(), f"{VECTORS} is missing: the tests read the vectors from the repository, not from ../shared"
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert data["x_hub_signature_256"]["cases"] and data["standard_webhooks"]["cases"]
