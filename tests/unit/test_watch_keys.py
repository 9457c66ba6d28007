"""`overdue` and `silent` as validate (and the Lambda) read them: durations from 1m to 7d, with the
mistake named; the parsed webhook holds seconds."""

from __future__ import annotations

import pytest

from oxoflow_notify.config import Config
from oxoflow_notify.config.parse import parse_config

URL = "https://hooks.example.org/run"


def parsed(extra: str) -> Config:
    return parse_config(f'[[webhooks]]\nid = "w"\nurl = "{URL}"\n{extra}\n'.encode(), "workflows/wf.oxoflow")


def test_the_keys_become_seconds() -> None:
    (webhook,) = parsed('overdue = "6h"\nsilent = "45m"').webhooks
    assert (webhook.overdue, webhook.silent) == (21_600, 2_700)
    (plain,) = parsed("").webhooks
    assert (plain.overdue, plain.silent) == (None, None)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('overdue = "30s"', "key 'overdue' must be from 1m to 7d (got 30 s)"),
        ('silent = "8d"', "key 'silent' must be from 1m to 7d"),
        ('overdue = "soon"', "key 'overdue': 'soon' is not a duration"),
        ('overdu = "6h"', "did you mean 'overdue'"),
        ('events = ["WorkflowOverdue"]\noverdue = "1h"', None),
    ],
)
def test_each_mistake_is_named(extra: str, problem: str | None) -> None:
    config = parsed(extra)
    messages = [p.message for p in config.problems]
    assert (messages == []) if problem is None else any(problem in m for m in messages), messages
