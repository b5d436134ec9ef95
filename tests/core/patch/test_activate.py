"""Activation: venv retargeting and profiles, atomic and undoable, on real directories and links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.patch.activate import (
    Activation,
    activate_profile,
    activate_venv,
    retarget_cfg,
    undo,
)

CFG = "home = /src/bin\ninclude-system-site-packages = false\nversion = 3.9.2\n"


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3.9").symlink_to("/src/bin/python3.9")
    (venv / "bin" / "python").symlink_to("python3.9")
    (venv / "bin" / "activate").write_text("# not a link\n")
    (venv / "pyvenv.cfg").write_text(CFG)
    return venv


def _build(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "packages" / name
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python3.9").write_text("#!/bin/sh\n")
    return root


def test_a_venv_is_retargeted_to_the_build(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    activate_venv(str(venv), "/src", "/new")
    assert os.readlink(venv / "bin" / "python3.9") == "/new/bin/python3.9"
    assert (venv / "pyvenv.cfg").read_text() == CFG.replace("/src/bin", "/new/bin")


def test_relative_links_inside_the_venv_stay_as_they_are(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    activate_venv(str(venv), "/src", "/new")
    assert os.readlink(venv / "bin" / "python") == "python3.9"


def test_undo_restores_the_venv_exactly(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    activation = activate_venv(str(venv), "/src", "/new")
    undo(activation)
    assert os.readlink(venv / "bin" / "python3.9") == "/src/bin/python3.9"
    assert (venv / "pyvenv.cfg").read_text() == CFG


def test_a_venv_that_does_not_use_the_package_is_refused(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    with pytest.raises(PatchError, match="nothing to retarget"):
        activate_venv(str(venv), "/elsewhere", "/new")


def test_pyvenv_cfg_keeps_lines_it_does_not_own() -> None:
    text = "home = /src/bin\nprompt = src-project\nversion = 3.9\n"
    assert retarget_cfg(text, "/src", "/new") == "home = /new/bin\nprompt = src-project\nversion = 3.9\n"


def test_a_profile_bin_runs_the_builds_files_through_file_links(tmp_path: Path) -> None:
    build = _build(tmp_path, "python3.9-aaaa")
    activation = activate_profile(str(tmp_path / "profiles" / "python3.9"), str(build))
    python = tmp_path / "profiles" / "python3.9" / "bin" / "python3.9"
    assert python.is_symlink()
    assert os.path.realpath(python) == str(build / "bin" / "python3.9")
    assert activation.hints == (f'export PATH="{tmp_path / "profiles" / "python3.9" / "bin"}:$PATH"',)


def test_a_second_profile_activation_swaps_and_undo_swaps_back(tmp_path: Path) -> None:
    first, second = _build(tmp_path, "a"), _build(tmp_path, "b")
    profile = tmp_path / "profiles" / "p"
    activate_profile(str(profile), str(first))
    activation = activate_profile(str(profile), str(second))
    assert os.path.realpath(profile / "bin" / "python3.9") == str(second / "bin" / "python3.9")
    undo(activation)
    assert os.path.realpath(profile / "bin" / "python3.9") == str(first / "bin" / "python3.9")


def test_a_profile_bin_that_is_a_real_directory_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "profiles" / "p" / "bin").mkdir(parents=True)
    with pytest.raises(PatchError, match="not a symlink"):
        activate_profile(str(tmp_path / "profiles" / "p"), str(_build(tmp_path, "a")))


def test_an_activation_survives_its_json_record(tmp_path: Path) -> None:
    activation = activate_venv(str(_venv(tmp_path)), "/src", "/new")
    assert Activation.from_json(activation.as_json()) == activation


def _venv_with_a_copied_interpreter(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy2("/bin/true", venv / "bin" / "python3.9")
    (venv / "bin" / "python").symlink_to("python3.9")
    (venv / "pyvenv.cfg").write_text(CFG)
    return venv


def test_a_copied_interpreter_becomes_a_link_to_the_build(tmp_path: Path) -> None:
    venv = _venv_with_a_copied_interpreter(tmp_path)
    build = _build(tmp_path, "python3.9-aaaa")
    activate_venv(str(venv), "/src", str(build))
    assert os.readlink(venv / "bin" / "python3.9") == str(build / "bin" / "python3.9")


def test_undo_puts_the_copied_interpreter_back_byte_for_byte(tmp_path: Path) -> None:
    venv = _venv_with_a_copied_interpreter(tmp_path)
    original = (venv / "bin" / "python3.9").read_bytes()
    activation = activate_venv(str(venv), "/src", str(_build(tmp_path, "python3.9-aaaa")))
    undo(activation)
    path = venv / "bin" / "python3.9"
    assert not path.is_symlink()
    assert path.read_bytes() == original
    assert sorted(p.name for p in (venv / "bin").iterdir()) == ["python", "python3.9"]


def test_a_relative_link_into_the_package_is_retargeted_too(tmp_path: Path) -> None:
    source = tmp_path / "store" / "aaaa-python3.9"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "python3.9").write_text("")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3.9").symlink_to("../../store/aaaa-python3.9/bin/python3.9")
    (venv / "bin" / "python").symlink_to("python3.9")
    (venv / "pyvenv.cfg").write_text(f"home = {source}/bin\n")
    build = _build(tmp_path, "python3.9-bbbb")
    activate_venv(str(venv), str(source), str(build))
    assert os.readlink(venv / "bin" / "python3.9") == str(build / "bin" / "python3.9")
    assert os.readlink(venv / "bin" / "python") == "python3.9"
