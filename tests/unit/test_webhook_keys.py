"""The per-key checks of one webhook entry: one validator per key, every problem reported, none
caused by another key's mistake; and the format names config accepts are the renderers' own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oxoflow_notify.config import WEBHOOK_KEYS
from oxoflow_notify.config.format_names import FORMAT_NAMES
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.webhook_keys import KEY_CHECKS
from oxoflow_notify.formats import FORMATS

SOURCE = "workflows/wf.oxoflow"
URL = "https://hooks.example.org/services/T0/B0/SECRETTOKEN"


def messages(text: str) -> list[str]:
    return [p.message for p in parse_config(text, SOURCE).problems]


def test_every_key_has_a_check() -> None:
    assert {key for key, _ in KEY_CHECKS} == set(WEBHOOK_KEYS)


def test_config_accepts_the_formats_the_renderers_render_and_imports_none_of_them() -> None:
    assert tuple(FORMATS) == FORMAT_NAMES
    code = "import sys, oxoflow_notify.config.parse; assert 'oxoflow_notify.formats' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_keys_mistake_is_reported_in_table_order_the_first_as_it_reads_alone() -> None:
    # given one entry with three mistakes, in three keys
    alone = messages(f'[[webhooks]]\nurl = "{URL}"\nformat = "slak"\n')[0]
    (message,) = messages(f'[[webhooks]]\nurl = "{URL}"\nformat = "slak"\ntimeout = 99\nmethod = "get"\n')
    # then one problem names all three, "; "-joined, the first exactly as when it is the only one, each
    # later one after the line of its key
    assert message == (
        f"{alone}; line 4: key 'timeout' must be a number of seconds from 0.5 to 30; line 5: key 'method': 'get' is not supported; "
        "use post or put"
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # a broken secret is not also a missing one
        ('secret = ""\nsignature = "standard-webhooks"', "key 'secret' entry 1 must be a non-empty string"),
        ('secret = []\nsignature_scheme = "hmac-sha256"', "key 'secret' is an empty list; omit it for unsigned deliveries"),
    ],
)
def test_a_keys_mistake_causes_no_problem_in_another_key(entry: str, expected: str) -> None:
    (message,) = messages(f'[[webhooks]]\nurl = "{URL}"\n{entry}\n')
    assert message == f"{SOURCE}: [[webhooks]] #1 (line 3): {expected}"  # the secret's line


def test_oxoflows_own_spelling_is_reported_once_as_written_there() -> None:
    # given [webhook] with a bad timeout_secs and two unknown keys
    (message,) = messages(f'[webhook]\nurl = "{URL}"\ntimeout_secs = 0\nsignature = "x"\nmax_attempts = 2\n')
    # then the unknown keys and timeout_secs are named as oxo-flow spells them, never again as ours
    assert message.startswith(  # at the first unknown key's line
        f"{SOURCE}: [webhook] (line 4): unknown key 'signature' (did you mean 'signature_scheme'?); "
        "unknown key 'max_attempts' (did you mean 'max_retries'?); allowed keys are "
    )
    assert message.endswith("; line 3: key 'timeout_secs' must be a number of seconds from 0.5 to 30")
    assert "key 'timeout' " not in message and "key 'signature':" not in message


def test_many_unknown_keys_are_named_up_to_three_and_counted() -> None:
    (message,) = messages(f'[[webhooks]]\nurl = "{URL}"\n' + "".join(f"k{i} = 1\n" for i in range(10)))
    assert message.count("unknown key '") == 3 and "... and 7 more unknown keys; allowed keys are url, events" in message
