"""The delivery ledger (``pipeline.ledger``): Powertools Idempotency on the ledger's DynamoDB table.

Each POST runs inside an idempotent function keyed by the delivery id (key prefix
``oxoflow-delivery``, the same in every function and in replays): a 2xx is saved as COMPLETED, a
failure deletes the claim. Powertools is imported and wired on the first delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oxoflow_notify.lazy import Lazy
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import Outcome, Prepared
from oxoflow_notify.outbound.failures import Failure
from oxoflow_notify.pipeline.ledger import Delivered, Send

DEFAULT_BUDGET_MS = 60_000  # outside Lambda (replays): a crashed claim frees itself after a minute


class _Budget:
    """A stand-in Lambda context for runs outside Lambda: a fixed time budget from each claim."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


@dataclass(frozen=True)
class _Wired:
    """Powertools Idempotency as wired for the table: the idempotent POST and the errors it raises."""

    run: Callable[..., dict[str, Any]]
    config: Any
    errors: tuple[type[Exception], ...]
    in_progress: type[Exception]


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

    If the table does not answer, the delivery is held (Failure.LEDGER_UNAVAILABLE); if it does not exist,
    the delivery is posted anyway (and logged): there is no ledger to wait for.
    """

    def __init__(self, table: str, ttl_seconds: int, client: Callable[[], Any]) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._wired: Lazy[_Wired] = Lazy(self._wire)
        self._context: Any = None

    def register(self, context: Any) -> None:
        """The invocation's context: a claim left by a crashed run expires when that run would have
        timed out. Only noted here; Powertools is imported and wired on the first delivery."""
        self._context = context
        if self._wired.built:
            self._wired.get().config.register_lambda_context(context)

    def once(self, prepared: Prepared, send: Send, delivered: Delivered) -> Outcome:
        wired = self._wired.get()
        posted: list[Outcome] = []

        def post() -> dict[str, Any]:
            outcome = send(prepared)
            posted.append(outcome)
            if not delivered(outcome):
                raise _NotDelivered(outcome)
            return {"status": outcome.status}

        try:
            saved = wired.run(post=post, delivery={"delivery_id": prepared.delivery_id})
        except _NotDelivered as exc:
            return exc.outcome
        except wired.in_progress:
            return Outcome(None, Failure.IN_PROGRESS, 0.0, detail="another run is posting this delivery right now")
        except wired.errors as exc:
            if posted:  # posted fine, but the record could not be saved: the answer still counts
                return posted[0]
            if not _table_missing(exc):
                logger.warning("delivery ledger unavailable, delivery held",
                               extra={"delivery_id": prepared.delivery_id, "error": type(exc).__name__})  # fmt: skip
                return Outcome(None, Failure.LEDGER_UNAVAILABLE, 0.0, detail="the delivery ledger did not answer; held until it does")
            logger.error("delivery ledger table missing, posting without it",
                         extra={"delivery_id": prepared.delivery_id, "error": type(exc).__name__})  # fmt: skip
            return send(prepared)
        if posted:
            return posted[0]
        return Outcome(saved.get("status") if isinstance(saved, dict) else None, Failure.ALREADY_DELIVERED, 0.0,
                       detail="already delivered (the ledger holds a 2xx for this delivery id); not posted again")  # fmt: skip

    def _wire(self) -> _Wired:
        """Powertools imported and wired on first use: a cold start that delivers nothing does not pay for it."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyItemAlreadyExistsError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        config = IdempotencyConfig(
            event_key_jmespath="delivery_id", raise_on_no_idempotency_key=True, expires_after_seconds=self.ttl_seconds
        )
        store = DynamoDBPersistenceLayer(table_name=self.table, boto3_client=self._client())

        # The key prefix is the same in every function, so the dispatcher, the retry
        # function and replays share one record per delivery id.
        def post_once(post: Callable[[], dict[str, Any]], delivery: dict[str, str]) -> dict[str, Any]:
            return post()

        run: Callable[..., dict[str, Any]] = idempotent_function(
            post_once, data_keyword_argument="delivery", persistence_store=store, config=config, key_prefix="oxoflow-delivery"
        )
        # The invocation's context when a handler registered one; outside Lambda, a fixed budget.
        context: Any = self._context or _Budget(DEFAULT_BUDGET_MS)  # Powertools asks it one thing: the time left
        config.register_lambda_context(context)
        errors = (IdempotencyPersistenceLayerError, IdempotencyItemAlreadyExistsError, IdempotencyValidationError)
        return _Wired(run, config, errors, IdempotencyAlreadyInProgressError)
