"""Virtual environments: ``pyvenv.cfg`` leads to the base interpreter; the venv adds its site-packages."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.model import Target
from glibc_doctor.core.sysroot import named_file, real_file
from glibc_doctor.core.targets.architecture import check_runnable_here
from glibc_doctor.core.targets.files import is_elf_file, os_reason, read_text
from glibc_doctor.core.targets.python import (
    PYTHON_VERSION,
    python_layout,
    python_target,
    site_entries,
    sys_path_head,
)


def read_pyvenv_cfg(path: str) -> dict[str, str]:
    """``key = value`` lines of ``pyvenv.cfg``, keys lower-cased (as ``site.py`` reads it)."""
    values: dict[str, str] = {}
    try:
        text = read_text(path)
    except OSError as error:
        raise TargetError(f"{path}: cannot read: {os_reason(error)}") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def venv_version(cfg: Mapping[str, str]) -> str | None:
    for key in ("version", "version_info"):
        match = PYTHON_VERSION.match(cfg.get(key, ""))
        if match:
            return f"{match['major']}.{match['minor']}"
    return None


def _first_elf(paths: Iterable[str]) -> str | None:
    for path in paths:
        real = real_file(path)
        if os.path.isfile(real) and is_elf_file(real):
            return real
    return None


def _venv_base(venv: str, cfg: Mapping[str, str], version: str | None) -> str:
    """The base interpreter's real file: ``home``'s ``pythonX.Y``, then ``executable``, then bin links."""
    home = cfg.get("home")
    if not home:
        raise TargetError(f"{venv}/pyvenv.cfg has no 'home =' line; recreate the venv")
    names = ([f"python{version}"] if version else []) + ["python3", "python"]
    candidates = [os.path.join(named_file(home), name) for name in names]
    if cfg.get("executable"):
        candidates.append(named_file(cfg["executable"]))
    candidates += [os.path.join(venv, "bin", name) for name in names]
    base = _first_elf(candidates)
    if base is None:
        raise TargetError(
            f"{venv}: its base interpreter is gone (pyvenv.cfg home = {home} has no python{version or '3'}); "
            "recreate the venv with an existing Python"
        )
    return base


def _venv_executable(venv: str, version: str | None, base: str) -> str:
    """What exec() of the venv's python runs: the link target, or the venv's own copy (``--copies``)."""
    names = ([f"python{version}"] if version else []) + ["python3", "python"]
    return _first_elf(os.path.join(venv, "bin", name) for name in names) or base


def _venv_site_packages(venv: str, version: str | None) -> tuple[str, ...]:
    """``VENV/lib/pythonX.Y/site-packages``; without a version in pyvenv.cfg, every ``pythonX.Y`` there.

    A site-packages this user may not even stat is kept: the walk then notes why it was skipped,
    instead of the venv silently looking empty.
    """
    versions = [version] if version else _lib_versions(os.path.join(venv, "lib"))
    candidates = [
        os.path.join(venv, libdir, f"python{v}", "site-packages")
        for v in versions
        for libdir in ("lib", "lib64")
    ]
    return tuple(path for path in dict.fromkeys(candidates) if os.path.isdir(path) or _denied(path))


def _denied(path: str) -> bool:
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _lib_versions(lib: str) -> list[str]:
    try:
        names = sorted(os.listdir(lib))
    except OSError:
        return []
    return [name[len("python") :] for name in names if re.fullmatch(r"python\d+\.\d+", name)]


def resolve_venv(spec: str, venv: str, ext: Sequence[str], notes: Sequence[str] = ()) -> Target:
    cfg = read_pyvenv_cfg(os.path.join(venv, "pyvenv.cfg"))
    version = venv_version(cfg)
    base = _venv_base(venv, cfg, version)
    layout = python_layout(base)
    executable = _venv_executable(venv, version or layout.version, base)
    check_runnable_here(executable, read_elf(executable))
    all_notes = list(notes)
    if executable != base:
        all_notes.append(f"the venv runs its own copy of the interpreter: {executable}")
    own = _venv_site_packages(venv, version or layout.version)
    site_dirs = list(own)
    if cfg.get("include-system-site-packages", "false").lower() == "true":
        site_dirs += list(layout.site_packages)
    examined: list[str] = []
    entries = sys_path_head(layout) + site_entries(site_dirs, examined)
    return python_target(
        spec,
        layout,
        entries,
        ext,
        executable=executable,
        environment=venv,
        notes=all_notes,
        listed_first=own,
        examined=examined,
    )


def venv_of_executable(path: str) -> str | None:
    """``VENV/bin/python`` (as typed, before symlinks) -> ``VENV`` when ``VENV/pyvenv.cfg`` exists."""
    bin_dir = os.path.dirname(os.path.abspath(path))
    for candidate in (bin_dir, os.path.dirname(bin_dir)):
        if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
            return candidate
    return None
