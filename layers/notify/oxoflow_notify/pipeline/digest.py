"""A digest: the ``Rule*`` events of one run, for one webhook, within one window, as one delivery.

A webhook with ``digest = "2m"`` has its ``Rule*`` events grouped by (webhook, workflow, run id);
the first event of a group opens a window, and when the window closes its events go out as one
message (``windows`` keeps the state, ``notifier`` closes and sends). This module holds the
window's rules: its group and delivery ids, what it keeps of each event and its limits. What a
closed window says (``Digest``, its payload) is ``inbound.digests``, beside ``Event``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

KEEP_FAILED = 10  # RuleFailed events a window keeps in full
KEEP_OTHER = 10  # other Rule* events a window keeps in full
KEEP_EVENT_BYTES = 8_000  # a larger event is kept trimmed (its stderr's tail, its message's head)
# Kept events per window, in bytes: (KEEP_FAILED + KEEP_OTHER) x KEEP_EVENT_BYTES fits, so a window
# closes early only if these numbers are changed; items stay < 400 KB, payloads < SQS's 256 KiB.
WINDOW_BYTES = 160_000
STALE_AFTER = 60  # seconds past its duration: an open window whose close never came is closed by the next event
_NAMESPACE = uuid.UUID("0e3c6a4d-1f0b-5a8e-8d2f-d16e57d16e57")


def group_of(config_key: str, webhook_id: str, workflow: str, run_id: str | None) -> str:
    """The window group: one per (webhook, workflow, run); the workflow alone when there is no run id."""
    text = f"{config_key}\n{webhook_id}\n{workflow}\n{run_id if run_id is not None else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def digest_delivery_id(group: str, window: int, opened: float) -> str:
    """One delivery id per window, whoever closes it and however often: the ledger sends it once.
    The opening time is part of it: a group whose windows expired starts again at window 1, and
    that new window 1 is a delivery of its own."""
    return str(uuid.uuid5(_NAMESPACE, f"{group}\n{window}\n{opened:.6f}"))


def kept_form(payload: dict[str, Any]) -> dict[str, Any]:
    """An event as a window keeps it: whole, unless it is larger than KEEP_EVENT_BYTES; then its
    stderr's tail and its message's head are kept, marked ``"trimmed": true``."""
    if size_of(payload) <= KEEP_EVENT_BYTES:
        return payload
    found = payload.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    kept: dict[str, Any] = {
        k: details[k]
        for k in ("exit_code", "duration_s", "duration_ms")
        if isinstance(details.get(k), (str, int, float, bool)) and size_of(details[k]) <= 64
    }
    if isinstance(details.get("stderr"), str):
        kept["stderr"] = details["stderr"][-3000:]
    trimmed = {**payload, "message": str(payload.get("message", ""))[:1000], "details": kept, "trimmed": True}
    if size_of(trimmed) > KEEP_EVENT_BYTES:  # long rule names or ids: keep the identity only
        trimmed = {k: (v[:512] if isinstance(v, str) else v) for k, v in trimmed.items() if k != "details"}
        trimmed["details"] = {k: v for k, v in kept.items() if k != "stderr"}
    return trimmed


def size_of(payload: Any) -> int:
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
