"""run_fix end to end on a gcc-built package: verified builds activate, a build that is worse does not."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.core import store
from glibc_doctor.core.model import GlibcInfo, Kind, Target
from glibc_doctor.core.patch import FixResult, run_fix
from glibc_doctor.core.patch.plan import plan_fix
from glibc_doctor.core.scan import scan
from glibc_doctor.core.stdenv import find_stdenv

from tests.gcc import compile_elf

LOADER = "ld-linux-x86-64.so.2"
SYSTEM_LIB = Path("/lib/x86_64-linux-gnu")


@dataclass(frozen=True)
class BlindScan:
    """A scan without its graph: the planner cannot see which libraries the old glibc dir also holds."""

    target: Target
    graph: Any
    conflicts: tuple[Any, ...]
    glibc: GlibcInfo


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GLIBC_DOCTOR_FAULT", raising=False)
    return dict(os.environ)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """``store/0123-app/bin/app`` hard-wired to a glibc dir that also holds the library it needs."""
    old = tmp_path / "store" / "9999-glibc-and-deps" / "lib"
    old.mkdir(parents=True)
    for name in (LOADER, "libc.so.6"):
        shutil.copy2(os.path.realpath(SYSTEM_LIB / name), old / name)
    dep = compile_elf(old / "libdep.so", "int dep(void) { return 7; }\n", soname="libdep.so")
    return compile_elf(
        tmp_path / "store" / "0123-app" / "bin" / "app",
        "int dep(void);\nint main(void) { return dep() == 7 ? 0 : 1; }\n",
        shared=False,
        libs=[dep],
        runpath=[str(old)],
        extra=[f"-Wl,--dynamic-linker={old / LOADER}"],
    )


def _finish(events: Any) -> FixResult:
    result = None
    for event in events:
        result = event
    assert isinstance(result, FixResult)
    return result


def test_a_verified_build_is_activated_on_a_profile_that_runs(app: Path, env: dict[str, str]) -> None:
    scanned = scan(str(app), use_cache=False)
    plan = plan_fix(scanned, find_stdenv(), str(store.data_dir()))
    result = _finish(run_fix(plan, scanned.conflicts))
    assert result.verified
    assert result.activation is not None
    (profile_app,) = store.profiles_dir().glob("*/bin/app")
    assert subprocess.run([profile_app], check=False).returncode == 0
    assert [manifest.source_package for manifest in store.load_manifests()] == [str(app.parent.parent)]


def test_a_build_that_loses_a_library_is_not_activated(app: Path, env: dict[str, str]) -> None:
    scanned = scan(str(app), use_cache=False)
    blind = BlindScan(scanned.target, None, scanned.conflicts, scanned.glibc)
    plan = plan_fix(blind, find_stdenv(), str(store.data_dir()))
    result = _finish(run_fix(plan, scanned.conflicts))
    assert not result.verified
    assert result.activation is None
    assert [conflict.kind for conflict in result.verification.worse] == [Kind.NOT_FOUND]
    assert store.load_manifests() == []
    assert not store.profiles_dir().exists()
