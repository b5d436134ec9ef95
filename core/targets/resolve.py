"""resolve_target: the entry point that tells a target's kind and hands it to its module."""

from __future__ import annotations

import mmap
import os
import re
import shutil
import stat
from collections.abc import Sequence

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import NotElf, TargetError
from glibc_doctor.core.model import Target
from glibc_doctor.core.sysroot import real_file
from glibc_doctor.core.targets.architecture import check_runnable_here
from glibc_doctor.core.targets.files import (
    ELF_MAGIC,
    check_listable,
    is_elf_file,
    program_name,
    read_head,
    shebang,
    stat_or_raise,
)
from glibc_doctor.core.targets.python import LIBPYTHON, PYTHON_NAME, resolve_python, stdlib_dirs
from glibc_doctor.core.targets.ruby import LIBRUBY, RUBY_NAME, resolve_ruby
from glibc_doctor.core.targets.scripts import WrapperPaths, pyenv_shim_target, read_wrapper
from glibc_doctor.core.targets.venv import resolve_venv, venv_of_executable
from glibc_doctor.core.targets.walk import Walk, explicit_extensions, walked_target


def _resolve_generic(spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = ()) -> Target:
    walk = Walk()
    extensions = explicit_extensions(ext, walk, None)
    return walked_target("generic", spec, real, walk, extensions, list(notes) + walk.notes)


_WHAT = "give an interpreter (python3, ruby), a venv directory, or a program with --ext DIR"


def interpreter_kind(path: str, needed: Sequence[str]) -> str:
    """``python``, ``ruby`` or ``generic``: by file name, DT_NEEDED, or a sibling ``../lib/pythonX.Y``."""
    name = program_name(path)
    if PYTHON_NAME.match(name) or any(LIBPYTHON.match(n) for n in needed):
        return "python"
    if RUBY_NAME.match(name) or any(LIBRUBY.match(n) for n in needed):
        return "ruby"
    if stdlib_dirs(os.path.dirname(os.path.dirname(path))) and _embeds_python(path):
        return "python"
    return "generic"


def _embeds_python(path: str) -> bool:
    """A renamed python has CPython linked in: its dynamic symbols name ``Py_BytesMain``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"\0Py_BytesMain\0") >= 0
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)


def resolve_target(spec: str, ext: Sequence[str] = ()) -> Target:
    """The program ``spec`` names and the extensions it will dlopen(), found without running it.

    Raises ``TargetError`` (``NotElf`` for a file that is not a program) with one line naming the path.
    """
    path = os.path.abspath(os.path.expanduser(spec))
    notes: list[str] = []
    on_path = shutil.which(spec) if "/" not in spec and not os.path.lexists(path) else None
    if on_path:  # a bare name like a shell would take it: ``glibc-doctor scan python3``
        path = os.path.abspath(on_path)
        notes.append(f"{spec} found on PATH: {path}")
    info = stat_or_raise(path, _WHAT)
    if stat.S_ISDIR(info.st_mode):
        check_listable(path)
        return _resolve_directory(spec, path, ext)
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block; a device is never a program
        raise TargetError(f"{path}: not a regular file (a FIFO, socket or device); {_WHAT}")
    return resolve_file(spec, path, ext, notes)


def resolve_file(
    spec: str, path: str, ext: Sequence[str], notes: Sequence[str], extra: WrapperPaths | None = None
) -> Target:
    real = real_file(path)
    head = read_head(real)
    if not head.startswith(ELF_MAGIC):
        return _resolve_script(spec, path, head, ext, notes)
    facts = read_elf(real)
    check_runnable_here(path, facts)
    needed = facts.needed
    kind = interpreter_kind(real, needed)
    if kind == "python" or PYTHON_NAME.match(program_name(path)):
        venv = venv_of_executable(path)
        if venv is not None:
            return resolve_venv(spec, venv, ext, notes)
        return resolve_python(spec, real, ext, notes, extra)
    if kind == "ruby":
        return resolve_ruby(spec, real, ext, notes, extra)
    return _resolve_generic(spec, real, ext, notes)


_SCRIPT_HOP = " is a script that runs "


def _resolve_script(spec: str, path: str, head: bytes, ext: Sequence[str], notes: Sequence[str]) -> Target:
    """A pyenv shim, a Nix wrapper or a ``#!/abs/python`` script leads to its interpreter; else NotElf."""
    shim = pyenv_shim_target(path)
    if shim is not None:
        return resolve_file(spec, shim, ext, [*notes, f"{path} is a pyenv shim for {shim}"])
    line = shebang(head)
    followed = any(_SCRIPT_HOP in note for note in notes)  # one hop: no script chains
    wrapper = None if followed else read_wrapper(path)
    if wrapper is not None:
        return resolve_file(
            spec, wrapper.program, ext, [*notes, f"{path}{_SCRIPT_HOP}{wrapper.program}"], wrapper
        )
    interpreter = line.split()[0] if line else ""
    runnable = interpreter.startswith("/") and os.path.exists(interpreter) and interpreter != path
    if runnable and os.path.basename(interpreter) != "env" and not followed:
        return resolve_file(spec, interpreter, ext, [*notes, f"{path}{_SCRIPT_HOP}{interpreter}"])
    if line is not None:
        raise NotElf(f"{path}: a script (#!{line}), not an ELF program; give the interpreter it runs")
    raise NotElf(f"{path}: not an ELF file (no \\x7fELF header); {_WHAT}")


def _resolve_directory(spec: str, path: str, ext: Sequence[str]) -> Target:
    """A venv, a project with ``.venv``/``venv``, or a prefix with ``bin/python3``/``bin/ruby``."""
    if os.path.isfile(os.path.join(path, "pyvenv.cfg")):
        return resolve_venv(spec, path, ext)
    for name in (".venv", "venv"):
        inner = os.path.join(path, name)
        if os.path.isfile(os.path.join(inner, "pyvenv.cfg")):
            return resolve_venv(spec, inner, ext, [f"using the venv {inner} inside {path}"])
    interpreter = _prefix_interpreter(path)
    if interpreter is not None:
        return resolve_file(spec, interpreter, ext, [f"using {interpreter} of the prefix {path}"])
    raise TargetError(f"{path}: a directory without pyvenv.cfg, .venv/, or bin/python3 or bin/ruby; {_WHAT}")


def _prefix_interpreter(prefix: str) -> str | None:
    bin_dir = os.path.join(prefix, "bin")
    try:
        names = sorted(os.listdir(bin_dir))
    except OSError:
        return None
    pythons = [n for n in names if re.fullmatch(r"python3(\.\d+)?", n)]
    pythons.sort(key=lambda n: (n.count("."), n), reverse=True)
    for name in [*pythons, "ruby"]:
        candidate = os.path.join(bin_dir, name)
        if name in names and is_elf_file(real_file(candidate)):
            return candidate
    return None
