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


def _bytes(text: str) -> bytes:
    """A header value as bytes: compare_digest refuses non-ASCII str (TypeError), and a header
    may hold anything; never raises, so a hostile header is a mismatch, not a crash."""
    return text.encode("utf-8", "surrogatepass")


def verify_hub(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256``: constant-time compare of ``sha256=<hex>``."""
    if not header:
        return False
    return hmac.compare_digest(hub_signature(secret, body).encode(), _bytes(header.strip()))


def verify_oxoflow(secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """``X-OxoFlow-Signature``: constant-time compare against every current secret (several while rotating)."""
    if not header:
        return False
    given = _bytes(header.strip())
    return any(hmac.compare_digest(oxoflow_signature(s, body).encode(), given) for s in secrets)


def verify_standard(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Standard Webhooks: accept if any listed ``v1`` signature matches any of our secrets and the
    timestamp is within ``tolerance`` seconds of now (replay protection)."""
    return standard_problem(secrets, headers, body, tolerance, now) is None


def standard_problem(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> str | None:
    """Why a Standard Webhooks request fails ``verify_standard`` (a missing header, a bad
    signature, a timestamp outside the tolerance, or both of the last), else None: for a person
    debugging a receiver. A receiver answers 401 either way and need not say which."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [name for name in (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE) if not lowered.get(name)]
    if missing:
        return f"missing header {', '.join(missing)}"
    message_id, timestamp_text, signatures = lowered[WEBHOOK_ID], lowered[WEBHOOK_TIMESTAMP], lowered[WEBHOOK_SIGNATURE]
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        return f"{WEBHOOK_TIMESTAMP} {timestamp_text[:40]!r} is not whole unix seconds"
    candidates = [s for s in signatures.split() if s.startswith("v1,")]
    signed = any(
        hmac.compare_digest(standard_signature(secret, message_id, timestamp, body).encode(), _bytes(candidate))
        for secret in ([secrets] if isinstance(secrets, str) else secrets)
        for candidate in candidates
    )
    problems = []
    if not candidates:
        problems.append(f"no v1 signature in {WEBHOOK_SIGNATURE}")
    elif not signed:
        problems.append(f"bad signature: this secret did not sign these {len(body)} bytes with this {WEBHOOK_ID} and {WEBHOOK_TIMESTAMP}")
    off = (time.time() if now is None else now) - timestamp
    if abs(off) > tolerance:
        when = "old" if off > 0 else "in the future"
        problems.append(f"timestamp {abs(off):.0f} s {when}, outside the tolerance of {tolerance:g} s")
    return "; ".join(problems) or None
