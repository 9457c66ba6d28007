"""Function settings, read once per container from UPPER_SNAKE environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from oxoflow_notify.config.scopes import prefix_segments
from oxoflow_notify.defaults import DEFAULTS, row
from oxoflow_notify.errors import SettingsError
from oxoflow_notify.outbound.guard import IPNetwork, TargetGuard, parse_allowlist
from oxoflow_notify.pipeline.retry import parse_schedule

# Seconds of every invocation kept back from POSTs, for queueing retries, writing dead letters
# and flushing metrics after the last answer: no POST starts that would eat into them.
INVOCATION_RESERVE_SECONDS = DEFAULTS.invocation_reserve


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


def _setting(env: Mapping[str, str], name: str) -> float:
    """The setting the table's entry ``name`` describes: its variable, its default and its range, read once there."""
    entry = row(name)
    value, low, high = entry.value, entry.low, entry.high
    if isinstance(value, (str, tuple)) or low is None or high is None:
        raise TypeError(f"oxoflow_notify.defaults entry {name!r} is not a number with a range")
    return _number(env, entry.governs, float(value), low, high)


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
    config_prefix: str = DEFAULTS.config_prefix
    retry_schedule: tuple[int, ...] = DEFAULTS.retry_schedule
    config_cache_seconds: float = DEFAULTS.config_cache_seconds
    retry_jitter: float = DEFAULTS.retry_jitter
    throttle_floor: float = DEFAULTS.throttle_floor
    circuit_threshold: int = DEFAULTS.circuit_threshold
    circuit_cooldown: float = DEFAULTS.circuit_cooldown
    connect_timeout: float = DEFAULTS.connect_timeout
    read_timeout: float = DEFAULTS.read_timeout
    max_concurrency: int = DEFAULTS.max_concurrency
    secrets_prefix: str = DEFAULTS.secrets_prefix
    secrets_max_age: int = DEFAULTS.secrets_cache_seconds
    target_allowlist: tuple[IPNetwork, ...] = ()
    require_https: bool = DEFAULTS.require_https
    ledger_table: str = ""
    ledger_ttl_seconds: int = DEFAULTS.ledger_ttl_seconds
    invocation_reserve: float = DEFAULTS.invocation_reserve
    claim_wait: float = DEFAULTS.claim_wait
    delivery_log_table: str = ""
    delivery_log_days: int = DEFAULTS.delivery_log_days

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        schedule_text = env.get("RETRY_SCHEDULE", "").strip()
        return cls(
            config_bucket=_required(env, "CONFIG_BUCKET"),
            retry_queue_url=_required(env, "RETRY_QUEUE_URL"),
            dead_letter_queue_url=_required(env, "DEAD_LETTER_QUEUE_URL"),
            config_prefix=env.get("CONFIG_PREFIX", DEFAULTS.config_prefix),
            retry_schedule=parse_schedule(schedule_text) if schedule_text else DEFAULTS.retry_schedule,
            config_cache_seconds=_setting(env, "config_cache_seconds"),
            retry_jitter=_setting(env, "retry_jitter"),
            throttle_floor=_setting(env, "throttle_floor"),
            circuit_threshold=int(_setting(env, "circuit_threshold")),
            circuit_cooldown=_setting(env, "circuit_cooldown"),
            connect_timeout=_setting(env, "connect_timeout"),
            read_timeout=_setting(env, "read_timeout"),
            max_concurrency=int(_setting(env, "max_concurrency")),
            secrets_prefix=_secrets_prefix(env.get("SECRETS_PREFIX", "")),
            secrets_max_age=int(_setting(env, "secrets_cache_seconds")),
            target_allowlist=_allowlist(env.get("TARGET_ALLOWLIST", "")),
            require_https=_flag(env, "REQUIRE_HTTPS", DEFAULTS.require_https),
            ledger_table=env.get("LEDGER_TABLE", "").strip(),
            ledger_ttl_seconds=int(_setting(env, "ledger_ttl_seconds")),
            invocation_reserve=_setting(env, "invocation_reserve"),
            claim_wait=_setting(env, "claim_wait"),
            delivery_log_table=env.get("DELIVERY_LOG_TABLE", "").strip(),
            delivery_log_days=int(_setting(env, "delivery_log_days")),
        )


def _secrets_prefix(text: str) -> str:
    """SECRETS_PREFIX as the config scopes use it: path segments ending in '/' ('oxoflow-notify/')."""
    if not text.strip():
        return DEFAULTS.secrets_prefix
    try:
        return "/".join(prefix_segments(text.strip())) + "/"
    except ValueError as exc:
        raise SettingsError(f"SECRETS_PREFIX: {exc}") from None


def _allowlist(text: str) -> tuple[IPNetwork, ...]:
    try:
        return parse_allowlist(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def guard_from(env: Mapping[str, str], allow_http: bool = False, allowlist: str | None = None) -> TargetGuard:
    """The guard the functions build from ``env`` (REQUIRE_HTTPS, TARGET_ALLOWLIST), with the flags
    that mirror those parameters applied on top. Raises SettingsError or ValueError naming the bad value."""
    require_https = False if allow_http else _flag(env, "REQUIRE_HTTPS", DEFAULTS.require_https)
    networks = _allowlist(env.get("TARGET_ALLOWLIST", "")) if allowlist is None else parse_allowlist(allowlist)
    return TargetGuard(networks, require_https=require_https)
