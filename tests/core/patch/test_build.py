"""The build executor on a package compiled by gcc: real patchelf, real copies, real runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import GlibcInfo, StdenvInfo, Target
from glibc_doctor.core.patch.build import (
    BUILD_RECORD,
    FAULT_ENV,
    BuildProgress,
    BuildResult,
    build,
    patchelf_argvs,
    read_build_record,
)
from glibc_doctor.core.patch.plan import ElfPatch, FixPlan, plan_fix
from glibc_doctor.core.stdenv import find_stdenv

from tests.gcc import compile_elf

LOADER = "ld-linux-x86-64.so.2"
SYSTEM_LIB = Path("/lib/x86_64-linux-gnu")


@dataclass(frozen=True)
class FakeScan:
    target: Target
    graph: Any
    conflicts: tuple[Any, ...]
    glibc: GlibcInfo


@dataclass(frozen=True)
class Package:
    root: Path
    old_glibc: Path
    stdenv: StdenvInfo


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """``store/0123-hello``: a program hard-wired to a copy of the machine's glibc (the "old" one), a
    library with $ORIGIN, a script, a pkg-config file and symlinks that name the package path."""
    base = tmp_path_factory.mktemp("pkg")
    old_glibc = base / "store" / "9999-glibc" / "lib"
    old_glibc.mkdir(parents=True)
    for name in (LOADER, "libc.so.6"):
        shutil.copy2(os.path.realpath(SYSTEM_LIB / name), old_glibc / name)
    root = base / "store" / "0123-hello"
    lib = compile_elf(
        root / "lib" / "libhello.so",
        '#include <stdio.h>\nvoid hello(void) { puts("hello from the package"); }\n',
        soname="libhello.so",
        runpath=["$ORIGIN"],
    )
    compile_elf(
        root / "bin" / "hello",
        "void hello(void);\nint main(void) { hello(); return 0; }\n",
        shared=False,
        libs=[lib],
        runpath=[str(old_glibc), str(root / "lib")],
        extra=[f"-Wl,--dynamic-linker={old_glibc / LOADER}"],
    )
    for leftover in (root / "bin").glob("hello.c"):
        leftover.unlink()
    (root / "bin" / "hello-script").write_text(f"#!{root}/bin/hello\n")
    (root / "lib" / "pkgconfig").mkdir()
    (root / "lib" / "pkgconfig" / "hello.pc").write_text(f"prefix={root}\nlibdir=${{prefix}}/lib\n")
    (root / "lib" / "libhello-abs.so").symlink_to(root / "lib" / "libhello.so")
    (root / "bin" / "hi").symlink_to("hello")
    stdenv = find_stdenv(env={**os.environ, "XDG_CACHE_HOME": str(base / "cache")})
    return Package(root, old_glibc, stdenv)


def _plan(package: Package, store: Path) -> FixPlan:
    glibc = GlibcInfo("2.36", str(package.old_glibc / "libc.so.6"), str(package.old_glibc / LOADER))
    target = Target("generic", str(package.root / "bin" / "hello"), str(package.root / "bin" / "hello"))
    return plan_fix(FakeScan(target, None, (), glibc), package.stdenv, str(store))


def _run_build(plan: FixPlan) -> BuildResult:
    events = list(build(plan))
    result = events[-1]
    assert isinstance(result, BuildResult)
    return result


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def test_the_package_runs_with_its_old_glibc_before(package: Package) -> None:
    done = subprocess.run([package.root / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert done.stdout == "hello from the package\n"


def test_the_plan_finds_the_program_the_library_the_texts_and_the_absolute_link(
    package: Package, tmp_path: Path
) -> None:
    plan = _plan(package, tmp_path)
    assert sorted(patch.relpath for patch in plan.elf_patches) == ["bin/hello", "lib/libhello.so"]
    assert sorted(text.relpath for text in plan.text_rewrites) == [
        "bin/hello-script",
        "lib/pkgconfig/hello.pc",
    ]
    assert [link.relpath for link in plan.links] == ["lib/libhello-abs.so"]


def test_the_patched_program_uses_the_stdenv_loader_and_an_rpath(package: Package, tmp_path: Path) -> None:
    plan = _plan(package, tmp_path)
    built = _run_build(plan)
    facts = read_elf(os.path.join(built.package, "bin", "hello"))
    assert facts.interpreter == package.stdenv.loader
    assert facts.runpath is None
    assert facts.rpath is not None
    entries = facts.rpath.split(":")
    assert entries == [plan.view.lib_dir, f"{built.package}/lib"]
    assert str(package.old_glibc) not in entries


def test_the_patched_copy_runs(package: Package, tmp_path: Path) -> None:
    built = _run_build(_plan(package, tmp_path))
    done = subprocess.run([os.path.join(built.package, "bin", "hello")], capture_output=True, text=True)
    assert done.stdout == "hello from the package\n", done.stderr


def test_origin_entries_survive_in_the_library(package: Package, tmp_path: Path) -> None:
    built = _run_build(_plan(package, tmp_path))
    facts = read_elf(os.path.join(built.package, "lib", "libhello.so"))
    assert facts.rpath is not None
    assert "$ORIGIN" in facts.rpath.split(":")
    assert facts.runpath is None


def test_text_files_and_absolute_links_point_into_the_copy(package: Package, tmp_path: Path) -> None:
    built = _run_build(_plan(package, tmp_path))
    pc = Path(built.package, "lib", "pkgconfig", "hello.pc").read_text()
    assert pc.startswith(f"prefix={built.package}\n")
    assert Path(built.package, "bin", "hello-script").read_text() == f"#!{built.package}/bin/hello\n"
    assert (
        os.readlink(os.path.join(built.package, "lib", "libhello-abs.so"))
        == f"{built.package}/lib/libhello.so"
    )
    assert os.readlink(os.path.join(built.package, "bin", "hi")) == "hello"


def test_the_originals_are_byte_identical_after_a_build(package: Package, tmp_path: Path) -> None:
    before = _hashes(package.root)
    _run_build(_plan(package, tmp_path))
    assert _hashes(package.root) == before


def test_the_build_records_the_hash_of_every_patched_file(package: Package, tmp_path: Path) -> None:
    built = _run_build(_plan(package, tmp_path))
    recorded = {item.relpath: item.sha256 for item in built.files if item.action == "elf"}
    path = Path(built.package, "bin", "hello")
    assert recorded["bin/hello"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_build_record(built.package) == built.files


def test_a_complete_build_is_reused_not_rebuilt(package: Package, tmp_path: Path) -> None:
    plan = _plan(package, tmp_path)
    first = _run_build(plan)
    again = _run_build(plan)
    assert again.reused
    assert again.package == first.package


def test_the_build_makes_the_glibc_view_its_rpath_names(package: Package, tmp_path: Path) -> None:
    plan = _plan(package, tmp_path)
    events = list(build(plan))
    assert events[0] == BuildProgress("glibc view", f"made {plan.view.root}")
    libc = Path(plan.view.lib_dir, "libc.so.6")
    assert os.readlink(libc) == package.stdenv.libc
    assert os.path.samefile(libc, package.stdenv.libc)


def test_a_second_build_reuses_the_glibc_view(package: Package, tmp_path: Path) -> None:
    plan = _plan(package, tmp_path)
    _run_build(plan)
    before = os.stat(plan.view.root).st_ino
    shutil.rmtree(plan.destination)
    events = list(build(plan))
    assert events[0] == BuildProgress("glibc view", f"reused {plan.view.root}")
    assert os.stat(plan.view.root).st_ino == before


def test_the_build_record_names_the_view_and_the_rpath_it_put_first(package: Package, tmp_path: Path) -> None:
    plan = _plan(package, tmp_path)
    built = _run_build(plan)
    record = json.loads(Path(built.package, BUILD_RECORD).read_text())
    assert record["glibc_view"] == plan.view.root
    assert record["rpath_first"] == [plan.view.lib_dir]


@pytest.mark.parametrize("step", ["after-staging", "during-patching", "before-rename"])
def test_a_failure_at_any_step_leaves_no_build_and_no_staging(
    package: Package, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    monkeypatch.setenv(FAULT_ENV, step)
    plan = _plan(package, tmp_path)
    with pytest.raises(PatchError, match=f"injected fault at {step}"):
        _run_build(plan)
    assert list(Path(plan.destination).parent.iterdir()) == []


def test_a_runpath_is_removed_before_the_rpath_is_forced() -> None:
    patch = ElfPatch("bin/x", None, None, None, "/old", "/new")
    argvs = patchelf_argvs("patchelf", patch, "/s/bin/x")
    assert argvs == [
        ["patchelf", "--remove-rpath", "/s/bin/x"],
        ["patchelf", "--force-rpath", "--set-rpath", "/new", "/s/bin/x"],
    ]


def test_the_interpreter_is_set_only_when_it_changes() -> None:
    unchanged = ElfPatch("bin/x", "/ld.so", None, "/old", None, "/new")
    changed = ElfPatch("bin/x", "/old/ld.so", "/ld.so", "/old", None, "/new", ("libstdc++.so.6",))
    assert "--set-interpreter" not in patchelf_argvs("patchelf", unchanged, "x")[0]
    assert patchelf_argvs("patchelf", changed, "x") == [
        [
            "patchelf",
            "--set-interpreter",
            "/ld.so",
            "--force-rpath",
            "--set-rpath",
            "/new",
            "--add-needed",
            "libstdc++.so.6",
            "x",
        ]
    ]
