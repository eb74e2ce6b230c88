"""One behavioural contract for every ObjectStore backend.

Each backend subclass supplies a ``store`` fixture; the cases below are what the archive
relies on, so a new backend is done when it passes them unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from storage.errors import ObjectNotFound, StorageFull, StorageUnavailable
from storage.objects import ObjectStore, open_store
from storage.objects.filesystem import FilesystemStore
from storage.objects.s3 import S3Store

# Also registered by tests/conftest.py; imported here so this suite runs on its own.
from tests.support.s3 import DUMMY_AWS_ENV, moto_endpoint  # noqa: F401

MiB = 1 << 20


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a socket or a pipe."""

    def __init__(self, payload: bytes, step: int) -> None:
        self._data, self._pos, self._step = payload, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        n = self._step if size is None or size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk


def _put(store: ObjectStore, key: str, payload: bytes) -> str:
    return store.put(key, io.BytesIO(payload), size=len(payload))


class ObjectStoreContract:
    """Abstract: subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> ObjectStore:
        raise NotImplementedError

    def assert_multipart(self, store: Any, key: str) -> None:
        """Backends with a multipart path check here that the large case used it."""

    def test_satisfies_protocol(self, store: ObjectStore) -> None:
        assert isinstance(store, ObjectStore)
        assert store.url

    def test_put_returns_sha256(self, store: ObjectStore) -> None:
        payload = b"DICM" * 1000
        assert _put(store, "ab/cd/one.dcm", payload) == hashlib.sha256(payload).hexdigest()

    def test_put_of_empty_object(self, store: ObjectStore) -> None:
        assert _put(store, "empty", b"") == hashlib.sha256(b"").hexdigest()
        assert store.read_range("empty", 0, 10) == b""
        with store.open("empty") as fh:
            assert fh.read() == b""

    def test_open_returns_the_bytes(self, store: ObjectStore) -> None:
        payload = os.urandom(100_000)
        _put(store, "obj", payload)
        with store.open("obj") as fh:
            assert fh.read(10) == payload[:10]
            assert fh.read() == payload[10:]

    def test_read_range(self, store: ObjectStore) -> None:
        payload = bytes(range(256)) * 4
        _put(store, "obj", payload)
        assert store.read_range("obj", 0, 132) == payload[:132]
        assert store.read_range("obj", 500, 600) == payload[500:600]
        assert store.read_range("obj", 1000, 5000) == payload[1000:]
        assert store.read_range("obj", 10, 10) == b""
        assert store.read_range("obj", 5000, 6000) == b""

    def test_put_overwrites(self, store: ObjectStore) -> None:
        _put(store, "obj", b"first version")
        digest = _put(store, "obj", b"second")
        assert digest == hashlib.sha256(b"second").hexdigest()
        assert store.read_range("obj", 0, 100) == b"second"

    def test_put_from_a_stream_with_short_reads(self, store: ObjectStore) -> None:
        payload = os.urandom(300_000)
        digest = store.put("obj", _Trickle(payload, 4096))  # type: ignore[arg-type]
        assert digest == hashlib.sha256(payload).hexdigest()
        assert store.read_range("obj", 0, len(payload)) == payload

    def test_delete_is_idempotent(self, store: ObjectStore) -> None:
        _put(store, "obj", b"x")
        store.delete("obj")
        assert not store.exists("obj")
        store.delete("obj")
        store.delete("never/there")

    def test_missing_key_raises_object_not_found(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.open("no/such/key")
        with pytest.raises(ObjectNotFound):
            store.read_range("no/such/key", 0, 10)

    def test_exists(self, store: ObjectStore) -> None:
        assert not store.exists("obj")
        _put(store, "obj", b"x")
        assert store.exists("obj")

    def test_keys_lists_relative_keys(self, store: ObjectStore) -> None:
        assert store.keys() == []
        wanted = ["ab/cd/abcd1.dcm", "ab/ef/abef2.dcm", "top"]
        for key in reversed(wanted):
            _put(store, key, key.encode())
        assert sorted(store.keys()) == wanted

    def test_large_object_round_trips(self, store: ObjectStore) -> None:
        payload = os.urandom(20 * MiB + 12345)
        assert _put(store, "big", payload) == hashlib.sha256(payload).hexdigest()
        self.assert_multipart(store, "big")
        middle = 5 * MiB - 100
        assert store.read_range("big", middle, middle + 200) == payload[middle : middle + 200]
        with store.open("big") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(payload).hexdigest()

    def test_check_passes(self, store: ObjectStore) -> None:
        store.check()


class TestFilesystemStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return open_store(f"file://{tmp_path / 'objects'}", fsync=True)

    def test_put_where_directory_cannot_be_made(self, tmp_path: Path) -> None:
        # A regular file where the fan-out directory should be: mkdir fails even for root.
        root = tmp_path / "objects"
        store = FilesystemStore(root)
        (root / "ab").write_bytes(b"not a directory")
        with pytest.raises(StorageUnavailable):
            _put(store, "ab/obj", b"x")
        assert store.keys() == ["ab"]
        assert list(root.rglob(".tmp-*")) == []

    def test_check_fails_when_root_is_gone(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        (tmp_path / "objects").rmdir()
        (tmp_path / "objects").write_bytes(b"")
        with pytest.raises(StorageUnavailable):
            store.check()

    @pytest.mark.parametrize(
        ("err", "expected"), [(errno.EROFS, StorageUnavailable), (errno.ENOSPC, StorageFull)]
    )
    def test_failed_put_leaves_no_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, expected: type
    ) -> None:
        store = FilesystemStore(tmp_path, fsync=False)

        def refuse(src: str, dst: str) -> None:
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr("storage.objects.filesystem.os.replace", refuse)
        with pytest.raises(expected):
            _put(store, "ab/obj", b"x" * 1000)
        assert list(tmp_path.rglob("*")) == [tmp_path / "ab"]

    @pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", ""])
    def test_refuses_keys_outside_the_root(self, tmp_path: Path, key: str) -> None:
        store = FilesystemStore(tmp_path / "objects")
        with pytest.raises(ValueError):
            _put(store, key, b"x")
        with pytest.raises(ValueError):
            store.open(key)
        assert list(tmp_path.rglob("*")) == [tmp_path / "objects"]


def _recorded_directory_syncs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The directories the filesystem store fsyncs from now on, in order."""
    synced: list[Path] = []
    monkeypatch.setattr("storage.objects.filesystem._sync_directory",
                        lambda directory: synced.append(Path(directory)))
    return synced


class TestFilesystemStaging:
    """The filesystem store's staging area: a received file becomes an object by rename."""

    def test_adopt_moves_a_staged_file_into_place(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        data = os.urandom(3 * MiB + 17)
        staged = store.staging_dir() / "incoming.dcm"
        staged.write_bytes(data)
        assert store.adopt("ab/cd/obj.dcm", staged) == hashlib.sha256(data).hexdigest()
        assert not staged.exists()
        with store.open("ab/cd/obj.dcm") as fh:
            assert fh.read() == data
        assert list(store.staging_dir().iterdir()) == []

    def test_adopt_creates_fan_out_directories_durably_only_when_missing(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = FilesystemStore(tmp_path / "objects")
        root, staging = store.root, store.staging_dir()
        synced = _recorded_directory_syncs(monkeypatch)
        made: list[str] = []
        real_mkdir = os.mkdir
        monkeypatch.setattr("storage.objects.filesystem.os.mkdir",
                            lambda path, *a: (made.append(str(path)), real_mkdir(path, *a)))
        for key in ("ab/cd/one.dcm", "ab/cd/two.dcm", "ab/ef/three.dcm"):
            staged = staging / "incoming.dcm"
            staged.write_bytes(key.encode())
            store.adopt(key, staged)
        for key in ("ab/cd/one.dcm", "ab/cd/two.dcm", "ab/ef/three.dcm"):
            with store.open(key) as fh:
                assert fh.read() == key.encode()
        # Each new directory's entry is fsynced in its parent, each object's in its own.
        assert made == [str(root / "ab"), str(root / "ab/cd"), str(root / "ab/ef")]
        assert synced == [root, root / "ab", root / "ab/cd",  # one: both levels new
                          root / "ab/cd",                     # two: nothing new
                          root / "ab", root / "ab/ef"]        # three: one level new

    def test_prepare_makes_the_directories_of_a_key_durably(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = FilesystemStore(tmp_path / "objects")
        root, staging = store.root, store.staging_dir()
        synced = _recorded_directory_syncs(monkeypatch)
        assert not store.has_directories("ab/cd/one.dcm")
        store.prepare("ab/cd/one.dcm")
        assert (root / "ab/cd").is_dir() and synced == [root, root / "ab"]
        assert store.has_directories("ab/cd/one.dcm")
        staged = staging / "incoming.dcm"
        staged.write_bytes(b"one")
        store.adopt("ab/cd/one.dcm", staged)
        assert synced == [root, root / "ab", root / "ab/cd"]  # only the object's entry left
        with store.open("ab/cd/one.dcm") as fh:
            assert fh.read() == b"one"

    def test_prepare_where_a_directory_cannot_be_made(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        (store.root / "ab").write_bytes(b"not a directory")
        with pytest.raises(StorageUnavailable):
            store.prepare("ab/cd/one.dcm")

    def test_staged_files_are_not_objects(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        _put(store, "ab/obj", b"x")
        (store.staging_dir() / "arriving.dcm").write_bytes(b"partial")
        assert store.keys() == ["ab/obj"]

    def test_adopt_refuses_a_file_outside_the_staging_dir(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        elsewhere = tmp_path / "file.dcm"
        elsewhere.write_bytes(b"x")
        with pytest.raises(ValueError):
            store.adopt("ab/obj", elsewhere)
        assert elsewhere.exists() and store.keys() == []

    def test_stale_staged_files_are_removed(self, tmp_path: Path) -> None:
        store = FilesystemStore(tmp_path / "objects")
        stale = store.staging_dir() / "left-by-a-crash.dcm"
        fresh = store.staging_dir() / "arriving.dcm"
        stale.write_bytes(b"x")
        fresh.write_bytes(b"y")
        os.utime(stale, (0, 0))
        assert sorted(p.name for p in store.staging_dir().iterdir()) == ["arriving.dcm"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestS3Store(ObjectStoreContract):
    @pytest.fixture
    def store(self, moto_endpoint: str) -> ObjectStore:  # noqa: F811
        bucket = f"pacs-{uuid.uuid4().hex}"
        store = open_store(f"s3://{bucket}/some/prefix", endpoint_url=moto_endpoint)
        assert isinstance(store, S3Store)
        store.multipart_threshold = 5 * MiB  # S3's smallest part, so 20 MiB is 5 parts
        return store

    def assert_multipart(self, store: Any, key: str) -> None:
        head = store._client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
        assert head["ETag"].strip('"').endswith("-5")

    def test_keys_ignores_other_prefixes(self, store: Any, moto_endpoint: str) -> None:  # noqa: F811
        other = S3Store(store.bucket, "other/prefix", moto_endpoint)
        _put(other, "elsewhere", b"x")
        _put(store, "mine", b"y")
        assert store.keys() == ["mine"]
        assert other.keys() == ["elsewhere"]
        assert not store.exists("elsewhere")

    def test_missing_bucket_is_unavailable(self, moto_endpoint: str) -> None:  # noqa: F811
        store = S3Store(f"absent-{uuid.uuid4().hex}", "p", moto_endpoint, create_bucket=False)
        with pytest.raises(StorageUnavailable):
            store.check()
        with pytest.raises(StorageUnavailable):
            _put(store, "obj", b"x")

    @pytest.mark.parametrize("create_bucket", [True, False])
    def test_unreachable_endpoint_is_unavailable(
        self, monkeypatch: pytest.MonkeyPatch, create_bucket: bool
    ) -> None:
        for name, value in DUMMY_AWS_ENV.items():
            monkeypatch.setenv(name, value)
        store = S3Store(
            "pacs",
            "p",
            f"http://127.0.0.1:{_closed_port()}",
            connect_timeout=0.5,
            max_attempts=1,
            create_bucket=create_bucket,
        )
        with pytest.raises(StorageUnavailable):
            _put(store, "obj", b"x")
        with pytest.raises(StorageUnavailable):
            store.check()
        with pytest.raises(StorageUnavailable):
            store.open("obj")
        with pytest.raises(StorageUnavailable):
            store.keys()

    def test_constructs_without_credentials(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        store = S3Store("pacs", "p", f"http://127.0.0.1:{_closed_port()}", max_attempts=1)
        with pytest.raises(StorageUnavailable):
            store.check()
