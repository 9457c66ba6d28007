"""Whether an event may be delivered at all: a workflow whose own file has a ``[publish]`` key takes
only events whose SNS message is signed with it (config.publish says why).

Checked once per SNS message, after the workflow's files are loaded and before anything else is
done with the event: an event that fails is dead-lettered whole (``unauthenticated_event``, its raw
message kept) and goes to no webhook, ``_default.oxoflow``'s included. Neither a key nor a
signature is ever logged or written to a letter.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from oxoflow_notify.config import Config, is_reference
from oxoflow_notify.errors import ConfigError, InfrastructureError, ReferenceProblem
from oxoflow_notify.inbound.events import Event
from oxoflow_notify.inbound.topic import publish_signature
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import delivery_id_for

from . import deadletter as dl
from .ports import SecretReferences

Refusal = tuple[tuple[str, int], dict[str, Any]]  # ((letter id, 1), the dead letter): written once, as every refusal


def verifies(signature: str | None, message: str, keys: Sequence[str]) -> bool:
    """Whether the signature is the HMAC of the exact message under one of the keys (compared as
    bytes in constant time, every key tried: which one matched does not show in the timing)."""
    if signature is None:
        return False
    given = signature.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(publish_signature(key, message).encode("ascii"), given)
    return matched


def refusal(
    event: Event, message: str, message_id: str, signature: str | None, configs: Sequence[Config | ConfigError], own_source: str,
    references: SecretReferences | None,
) -> Refusal | None:  # fmt: skip
    """The dead letter that stands for the whole event when its workflow's own file (``own_source``)
    binds it to a publish key it does not verify under, or whose key cannot be used; None: go on.
    Raises InfrastructureError when a key could not be read for now (Lambda retries the event)."""
    own = next((c for c in configs if isinstance(c, Config) and c.source == own_source), None)
    if own is None or (not own.publish_keys and own.publish_problem is None):
        return None
    letter_id = (delivery_id_for(event, own_source, "-publish"), 1)
    unusable = own.publish_problem.message if own.publish_problem is not None else None
    try:
        keys = _keys(own, references) if unusable is None else ()
    except ReferenceProblem as exc:
        if not exc.permanent:
            raise InfrastructureError(f"the publish key of {own_source} could not be read ({exc}); the event is retried") from None
        unusable = f"{own_source}: [publish] key: {exc}"
    if unusable is not None:
        reason = f"{unusable}; the workflow's events cannot be verified, so none is delivered until [publish] is fixed"
        logger.error("event refused: unusable publish key", extra={"event_id": event.id, "message_id": message_id, "reason": reason})
        return letter_id, dl.dead_letter(dl.INVALID_CONFIG, reason, event=event.to_payload(), raw_message=message, message_id=message_id)
    if verifies(signature, message, keys):
        return None
    why = "its oxoflow-signature matches none of the workflow's publish keys" if signature else "it has no oxoflow-signature attribute"
    reason = (f"{why}, and {own_source} binds workflow '{event.workflow}' to its [publish] key: "
              "publish it again signed with the workflow's publish key")  # fmt: skip
    logger.warning("event refused: not signed with its workflow's publish key",
                   extra={"event_id": event.id, "message_id": message_id, "workflow": event.workflow, "reason": why})  # fmt: skip
    letter = dl.dead_letter(dl.UNAUTHENTICATED_EVENT, reason, event=event.to_payload(), raw_message=message, message_id=message_id)
    return letter_id, letter


def _keys(config: Config, references: SecretReferences | None) -> tuple[str, ...]:
    if references is not None:
        return references.publish_keys(config.publish_keys, config.source)
    if any(is_reference(key) for key in config.publish_keys):
        raise ReferenceProblem("it is an ssm:/secretsmanager: reference, and references are not configured here", permanent=True)
    return config.publish_keys
