"""Audit a whole environment: every program under some paths, each scanned as ``scan --strict`` does.

One interpreter at a time is how a person debugs; a team wants to know, before an import fails, which
programs of a devbox profile, a tool directory, ``/usr/bin`` or a container image will break. The audit
finds every ELF program under the given paths (a file that can be exec()ed, has a PT_INTERP and is not named
like a library: ``libc.so.6`` runs, but nobody execs it), every venv (``pyvenv.cfg``) and every Nix wrapper
script, resolves each as ``scan`` resolves a target (``core/targets/``: a python or ruby gets its
extensions, every program the ``--ext-dir`` plugins), and scans each with the scan's own functions
(``core.scan.scan_target``: exact and strict graphs, ``analyze``). What they share is read once: the stdenv
is found once per ELF class and machine, and one ``SharedLookups`` (``core/lookups.py``) gives every
simulation the same parsed ELF facts, directory listings and searches. Paths that lead to the same process
(``python3`` and ``python3.11``) make one row.

Nothing is run. The work is a generator (``audit_steps``) yielding ``AuditProgress`` and then the
``AuditResult``, stopping early when its cancellation event is set.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from glibc_doctor.core.elf import is_library_name
from glibc_doctor.core.errors import DoctorError, TargetError
from glibc_doctor.core.lookups import SharedLookups
from glibc_doctor.core.model import (
    Conflict,
    ElfFacts,
    Extension,
    Kind,
    Problem,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    Target,
)
from glibc_doctor.core.scan import ScanResult, scan_target, stdenv_or_notes
from glibc_doctor.core.targets import read_wrapper, resolve_target
from glibc_doctor.core.targets.files import read_head_quiet, stat_or_raise
from glibc_doctor.core.targets.venv import venv_of_executable
from glibc_doctor.core.versions import VersionName

FAIL_ON = ("conflict", "latent")
SKIPPED_DIR_NAMES = frozenset({"__pycache__", ".git"})
_EXECUTABLE_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
_ET_EXEC = 2
_DF_1_PIE = 0x08000000
_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1}
_KIND_RANK = {kind: rank for rank, kind in enumerate(Kind)}


@dataclass(frozen=True, slots=True)
class AuditProgress:
    """A step of the audit: ``stage`` is ``finding`` (walking the paths) or ``scanning``."""

    stage: str
    message: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A program that was found but not scanned, and why (static, another architecture, unreadable)."""

    path: str
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True, slots=True, eq=False)
class ProgramAudit:
    """One row: a program, the other paths that exec the same process, and its strict scan."""

    program: str
    aliases: tuple[str, ...]
    result: ScanResult

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        """What ld.so refuses today (exact mode, error records): the process fails to load these."""
        return tuple(c for c in self.result.conflicts if c.mode == "exact" and c.severity == Severity.ERROR)

    @property
    def latent(self) -> tuple[Conflict, ...]:
        """Conflicts that the load order hides today (strict mode)."""
        return tuple(c for c in self.result.conflicts if c.kind == Kind.LATENT)

    @property
    def warnings(self) -> tuple[Conflict, ...]:
        """Exact-mode warnings: what works today but is fragile (order-dependent, mixed builds)."""
        return tuple(c for c in self.result.conflicts if c.mode == "exact" and c.severity != Severity.ERROR)

    @property
    def worst(self) -> Conflict | None:
        """The record to show first: errors before warnings, exact before latent, then the newest
        version needed (``GLIBC_2.38`` asks for a newer glibc than ``GLIBC_2.34``)."""
        return min(self.result.conflicts, key=badness, default=None)

    @property
    def glibc_via(self) -> str | None:
        """How the process's libc.so.6 was found (``ld.so.cache``, ``rpath``, ``runpath`` …)."""
        libc = self.result.glibc.libc
        if libc is None or libc not in self.result.graph:
            return None
        found: Resolution | None = self.result.graph.nodes[libc].get("found")
        return str(found.via) if found is not None else None

    @property
    def objects(self) -> int:
        """How many files the process maps (the program, its loader, libraries, extensions)."""
        graph = self.result.graph
        return sum(1 for node in graph if graph.nodes[node].get("role") != Role.MISSING)

    def failed(self, fail_on: str = "conflict") -> bool:
        """``conflict``: it has an error today; ``latent``: also when only the strict scan finds one."""
        return bool(self.conflicts) or (fail_on == "latent" and bool(self.latent))

    def sort_key(self) -> tuple[object, ...]:
        return (-len(self.conflicts), -len(self.latent), -len(self.warnings), self.program)

    def as_json(self) -> dict[str, object]:
        target = self.result.target
        worst = self.worst
        return {
            "program": self.program,
            "aliases": list(self.aliases),
            "kind": target.kind,
            "executable": target.executable,
            "environment": target.environment,
            "extensions": len(target.extensions),
            "objects": self.objects,
            "glibc": {**self.result.glibc.as_json(), "via": self.glibc_via},
            "conflicts": len(self.conflicts),
            "latent": len(self.latent),
            "warnings": len(self.warnings),
            "worst": worst.as_json() if worst is not None else None,
            "records": [conflict.as_json() for conflict in self.result.conflicts],
            "notes": list(self.result.notes),
        }


def badness(conflict: Conflict) -> tuple[object, ...]:
    version = VersionName.parse(conflict.version or "")
    negated = tuple(-part for part in version.number)
    return (_SEVERITY_RANK[conflict.severity], conflict.mode != "exact", _KIND_RANK[conflict.kind], negated)


@dataclass(frozen=True, slots=True, eq=False)
class AuditResult:
    """Every program found under ``paths``, worst first; ``as_json()`` is the ``audit --json`` document."""

    paths: tuple[str, ...]
    programs: tuple[ProgramAudit, ...]
    skipped: tuple[Skipped, ...] = ()
    stdenv: StdenvInfo | None = None
    stdenv_notes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def failing(self, fail_on: str = "conflict") -> tuple[ProgramAudit, ...]:
        return tuple(program for program in self.programs if program.failed(fail_on))

    def exit_code(self, fail_on: str = "conflict") -> int:
        """1 when some program meets ``fail_on`` (``conflict`` or ``latent``), else 0."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {FAIL_ON}, not {fail_on!r}")
        return 1 if self.failing(fail_on) else 0

    def summary(self) -> dict[str, int]:
        return {
            "programs": len(self.programs),
            "with_conflicts": sum(1 for p in self.programs if p.conflicts),
            "with_latent": sum(1 for p in self.programs if p.latent),
            "conflicts": sum(len(p.conflicts) for p in self.programs),
            "latent": sum(len(p.latent) for p in self.programs),
            "warnings": sum(len(p.warnings) for p in self.programs),
            "skipped": len(self.skipped),
        }

    def as_json(self) -> dict[str, object]:
        return {
            "paths": list(self.paths),
            "stdenv": self.stdenv.as_json() if self.stdenv is not None else None,
            "summary": self.summary(),
            "programs": [program.as_json() for program in self.programs],
            "skipped": [skipped.as_json() for skipped in self.skipped],
            "notes": [*self.stdenv_notes, *self.notes],
        }


# --- the audit ----------------------------------------------------------------------------------------


def audit_steps(
    paths: Sequence[str],
    *,
    ext_dirs: Sequence[str] = (),
    glibc: str | None = None,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[AuditProgress | AuditResult]:
    """Find the programs under ``paths``, then scan each; yields progress, then the ``AuditResult``.

    ``ext_dirs`` are dlopen()ed by every program, as ``scan PROGRAM --ext DIR`` has it. Raises
    ``TargetError`` (one line) for a path that does not exist or a named file that is not a program;
    what is merely found under a directory and cannot be scanned is ``skipped`` instead.
    """
    environ = dict(os.environ if env is None else env)
    if not paths:
        raise TargetError("audit needs at least one DIR or PROGRAM")
    for ext_dir in ext_dirs:
        if not stat.S_ISDIR(stat_or_raise(os.path.abspath(ext_dir), "check the --ext-dir path").st_mode):
            raise TargetError(f"{os.path.abspath(ext_dir)}: --ext-dir needs a directory")
    shared = SharedLookups()
    finder = _Finder(tuple(ext_dirs), shared)
    for index, path in enumerate(paths):
        yield AuditProgress("finding", f"looking for programs in {path}", index, len(paths))
        finder.add_path(path)
        if cancel is not None and cancel.is_set():
            return
    stdenv_of = functools.cache(functools.partial(stdenv_or_notes, glibc, environ))
    stdenv_notes = stdenv_of(64, 0)[1]
    total = len(finder.targets)
    rows: list[ProgramAudit] = []
    for done, (target, found_as) in enumerate(finder.targets.values()):
        if cancel is not None and cancel.is_set():
            return
        yield AuditProgress("scanning", f"scanning {found_as[0]}", done, total)
        try:
            result = scan_target(target, env=environ, strict=True, stdenv_of=stdenv_of, shared=shared)
        except TargetError as error:
            finder.skipped.append(Skipped(found_as[0], str(error)))
            continue
        rows.append(ProgramAudit(found_as[0], tuple(found_as[1:]), result))
    yield AuditProgress("scanning", "done", total, total)
    yield AuditResult(
        paths=tuple(paths),
        programs=tuple(sorted(rows, key=ProgramAudit.sort_key)),
        skipped=tuple(sorted(finder.skipped, key=lambda item: item.path)),
        stdenv_notes=stdenv_notes,
        notes=tuple(finder.notes),
        stdenv=stdenv_of(64, 0)[0],
    )


def audit(
    paths: Sequence[str],
    *,
    ext_dirs: Sequence[str] = (),
    glibc: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AuditResult:
    """Run ``audit_steps`` to the end."""
    for event in audit_steps(paths, ext_dirs=ext_dirs, glibc=glibc, env=env):
        if isinstance(event, AuditResult):
            return event
    raise AssertionError("audit_steps ended without a result")  # only a cancel stops it early


# --- finding the programs -----------------------------------------------------------------------------

_TargetKey = tuple[str, str, tuple[Extension, ...], str | None]


@dataclass(slots=True)
class _Finder:
    """The walk of the given paths: the targets found (in order, with every path that leads to each)."""

    ext: tuple[str, ...]
    shared: SharedLookups
    targets: dict[_TargetKey, tuple[Target, list[str]]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _resolved: dict[tuple[str, str | None], Target | None] = field(default_factory=dict)
    _seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    _venvs: dict[str, str | None] = field(default_factory=dict)

    def add_path(self, path: str) -> None:
        """A path the user named: a directory is walked; a file must be a program (or raises)."""
        absolute = os.path.abspath(os.path.expanduser(path))
        info = stat_or_raise(absolute, "give a directory or a program")
        if stat.S_ISDIR(info.st_mode):
            self._walk(absolute, info)
        elif stat.S_ISREG(info.st_mode):
            self._add(absolute, named=True, directory=False)
        else:
            raise TargetError(f"{absolute}: not a regular file (a FIFO, socket or device); give a program")

    def _walk(self, root: str, info: os.stat_result) -> None:
        if (info.st_dev, info.st_ino) in self._seen_dirs:
            return  # named twice, or inside a directory already walked (``/bin`` -> ``/usr/bin``)
        self._seen_dirs.add((info.st_dev, info.st_ino))
        stack = [root]
        while stack:
            directory = stack.pop()
            subdirs = self._scan_dir(directory)
            stack.extend(reversed(subdirs))

    def _scan_dir(self, directory: str) -> list[str]:
        """Consider every file of ``directory``; return its subdirectories not seen yet, sorted."""
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            self.notes.append(f"skipped {directory}: {error.strerror or error}")
            return []
        if any(entry.name == "pyvenv.cfg" for entry in entries):
            self._add(directory, named=False, directory=True)
        subdirs: list[str] = []
        for entry in entries:
            try:
                info = entry.stat()
            except OSError:
                continue  # a dangling link or a vanished entry: no program there
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if entry.name not in SKIPPED_DIR_NAMES and key not in self._seen_dirs:
                    self._seen_dirs.add(key)
                    subdirs.append(entry.path)
            elif _is_executable_file(info) and not is_library_name(entry.name):
                self._consider(entry.path)  # (libc.so.6 can run, but nobody execs it)
        return subdirs

    def _consider(self, path: str) -> None:
        """An executable file found by the walk: a dynamic ELF program or a Nix wrapper is added."""
        facts = self.shared.read_elf(path)
        if facts.problem is Problem.NOT_ELF:
            if read_head_quiet(path, 2) == b"#!" and read_wrapper(path) is not None:
                self._add(path, named=False, directory=False)
            return
        if not facts.ok:
            self.skipped.append(Skipped(path, f"cannot be read as ELF: {facts.detail or facts.problem}"))
        elif facts.interpreter is not None:
            self._add(path, named=False, directory=False)
        elif _is_static_program(facts):
            self.skipped.append(Skipped(path, "statically linked: it loads no shared glibc"))

    def _add(self, path: str, *, named: bool, directory: bool) -> None:
        """Resolve ``path`` as ``scan`` does and file it under the process it starts.

        What ``resolve_target`` makes of a file depends on the file (its real path) and on the venv
        its directory belongs to, so each such pair is resolved once.
        """
        key = (os.path.realpath(path), None if directory else self._venv_of(path))
        if key in self._resolved:
            target = self._resolved[key]
        else:
            target = self._resolve(path, named)
            self._resolved[key] = target
        if target is None:
            return
        identity = (target.kind, target.executable, target.extensions, target.environment)
        entry = self.targets.get(identity)
        if entry is None:
            self.targets[identity] = (target, [path])
        elif path not in entry[1]:
            entry[1].append(path)

    def _venv_of(self, path: str) -> str | None:
        directory = os.path.dirname(path)
        if directory not in self._venvs:
            self._venvs[directory] = venv_of_executable(path)
        return self._venvs[directory]

    def _resolve(self, path: str, named: bool) -> Target | None:
        try:
            return resolve_target(path, self.ext)
        except DoctorError as error:
            if named:
                raise
            self.skipped.append(Skipped(path, str(error)))
            return None


def _is_executable_file(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and bool(info.st_mode & _EXECUTABLE_BITS)


def _is_static_program(facts: ElfFacts) -> bool:
    """No PT_INTERP: an executable or a static PIE (a shared library without one is not a program)."""
    return not facts.needed and (facts.elf_type == _ET_EXEC or bool(facts.flags_1 & _DF_1_PIE))
