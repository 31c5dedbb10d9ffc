"""The build cache (~/.cache/hwprune) stays under its bound: least recently used first."""

import os
import time

import pytest

from hwprune import cachedir
from hwprune.errors import OptionError


def _entry(root, name, megabytes, used):
    folder = root / name
    folder.mkdir()
    (folder / "lib.so").write_bytes(b"\0" * int(megabytes * 1_000_000))
    os.utime(folder, (used, used))
    return folder


def test_least_recently_used_entries_go_until_the_cache_fits(tmp_path, monkeypatch):
    monkeypatch.setenv(cachedir.MAX_MB_ENV, "2.5")
    now = time.time()
    old = _entry(tmp_path, "a", 1, now - 3000)
    middle = _entry(tmp_path, "b", 1, now - 2000)
    recent = _entry(tmp_path, "c", 1, now - 1000)
    new = _entry(tmp_path, "d", 1, now - 500)
    cachedir.touch(old)  # used just now: it stays, the next oldest goes
    removed = cachedir.evict(tmp_path, keep=new)
    assert sorted(p.name for p in removed) == ["b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "d"]
    assert cachedir.folder_bytes(tmp_path) <= 2.5e6
    assert not middle.exists() and not recent.exists()


def test_the_entry_just_built_and_entries_in_use_stay(tmp_path, monkeypatch):
    monkeypatch.setenv(cachedir.MAX_MB_ENV, "0")
    now = time.time()
    _entry(tmp_path, "busy", 1, now - 5)  # another process may be about to run it
    kept = _entry(tmp_path, "kept", 1, now - 4000)
    _entry(tmp_path, "idle", 1, now - 4000)
    abandoned = _entry(tmp_path, ".abc.tmp", 1, now - cachedir.ABANDONED_S - 10)
    under_way = _entry(tmp_path, ".def.tmp", 1, now - 10)
    assert [p.name for p in cachedir.evict(tmp_path, keep=kept)] == ["idle"]
    assert not abandoned.exists() and under_way.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".def.tmp", "busy", "kept"]


def test_the_default_bound_and_a_malformed_one(monkeypatch):
    monkeypatch.delenv(cachedir.MAX_MB_ENV, raising=False)
    assert cachedir.max_bytes() == cachedir.DEFAULT_MAX_MB * 1_000_000
    for bad in ("-1", "lots", "nan", "inf"):
        monkeypatch.setenv(cachedir.MAX_MB_ENV, bad)
        with pytest.raises(OptionError, match=cachedir.MAX_MB_ENV):
            cachedir.max_bytes()


def test_the_hls4ml_engine_keeps_its_builds_in_the_bounded_cache(tmp_path, monkeypatch):
    from hwprune.harness import hls4ml_engine

    monkeypatch.setenv("HWPRUNE_CACHE_DIR", str(tmp_path))
    assert hls4ml_engine.cache_root() == tmp_path / "hls4ml"
