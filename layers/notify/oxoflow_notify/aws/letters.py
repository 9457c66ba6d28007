"""The claim check: a retry message or dead letter too big for its queue keeps its body in S3.

An event may be up to 262,144 bytes (SNS's limit), and a retry message or dead letter embeds it
plus an envelope, so it can exceed what the queue accepts (``MaximumMessageSize``, counted as SQS
counts it: the body's bytes plus every message attribute's). Such a body is put under
``letters/`` in the config bucket (a lifecycle rule expires it after 15 days, longer than the
dead-letter queue's 14) and the message carries a small pointer instead, as the SQS extended
client does. Every reader (the retry function, ``replay``, the local tooling) goes through
``resolve_body``; ``replay`` removes the object once its letter is settled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from oxoflow_notify.errors import ClaimCheckError
from oxoflow_notify.lazy import Lazy
from oxoflow_notify.pipeline.claim_check import CLAIM_SCHEMA, pointer_of, without_store

__all__ = [
    "CLAIM_SCHEMA",
    "LETTERS_PREFIX",
    "SQS_MESSAGE_LIMIT",
    "ClaimCheckError",
    "LetterStore",
    "message_size",
    "pointer_of",
    "resolve_body",
]

LETTERS_PREFIX = "letters/"  # under the config bucket; template.yaml grants it and expires it (keep them equal)
SQS_MESSAGE_LIMIT = 262_144  # bytes: the queues' MaximumMessageSize in template.yaml


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """The bytes SQS counts against MaximumMessageSize: the body's UTF-8 bytes, and each message
    attribute's name, data type and value."""
    size = len(body.encode("utf-8"))
    for name, attribute in (attributes or {}).items():
        value = attribute.get("StringValue", attribute.get("BinaryValue", b""))
        size += len(name.encode("utf-8")) + len(str(attribute.get("DataType", "")).encode("utf-8"))
        size += len(value) if isinstance(value, (bytes, bytearray)) else len(str(value).encode("utf-8"))
    return size


class LetterStore:
    """Bodies kept in S3 under ``prefix`` of ``bucket``, named by their SHA-256 (keeping the same
    body twice, as a hop through the retry queue does, writes one object). ``s3``: a client, or a
    function that builds one on first use."""

    def __init__(self, s3: Any, bucket: str, prefix: str = LETTERS_PREFIX) -> None:
        self._s3: Lazy[Any] = s3 if isinstance(s3, Lazy) else Lazy(lambda: s3)  # a client, or one built on first use
        self.bucket = bucket
        self.prefix = prefix

    @property
    def s3(self) -> Any:
        return self._s3.get()

    def keep(self, body: str) -> dict[str, Any]:
        """Put the body in S3; the pointer to send in its place."""
        data = body.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{self.prefix}{digest}.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        return {"schema": CLAIM_SCHEMA, "s3": {"bucket": self.bucket, "key": key}, "bytes": len(data), "sha256": digest}

    def resolve(self, body: str) -> str:
        """The message body itself: ``body`` unless it is a pointer, else the body it points at.
        ClaimCheckError when the pointer cannot be followed (outside our letters, gone, changed);
        S3's own faults propagate (a retry may succeed)."""
        pointer = pointer_of(body)
        if pointer is None:
            return body
        bucket, key = pointer["s3"]["bucket"], pointer["s3"]["key"]
        where = f"s3://{bucket}/{key}"
        if bucket != self.bucket or not key.startswith(self.prefix) or ".." in key:
            raise ClaimCheckError(f"claim-check pointer names {where}, outside this stack's letters (s3://{self.bucket}/{self.prefix})")
        try:
            data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise ClaimCheckError(
                    f"its body was kept at {where}, which is gone (expired after 15 days, or removed by a replay of a copy of it)"
                ) from None
            raise
        if len(data) != pointer["bytes"] or hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise ClaimCheckError(f"the body kept at {where} is not the one its pointer names (size or SHA-256 differ)")
        return bytes(data).decode("utf-8")

    def discard(self, body: str) -> None:
        """Remove the object a pointer names (nothing for an ordinary body): its letter is settled."""
        pointer = pointer_of(body)
        if pointer is not None and pointer["s3"]["bucket"] == self.bucket and pointer["s3"]["key"].startswith(self.prefix):
            self.s3.delete_object(Bucket=self.bucket, Key=pointer["s3"]["key"])


def resolve_body(body: str, letters: LetterStore | None) -> str:
    """The one way every reader turns a queue message's body into the message: a pointer is
    followed into S3; without a store to follow it with, ClaimCheckError says what is missing."""
    return letters.resolve(body) if letters is not None else without_store(body)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
