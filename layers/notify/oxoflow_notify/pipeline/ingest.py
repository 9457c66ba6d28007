"""oxo-flow's native webhook in: verify X-OxoFlow-Signature, map the payload to our event, publish it.

Point oxo-flow's own `[webhook]` (url = the IngestFunction's URL, `secret`, signature_scheme
hmac-sha256) here and its runs reach every webhook configured for the workflow. The signature is
the authentication: the Function URL has no IAM auth (oxo-flow cannot sign AWS requests), so an
unsigned or badly signed request gets 401 and is never published.

A flow like the notifier's, so it sits in pipeline/: it reads what arrives (``inbound``), checks
its signature (``outbound.verify``), keeps what it refuses as a dead letter (``deadletter``) and
publishes through the SNS client and queue the composition root hands it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from oxoflow_notify.errors import EventError, ReferenceProblem, shown
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.inbound.json_input import load_json
from oxoflow_notify.inbound.oxoflow import from_native
from oxoflow_notify.inbound.topic import publish_message
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.signing import OXOFLOW_SIGNATURE_HEADER
from oxoflow_notify.outbound.verify import verify_oxoflow

from . import deadletter as dl
from .ports import MessageQueue

MAX_BODY = 256 * 1024  # SNS's message limit
_NAMESPACE = uuid.UUID("3f6c7d52-5a0b-5d7e-9a51-6f0e1c2b9d44")


def _answer(status: int, **body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


class Ingest:
    def __init__(
        self, topic_arn: str, secrets: Callable[[], tuple[str, ...]], sns: Callable[[], Any], dead_letters: MessageQueue | None = None
    ) -> None:
        self.topic_arn = topic_arn
        self.secrets = secrets
        self.sns = sns
        self.dead_letters = dead_letters

    def handle(self, request: Any) -> dict[str, Any]:
        """A Lambda Function URL request (payload format 2.0) in, an HTTP answer out. Whatever the
        request holds (any method, header, body or encoding), the answer is a 4xx or a 2xx: an
        unauthenticated request never reaches the function's error metric."""
        if not isinstance(request, dict):
            return _answer(400, error="not a Function URL request")
        method = _method(request)
        if method != "POST":
            return _answer(405, error=f"{shown(method)} is not accepted; oxo-flow's webhook POSTs")
        try:
            raw = self._body(request)
        except (binascii.Error, ValueError, TypeError):
            return _answer(400, error="the body is not valid base64, or not text")
        if len(raw) > MAX_BODY:
            return _answer(413, error=f"the body is {len(raw)} bytes; at most {MAX_BODY} are accepted")
        signature = _headers(request).get(OXOFLOW_SIGNATURE_HEADER.lower())
        if not signature:
            logger.warning("ingest refused: unsigned", extra={"reason": "no X-OxoFlow-Signature"})
            return _answer(401, error="missing X-OxoFlow-Signature: set a secret on oxo-flow's [webhook]")
        try:
            secrets = self.secrets()
        except ReferenceProblem as exc:
            logger.error("ingest secret unavailable", extra={"reason": str(exc)})
            return _answer(503, error="the signing secret is not available; try again")
        except IngestSecretError as exc:
            logger.error("ingest secret refused", extra={"reason": str(exc)})
            return _answer(503, error="the signing secret is misconfigured; the operator must fix it (see the function's log)")
        if not verify_oxoflow(secrets, raw, signature):
            logger.warning("ingest refused: bad signature", extra={"reason": "signature mismatch", "bytes": len(raw)})
            return _answer(401, error="X-OxoFlow-Signature does not match the body (wrong secret, or the body was changed)")
        try:
            payload = load_json(raw, "the payload")  # never RecursionError; NaN, Infinity, 1e999 refused by field
            message = from_native(payload)
            # oxo-flow retries the same body: the same id means the same delivery ids downstream,
            # which the delivery ledger posts once.
            message["id"] = str(uuid.uuid5(_NAMESPACE, hashlib.sha256(raw).hexdigest()))
            event = parse_event(json.dumps(message), message_id=message["id"], received_at=datetime.now(UTC))
        except (ValueError, EventError) as exc:
            reason = f"not an oxo-flow webhook payload: {exc}"
            # Signed, so it came from oxo-flow: keep it, as the dispatcher keeps a bad event. (Unsigned
            # requests are not kept: anyone could fill the queue with them.)
            if self.dead_letters is not None:
                context = request.get("requestContext")
                request_id = str(context.get("requestId", "")) if isinstance(context, dict) else ""
                self.dead_letters.send(dl.dead_letter(dl.INVALID_EVENT, reason, raw_message=raw.decode("utf-8", "replace"),
                                                      message_id=request_id or None))  # fmt: skip
            logger.error("ingest refused: invalid payload", extra={"reason": reason})
            return _answer(400, error=reason)
        message_id = publish_message(self.sns(), self.topic_arn, message)
        logger.info("ingested", extra={"event": event.event, "workflow": event.workflow, "message_id": message_id})
        return _answer(202, message_id=message_id, event=event.event, workflow=event.workflow, id=event.id)

    @staticmethod
    def _body(request: dict[str, Any]) -> bytes:
        """The body's bytes; ValueError or TypeError when it is not text or not valid base64."""
        body = request.get("body") or ""
        if not isinstance(body, str):
            raise TypeError("the body is not text")
        if request.get("isBase64Encoded"):
            return base64.b64decode(body, validate=True)
        return body.encode("utf-8")


def _method(request: dict[str, Any]) -> str:
    """The request's HTTP method ('POST' when the request does not say); never raises."""
    context = request.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method", "POST") if isinstance(http, dict) else "POST"
    return method if isinstance(method, str) else repr(method)


def _headers(request: dict[str, Any]) -> dict[str, str]:
    """Header names lowered; whatever is not a text name and value is left out."""
    headers = request.get("headers")
    if not isinstance(headers, dict):
        return {}
    return {k.lower(): v for k, v in headers.items() if isinstance(k, str) and isinstance(v, str)}


class IngestSecretError(ValueError):
    """The stored ingest secret cannot be used as it is: the operator must fix it."""


MIN_SECRET_LENGTH = 16  # characters of each ingest secret: shorter is guessable, and is what an accidental split leaves


def secrets_from(value: str, resolve: Callable[[str], str]) -> tuple[str, ...]:
    """INGEST_SECRET: a reference (ssm:/..., secretsmanager:...) whose value holds one secret, or,
    while one is rotated, a JSON list of them, newest first: ``["new-secret", "old-secret"]``.
    Rotation is explicit so a secret can never be split by accident: a value with a comma that is
    not a JSON list, or any secret shorter than MIN_SECRET_LENGTH, is refused (IngestSecretError)
    and every request is answered 503 until it is fixed. The message never quotes the secret."""
    return parse_secrets(resolve(value))


def parse_secrets(text: str) -> tuple[str, ...]:
    """The stored value as its secrets (see ``secrets_from``); IngestSecretError when unusable."""
    text = text.strip()
    if text.startswith("["):
        try:
            parts = json.loads(text)
        except ValueError:
            raise IngestSecretError("the ingest secret starts with '[' but is not a JSON list of strings") from None
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise IngestSecretError("the ingest secret's JSON list must hold one or more strings, newest first")
    elif "," in text:
        raise IngestSecretError('the ingest secret holds a comma: while rotating store a JSON list ["new", "old"]; '
                                "otherwise store one secret without commas")  # fmt: skip
    else:
        parts = [text]
    for number, part in enumerate(parts, start=1):
        if len(part) < MIN_SECRET_LENGTH or part != part.strip():
            raise IngestSecretError(f"ingest secret #{number} is {len(part)} characters long or has surrounding spaces; "
                                    f"each must be at least {MIN_SECRET_LENGTH} characters, e.g. openssl rand -hex 32")  # fmt: skip
    return tuple(parts)
