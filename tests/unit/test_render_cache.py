"""The disk cache of rendered images: opaque names, atomic entries, size cap, LRU eviction."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from storage.cache import CacheSettings, DiskCache, cache_key

UID = "1.2.826.0.1.3680043.8.498.12345"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_round_trip_under_an_opaque_name(tmp_path: Path) -> None:
    cache = DiskCache(CacheSettings(tmp_path / "c"))
    key = cache_key("render/1", "ab/cd/abcd.dcm", {"uid": UID, "patient": "DOE^JANE"})
    assert cache.get(key) is None
    cache.put(key, b"rendered bytes")
    assert cache.get(key) == b"rendered bytes"
    names = [str(p.relative_to(tmp_path)) for p in _files(tmp_path)]
    assert len(names) == 1
    assert UID not in names[0] and "DOE" not in names[0] and "abcd" not in names[0]
    assert names[0].endswith(key)


def test_keys_differ_by_any_part(tmp_path: Path) -> None:
    base = cache_key("render/1", "key-1", {"frame": 1, "media": "image/png"})
    assert base == cache_key("render/1", "key-1", {"media": "image/png", "frame": 1})
    assert base != cache_key("render/1", "key-2", {"frame": 1, "media": "image/png"})
    assert base != cache_key("render/1", "key-1", {"frame": 2, "media": "image/png"})
    with pytest.raises(ValueError):
        DiskCache(CacheSettings(tmp_path)).get("../../etc/passwd")


def test_a_replaced_entry_is_whole_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    cache = DiskCache(CacheSettings(tmp_path))
    key = cache_key("k")
    seen: list[bytes | None] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(cache.get(key))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(200):
            cache.put(key, bytes([n % 2]) * 65536)
    finally:
        stop.set()
        thread.join()
    assert all(v is None or v in (b"\0" * 65536, b"\1" * 65536) for v in seen)
    assert [p.name for p in _files(tmp_path)] == [key]


def test_size_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = DiskCache(CacheSettings(tmp_path, max_bytes=10_000))
    keys = [cache_key(n) for n in range(9)]
    for n, key in enumerate(keys[:8]):
        cache.put(key, b"x" * 1000)
        stamp = time.time() - 100 + n  # distinct, increasing use times
        os.utime(cache._path(key), (stamp, stamp))
    assert cache.get(keys[0]) is not None  # a hit makes the oldest the most recent
    cache.put(keys[8], b"y" * 3000)  # 11,000 bytes: over the cap
    assert cache.size() <= 8_000
    assert cache.get(keys[0]) is not None
    assert cache.get(keys[8]) is not None
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None


def test_zero_size_turns_the_cache_off(tmp_path: Path) -> None:
    cache = DiskCache(CacheSettings(tmp_path / "off", max_bytes=0))
    cache.put(cache_key(1), b"data")
    assert cache.get(cache_key(1)) is None
    assert not (tmp_path / "off").exists()


def test_an_unwritable_cache_does_not_fail_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    cache = DiskCache(CacheSettings(blocker / "cache"))
    cache.put(cache_key(1), b"data")  # logs, does not raise
    assert cache.get(cache_key(1)) is None


def test_settings_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pacs.settings import Settings

    monkeypatch.delenv("PACS_RENDER_CACHE_DIR", raising=False)
    monkeypatch.setenv("PACS_RENDER_CACHE_MAX_MB", "64")
    s = Settings.load(data_dir=tmp_path / "data")
    assert s.render_cache() == CacheSettings(tmp_path / "data" / "cache" / "rendered",
                                             max_bytes=64 * 1024 * 1024)
    monkeypatch.setenv("PACS_RENDER_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Settings.load().render_cache().directory == tmp_path / "elsewhere"
