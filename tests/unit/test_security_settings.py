"""Security settings: PACS_AUTH=off, TLS certificate/key pairs, the auth slice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from pacs.settings import Settings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PACS_") and not name.upper().startswith("PACS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_authentication_is_on_by_default_and_pacs_auth_off_turns_it_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().auth_settings().enabled is True
    monkeypatch.setenv("PACS_AUTH", "off")
    assert Settings.load().auth_settings().enabled is False


def test_auth_slice_carries_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_TOKEN_TTL", "600")
    monkeypatch.setenv("PACS_LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("PACS_METRICS_TOKEN", "scrape-me")
    auth = Settings.load().auth_settings()
    assert (auth.token_ttl, auth.max_failures, auth.metrics_token) == (600, 3, "scrape-me")
    assert "scrape-me" not in repr(Settings.load())


@pytest.mark.parametrize("names", [("PACS_DICOM_TLS_CERT",), ("PACS_HTTP_TLS_KEY",),
                                   ("PACS_DICOM_TLS_CA",)])
def test_tls_files_come_in_pairs(monkeypatch: pytest.MonkeyPatch, names: tuple[str]) -> None:
    for name in names:
        monkeypatch.setenv(name, "/etc/pacs/x.pem")
    with pytest.raises(ValidationError):
        Settings.load()
