"""Handlers against moto's in-process AWS (mock_aws), with real loopback receivers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from oxolocal.stack import LOCAL_ENV, Stack

FAST = {"RETRY_SCHEDULE": "0,0", "POWERTOOLS_METRICS_NAMESPACE": "Test"}


@pytest.fixture
def stack(restore_environ: None) -> Iterator[Stack]:
    """The template's resources in mock_aws; handlers imported fresh for each test."""
    import os

    os.environ.update(LOCAL_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        yield Stack(overrides=FAST).provision()
