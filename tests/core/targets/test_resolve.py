"""resolve_target (core/targets/resolve.py, files.py): generic programs, --ext, bad input in one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from glibc_doctor.core.errors import NotElf, TargetError
from glibc_doctor.core.targets import (
    resolve_target,
)

from tests.core.targets.layouts import (
    PY_TAG,
    make_venv,
    run_as_nobody,
    site_of,
)
from tests.gcc import compile_elf


def test_generic_program_takes_extensions_from_ext_dirs_and_files(tmp_path: Path, plain_so: Path) -> None:
    program = compile_elf(tmp_path / "host", "int main(void){return 0;}\n", shared=False)
    (tmp_path / "plugins" / "audio").mkdir(parents=True)
    shutil.copy(plain_so, tmp_path / "plugins" / "audio" / "libmp3.so.1")
    (tmp_path / "plugins" / "README").write_text("not a library")
    target = resolve_target(str(program), ext=[str(tmp_path / "plugins"), str(plain_so)])
    assert target.kind == "generic"
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("audio/libmp3.so.1", None),
        ("plain.so", None),
    ]


def test_python_ext_dir_gets_module_names_and_no_duplicates(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    (tmp_path / "extra" / "pkg").mkdir(parents=True)
    shutil.copy(plain_so, tmp_path / "extra" / "pkg" / f"_fast.cpython-{PY_TAG}-x86_64-linux-gnu.so")
    module = site_of(venv) / "cffi_backend.abi3.so"
    target = resolve_target(str(venv), ext=[str(tmp_path / "extra"), str(module)])
    assert [e.name for e in target.extensions if e.path == str(module)] == ["cffi_backend"]
    assert "pkg._fast" in {e.name for e in target.extensions}


def test_ext_path_that_does_not_exist_is_a_target_error(tmp_path: Path) -> None:
    program = compile_elf(tmp_path / "host", "int main(void){return 0;}\n", shared=False)
    with pytest.raises(TargetError, match="no such file"):
        resolve_target(str(program), ext=[str(tmp_path / "missing")])


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=f"^{tmp_path}/nope: no such file or directory"):
        resolve_target(str(tmp_path / "nope"))


def test_path_below_a_file_says_a_component_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TargetError, match="is a file, not a directory"):
        resolve_target(str(tmp_path / "file" / "python3"))


def test_symlink_loop_as_target_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(TargetError, match="symlink loop"):
        resolve_target(str(tmp_path / "a"))


def test_dangling_symlink_says_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(tmp_path / "gone")
    with pytest.raises(TargetError, match="dangling symlink"):
        resolve_target(str(tmp_path / "python3"))


def test_text_file_is_not_elf(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotElf, match="not an ELF file"):
        resolve_target(str(tmp_path / "notes.txt"))


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "python3")
    with pytest.raises(TargetError, match="not a regular file"):
        resolve_target(str(tmp_path / "python3"))


def test_file_whose_read_fails_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="cannot read"):
        resolve_target("/proc/self/mem")


def test_plain_directory_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="without pyvenv.cfg"):
        resolve_target(str(tmp_path))


def test_unreadable_file_is_permission_denied() -> None:
    def prepare(shim: Path) -> None:
        (shim / "python3").write_bytes(b"\x7fELF")
        (shim / "python3").chmod(0)

    assert run_as_nobody("resolve_target(shim + '/python3')", prepare).endswith(
        "/python3: permission denied; run as a user who can read it"
    )
