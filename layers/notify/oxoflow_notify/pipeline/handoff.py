"""The hand-off log: each attempt of a delivery is posted, and its successor queued, at most once.

SQS standard queues and SNS deliver at least once, and a retry function that dies mid-batch gets
its whole batch back. Without a record, every re-run of attempt N posts it again and queues
attempt N+1 again, and the delivery splits into two retry chains. The ledger (``ledger``) only
stops a delivery that already got a 2xx; this log covers the failed attempts, on the same table:

- before posting attempt N, the run reads the attempt's mark (one consistent BatchGetItem for the
  whole fan-out or retry batch);
- after a failed POST it writes the outcome (``posted``), conditionally, before acting on it;
- after queueing the successor or writing the dead letter it marks the attempt ``handed``.

A re-run that finds ``handed`` does nothing; one that finds ``posted`` (the first run died between
the answer and the hand-off) hands the recorded outcome on without posting again. Two copies of a
successor collapse at the next attempt the same way. What stays open is the moment between a
receiver's answer and the ``posted`` write, as for every sender.

If the table cannot be reached, the attempt goes ahead (logged): a possible repeat beats a
delivery held back. The marks live on the ledger's table (``aws.handoff_table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from oxoflow_notify.outbound.delivery import Outcome

POSTED = "posted"
HANDED = "handed"


@dataclass(frozen=True)
class Mark:
    state: str  # POSTED or HANDED
    outcome: Outcome | None  # the recorded outcome of a POSTED attempt


Key = tuple[str, int]  # (delivery id, attempt number)


class HandoffLog(Protocol):
    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]: ...

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool: ...

    def handed(self, delivery_id: str, attempt: int) -> None: ...


class NoHandoffLog:
    """No table (unit tests, a ledger-less deployment): every attempt is taken as new."""

    def lookup_many(self, keys: list[Key]) -> dict[Key, Mark]:
        return {}

    def posted(self, delivery_id: str, attempt: int, outcome: Outcome) -> bool:
        return True

    def handed(self, delivery_id: str, attempt: int) -> None:
        return None
