"""The config cache: at most one GetObject per file per TTL, conditional on the ETag."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from oxoflow_notify.config import Config
from oxoflow_notify.config_store import ConfigStore
from oxoflow_notify.errors import ConfigError
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
