"""Webhook signatures. Pure functions over the exact body bytes that are sent."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_signature(secret: str, body: bytes) -> str:
    """GitHub-compatible ``sha256=<lowercase hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_hub_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Receiver side: constant-time compare, so timing reveals nothing about the expected value."""
    if not header:
        return False
    return hmac.compare_digest(hub_signature(secret, body), header.strip())
