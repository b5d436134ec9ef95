"""Candidates for the TUI's picker: the active venv, ./.venv, a devbox profile, python and ruby on PATH."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.targets.files import ELF_MAGIC, read_head_quiet
from glibc_doctor.core.targets.scripts import pyenv_shim_target
from glibc_doctor.core.targets.venv import read_pyvenv_cfg, venv_of_executable, venv_version


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target the picker offers: ``path`` is what ``resolve_target`` takes, ``why`` where we found it."""

    label: str
    path: str
    kind: str  # "venv", "python" or "ruby"
    why: str


def _which(name: str, env: Mapping[str, str], cwd: str) -> list[str]:
    found: list[str] = []
    for directory in env.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(cwd, directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append(candidate)
    return found


def _program_candidate(path: str, why: str, env: Mapping[str, str]) -> Candidate | None:
    """A PATH or devbox entry: a venv's python becomes that venv; a shim its version; scripts are skipped."""
    venv = venv_of_executable(path)
    if venv is not None and os.path.basename(path).startswith("python"):
        return _venv_candidate(venv, why)
    real = os.path.realpath(path)
    head = read_head_quiet(real)
    if not head.startswith(ELF_MAGIC):
        shim = pyenv_shim_target(path, env)
        if shim is None:
            return None
        real = os.path.realpath(shim)
    kind = "ruby" if os.path.basename(path).startswith("ruby") else "python"
    return Candidate(label=f"{os.path.basename(path)} ({real})", path=real, kind=kind, why=why)


def _venv_candidate(venv: str, why: str) -> Candidate | None:
    try:
        version = venv_version(read_pyvenv_cfg(os.path.join(venv, "pyvenv.cfg")))
    except TargetError:
        return None
    label = f"{venv} (Python {version})" if version else venv
    return Candidate(label=label, path=venv, kind="venv", why=why)


def detect_candidates(cwd: str, env: Mapping[str, str]) -> list[Candidate]:
    """Targets worth offering, most specific first, one per real path."""
    found: list[Candidate | None] = []
    virtual_env = env.get("VIRTUAL_ENV")
    if virtual_env and os.path.isfile(os.path.join(virtual_env, "pyvenv.cfg")):
        found.append(_venv_candidate(virtual_env, "$VIRTUAL_ENV (the active venv)"))
    for name in (".venv", "venv"):
        directory = os.path.join(cwd, name)
        if os.path.isfile(os.path.join(directory, "pyvenv.cfg")):
            found.append(_venv_candidate(directory, f"./{name} in the current directory"))
    profile = os.path.join(cwd, ".devbox", "nix", "profile", "default", "bin")
    for name in ("python3", "ruby"):
        if os.path.exists(os.path.join(profile, name)):
            found.append(_program_candidate(os.path.join(profile, name), "the devbox profile", env))
    for name in ("python3", "ruby"):
        for path in _which(name, env, cwd):
            candidate = _program_candidate(path, f"{name} on PATH", env)
            if candidate is not None:
                found.append(candidate)
                break
    return _unique(found)


def _unique(found: Iterable[Candidate | None]) -> list[Candidate]:
    seen: set[str] = set()
    unique: list[Candidate] = []
    for candidate in found:
        if candidate is None:
            continue
        key = os.path.realpath(candidate.path)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


candidates = detect_candidates  # the name docs/CONTRACTS.md uses
