"""What the users of the ledger's table share: a client built on first use, DynamoDB's error codes
(never its messages, which may quote keys), and numbers written as DynamoDB takes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxoflow_notify.lazy import Lazy

# Every DynamoDB action the functions take on the ledger table, and all the template grants them on
# it (template.yaml's UseTheLedgerTable). By the client call that needs it: the ledger (Powertools
# Idempotency: get, put, update, delete), the hand-off log (batch get, put, update), digest windows
# (get, update, and transactions of Put and Update items, governed by PutItem and UpdateItem) and
# pacing (get, update). tests/unit/test_template.py checks this list against the calls in the code.
LEDGER_ACTIONS = frozenset(
    {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
)


class OnTable:
    """A store on one table; its client is built on the first call that needs it (a cold start that
    never reaches the store never pays for it). Tests may set ``_client`` to a wrapped client's Lazy."""

    def __init__(self, table: str, client: Callable[[], Any]) -> None:
        self.table = table
        self._client: Lazy[Any] = client if isinstance(client, Lazy) else Lazy(client)

    def _ddb(self) -> Any:
        return self._client.get()


def error_code(exc: BaseException) -> str:
    """A botocore ClientError's code ('ConditionalCheckFailedException', ...); '' for anything else."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def conditional(call: Callable[..., Any], **request: Any) -> dict[str, Any] | None:
    """One conditional write (``call(**request)``): its answer, or None when its condition did not
    hold. Any other error is raised: the one place the stores tell a lost race from a fault."""
    try:
        answer: dict[str, Any] = call(**request)
    except Exception as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    return answer


def cancellation_reasons(exc: BaseException) -> list[dict[str, Any]] | None:
    """A cancelled transaction's reasons, one per item in order; None for any other error."""
    if error_code(exc) != "TransactionCanceledException":
        return None
    reasons = getattr(exc, "response", {}).get("CancellationReasons")
    return list(reasons) if isinstance(reasons, list) else None


def number(value: float) -> str:
    """A time or a wait as DynamoDB's number text, to the microsecond."""
    return f"{value:.6f}"
