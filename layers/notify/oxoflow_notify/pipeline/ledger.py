"""The delivery ledger: a webhook that answered 2xx for a delivery id is never posted it again.

SNS and SQS deliver at least once and Lambda retries failed async invocations, so the same
delivery can reach the dispatcher or the retry function twice. Each POST runs inside Powertools
Idempotency keyed by the delivery id (the same key in both functions and in replays): a 2xx is
saved as COMPLETED in DynamoDB (TTL'd), a failure deletes the claim so the next attempt may post.

One window stays open, as for every sender: a crash after the receiver answered but before the
record is saved. Receivers close it with X-OxoFlow-Delivery.

When DynamoDB does not answer the claim (throttled, timed out, unreachable), the delivery is not
posted: it is held in the retry queue (LEDGER_UNAVAILABLE, no attempt spent) until the ledger
answers, since a POST the ledger did not record is one a re-run could post again. Only a table that
does not exist (a deployment without the template's table) posts without it, and says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from oxoflow_notify.aws.observability import logger
from oxoflow_notify.outbound.delivery import ALREADY_DELIVERED, IN_PROGRESS, LEDGER_UNAVAILABLE, Outcome, Prepared

__all__ = ["ALREADY_DELIVERED", "IN_PROGRESS", "IdempotencyLedger", "Ledger", "NoLedger"]

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


DEFAULT_BUDGET_MS = 60_000  # outside Lambda (replays): a crashed claim frees itself after a minute


class _Budget:
    """A stand-in Lambda context for runs outside Lambda: a fixed time budget from each claim."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


class _NotDelivered(Exception):
    """Carries a failed outcome out of the idempotent function, so Powertools drops the claim."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error or outcome.status)
        self.outcome = outcome


def _table_missing(exc: BaseException) -> bool:
    """Whether a ledger failure is the table's absence (its cause, which Powertools wraps, says so)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        causes = [seen, *(a for a in seen.args if isinstance(a, BaseException))]
        if any(getattr(c, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException" for c in causes
               if isinstance(getattr(c, "response", None), dict)):  # fmt: skip
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class IdempotencyLedger:
    """Powertools Idempotency on a DynamoDB table; the client is built on first use.

    If the table does not answer, the delivery is held (LEDGER_UNAVAILABLE); if it does not exist,
    the delivery is posted anyway (and logged): there is no ledger to wait for.
    """

    def __init__(self, table: str, ttl_seconds: int, client: Callable[[], Any]) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._lock = threading.Lock()
        self._run: Callable[..., dict[str, Any]] | None = None
        self._config: Any = None
        self._errors: tuple[type[Exception], ...] = ()
        self._in_progress: type[Exception] = Exception
        self._context: Any = None

    def register(self, context: Any) -> None:
        """The invocation's context: a claim left by a crashed run expires when that run would have
        timed out. Only noted here; Powertools is imported and wired on the first delivery."""
        self._context = context
        if self._config is not None:
            self._config.register_lambda_context(context)

    def once(self, prepared: Prepared, send: Send, delivered: Delivered) -> Outcome:
        run = self._built()
        posted: list[Outcome] = []

        def post() -> dict[str, Any]:
            outcome = send(prepared)
            posted.append(outcome)
            if not delivered(outcome):
                raise _NotDelivered(outcome)
            return {"status": outcome.status}

        try:
            saved = run(post=post, delivery={"delivery_id": prepared.delivery_id})
        except _NotDelivered as exc:
            return exc.outcome
        except self._in_progress:
            return Outcome(None, IN_PROGRESS, 0.0, detail="another run is posting this delivery right now")
        except self._errors as exc:
            if posted:  # posted fine, but the record could not be saved: the answer still counts
                return posted[0]
            if not _table_missing(exc):
                logger.warning("delivery ledger unavailable, delivery held",
                               extra={"delivery_id": prepared.delivery_id, "error": type(exc).__name__})  # fmt: skip
                return Outcome(None, LEDGER_UNAVAILABLE, 0.0, detail="the delivery ledger did not answer; held until it does")
            logger.error("delivery ledger table missing, posting without it",
                         extra={"delivery_id": prepared.delivery_id, "error": type(exc).__name__})  # fmt: skip
            return send(prepared)
        if posted:
            return posted[0]
        return Outcome(saved.get("status") if isinstance(saved, dict) else None, ALREADY_DELIVERED, 0.0,
                       detail="already delivered (the ledger holds a 2xx for this delivery id); not posted again")  # fmt: skip

    def _built(self) -> Callable[..., dict[str, Any]]:
        """Imported and wired on first use: a cold start that delivers nothing does not pay for it."""
        if self._run is not None:
            return self._run
        with self._lock:
            if self._run is None:
                from aws_lambda_powertools.utilities.idempotency import (
                    DynamoDBPersistenceLayer,
                    IdempotencyConfig,
                    idempotent_function,
                )
                from aws_lambda_powertools.utilities.idempotency.exceptions import (
                    IdempotencyAlreadyInProgressError,
                    IdempotencyItemAlreadyExistsError,
                    IdempotencyPersistenceLayerError,
                    IdempotencyValidationError,
                )

                self._config = IdempotencyConfig(
                    event_key_jmespath="delivery_id",
                    raise_on_no_idempotency_key=True,
                    expires_after_seconds=self.ttl_seconds,
                )
                store = DynamoDBPersistenceLayer(table_name=self.table, boto3_client=self._client())

                # The key prefix is the same in every function, so the dispatcher, the retry
                # function and replays share one record per delivery id.
                def post_once(post: Callable[[], dict[str, Any]], delivery: dict[str, str]) -> dict[str, Any]:
                    return post()

                run: Callable[..., dict[str, Any]] = idempotent_function(
                    post_once, data_keyword_argument="delivery", persistence_store=store, config=self._config,
                    key_prefix="oxoflow-delivery",
                )  # fmt: skip

                # The invocation's context when a handler registered one; outside Lambda, a fixed budget.
                self._config.register_lambda_context(self._context or _Budget(DEFAULT_BUDGET_MS))
                self._in_progress = IdempotencyAlreadyInProgressError
                self._errors = (IdempotencyPersistenceLayerError, IdempotencyItemAlreadyExistsError, IdempotencyValidationError)
                self._run = run
        return self._run
