"""Wrapper scripts and shims (core/targets/scripts.py): pyenv shims, Nix wrappers, env scripts, PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from glibc_doctor.core.errors import NotElf
from glibc_doctor.core.targets import (
    resolve_target,
)

from tests.core.targets.layouts import (
    BASE_PYTHON,
    make_fake_python,
    make_fake_ruby,
    make_pyenv,
    with_inits,
)


def test_pyenv_shim_resolves_to_the_version_it_would_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    target = resolve_target(str(make_pyenv(tmp_path / "pyenv")))
    assert target.executable == BASE_PYTHON
    assert any("pyenv shim" in note for note in target.notes)


def test_bare_name_is_looked_up_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(BASE_PYTHON)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    target = resolve_target("python3")
    assert target.executable == BASE_PYTHON
    assert f"python3 found on PATH: {tmp_path / 'bin' / 'python3'}" in target.notes


def test_nix_wrapper_script_leads_to_the_wrapped_python_and_its_env(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path / "store" / "python3", plain_so, shared=True)
    wrapped = python.with_name(".python3.9-wrapped")
    python.rename(wrapped)
    env_site = tmp_path / "store" / "env" / "lib" / "python3.9" / "site-packages"
    (env_site / "yaml").mkdir(parents=True)
    shutil.copy(plain_so, env_site / "yaml" / "_yaml.cpython-39-x86_64-linux-gnu.so")
    wrapper = tmp_path / "profile" / "bin" / "python3"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        "#! /bin/bash -e\n"
        f"export NIX_PYTHONPATH='{env_site}'\n"
        "export PYTHONNOUSERSITE='true'\n"
        f'exec -a "$0" "{wrapped}"  "$@"\n'
    )
    target = resolve_target(str(wrapper))
    assert (target.kind, target.executable) == ("python", str(wrapped))
    assert [e.name for e in target.extensions] == ["_ssl", "yaml._yaml", "numpy.core._multiarray"]


def test_wrapper_with_gem_path_adds_that_gem_home(tmp_path: Path, plain_so: Path) -> None:
    ruby = make_fake_ruby(tmp_path / "ruby", plain_so)
    home = tmp_path / "gemhome"
    (home / "gems" / "pg-1.5.4" / "lib").mkdir(parents=True)
    shutil.copy(with_inits(plain_so), home / "gems" / "pg-1.5.4" / "lib" / "pg_ext.so")
    wrapper = tmp_path / "bin" / "ruby"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexport GEM_PATH='{home}:/nonexistent'\nexec {ruby} \"$@\"\n")
    target = resolve_target(str(wrapper))
    assert "pg_ext" in [e.name for e in target.extensions]


def test_env_script_asks_for_the_interpreter_it_runs(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("#!/usr/bin/env bash\necho hi\n")
    with pytest.raises(NotElf, match="a script"):
        resolve_target(str(tmp_path / "run"))
