"""Function settings, read once per container from UPPER_SNAKE environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from oxoflow_notify.config.scopes import DEFAULT_SECRETS_PREFIX, prefix_segments
from oxoflow_notify.errors import SettingsError
from oxoflow_notify.outbound.guard import IPNetwork, parse_allowlist
from oxoflow_notify.pipeline.retry import DEFAULT_RETRY_SCHEDULE, parse_schedule

# Seconds of every invocation kept back from POSTs, for queueing retries, writing dead letters
# and flushing metrics after the last answer: no POST starts that would eat into them.
INVOCATION_RESERVE_SECONDS = 5.0


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw!r} must be between {minimum:g} and {maximum:g}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


@dataclass(frozen=True)
class Settings:
    config_bucket: str
    retry_queue_url: str
    dead_letter_queue_url: str
    config_prefix: str = "workflows/"
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    config_cache_seconds: float = 60.0
    retry_jitter: float = 0.2
    throttle_floor: float = 60.0
    circuit_threshold: int = 5
    circuit_cooldown: float = 30.0
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_concurrency: int = 64
    secrets_prefix: str = DEFAULT_SECRETS_PREFIX
    secrets_max_age: int = 300
    target_allowlist: tuple[IPNetwork, ...] = ()
    require_https: bool = True
    ledger_table: str = ""
    ledger_ttl_seconds: int = 1_296_000  # 15 days: outlives the retry schedule and the dead letters' 14
    invocation_reserve: float = INVOCATION_RESERVE_SECONDS
    claim_wait: float = 60.0  # a claim left by a crashed run expires within that run's timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        schedule_text = env.get("RETRY_SCHEDULE", "").strip()
        return cls(
            config_bucket=_required(env, "CONFIG_BUCKET"),
            retry_queue_url=_required(env, "RETRY_QUEUE_URL"),
            dead_letter_queue_url=_required(env, "DEAD_LETTER_QUEUE_URL"),
            config_prefix=env.get("CONFIG_PREFIX", "workflows/"),
            retry_schedule=parse_schedule(schedule_text) if schedule_text else DEFAULT_RETRY_SCHEDULE,
            config_cache_seconds=_number(env, "CONFIG_CACHE_SECONDS", 60.0, 0, 86400),
            retry_jitter=_number(env, "RETRY_JITTER", 0.2, 0, 0.5),
            throttle_floor=_number(env, "RETRY_AFTER_THROTTLE_SECONDS", 60.0, 0, 3600),
            circuit_threshold=int(_number(env, "CIRCUIT_THRESHOLD", 5, 1, 1000)),
            circuit_cooldown=_number(env, "CIRCUIT_COOLDOWN_SECONDS", 30.0, 0, 3600),
            connect_timeout=_number(env, "CONNECT_TIMEOUT_SECONDS", 3.05, 0.1, 60),
            read_timeout=_number(env, "READ_TIMEOUT_SECONDS", 10.0, 0.1, 300),
            max_concurrency=int(_number(env, "MAX_CONCURRENCY", 64, 1, 256)),
            secrets_prefix=_secrets_prefix(env.get("SECRETS_PREFIX", "")),
            secrets_max_age=int(_number(env, "SECRETS_CACHE_SECONDS", 300, 0, 86400)),
            target_allowlist=_allowlist(env.get("TARGET_ALLOWLIST", "")),
            require_https=_flag(env, "REQUIRE_HTTPS", True),
            ledger_table=env.get("LEDGER_TABLE", "").strip(),
            ledger_ttl_seconds=int(_number(env, "LEDGER_TTL_SECONDS", 1_296_000, 3600, 31_536_000)),
            invocation_reserve=_number(env, "INVOCATION_RESERVE_SECONDS", INVOCATION_RESERVE_SECONDS, 0, 60),
            claim_wait=_number(env, "CLAIM_WAIT_SECONDS", 60.0, 0, 900),
        )


def _secrets_prefix(text: str) -> str:
    """SECRETS_PREFIX as the config scopes use it: path segments ending in '/' ('oxoflow-notify/')."""
    if not text.strip():
        return DEFAULT_SECRETS_PREFIX
    try:
        return "/".join(prefix_segments(text.strip())) + "/"
    except ValueError as exc:
        raise SettingsError(f"SECRETS_PREFIX: {exc}") from None


def _allowlist(text: str) -> tuple[IPNetwork, ...]:
    try:
        return parse_allowlist(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
