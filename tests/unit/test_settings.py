"""Settings from the environment: defaults and clear errors."""

from __future__ import annotations

import pytest

from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.errors import SettingsError
from oxoflow_notify.pipeline.retry import DEFAULT_RETRY_SCHEDULE

BASE = {"CONFIG_BUCKET": "b", "RETRY_QUEUE_URL": "http://q/r", "DEAD_LETTER_QUEUE_URL": "http://q/d"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.config_prefix == "workflows/"
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.config_cache_seconds == 60
    assert (settings.connect_timeout, settings.read_timeout) == (3.05, 10.0)
    assert settings.require_https is True and settings.target_allowlist == ()
    assert settings.secrets_prefix == "oxoflow-notify/"


def test_guard_settings() -> None:
    settings = Settings.from_env({**BASE, "REQUIRE_HTTPS": "false", "TARGET_ALLOWLIST": "127.0.0.0/8, ::1/128"})
    assert settings.require_https is False
    assert [str(n) for n in settings.target_allowlist] == ["127.0.0.0/8", "::1/128"]


def test_overrides() -> None:
    settings = Settings.from_env({**BASE, "RETRY_SCHEDULE": "0,0", "CONFIG_CACHE_SECONDS": "5", "CONFIG_PREFIX": ""})
    assert settings.retry_schedule == (0, 0) and settings.config_cache_seconds == 5 and settings.config_prefix == ""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "CONFIG_BUCKET is required"),
        ({**BASE, "DEAD_LETTER_QUEUE_URL": " "}, "DEAD_LETTER_QUEUE_URL is required"),
        ({**BASE, "CONFIG_CACHE_SECONDS": "soon"}, "CONFIG_CACHE_SECONDS='soon' is not a number"),
        ({**BASE, "READ_TIMEOUT_SECONDS": "0"}, "READ_TIMEOUT_SECONDS='0' must be between"),
        ({**BASE, "RETRY_SCHEDULE": "5,x"}, "RETRY_SCHEDULE entry 2"),
        ({**BASE, "REQUIRE_HTTPS": "maybe"}, "REQUIRE_HTTPS='maybe' is not true or false"),
        ({**BASE, "TARGET_ALLOWLIST": "10.0.0.0/8,localhost"}, "TARGET_ALLOWLIST entry 'localhost' is not a CIDR range"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env(env)
