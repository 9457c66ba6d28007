"""The error vocabulary of an attempt, as one enum: every way a POST can fail, or not be made.

Each failure has one ``Nature`` (``nature``, matched exhaustively: a new member that is not
placed fails mypy), and ``answers.decide`` acts on the nature, never on a name. The values are the
short class names logs, metrics, dead letters and the hand-off log have always carried; an
exception's own text is never one (it quotes the URL, and the URL may be a secret).
"""

from __future__ import annotations

import enum
from typing import assert_never


class Failure(enum.StrEnum):
    # Nothing was sent: the attempt waits (a hold spends no attempt) ...
    OUT_OF_TIME = "out_of_time"  # the invocation has too little time left for this delivery's deadline
    IN_PROGRESS = "delivery_in_progress"  # another run holds the delivery's claim (or a crashed run's, until it expires)
    RATE_LIMITED = "rate_limited"  # the webhook's rate limit has no slot for it yet
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 - a name. SSM or Secrets Manager did not answer: our fault
    LEDGER_UNAVAILABLE = "ledger_unavailable"  # DynamoDB did not answer the ledger's claim: not posted unrecorded
    # ... or was already done by another run.
    ALREADY_DELIVERED = "already_delivered"  # the ledger holds a 2xx for this delivery id
    DUPLICATE_ATTEMPT = "duplicate_attempt"  # this attempt number was already handed on
    # Refusals of ours: retrying cannot help, the config must change.
    BLOCKED_TARGET = "blocked_target"
    HTTPS_REQUIRED = "https_required"
    UNRESOLVABLE_REFERENCE = "unresolvable_reference"
    INVALID_HOST = "invalid_host"
    INVALID_REQUEST = "invalid_request"
    RENDER_ERROR = "render_error"
    ENDPOINT_DISABLED = "endpoint_disabled"  # the webhook was disabled after failing for its disable_after
    # A surprise of ours around the POST: retried, and the receiver is not blamed for it.
    REQUEST_ERROR = "request_error"
    # No answer in time: retried after at least the throttle floor.
    READ_TIMEOUT = "read_timeout"
    CONNECT_TIMEOUT = "connect_timeout"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    # The receiver could not be reached or spoken to.
    DNS_FAILURE = "dns_failure"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    TLS_WRONG_NAME = "tls_wrong_name"
    TLS_EXPIRED = "tls_expired"
    TLS_UNTRUSTED = "tls_untrusted"

    @classmethod
    def read(cls, value: object) -> Failure | None:
        """A failure back from a record (the hand-off log): a name this version does not know is
        our surprise (REQUEST_ERROR: retried, never blamed on the receiver), not a crash."""
        if value is None:
            return None
        try:
            return cls(str(value))
        except ValueError:
            return cls.REQUEST_ERROR


class Nature(enum.Enum):
    """What a failure means for the attempt and the receiver."""

    DONE = "done"  # already delivered or handed on: nothing to do
    HOLD = "hold"  # nothing sent; the same attempt later, unspent
    REFUSED = "refused"  # ours, permanent: dead-lettered, the receiver not blamed
    OURS = "ours"  # ours, transient: retried, the receiver not blamed
    TIMEOUT = "timeout"  # the receiver's: retried after at least the throttle floor
    RECEIVER = "receiver"  # the receiver's: retried


def nature(failure: Failure) -> Nature:
    """The one place a failure's name is read; mypy checks that every member is placed."""
    match failure:
        case Failure.ALREADY_DELIVERED | Failure.DUPLICATE_ATTEMPT:
            return Nature.DONE
        case Failure.OUT_OF_TIME | Failure.IN_PROGRESS | Failure.RATE_LIMITED | Failure.SECRET_UNAVAILABLE | Failure.LEDGER_UNAVAILABLE:
            return Nature.HOLD
        case (
            Failure.BLOCKED_TARGET
            | Failure.HTTPS_REQUIRED
            | Failure.UNRESOLVABLE_REFERENCE
            | Failure.INVALID_HOST
            | Failure.INVALID_REQUEST
            | Failure.RENDER_ERROR
            | Failure.ENDPOINT_DISABLED
        ):
            return Nature.REFUSED
        case Failure.REQUEST_ERROR:
            return Nature.OURS
        case Failure.READ_TIMEOUT | Failure.CONNECT_TIMEOUT | Failure.DEADLINE_EXCEEDED:
            return Nature.TIMEOUT
        case (
            Failure.DNS_FAILURE
            | Failure.CONNECTION_REFUSED
            | Failure.CONNECTION_RESET
            | Failure.CONNECTION_ERROR
            | Failure.TLS_ERROR
            | Failure.TLS_WRONG_NAME
            | Failure.TLS_EXPIRED
            | Failure.TLS_UNTRUSTED
        ):
            return Nature.RECEIVER
        case _:
            assert_never(failure)
