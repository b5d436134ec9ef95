"""The result cache answers only while every file and directory the scan depended on is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from glibc_doctor.core import scancache
from glibc_doctor.core.scancache import ScanRequest

HOUR_NS = 3600 * 10**9


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A library directory whose timestamps lie an hour back (so no entry is 'racy')."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libfoo.so.1").write_bytes(b"\x7fELF fake")
    _age(lib / "libfoo.so.1")
    _age(lib)
    return lib


def _age(path: Path) -> None:
    old = time.time_ns() - HOUR_NS
    os.utime(path, ns=(old, old))


def _store(request: ScanRequest, env: dict[str, str], tree: Path) -> None:
    scancache.store(request, env, '{"conflicts": []}\n', 1, [str(tree / "libfoo.so.1")], [str(tree)])


def test_an_unchanged_environment_is_a_hit_with_the_stored_text_and_exit_code(
    tree: Path, env: dict[str, str]
) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    hit = scancache.lookup(request, env)
    assert hit is not None
    assert (hit.text, hit.exit_code) == ('{"conflicts": []}\n', 1)


def test_touching_a_parsed_library_is_a_miss(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    os.utime(tree / "libfoo.so.1")
    assert scancache.lookup(request, env) is None


def test_rewriting_a_library_with_the_same_size_is_a_miss(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    (tree / "libfoo.so.1").write_bytes(b"\x7fELF FAKE")
    assert scancache.lookup(request, env) is None


def test_adding_a_file_to_a_searched_directory_is_a_miss(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    (tree / "libbar.so.2").write_bytes(b"new")
    assert scancache.lookup(request, env) is None


def test_a_searched_directory_that_appears_later_is_a_miss(
    tmp_path: Path, tree: Path, env: dict[str, str]
) -> None:
    request = ScanRequest(str(tree / "app"))
    absent = tmp_path / "not-yet"
    scancache.store(request, env, "{}\n", 0, [], [str(absent)])
    assert scancache.lookup(request, env) is not None
    absent.mkdir()
    assert scancache.lookup(request, env) is None


def test_a_different_ld_library_path_is_another_entry(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    assert scancache.lookup(request, {**env, "LD_LIBRARY_PATH": "/opt/lib"}) is None


def test_other_glibc_tunables_are_another_entry(tree: Path, env: dict[str, str]) -> None:
    """The static TLS surplus follows glibc.rtld.optional_static_tls."""
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    tuned = {**env, "GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=4096"}
    assert scancache.lookup(request, tuned) is None


def test_unrelated_environment_variables_share_the_entry(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    assert scancache.lookup(request, {**env, "TERM": "dumb", "HOME": "/nowhere"}) is not None


def test_other_extensions_or_strict_mode_are_other_entries(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    assert scancache.lookup(ScanRequest(str(tree / "app"), ext=(str(tree),)), env) is None
    assert scancache.lookup(ScanRequest(str(tree / "app"), strict=True), env) is None


def test_a_file_changed_just_before_the_entry_was_written_is_not_trusted(
    tree: Path, env: dict[str, str]
) -> None:
    request = ScanRequest(str(tree / "app"))
    os.utime(tree / "libfoo.so.1")  # mtime = now: could change again within the same timestamp tick
    _store(request, env, tree)
    assert scancache.lookup(request, env) is None


def test_a_corrupt_entry_is_a_miss_not_an_error(tree: Path, env: dict[str, str]) -> None:
    request = ScanRequest(str(tree / "app"))
    _store(request, env, tree)
    entry = Path(scancache.cache_dir(env)) / f"{request.key(env)}.json"
    entry.write_text("{not json\n")
    assert scancache.lookup(request, env) is None


def test_writes_leave_no_temporary_files(tree: Path, env: dict[str, str]) -> None:
    for _ in range(3):
        _store(ScanRequest(str(tree / "app")), env, tree)
    assert [p.name for p in Path(scancache.cache_dir(env)).iterdir()] == [
        f"{ScanRequest(str(tree / 'app')).key(env)}.json"
    ]


def test_clear_removes_every_entry(tree: Path, env: dict[str, str]) -> None:
    _store(ScanRequest(str(tree / "a")), env, tree)
    _store(ScanRequest(str(tree / "b")), env, tree)
    assert scancache.clear(env) == 2
    assert scancache.lookup(ScanRequest(str(tree / "a")), env) is None


def test_an_unwritable_cache_directory_is_not_an_error(tmp_path: Path, tree: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"XDG_CACHE_HOME": str(blocker)}
    assert scancache.store(ScanRequest("x"), env, "{}", 0, [], []) is None
