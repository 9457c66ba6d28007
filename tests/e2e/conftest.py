"""End to end: moto in server mode over real HTTP, receivers on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from oxolocal.stack import LOCAL_ENV, Stack, moto_server, use_local_aws


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    saved = dict(os.environ)
    with moto_server() as endpoint:
        use_local_aws(endpoint)
        yield endpoint
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def stack(moto_endpoint: str, restore_environ: None) -> Stack:
    """Fresh resources on the shared server for each test (unique names), handlers imported anew;
    the environment the handlers set is put back afterwards."""
    os.environ.update(LOCAL_ENV)
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    return Stack(name_prefix=prefix, overrides={"RETRY_SCHEDULE": "0,0", "CONFIG_CACHE_SECONDS": "0"}).provision()
