"""Python interpreters (core/targets/python.py): prefix, libpython, who dlopen()s the extensions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from glibc_doctor.core.targets import (
    resolve_target,
)

from tests.core.targets.layouts import (
    BASE_PYTHON,
    make_fake_python,
    needed_of,
)
from tests.gcc import compile_elf


def test_machine_python_prefix_matches_what_it_reports_itself() -> None:
    python = shutil.which("python3", path="/usr/bin:/bin") or pytest.skip("no /usr/bin/python3")
    truth = subprocess.run(
        [
            python,
            "-c",
            "import sys, sysconfig; print(sys.base_prefix); print(sysconfig.get_config_var('DESTSHARED'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    target = resolve_target(python)
    assert target.kind == "python"
    assert target.executable == os.path.realpath(python)
    assert truth[1] in target.searched_dirs


def test_pyenv_python_caller_is_its_libpython_soname() -> None:
    libpython = [name for name in needed_of(BASE_PYTHON) if name.startswith("libpython")]
    target = resolve_target(BASE_PYTHON)
    assert {ext.caller for ext in target.extensions} == {libpython[0] if libpython else None}


def test_shared_python_extensions_are_dlopened_by_libpython(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=True)
    target = resolve_target(str(python))
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("_ssl", "libpython3.9.so.1.0"),
        ("numpy.core._multiarray", "libpython3.9.so.1.0"),
    ]


def test_static_python_extensions_are_dlopened_by_the_executable(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=False)
    assert {e.caller for e in resolve_target(str(python)).extensions} == {None}


def test_python_symlink_is_followed_to_its_real_prefix(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path / "store", plain_so, shared=True)
    (tmp_path / "profile" / "bin").mkdir(parents=True)
    (tmp_path / "profile" / "bin" / "python3").symlink_to(python)
    target = resolve_target(str(tmp_path / "profile" / "bin" / "python3"))
    assert target.executable == str(python)
    assert str(tmp_path / "store" / "lib" / "python3.9" / "lib-dynload") in target.searched_dirs


def test_prefix_directory_uses_its_bin_python(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=True)
    assert resolve_target(str(tmp_path)).executable == str(python)


def test_python_without_a_standard_library_says_to_use_ext(tmp_path: Path) -> None:
    python = compile_elf(tmp_path / "bin" / "python3.9", "int main(void){return 0;}\n", shared=False)
    target = resolve_target(str(python))
    assert target.kind == "python"
    assert any("--ext" in note for note in target.notes)
