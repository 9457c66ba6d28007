"""The two queues behind small interfaces, so tests can swap SQS for memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from oxoflow_notify.lazy import Lazy
from oxoflow_notify.pipeline.ports import SQS_MAX_DELAY  # the pipeline's, implemented here

from .letters import SQS_MESSAGE_LIMIT, message_size

if TYPE_CHECKING:
    from .letters import LetterStore


class SqsQueue:
    """``client`` may be a client or a ``Lazy`` that builds one: a dispatcher whose deliveries all
    succeed never needs SQS, so a cold start need not pay for the client.

    With ``letters``, a message over ``limit`` bytes (the queue's MaximumMessageSize, counted as SQS
    counts it) keeps its body in S3 and is sent as a pointer (aws.letters): no letter is too big to keep."""

    def __init__(self, client: Any, url: str, letters: LetterStore | None = None, limit: int = SQS_MESSAGE_LIMIT) -> None:
        self._client: Lazy[Any] = client if isinstance(client, Lazy) else Lazy(lambda: client)
        self.url = url
        self.letters = letters
        self.limit = limit

    @property
    def client(self) -> Any:
        return self._client.get()

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        if self.letters is not None and message_size(body) > self.limit:
            body = json.dumps(self.letters.keep(body), separators=(",", ":"))
        self.client.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=max(0, min(SQS_MAX_DELAY, int(delay_seconds))))


@dataclass
class MemoryQueue:
    messages: list[tuple[dict[str, Any], int]] = field(default_factory=list)

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        # Round-trip through JSON so tests see exactly what SQS would carry.
        self.messages.append((json.loads(json.dumps(message)), delay_seconds))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [m for m, _ in self.messages]
