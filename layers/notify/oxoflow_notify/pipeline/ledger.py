"""The delivery ledger: a webhook that answered 2xx for a delivery id is never posted it again.

SNS and SQS deliver at least once and Lambda retries failed async invocations, so the same
delivery can reach the dispatcher or the retry function twice. Each POST runs inside Powertools
Idempotency keyed by the delivery id (the same key in both functions and in replays): a 2xx is
saved as COMPLETED in DynamoDB (TTL'd), a failure deletes the claim so the next attempt may post.

One window stays open, as for every sender: a crash after the receiver answered but before the
record is saved. Receivers close it with X-OxoFlow-Delivery.

When DynamoDB does not answer the claim (throttled, timed out, unreachable), the delivery is not
posted: it is held in the retry queue (Failure.LEDGER_UNAVAILABLE, no attempt spent) until the ledger
answers, since a POST the ledger did not record is one a re-run could post again. Only a table that
does not exist (a deployment without the template's table) posts without it, and says so. That
ledger, Powertools Idempotency on the ledger's DynamoDB table, is ``aws.ledger_table``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from oxoflow_notify.outbound.delivery import Outcome, Prepared

__all__ = ["Delivered", "Ledger", "NoLedger", "Send"]

Send = Callable[[Prepared], Outcome]
Delivered = Callable[[Outcome], bool]  # whether an outcome is the delivery's 2xx (answers.delivered decides)


class Ledger(Protocol):
    def once(self, prepared: Prepared, send: Send, delivered: Delivered) -> Outcome: ...

    def register(self, context: Any) -> None: ...


class NoLedger:
    """No table configured (unit tests, a deliberately ledger-less deployment): post every time."""

    def once(self, prepared: Prepared, send: Send, delivered: Delivered) -> Outcome:
        return send(prepared)

    def register(self, context: Any) -> None:
        return None
