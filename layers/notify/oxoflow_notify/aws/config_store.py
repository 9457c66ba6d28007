"""Read .oxoflow files from S3 with a per-container cache revalidated by ETag.

A warm function makes at most one GetObject per file per ``ttl`` seconds, and that call is a
conditional GET (If-None-Match) that costs no transfer when the file did not change.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from botocore.exceptions import BotoCoreError, ClientError

from oxoflow_notify.config import MAX_CONFIG_BYTES, Config
from oxoflow_notify.config.limits import too_big
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.scopes import DEFAULT_SECRETS_PREFIX, secret_scope
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import ConfigError, InfrastructureError
from oxoflow_notify.observability import logger

DEFAULT_NAME = "_default"
# Only a missing key means "no webhooks". NoSuchBucket is also a 404, but it is a deployment
# fault that must fail loudly (and be retried), not silence every workflow.
_MISSING = ("NoSuchKey",)
# What reading an object can fail with besides an answer from S3 (ClientError): botocore's own
# errors (the call's, and a body stream's: ResponseStreamingError, IncompleteReadError,
# ReadTimeoutError), urllib3's and http.client's where they are not wrapped, and the socket's.
_READ_FAULTS: tuple[type[Exception], ...] = (BotoCoreError, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
# Config files a warm container keeps parsed (each at most MAX_CONFIG_BYTES), the least recently
# used dropped first: events for ever new workflow names must not grow the cache without end.
MAX_CACHED_CONFIGS = DEFAULTS.max_cached_configs


@dataclass
class _Entry:
    etag: str | None
    result: Config | ConfigError | None  # None: no such file
    checked_at: float


class ConfigStore:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str = "workflows/",
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        secrets_prefix: str = DEFAULT_SECRETS_PREFIX,
        max_entries: int = MAX_CACHED_CONFIGS,
    ) -> None:
        """``secrets_prefix`` (SECRETS_PREFIX): each file's references are checked against its
        workflow's scope under it (scopes.secret_scope) as the file is parsed."""
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.ttl = ttl
        self.clock = clock
        self.secrets_prefix = secrets_prefix
        self.get_calls = 0
        self.max_entries = max_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def key_for(self, workflow: str) -> str:
        return f"{self.prefix}{workflow}.oxoflow"

    @property
    def default_key(self) -> str:
        return self.key_for(DEFAULT_NAME)

    def configs_for(self, workflow: str) -> list[Config | ConfigError]:
        """The org-wide default file first, then the workflow's own; absent files are skipped."""
        out: list[Config | ConfigError] = []
        for key in (self.default_key, self.key_for(workflow)):
            result = self.load(key)
            if result is not None:
                out.append(result)
        return out

    def load(self, key: str) -> Config | ConfigError | None:
        """Parsed config, the error that makes it unusable, or None when there is no file."""
        now = self.clock()
        entry = self._cache.get(key)
        if entry:
            self._cache.move_to_end(key)
        if entry and now - entry.checked_at < self.ttl:
            return entry.result
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if entry and entry.etag:
            request["IfNoneMatch"] = entry.etag
        self.get_calls += 1
        try:
            response = self.s3.get_object(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if entry and (code in ("304", "NotModified") or status == 304):
                entry.checked_at = now
                return entry.result
            if code in _MISSING:
                self._remember(key, _Entry(None, None, now))
                return None
            return self._stale(key, entry, exc)
        except _READ_FAULTS as exc:
            return self._stale(key, entry, exc)
        result: Config | ConfigError
        try:
            result = parse_config(self._read(response, key), key, secret_scope(key, self.secrets_prefix, self.prefix))
        except ConfigError as exc:
            result = exc
        except _READ_FAULTS as exc:  # a 200 whose body broke off: as unreadable as a failed call
            with contextlib.suppress(Exception):
                response["Body"].close()
            return self._stale(key, entry, exc)
        self._remember(key, _Entry(response.get("ETag"), result, now))
        return result

    def _remember(self, key: str, entry: _Entry) -> None:
        """Cache one file's result, dropping the least recently used beyond ``max_entries``."""
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    @staticmethod
    def _read(response: dict[str, Any], key: str) -> bytes:
        """The body, or ConfigError when it is over MAX_CONFIG_BYTES: decided by ContentLength
        before reading anything when S3 sends it, and never reading more than the limit and a byte."""
        body = response["Body"]
        length = response.get("ContentLength")
        if isinstance(length, int) and length > MAX_CONFIG_BYTES:
            body.close()
            raise too_big(key, length)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_CONFIG_BYTES:
            chunk = body.read(MAX_CONFIG_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_CONFIG_BYTES:
            body.close()
            raise too_big(key, None)
        return b"".join(chunks)

    def _stale(self, key: str, entry: _Entry | None, exc: Exception) -> Config | ConfigError | None:
        """S3 trouble (the call, or the body it streamed): serve what we had (logged), else let the
        invocation fail and be retried. The entry is left as it was: the next load asks S3 again."""
        if entry is None:
            if isinstance(exc, (BotoCoreError, ClientError)):
                raise exc
            raise InfrastructureError(f"S3 read of {key} failed ({type(exc).__name__}) and nothing is cached") from exc
        logger.warning("serving cached config: S3 read failed", extra={"config_key": key, "error": type(exc).__name__})
        return entry.result
