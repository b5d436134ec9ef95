"""The aarch64 lab: the scan's predictions and the fix, against the real arm64 loader under qemu.

The lab's python3.9 (arm64, hard-wired to glibc 2.31) really runs under ``qemu-aarch64-static``; qemu's
``/proc/self/maps`` shows the files the guest process maps. What the model predicts must be exactly
those, the conflicts it reports exactly the import errors, and after ``fix`` (stdenv: the cross
compiler's glibc 2.36) the imports must work under qemu, with the original untouched and the patched
copy still mappable by a 64 KiB-page kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.model import EM_AARCH64, Extension, Role, Target
from glibc_doctor.core.process import simulate
from glibc_doctor.core.stdenv import find_stdenv
from glibc_doctor.lab.arm64 import Arm64Lab

pytestmark = pytest.mark.lab

STANDARD = ("_ssl", "_hashlib", "_ctypes", "_sqlite3", "pyexpat", "_decimal", "_lzma", "_bz2", "zlib")
# Objects libc or python dlopen()s without a DT_NEEDED: not something a static model of the imports
# predicts (name service modules, the unwinder a thread exit loads).
DLOPENED_BY_LIBC = re.compile(r"/lib(nss_\w+|gcc_s)[.-]")


def _mapped(lab: Arm64Lab, python: Path, modules: tuple[str, ...]) -> set[str]:
    """The ELF files the real arm64 process maps after importing ``modules`` (real paths)."""
    code = (
        f"import importlib\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"
        "print(open('/proc/self/maps').read())"
    )
    run = lab.run([str(python), "-c", code], env=lab.environ())
    assert run.returncode == 0, run.stderr
    paths = {line.split(None, 5)[5] for line in run.stdout.splitlines() if len(line.split(None, 5)) == 6}
    return {os.path.realpath(p) for p in paths if p.startswith("/") and read_elf(p).ok}


def _extensions(lab: Arm64Lab, modules: tuple[str, ...]) -> tuple[Extension, ...]:
    dynload = lab.python_store / "lib/python3.9/lib-dynload"
    found = []
    for name in modules:
        if name in lab.extensions:
            found.append(Extension(str(lab.extensions[name]), name))
        else:
            found += [Extension(str(p), name) for p in dynload.glob(f"{name}.cpython-39-*.so")]
    return tuple(found)


def test_predicted_objects_are_exactly_what_the_arm64_process_maps(arm64_lab: Arm64Lab) -> None:
    modules = (*STANDARD, "ext_clean")
    target = Target("python", "lab", str(arm64_lab.venv_python), _extensions(arm64_lab, modules))
    graph = simulate(target, env={})
    predicted = {
        os.path.realpath(node) for node, data in graph.nodes(data=True) if data["role"] != Role.MISSING
    }
    mapped = _mapped(arm64_lab, arm64_lab.venv_python, modules)
    extras = {path for path in mapped - predicted if DLOPENED_BY_LIBC.search(path)}
    assert predicted == mapped - extras
    assert len(predicted) > 20


def test_predicted_conflicts_are_the_real_import_errors_under_qemu(arm64_lab: Arm64Lab) -> None:
    scan = _cli("scan", str(arm64_lab.venv), "--json", "--no-cache")
    assert scan.returncode == 1, scan.stderr
    document = json.loads(scan.stdout)
    predicted = {
        (Path(c["object"]).name.split(".")[0], c["version"])
        for c in document["conflicts"]
        if c["kind"] == "missing-version"
    }
    real = set()
    for name in arm64_lab.extensions:
        run = arm64_lab.run([str(arm64_lab.venv_python), "-c", f"import {name}"], env=arm64_lab.environ())
        found = re.search(r"version `(GLIBC_[\d.]+)' not found", run.stderr)
        if found:
            real.add((name, found.group(1)))
        else:
            assert run.returncode == 0, run.stderr
    assert predicted == real == {("ext_pthread", "GLIBC_2.34"), ("ext_strlcpy", "GLIBC_2.38")}
    assert document["glibc"]["version"] == "2.31"
    assert document["root"] is None


def test_the_stdenv_of_an_aarch64_target_is_the_cross_compilers_glibc(tmp_path: Path) -> None:
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("no aarch64 cross compiler")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    stdenv = find_stdenv(env=env, machine=EM_AARCH64)
    assert (stdenv.machine, stdenv.source) == (EM_AARCH64, "probe: aarch64-linux-gnu-gcc")
    assert read_elf(stdenv.loader).machine == read_elf(stdenv.libc).machine == EM_AARCH64
    assert stdenv.version is not None
    assert tuple(int(part) for part in stdenv.version.split(".")) >= (2, 34)
    assert find_stdenv(env=env, machine=EM_AARCH64) == stdenv  # the probe's answer is cached


def test_fix_makes_the_imports_work_under_qemu_and_rollback_undoes_it(
    arm64_lab: Arm64Lab, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    shutil.copytree(arm64_lab.venv, venv, symlinks=True)
    python = venv / "bin/python3.9"
    original = _digest(arm64_lab.python)
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    fixed = _cli("fix", str(venv), "--yes", "--json", **env)
    assert fixed.returncode == 1, fixed.stderr  # ext_strlcpy (GLIBC_2.38) remains: the stdenv is 2.36
    result = json.loads(fixed.stdout)
    assert (result["verified"], result["verified_by"]) == (True, "qemu-aarch64-static")
    assert [item["version"] for item in result["remaining"]] == ["GLIBC_2.38"]
    checks = {check["name"]: check["ok"] for check in result["checks"]}
    assert checks == {"ext_pthread": True, "ext_strlcpy": False}
    patched = read_elf(result["interpreter"])
    assert (patched.machine, patched.interpreter) == (EM_AARCH64, result["stdenv"]["loader"])
    assert patched.page_limit >= 65536  # every PT_LOAD still maps on a 64 KiB-page kernel
    run = arm64_lab.run(
        [str(python), "-c", "import ext_pthread; print(ext_pthread.run())"], env=arm64_lab.environ()
    )
    assert (run.returncode, run.stdout.strip()) == (0, "42"), run.stderr
    ensured = _cli("ensure", **env)  # the aarch64 stdenv is followed as such: nothing to rebuild
    assert (ensured.returncode, "rebuilt" in ensured.stdout + ensured.stderr) == (0, False), ensured.stderr
    status = json.loads(_cli("status", "--json", **env).stdout)
    assert [entry["up_to_date"] for entry in status] == [True]
    rolled = _cli("rollback", str(venv), **env)
    assert rolled.returncode == 0, rolled.stderr
    run = arm64_lab.run([str(python), "-c", "import ext_pthread"], env=arm64_lab.environ())
    assert "version `GLIBC_2.34' not found" in run.stderr
    assert _digest(arm64_lab.python) == original


def test_fix_without_an_emulator_builds_but_never_claims_verified(
    arm64_lab: Arm64Lab, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    shutil.copytree(arm64_lab.venv, venv, symlinks=True)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++"):
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    fixed = _cli("fix", str(venv), "--yes", "--json", PATH=str(bare), **env)
    result = json.loads(fixed.stdout)
    assert (fixed.returncode, result["verified"], result["verified_by"], result["activated"]) == (
        1,
        False,
        None,
        [],
    )
    assert all(check["detail"].startswith("not run") for check in result["checks"])


def _cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LD_", "PYTHON"))}
    env.update(extra)
    argv = [sys.executable, "-m", "glibc_doctor.tui", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
