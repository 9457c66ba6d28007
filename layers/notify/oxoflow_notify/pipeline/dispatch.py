"""Dispatch: one SNS message -> its event -> the deliveries it asks for.

The event's workflow's files are read, the webhooks that subscribe matched, each (event, webhook)
pair counted in its digest window or posted as attempt 1; a run's ending sends its windows first.
Every pair ends in exactly one place: delivered, waiting in the retry queue, or a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from oxoflow_notify.config import Config, ConfigProblem, Webhook
from oxoflow_notify.errors import ConfigError, EventError, is_infrastructure
from oxoflow_notify.inbound.events import RUN_ENDINGS, Event, parse_event
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import delivery_id_for

from . import deadletter as dl
from .attempts import Attempt
from .executor import Executor
from .invocation import Invocation, Report
from .ports import ConfigSource, SecretReferences
from .settlement import Refusal, Settlement
from .watching import Watching, after_overdue

if TYPE_CHECKING:
    from oxoflow_notify.lazy import Lazy

    from .live import Live
from .windowing import Windowing


@dataclass(frozen=True)
class Published:
    """One SNS message as the dispatcher sees it."""

    message: str
    message_id: str
    timestamp: datetime
    signature: str | None = None  # its oxoflow-signature attribute (pipeline.publishers checks it)


class Dispatcher:
    def __init__(
        self, store: ConfigSource, references: SecretReferences | None, windowing: Windowing, executor: Executor,
        settlement: Settlement, watching: Watching | None = None, live: Lazy[Live] | None = None,
    ) -> None:  # fmt: skip
        self.live = live  # live messages (one per run) learn of every event
        self.watching = watching  # runs watched for overdue and silent
        self.store = store
        self.references = references
        self.windowing = windowing
        self.executor = executor
        self.settlement = settlement

    def dispatch(self, messages: Iterable[Published]) -> Report:
        """Raises only for infrastructure faults (S3 with nothing cached, SQS), after every other
        delivery of the event was settled: Lambda's retry then re-runs it, and the ledger keeps
        the deliveries that already got a 2xx from being posted twice."""
        inv = Invocation()
        try:
            for published in messages:
                inv.report.events += 1
                try:
                    self._one(inv, published)
                except Exception as exc:
                    if is_infrastructure(exc):
                        raise
                    self.settlement.kept_whole(inv, "event", published.message, published.message_id, exc,
                                               (published.timestamp, published.signature))  # fmt: skip
        finally:
            self.settlement.finish(inv)
        return inv.report

    def _one(self, inv: Invocation, published: Published) -> None:
        event = self._parse(inv, published)
        if event is None:
            return
        loaded = self.store.configs_for(event.workflow)
        if self._unauthenticated(inv, event, published, loaded):
            return
        configs, targets = self._targets(inv, event, loaded)
        errors: list[Exception] = []
        closing = self.windowing.run_ending(event, configs, errors) if event.event in RUN_ENDINGS else []
        late = self._watched(event, configs, errors)
        self._live(event, configs, errors)
        attempts = self._attempts(inv, event, targets, errors, late)
        if not targets and not closing and not any(w.live for c in configs for w in c.webhooks):
            logger.info("no webhook matches", extra={"event_id": event.id, "workflow": event.workflow, "event": event.event})
        if errors:
            # A window could not be read or written: fail the event before anything is posted, so
            # Lambda's retry re-runs it with nothing to repeat (the windows' markers count it once).
            raise _first(errors)
        # A run's open windows go out before the event that ended the run.
        errors += [e for e in self.executor.run(inv, closing) if e is not None]
        errors += [e for e in self.executor.run(inv, attempts) if e is not None]
        if errors:
            # An AWS fault first: Lambda's retry re-runs the event (the windows' markers and the
            # ledger keep what was done from being done twice); else the event is kept whole.
            raise _first(errors)

    def _parse(self, inv: Invocation, published: Published) -> Event | None:
        """The event, or None when it is not one (dead-lettered as invalid_event)."""
        try:
            return parse_event(published.message, message_id=published.message_id, received_at=published.timestamp)
        except EventError as exc:
            logger.error("event rejected", extra={"message_id": published.message_id, "reason": str(exc)})
            letter = dl.dead_letter(dl.INVALID_EVENT, str(exc), raw_message=published.message, message_id=published.message_id)
            self.settlement.dead_letter(inv, letter, "none")
            return None

    def _unauthenticated(self, inv: Invocation, event: Event, published: Published, loaded: list[Config | ConfigError]) -> bool:
        """Whether the event was refused whole, before any fan-out: its workflow's own file binds it
        to a publish key it is not signed with (pipeline.publishers)."""
        from .publishers import refusal

        own = self.store.key_for(event.workflow)
        refused = refusal(event, published.message, published.message_id, published.signature, loaded, own, self.references)
        if refused is not None:
            self.settlement.refuse(inv, [refused])
        return refused is not None

    def _targets(self, inv: Invocation, event: Event, loaded: list[Config | ConfigError]) -> tuple[list[Config], list[tuple[Webhook, str]]]:
        """The usable files and the (webhook, file) pairs that subscribe to the event; what can
        never be delivered (an unusable file, an invalid webhook that subscribes) is dead-lettered."""
        targets: list[tuple[Webhook, str]] = []
        refusals: list[Refusal] = []
        configs: list[Config] = []
        for config in loaded:
            if isinstance(config, ConfigError):
                logger.error("config unusable", extra={"event_id": event.id, "reason": str(config)})
                letter = dl.dead_letter(dl.INVALID_CONFIG, str(config), event=event.to_payload())
                refusals.append(((delivery_id_for(event, str(config).split(":", 1)[0], "-"), 1), letter))
                continue
            configs.append(config)
            targets.extend((w, config.source) for w in config.webhooks if w.matches(event.event))
            refusals.extend(_refusal(event, problem) for problem in config.problems if problem.matches(event.event))
        self.settlement.refuse(inv, refusals)
        return configs, targets

    def _watched(self, event: Event, configs: list[Config], errors: list[Exception]) -> set[tuple[str, str]]:
        """The runs watched for overdue and silent learn of the event (pipeline.watching); the pairs
        whose run was reported overdue before this ending came."""
        if self.watching is None:
            return set()
        try:
            return self.watching.observe(event, configs)
        except Exception as exc:  # noqa: BLE001 - an AWS fault fails the event before anything is posted
            errors.append(exc)
            return set()

    def _live(self, event: Event, configs: list[Config], errors: list[Exception]) -> None:
        """Live messages (pipeline.live) count the event; they edit themselves later, on their timers."""
        if self.live is None or not any(w.live for c in configs for w in c.webhooks):
            return  # (the module is not even loaded until a file has a live webhook)
        try:
            self.live.get().observe(event, configs)
        except Exception as exc:  # noqa: BLE001 - an AWS fault fails the event before anything is posted
            errors.append(exc)

    def _attempts(
        self, inv: Invocation, event: Event, targets: list[tuple[Webhook, str]], errors: list[Exception], late: set[tuple[str, str]]
    ) -> list[Attempt]:
        """Attempt 1 of each pair that goes out alone (an ending after its run was reported overdue
        marked so); the others counted in their digest windows."""
        attempts: list[Attempt] = []
        for webhook, source in targets:
            subject = after_overdue(event) if (source, webhook.id) in late else event
            delivery_id = delivery_id_for(subject, source, webhook.id)
            if not self.windowing.digests(webhook, event):
                attempts.append(Attempt(subject, webhook, delivery_id, 1))
                continue
            try:
                self.windowing.collect(event, webhook, source, delivery_id)
                inv.report.digested += 1
            except Exception as exc:  # noqa: BLE001 - an AWS fault is raised once the rest is settled
                errors.append(exc)
        return attempts


def _refusal(event: Event, problem: ConfigProblem) -> Refusal:
    logger.error("webhook skipped", extra={"event_id": event.id, "webhook_id": problem.webhook_id, "reason": problem.message})
    delivery_id = delivery_id_for(event, problem.source, problem.webhook_id)
    webhook_ref = {"id": problem.webhook_id, "format": None, "host": None, "source": problem.source}
    letter = dl.dead_letter(dl.INVALID_WEBHOOK, problem.message, event=event.to_payload(), webhook=webhook_ref, delivery_id=delivery_id)
    return (delivery_id, 1), letter


def _first(errors: list[Exception]) -> Exception:
    """The error to raise for the event: an AWS fault first (Lambda's retry is the design)."""
    return next((e for e in errors if is_infrastructure(e)), errors[0])
