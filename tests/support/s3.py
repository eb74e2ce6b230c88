"""A moto S3 server on a free local port, for tests that talk to a real HTTP endpoint.

The standalone server (rather than ``mock_aws``) exercises the same code path as MinIO:
real sockets, real retries, real connection errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from moto.server import ThreadedMotoServer

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Moto accepts any credentials; dummy ones keep real ones out of test requests."""

_UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def start_moto() -> tuple[str, Callable[[], None]]:
    """Start moto on 127.0.0.1 (port chosen by the OS); return its URL and a stop function."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The endpoint URL of one moto server shared by the session, with dummy credentials."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        for name in _UNSET_AWS_ENV:
            patch.delenv(name, raising=False)
        endpoint, stop = start_moto()
        try:
            yield endpoint
        finally:
            stop()
