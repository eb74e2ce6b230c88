"""The ``pacs`` command line, run as a real process (SPEC.md: commands, settings, verify)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, inspect

from ris.services import build_services
from storage import StorageSettings
from tests.cli.helpers import clean_env, describe, run_pacs
from tests.support.data import StudySpec, make_study, write
from tests.support.pg import drop_database, fresh_database

INDEX_TABLES = {"patients", "studies", "series", "instances", "remote_aes"}


@dataclass
class Cli:
    """A working directory, its environment and the archive the command line works on."""

    cwd: Path
    env: dict[str, str]
    data_dir: Path
    database_url: str

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_pacs(*args, cwd=self.cwd, env=self.env)

    def ok(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, describe(result)
        assert "Traceback" not in result.stderr, describe(result)
        return result

    def fails(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """Run a command that must be refused: non-zero exit, a message, no traceback."""
        result = self.run(*args)
        assert result.returncode != 0, describe(result)
        assert "Traceback" not in result.stderr + result.stdout, describe(result)
        assert result.stderr.strip(), describe(result)
        return result

    def counts(self) -> dict[str, int]:
        """What the index holds, read in this process."""
        services = build_services(StorageSettings(
            database_url=self.database_url,
            storage_url=f"file://{self.data_dir / 'objects'}"))
        try:
            return services.archive.count()
        finally:
            services.close()


def _sqlite_cli(tmp_path: Path) -> Cli:
    data = tmp_path / "pacs-data"
    return Cli(tmp_path, clean_env(PACS_DATA_DIR=str(data)), data,
               f"sqlite:///{data / 'index.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The command line on an archive in tmp_path, with the index on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield _sqlite_cli(tmp_path)
        return
    request.getfixturevalue("pg_template")  # skips (or fails) without a server
    # An empty database, not the migrated template: the command line must create the index.
    name, url = fresh_database("template0")
    data = tmp_path / "pacs-data"
    try:
        yield Cli(tmp_path, clean_env(PACS_DATA_DIR=str(data), PACS_DATABASE_URL=url),
                  data, url)
    finally:
        drop_database(name)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return _sqlite_cli(tmp_path)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -- help ---------------------------------------------------------------------------------

def test_help_lists_every_command(sqlite_cli: Cli) -> None:
    out = sqlite_cli.ok("--help").stdout
    for command in ("serve", "ae", "import", "db", "verify"):
        assert re.search(rf"^\s+{command}\b", out, re.M), f"{command!r} missing from:\n{out}"
    assert "--config" in out

    ae_help = sqlite_cli.ok("ae", "--help").stdout
    for action in ("add", "list", "remove"):
        assert re.search(rf"^\s+{action}\b", ae_help, re.M), ae_help
    assert re.search(r"^\s+upgrade\b", sqlite_cli.ok("db", "--help").stdout, re.M)


def test_no_command_shows_usage_and_fails(sqlite_cli: Cli) -> None:
    result = sqlite_cli.fails()
    assert "usage" in result.stderr.lower()


# -- db upgrade ---------------------------------------------------------------------------

def test_db_upgrade_creates_the_index(cli: Cli) -> None:
    if cli.database_url.startswith("postgresql"):
        assert not INDEX_TABLES & _tables(cli.database_url)
    else:
        assert not cli.data_dir.exists()
    cli.ok("db", "upgrade")
    if cli.database_url.startswith("sqlite"):
        assert (cli.data_dir / "index.db").is_file()
    assert INDEX_TABLES <= _tables(cli.database_url)
    cli.ok("db", "upgrade")  # running it again is harmless
    assert cli.counts()["instances"] == 0


# -- ae -----------------------------------------------------------------------------------

def test_ae_add_list_remove_round_trip(cli: Cli) -> None:
    assert "STORESCP" in cli.ok("ae", "add", "STORESCP", "10.0.0.7", "104",
                                "--description", "reading room").stdout
    cli.ok("ae", "add", "WORKSTATION2", "ws2.example.org", "11113")

    duplicate = cli.fails("ae", "add", "STORESCP", "10.0.0.8", "105")
    assert "STORESCP" in duplicate.stderr
    assert "already" in duplicate.stderr.lower()

    listed = cli.ok("ae", "list").stdout
    assert re.search(r"STORESCP\s+10\.0\.0\.7:104\s+reading room", listed), listed
    assert re.search(r"WORKSTATION2\s+ws2\.example\.org:11113", listed), listed
    assert "10.0.0.8" not in listed  # the duplicate changed nothing

    cli.ok("ae", "remove", "STORESCP")
    unknown = cli.fails("ae", "remove", "STORESCP")
    assert "STORESCP" in unknown.stderr
    assert re.search(r"not known|unknown|not found", unknown.stderr, re.I), unknown.stderr
    listed = cli.ok("ae", "list").stdout
    assert "STORESCP" not in listed and "WORKSTATION2" in listed


def test_ae_list_of_an_empty_registry_says_so(sqlite_cli: Cli) -> None:
    assert re.search(r"no (known )?AEs", sqlite_cli.ok("ae", "list").stdout, re.I)


def test_ae_add_refuses_bad_input(sqlite_cli: Cli) -> None:
    for port in ("0", "65536", "-1", "eleven"):
        result = sqlite_cli.fails("ae", "add", f"BAD{port.upper()[:8]}", "127.0.0.1", "--", port)
        assert "port" in result.stderr.lower(), describe(result)
    too_long = sqlite_cli.fails("ae", "add", "A" * 17, "127.0.0.1", "104")
    assert "16" in too_long.stderr, describe(too_long)
    listed = sqlite_cli.ok("ae", "list").stdout
    assert "BAD" not in listed and "A" * 16 not in listed, listed


# -- import -------------------------------------------------------------------------------

def _import_tree(root: Path) -> tuple[int, Path, Path]:
    """Two studies in nested folders, a text file and a DICOM file without a study UID.

    Returns ``(number of good instances, the text file, the file without a study)``.
    """
    one = make_study(StudySpec(patient_id="P1", series=2, instances=2))
    two = make_study(StudySpec(patient_id="P2", accession="A002", series=1, instances=1))
    for ds in one[:2]:
        write(ds, root / "ward-a" / "study1" / "series1")
    for ds in one[2:]:
        write(ds, root / "ward-a" / "study1" / "series2")
    for ds in two:
        write(ds, root / "ward-b" / "deep" / "deeper")
    notes = root / "ward-a" / "notes.txt"
    notes.write_text("not a DICOM file\n")
    orphan = make_study(StudySpec(patient_id="P3", series=1, instances=1))[0]
    orphan.SOPInstanceUID = orphan.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del orphan.StudyInstanceUID
    no_study = write(orphan, root / "ward-b")
    return len(one) + len(two), notes, no_study


def test_import_archives_folders_recursively_and_explains_skips(cli: Cli) -> None:
    source = cli.cwd / "incoming"
    good, notes, no_study = _import_tree(source)

    out = cli.ok("import", "--quiet", source).stdout
    assert re.search(rf"\b{good} stored\b", out), out
    assert re.search(r"\b2 skipped\b", out), out
    assert "StudyInstanceUID" in out, out  # the reason for the file without a study
    assert notes.name in out and no_study.name in out, out
    assert re.search(r"not (a )?DICOM|cannot be (parsed|read)|unreadable", out, re.I), out
    assert cli.counts() == {"patients": 2, "studies": 2, "series": 3, "instances": good}

    again = cli.ok("import", "--quiet", source).stdout
    assert re.search(rf"\b{good} already archived\b", again), again
    assert re.search(r"\b0 stored\b", again), again
    assert cli.counts()["instances"] == good

    verified = cli.ok("verify", "--quiet").stdout
    assert re.search(rf"\b{good}\b", verified), verified


def test_import_of_a_missing_path_fails(sqlite_cli: Cli) -> None:
    result = sqlite_cli.fails("import", "--quiet", "no-such-folder")
    assert "no-such-folder" in result.stderr
    assert "not found" in result.stderr.lower()


# -- verify -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pacs-data directory holding one imported study (built once, copied per test)."""
    root = tmp_path_factory.mktemp("archived")
    cli = _sqlite_cli(root)
    for ds in make_study(StudySpec(series=1, instances=3)):
        write(ds, root / "incoming")
    cli.ok("import", "--quiet", root / "incoming")
    return cli.data_dir


@pytest.fixture
def archive_copy(archived: Path, tmp_path: Path) -> Cli:
    cli = _sqlite_cli(tmp_path)
    shutil.copytree(archived, cli.data_dir)
    return cli


def _object_files(cli: Cli) -> list[Path]:
    files = sorted(p for p in (cli.data_dir / "objects").rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    assert len(files) == 3
    return files


def _key(cli: Cli, path: Path) -> str:
    return path.relative_to(cli.data_dir / "objects").as_posix()


def test_verify_passes_on_a_consistent_archive(archive_copy: Cli) -> None:
    result = archive_copy.ok("verify", "--quiet")
    assert "consistent" in result.stdout


def test_verify_reports_a_missing_object(archive_copy: Cli) -> None:
    victim = _object_files(archive_copy)[1]
    victim.unlink()
    result = archive_copy.run("verify", "--quiet")
    assert result.returncode == 1, describe(result)
    assert _key(archive_copy, victim) in result.stdout, describe(result)
    assert re.search(r"missing|not found", result.stdout, re.I), describe(result)


def test_verify_reports_a_corrupted_object(archive_copy: Cli) -> None:
    victim = _object_files(archive_copy)[0]
    data = bytearray(victim.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])  # same size, different pixels
    victim.write_bytes(bytes(data))
    result = archive_copy.run("verify", "--quiet")
    assert result.returncode == 1, describe(result)
    assert _key(archive_copy, victim) in result.stdout, describe(result)
    assert re.search(r"checksum|sha-?256|corrupt", result.stdout, re.I), describe(result)


def test_verify_reports_an_object_without_index_row(archive_copy: Cli) -> None:
    _object_files(archive_copy)
    stray = archive_copy.data_dir / "objects" / "ff" / "ee" / "stray.dcm"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left behind by a crash between put and commit")
    result = archive_copy.run("verify", "--quiet")
    assert result.returncode == 1, describe(result)
    assert "ff/ee/stray.dcm" in result.stdout, describe(result)
    assert re.search(r"without index|orphan|not indexed|unindexed", result.stdout,
                     re.I), describe(result)


# -- settings -----------------------------------------------------------------------------

def _config_cli(tmp_path: Path, **env: str) -> Cli:
    (tmp_path / "pacs.toml").write_text('data_dir = "from-toml"\nae_title = "TOMLPACS"\n')
    return Cli(tmp_path, clean_env(**env), tmp_path / "from-toml",
               f"sqlite:///{tmp_path / 'from-toml' / 'index.db'}")


def test_config_file_is_honoured(tmp_path: Path) -> None:
    cli = _config_cli(tmp_path)
    cli.ok("--config", "pacs.toml", "db", "upgrade")
    assert (tmp_path / "from-toml" / "index.db").is_file()
    assert not (tmp_path / "pacs-data").exists()


def test_environment_wins_over_config_file(tmp_path: Path) -> None:
    cli = _config_cli(tmp_path, PACS_DATA_DIR=str(tmp_path / "from-env"))
    cli.ok("--config", "pacs.toml", "db", "upgrade")
    assert (tmp_path / "from-env" / "index.db").is_file()
    assert not (tmp_path / "from-toml").exists()


def test_missing_config_file_is_a_clear_error(sqlite_cli: Cli) -> None:
    result = sqlite_cli.fails("--config", "nope.toml", "ae", "list")
    assert "nope.toml" in result.stderr
    assert re.search(r"not found|no such|does not exist", result.stderr, re.I), result.stderr


def test_config_option_is_accepted_after_the_command(sqlite_cli: Cli) -> None:
    """SPEC.md writes ``pacs serve --config pacs.toml``: the option follows the command."""
    result = sqlite_cli.fails("serve", "--config", "nope.toml")
    assert "unrecognized arguments" not in result.stderr, describe(result)
    assert "nope.toml" in result.stderr
    assert re.search(r"not found|no such|does not exist", result.stderr, re.I), result.stderr


def test_malformed_config_file_is_a_clear_error(sqlite_cli: Cli) -> None:
    (sqlite_cli.cwd / "broken.toml").write_text("dicom_port = \n")
    result = sqlite_cli.fails("--config", "broken.toml", "ae", "list")
    assert "broken.toml" in result.stderr, describe(result)
    assert "line 1" in result.stderr, describe(result)


def test_invalid_setting_in_the_environment_is_a_clear_error(sqlite_cli: Cli) -> None:
    sqlite_cli.env["PACS_DICOM_PORT"] = "eleven"
    result = sqlite_cli.fails("ae", "list")
    assert re.search(r"PACS_DICOM_PORT|dicom_port", result.stderr), describe(result)
