"""Receiver-side verification of oxoflow-notify's signatures, for Python receivers.

    from oxoflow_notify.outbound.verify import verify_hub, verify_oxoflow, verify_standard
    if not verify_hub(SECRET, request.body, request.headers.get("X-Hub-Signature-256")): return 401
    if not verify_oxoflow([SECRET], request.body, request.headers.get("X-OxoFlow-Signature")): return 401
    if not verify_standard(["whsec_..."], request.headers, request.body): return 401

Compare in constant time, over the raw body bytes exactly as received (before any JSON parsing).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping, Sequence

from .signing import WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, hub_signature, oxoflow_signature, standard_signature

TOLERANCE_SECONDS = 300


def verify_hub(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256``: constant-time compare of ``sha256=<hex>``."""
    if not header:
        return False
    return hmac.compare_digest(hub_signature(secret, body), header.strip())


def verify_oxoflow(secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """``X-OxoFlow-Signature``: constant-time compare against every current secret (several while rotating)."""
    if not header:
        return False
    return any(hmac.compare_digest(oxoflow_signature(s, body), header.strip()) for s in secrets)


def verify_standard(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Standard Webhooks: accept if any listed ``v1`` signature matches any of our secrets and the
    timestamp is within ``tolerance`` seconds of now (replay protection)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get(WEBHOOK_ID)
    timestamp_text = lowered.get(WEBHOOK_TIMESTAMP)
    signatures = lowered.get(WEBHOOK_SIGNATURE)
    if not message_id or not timestamp_text or not signatures:
        return False
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    candidates = [s for s in signatures.split() if s.startswith("v1,")]
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = standard_signature(secret, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return True
    return False
