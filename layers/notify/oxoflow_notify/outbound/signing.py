"""Webhook signatures. Pure functions over the exact body bytes that are sent.

Three headers:
- ``X-Hub-Signature-256: sha256=<hex>`` (GitHub style): HMAC-SHA256 keyed with the secret's UTF-8
  bytes over the body. Always sent when a webhook has a secret; uses the first (newest) secret.
- ``X-OxoFlow-Signature: hmac-sha256=<hex>``, oxo-flow's own header: the same HMAC as the first,
  sent as well for webhooks with ``signature_scheme = "hmac-sha256"``.
- Standard Webhooks (standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64> [v1,<base64> ...]``, HMAC-SHA256 keyed with the base64-decoded
  part of a ``whsec_`` secret over ``id.timestamp.body``; one signature per secret, so receivers
  keep verifying while a secret is rotated. The timestamp gives receivers replay protection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from oxoflow_notify.config.webhook_values import whsec_bytes

SIGNATURE_HEADER = "X-Hub-Signature-256"
OXOFLOW_SIGNATURE_HEADER = "X-OxoFlow-Signature"
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 keyed with the secret's UTF-8 bytes: both hex headers carry it."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def hub_signature(secret: str, body: bytes) -> str:
    """GitHub-compatible ``sha256=<lowercase hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


def oxoflow_signature(secret: str, body: bytes) -> str:
    """oxo-flow's ``hmac-sha256=<lowercase hex HMAC-SHA256(secret, body)>``."""
    return "hmac-sha256=" + hmac_sha256_hex(secret, body)


def whsec_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``, padded or not."""
    return whsec_bytes(secret)


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(whsec_key(secret), signed, hashlib.sha256).digest()).decode()


def standard_headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        WEBHOOK_ID: message_id,
        WEBHOOK_TIMESTAMP: str(timestamp),
        WEBHOOK_SIGNATURE: " ".join(standard_signature(s, message_id, timestamp, body) for s in secrets),
    }
