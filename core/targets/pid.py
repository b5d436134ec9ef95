"""A running process: ``/proc/PID/maps`` says what it really loaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from glibc_doctor.core.elf import defines_symbol
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.targets.files import dynamic_needed, os_reason
from glibc_doctor.core.targets.pymodules import init_symbol
from glibc_doctor.core.targets.resolve import interpreter_kind, resolve_file
from glibc_doctor.core.targets.venv import resolve_venv, venv_of_executable
from glibc_doctor.core.targets.walk import module_name, unique_extensions


def _proc_error(pid: int, error: OSError, what: str) -> TargetError:
    if isinstance(error, FileNotFoundError | ProcessLookupError):
        return TargetError(f"pid {pid}: no such process (or it has no {what}, like a kernel thread)")
    if isinstance(error, PermissionError):
        return TargetError(
            f"pid {pid}: permission denied reading /proc/{pid}/{what}; run as its user or root"
        )
    return TargetError(f"pid {pid}: cannot read /proc/{pid}/{what}: {os_reason(error)}")


def mapped_files(pid: int) -> tuple[str, ...]:
    """The files ``/proc/PID/maps`` shows, each once, in address order (pseudo entries dropped)."""
    try:
        text = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise _proc_error(pid, error, "maps") from None
    seen: dict[str, None] = {}
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            seen.setdefault(fields[5].removesuffix(" (deleted)"), None)
    return tuple(seen)


def _looks_like_extension(path: str) -> bool:
    """A mapped file that was imported or required: a tagged module name, or an ``.so`` that exports the
    init function Python or Ruby calls. A library vendored beside the extensions (``numpy.libs/``) was
    mapped as a dependency and is reached through the graph's edges instead."""
    name = os.path.basename(path)
    if ".cpython-" in name or name.endswith(".abi3.so"):
        return True
    if not name.endswith(".so"):
        return False
    stem = name.split(".", 1)[0]
    return bool(defines_symbol(path, init_symbol(stem)) or defines_symbol(path, f"Init_{stem}"))


def _loaded_name(path: str) -> str:
    for marker in ("/site-packages/", "/dist-packages/", "/lib-dynload/"):
        if marker in path:
            return module_name(path, path.split(marker, 1)[0] + marker)
    return os.path.basename(path).split(".", 1)[0]


def _pid_venv(pid: int, loaded: Sequence[str]) -> str | None:
    """The venv of a Python process: from ``argv[0]`` as run, else from a loaded site-packages path."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, UnicodeDecodeError):
        argv0, cwd = "", "/"
    if "/" in argv0:
        venv = venv_of_executable(os.path.join(cwd, argv0))
        if venv is not None:
            return venv
    for path in loaded:
        if "/site-packages/" in path:
            root = path.split("/lib/", 1)[0]
            if os.path.isfile(os.path.join(root, "pyvenv.cfg")):
                return root
    return None


def target_from_pid(pid: int) -> Target:
    """The running process ``pid``: what it has mapped, and the extensions it could still import."""
    if pid <= 0:
        raise TargetError(f"pid {pid}: not a process id; give the number ps or pgrep shows")
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError as error:
        raise _proc_error(pid, error, "exe") from None
    loaded = mapped_files(pid)
    static = _static_for_pid(pid, exe, loaded)
    static_paths = {ext.path for ext in static.extensions}
    caller = next((e.caller for e in static.extensions), None)
    loaded_ext = [p for p in loaded if p != exe and (p in static_paths or _looks_like_extension(p))]
    by_path = {e.path: e for e in static.extensions}
    extensions = [by_path.get(p, Extension(p, _loaded_name(p), caller)) for p in loaded_ext]
    extensions += [e for e in static.extensions if e.path not in set(loaded_ext)]
    return Target(
        kind=static.kind,
        spec=f"pid {pid}",
        executable=exe,
        extensions=unique_extensions(extensions),
        environment=static.environment,
        searched_dirs=static.searched_dirs,
        loaded=frozenset(loaded),
        pid=pid,
        notes=static.notes,
    )


def _static_for_pid(pid: int, exe: str, loaded: Sequence[str]) -> Target:
    """The static view of the process's executable; a deleted or odd one still gives a generic target."""
    try:
        if interpreter_kind(exe, dynamic_needed(exe)) == "python":
            venv = _pid_venv(pid, loaded)
            if venv is not None:
                return resolve_venv(exe, venv, ())
        return resolve_file(exe, exe, (), ())
    except TargetError as error:
        return Target(kind="generic", spec=exe, executable=exe, notes=(f"static view unavailable: {error}",))
