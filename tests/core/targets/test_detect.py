"""The TUI picker's candidates (core/targets/detect.py): $VIRTUAL_ENV, ./.venv, PATH, devbox."""

from __future__ import annotations

from pathlib import Path

from glibc_doctor.core.targets import (
    Candidate,
    detect_candidates,
)

from tests.core.targets.layouts import (
    BASE_PYTHON,
    PY_VERSION,
    make_fake_ruby,
    make_pyenv,
    make_venv,
)


def test_candidates_list_the_local_venv_once_even_when_also_active(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    venv.rename(tmp_path / ".venv")
    found = detect_candidates(str(tmp_path), {"VIRTUAL_ENV": str(tmp_path / ".venv"), "PATH": ""})
    assert [(c.path, c.kind, c.why) for c in found] == [
        (str(tmp_path / ".venv"), "venv", "$VIRTUAL_ENV (the active venv)")
    ]


def test_candidates_turn_a_venv_python_on_path_into_its_venv(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    found = detect_candidates(str(tmp_path / "elsewhere"), {"PATH": str(venv / "bin")})
    assert found == [
        Candidate(label=f"{venv} (Python {PY_VERSION})", path=str(venv), kind="venv", why="python3 on PATH")
    ]


def test_candidates_skip_scripts_on_path_and_take_the_next_python(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "python3").write_text("#!/bin/sh\nexec true\n")
    (scripts / "python3").chmod(0o755)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "python3").symlink_to(BASE_PYTHON)
    found = detect_candidates(str(tmp_path), {"PATH": f"{scripts}:{tmp_path / 'real'}"})
    assert [(c.path, c.kind) for c in found] == [(BASE_PYTHON, "python")]


def test_candidates_follow_a_pyenv_shim_on_path(tmp_path: Path) -> None:
    shim = make_pyenv(tmp_path / "pyenv")
    found = detect_candidates(str(tmp_path), {"PATH": str(shim.parent)})
    assert [(c.path, c.kind) for c in found] == [(BASE_PYTHON, "python")]


def test_candidates_skip_a_pyenv_shim_set_to_system(tmp_path: Path) -> None:
    shim = make_pyenv(tmp_path / "pyenv")
    assert detect_candidates(str(tmp_path), {"PATH": str(shim.parent), "PYENV_VERSION": "system"}) == []


def test_candidates_find_ruby_on_path(tmp_path: Path, plain_so: Path) -> None:
    ruby = make_fake_ruby(tmp_path / "ruby", plain_so)
    found = detect_candidates(str(tmp_path), {"PATH": str(ruby.parent)})
    assert [(c.path, c.kind, c.why) for c in found] == [(str(ruby), "ruby", "ruby on PATH")]


def test_candidates_include_the_devbox_profile_python(tmp_path: Path) -> None:
    profile = tmp_path / ".devbox" / "nix" / "profile" / "default" / "bin"
    profile.mkdir(parents=True)
    (profile / "python3").symlink_to(BASE_PYTHON)
    found = detect_candidates(str(tmp_path), {"PATH": ""})
    assert [(c.path, c.why) for c in found] == [(BASE_PYTHON, "the devbox profile")]
