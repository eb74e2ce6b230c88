"""Settings: SPEC.md defaults, PACS_* environment variables, TOML file, precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from pacs.settings import Settings
from storage.objects import open_store


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No product setting in the environment; the working directory is tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("PACS_") and not name.upper().startswith("PACS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    assert parsed.get_backend_name() == "sqlite", url
    assert parsed.database
    return Path(parsed.database).resolve()


def _file_root(url: str) -> Path:
    assert url.startswith("file://"), url
    return Path(open_store(url, fsync=False).url.removeprefix("file://"))


def test_defaults_match_the_spec(tmp_path: Path) -> None:
    s = Settings.load()
    assert s.dicom_port == 11112
    assert s.ae_title == "PACS"
    assert s.http_host == "127.0.0.1"
    assert s.http_port == 8080
    assert s.hl7_port == 2575
    storage = s.storage()
    # sqlite:///./pacs-data/index.db and file://./pacs-data/objects, relative to the cwd
    assert _sqlite_path(storage.database_url) == tmp_path / "pacs-data" / "index.db"
    assert _file_root(storage.storage_url) == tmp_path / "pacs-data" / "objects"
    assert storage.s3_endpoint_url is None


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "PACS_DICOM_PORT": "4242",
        "PACS_AE_TITLE": "ARCHIVE",
        "PACS_HTTP_HOST": "0.0.0.0",
        "PACS_HTTP_PORT": "9090",
        "PACS_HL7_PORT": "2576",
        "PACS_DATABASE_URL": "postgresql+psycopg://pacs@db.example.org/pacs",
        "PACS_STORAGE_URL": "s3://archive-bucket/pacs",
        "PACS_S3_ENDPOINT_URL": "http://minio.example.org:9000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = Settings.load()
    assert (s.dicom_port, s.ae_title, s.http_host, s.http_port, s.hl7_port) == (
        4242, "ARCHIVE", "0.0.0.0", 9090, 2576)
    storage = s.storage()
    assert storage.database_url == env["PACS_DATABASE_URL"]
    assert storage.storage_url == env["PACS_STORAGE_URL"]
    assert storage.s3_endpoint_url == env["PACS_S3_ENDPOINT_URL"]


def test_data_dir_moves_the_default_index_and_objects(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("PACS_DATA_DIR", str(tmp_path / "elsewhere"))
    storage = Settings.load().storage()
    assert _sqlite_path(storage.database_url) == tmp_path / "elsewhere" / "index.db"
    assert _file_root(storage.storage_url) == tmp_path / "elsewhere" / "objects"


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pacs.toml"
    path.write_text(text)
    return path


def test_toml_file(tmp_path: Path) -> None:
    config = _toml(tmp_path, """
ae_title = "TOMLPACS"
dicom_port = 11113
http_host = "0.0.0.0"
http_port = 8081
hl7_port = 2577
data_dir = "/srv/pacs"
storage_url = "s3://films/archive"
""")
    s = Settings.load(config)
    assert (s.ae_title, s.dicom_port, s.http_host, s.http_port, s.hl7_port) == (
        "TOMLPACS", 11113, "0.0.0.0", 8081, 2577)
    assert _sqlite_path(s.storage().database_url) == Path("/srv/pacs/index.db")
    assert s.storage().storage_url == "s3://films/archive"


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _toml(tmp_path, 'ae_title = "TOMLPACS"\ndicom_port = 11113\nhttp_port = 8081\n')
    monkeypatch.setenv("PACS_DICOM_PORT", "4242")
    monkeypatch.setenv("PACS_AE_TITLE", "ENVPACS")
    s = Settings.load(config)
    assert s.dicom_port == 4242
    assert s.ae_title == "ENVPACS"
    assert s.http_port == 8081  # keys the environment does not set still come from the file


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        Settings.load(tmp_path / "nope.toml")


def test_invalid_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_DICOM_PORT", "eleven")
    with pytest.raises(ValidationError, match="dicom_port"):
        Settings.load()


def test_ae_title_longer_than_16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_AE_TITLE", "A" * 17)
    with pytest.raises(ValidationError, match="ae_title"):
        Settings.load()


def test_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that cannot exist is a clear settings error, not a failure at bind time."""
    for name in ("PACS_DICOM_PORT", "PACS_HTTP_PORT", "PACS_HL7_PORT"):
        for value in ("65536", "-1"):
            with monkeypatch.context() as m:
                m.setenv(name, value)
                with pytest.raises(ValidationError, match=name.removeprefix("PACS_").lower()):
                    Settings.load()
