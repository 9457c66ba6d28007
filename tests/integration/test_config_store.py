"""The config cache: at most one GetObject per file per TTL, conditional on the ETag."""

from __future__ import annotations

import http.client
from typing import Any

import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeoutError

from oxoflow_notify.aws.config_store import ConfigStore
from oxoflow_notify.config import Config
from oxoflow_notify.errors import ConfigError, InfrastructureError, is_infrastructure
from oxoflow_notify.observability import logger
from oxolocal.stack import Stack


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingS3:
    """Wraps the real (moto) client to count calls and see the conditional header."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.calls: list[dict[str, Any]] = []
        self.fail = False

    def get_object(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.fail:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "throttled"}}, "GetObject")
        return self.s3.get_object(**kwargs)


HOOK = '[[webhooks]]\nurl = "https://a.example.org/x"\n'


def store_for(stack: Stack) -> tuple[ConfigStore, CountingS3, Clock]:
    s3, clock = CountingS3(stack.s3), Clock()
    return ConfigStore(s3, stack.bucket, "workflows/", ttl=60, clock=clock), s3, clock


def test_a_warm_store_reads_each_file_once_per_ttl_and_revalidates_by_etag(stack: Stack) -> None:
    # given a config in S3
    stack.put_config("wf", HOOK)
    store, s3, clock = store_for(stack)
    # when it is read 100 times within the TTL
    for _ in range(100):
        config = store.load("workflows/wf.oxoflow")
    # then S3 saw one GetObject
    assert isinstance(config, Config) and len(config.webhooks) == 1
    assert len(s3.calls) == 1 and "IfNoneMatch" not in s3.calls[0]
    # when the TTL passes with no change, the next read is a conditional GET answered 304
    clock.now += 61
    assert store.load("workflows/wf.oxoflow") is config
    assert len(s3.calls) == 2 and s3.calls[1]["IfNoneMatch"]


def test_a_changed_file_is_picked_up_after_the_ttl(stack: Stack) -> None:
    stack.put_config("wf", HOOK)
    store, _, clock = store_for(stack)
    store.load("workflows/wf.oxoflow")
    stack.put_config("wf", HOOK + HOOK.replace("a.example", "b.example"))
    assert len(store.load("workflows/wf.oxoflow").webhooks) == 1  # type: ignore[union-attr]
    clock.now += 61
    assert len(store.load("workflows/wf.oxoflow").webhooks) == 2  # type: ignore[union-attr]


def test_a_missing_file_is_cached_as_absent(stack: Stack) -> None:
    store, s3, _ = store_for(stack)
    assert store.load("workflows/none.oxoflow") is None
    assert store.load("workflows/none.oxoflow") is None
    assert len(s3.calls) == 1


def test_a_broken_file_is_cached_as_its_error(stack: Stack) -> None:
    stack.put_config("wf", "[[webhooks]\n")
    store, s3, _ = store_for(stack)
    assert isinstance(store.load("workflows/wf.oxoflow"), ConfigError)
    assert isinstance(store.load("workflows/wf.oxoflow"), ConfigError)
    assert len(s3.calls) == 1


def test_s3_trouble_serves_the_stale_config_and_without_one_raises(stack: Stack) -> None:
    stack.put_config("wf", HOOK)
    store, s3, clock = store_for(stack)
    config = store.load("workflows/wf.oxoflow")
    s3.fail = True
    clock.now += 61
    assert store.load("workflows/wf.oxoflow") is config
    with pytest.raises(ClientError):
        store.load("workflows/other.oxoflow")


def test_configs_for_reads_the_default_file_first(stack: Stack) -> None:
    stack.put_config("_default", HOOK.replace("a.example", "org.example"))
    stack.put_config("wf", HOOK)
    store, _, _ = store_for(stack)
    hosts = [w.host for c in store.configs_for("wf") if isinstance(c, Config) for w in c.webhooks]
    assert hosts == ["org.example.org", "a.example.org"]


class CountingBody:
    """A body that counts what is read from it, like a huge S3 object would be streamed."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0
        self.closed = False

    def read(self, amount: int | None = None) -> bytes:
        take = self.left if amount is None else min(amount, self.left, 65_536)  # short reads, as a socket gives
        self.left -= take
        self.read_bytes += take
        return b"#" * take

    def close(self) -> None:
        self.closed = True


def test_an_oversized_file_is_an_error_decided_before_reading_it(stack: Stack) -> None:
    # given a 2 MiB file in S3 (the limit is 1 MiB)
    stack.put_config("wf", "# " + "x" * (2 * 1_048_576) + "\n")
    store, _, _ = store_for(stack)
    # when the store reads it
    result = store.load("workflows/wf.oxoflow")
    # then it is the file's error, naming its size and the limit, like a syntax error
    assert isinstance(result, ConfigError)
    assert str(result) == "workflows/wf.oxoflow: the file is 2,097,155 bytes; the limit is 1,048,576 bytes (1 MiB)"


def test_without_a_content_length_no_more_than_the_limit_and_a_byte_is_read(stack: Stack) -> None:
    # given a response that does not say how long the body is, and a body of 50 MiB
    body = CountingBody(50 * 1_048_576)

    class Unsized:
        def get_object(self, **_: Any) -> dict[str, Any]:
            return {"Body": body, "ETag": '"e"'}

    store = ConfigStore(Unsized(), stack.bucket, "workflows/", ttl=60, clock=Clock())
    # when the store reads it / then it stops one byte past the limit and says the file is too big
    result = store.load("workflows/wf.oxoflow")
    assert isinstance(result, ConfigError) and "the file is over 1,048,576 bytes; the limit is 1,048,576 bytes (1 MiB)" in str(result)
    assert body.read_bytes == 1_048_577 and body.closed
    # and a body within the limit, read in short pieces, parses as before
    small = CountingBody(1_048_576)
    store = ConfigStore(type("S", (), {"get_object": lambda self, **_: {"Body": small}})(), stack.bucket, clock=Clock())
    assert isinstance(store.load("workflows/wf.oxoflow"), Config) and small.read_bytes == 1_048_576


class BreakingBody:
    """A body that gives its first bytes, then breaks off as a dropped connection does."""

    def __init__(self, first: bytes, fault: Exception) -> None:
        self.first, self.fault = first, fault
        self.reads = 0
        self.closed = False

    def read(self, amount: int | None = None) -> bytes:
        self.reads += 1
        if self.reads == 1:
            return self.first
        raise self.fault

    def close(self) -> None:
        self.closed = True


class BreakingS3(CountingS3):
    """The real (moto) client until ``broken``; then each GetObject is a 200 whose body breaks mid-read."""

    def __init__(self, s3: Any, fault: Exception) -> None:
        super().__init__(s3)
        self.fault = fault
        self.broken = False
        self.bodies: list[BreakingBody] = []

    def get_object(self, **kwargs: Any) -> Any:
        if not self.broken:
            return super().get_object(**kwargs)
        self.calls.append(kwargs)
        body = BreakingBody(HOOK.encode()[:10], self.fault)
        self.bodies.append(body)
        return {"Body": body, "ETag": '"changed"', "ContentLength": 2 * len(HOOK)}


STREAM_FAULTS = [
    ResponseStreamingError(error=ProtocolError("Connection broken: IncompleteRead(10 bytes read, 60 more expected)")),
    IncompleteReadError(actual_bytes=10, expected_bytes=70),
    ProtocolError("Connection broken: ConnectionResetError(104, 'Connection reset by peer')"),
    Urllib3ReadTimeoutError(None, "", "Read timed out."),  # type: ignore[arg-type]
    ConnectionResetError(104, "Connection reset by peer"),
    http.client.IncompleteRead(b"[[web", 60),
]


@pytest.mark.parametrize("fault", STREAM_FAULTS, ids=[type(f).__name__ for f in STREAM_FAULTS])
def test_a_body_that_breaks_mid_read_serves_the_cached_config_and_without_one_raises(
    stack: Stack, fault: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a config read and cached, then changed in S3
    stack.put_config("wf", HOOK)
    clock = Clock()
    s3 = BreakingS3(stack.s3, fault)
    store = ConfigStore(s3, stack.bucket, "workflows/", ttl=60, clock=clock)
    config = store.load("workflows/wf.oxoflow")
    assert isinstance(config, Config)
    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(logger, "warning", lambda message, extra: warnings.append((message, extra)))
    # when, after the TTL, S3 answers 200 but the body stream breaks off while it is read
    s3.broken = True
    clock.now += 61
    served = store.load("workflows/wf.oxoflow")
    # then the cached copy is served, the warning names the file and the error class, and the body was closed
    assert served is config
    assert warnings == [("serving cached config: S3 read failed", {"config_key": "workflows/wf.oxoflow", "error": type(fault).__name__})]
    assert s3.bodies[-1].reads == 2 and s3.bodies[-1].closed
    # and the next load asks S3 again (the broken read was not cached), still serving the copy while it breaks
    assert store.load("workflows/wf.oxoflow") is config and len(s3.calls) == 3
    # when the stream works again, the changed file is read
    stack.put_config("wf", HOOK + HOOK.replace("a.example", "b.example"))
    s3.broken = False
    assert len(store.load("workflows/wf.oxoflow").webhooks) == 2  # type: ignore[union-attr]
    # and a file never read before, whose body breaks, is an infrastructure fault: it raises, so the invocation is retried
    s3.broken = True
    with pytest.raises((InfrastructureError, type(fault))) as raised:
        store.load("workflows/never-read.oxoflow")
    assert is_infrastructure(raised.value)  # so the handler raises it and Lambda retries
    assert isinstance(raised.value, type(fault)) or isinstance(raised.value.__cause__, type(fault))
    assert s3.bodies[-1].closed
