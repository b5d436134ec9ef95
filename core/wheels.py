"""Wheels checked against an interpreter's process before pip installs them: ``glibc-doctor wheels``.

Nothing is installed or run. Each wheel is opened as a zip (``core/wheelzip.py``: hostile names and zip
bombs refused), its shared objects are laid out in a private directory shaped like site-packages
(``core/wheelfiles.py``), and from there the one rule of what the interpreter imports by a name
(``core/targets/pymodules.py``, with the interpreter's own ``EXTENSION_SUFFIXES``) says which are its
extension modules. The interpreter's process is then simulated with those modules dlopen()ed, as
``scan`` models it (``core/process.py``: vendored ``*.libs`` found through each module's ``$ORIGIN``
RPATH, everything else through the interpreter's own search path, its glibc), and analysed
(``core/analysis.py``): each missing version with its symbols and the library that should provide it,
each library not found, each refusal. The directory is removed before the next wheel.

Beside the load, the tags: which wheels the interpreter's pip would select at all (``core/wheeltags.py``,
with the glibc the process loads). A wheel **fails** when it is built for this Python (its python and ABI
tags) and one of its extension modules would not load; a wheel for another Python never fails here (its
modules are another interpreter's business: pip's cache is shared). ``purge`` of a report removes the
failing wheels found in pip's cache, and nothing else.
"""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from glibc_doctor.core.analysis import extension_errors
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import TargetError, WheelError
from glibc_doctor.core.lookups import SharedLookups
from glibc_doctor.core.model import (
    EM_386,
    EM_AARCH64,
    EM_X86_64,
    Conflict,
    Extension,
    GlibcInfo,
    Kind,
    StdenvInfo,
    Target,
)
from glibc_doctor.core.pipcache import (
    FileIdentity,
    PipCache,
    Purged,
    cached_wheels,
    pip_cache,
    purge,
    wheel_files,
)
from glibc_doctor.core.scan import ScanResult, scan_target, stdenv_or_notes
from glibc_doctor.core.targets import python_layout, resolve_target
from glibc_doctor.core.targets.pymodules import ExtensionSuffixes, ModuleFinder
from glibc_doctor.core.targets.walk import Walk
from glibc_doctor.core.wheelfiles import Layout, lay_out, read_info
from glibc_doctor.core.wheeltags import InterpreterTags, WheelName, interpreter_tags, parse_wheel_name
from glibc_doctor.core.wheelzip import open_wheel

_ARCH_OF_MACHINE = {(EM_X86_64, 64): "x86_64", (EM_386, 32): "i686", (EM_AARCH64, 64): "aarch64"}


@dataclass(frozen=True, slots=True)
class Interpreter:
    """What the wheels are checked against: the target's process without extensions, its suffixes and
    tags, and the ``sys.prefix`` whose ``pip.conf`` its pip reads."""

    target: Target
    suffixes: ExtensionSuffixes
    caller: str | None  # the libpython soname that dlopen()s extensions (None: the executable)
    tags: InterpreterTags | None
    base: ScanResult  # the interpreter alone: its glibc, its stdenv
    prefix: str | None

    @property
    def glibc(self) -> GlibcInfo:
        return self.base.glibc

    @property
    def stdenv(self) -> StdenvInfo | None:
        return self.base.stdenv


@dataclass(frozen=True, slots=True)
class MissingVersion:
    """One version an object of the wheel needs and its provider lacks (``version `X' not found``)."""

    object: str  # the member of the wheel (``pkg/_core.cpython-39-x86_64-linux-gnu.so``) or a path
    library: str  # the DT_NEEDED name (``libc.so.6``)
    provider: str | None  # the file the process would use for it
    version: str
    symbols: tuple[str, ...]

    def as_json(self) -> dict[str, builtins.object]:
        return {
            "object": self.object,
            "library": self.library,
            "provider": self.provider,
            "version": self.version,
            "symbols": list(self.symbols),
        }


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """Any other reason a module would not load: a library not found, an object ld.so refuses."""

    kind: str
    object: str
    library: str | None
    message: str

    def as_json(self) -> dict[str, builtins.object]:
        return {"kind": self.kind, "object": self.object, "library": self.library, "message": self.message}


@dataclass(frozen=True, slots=True, eq=False)
class WheelCheck:
    """One wheel's verdict. ``result`` is the simulated process (None for a wheel that could not be read):
    the fix's rule reads it (``tui/verdict.py``), it is not part of the JSON."""

    path: str
    name: str
    version: str
    tags: tuple[str, ...]  # every tag of the file name ("cp39-cp39-linux_x86_64")
    tag_text: str  # the tags as the file name writes them
    selected: bool  # would the interpreter's pip choose it
    not_selected: str | None  # why not, in words
    for_this_python: bool  # its python and ABI tags fit this interpreter (its platform tag may not)
    modules: tuple[str, ...]  # the extension modules, by import name
    loads: bool
    module_files: tuple[str, ...] = ()  # each module's file, relative to site-packages
    missing: tuple[MissingVersion, ...] = ()
    problems: tuple[LoadProblem, ...] = ()
    notes: tuple[str, ...] = ()
    unreadable: str | None = None  # why the wheel could not be read (corrupt, hostile, a zip bomb)
    identity: FileIdentity | None = None
    result: ScanResult | None = field(default=None, repr=False)
    module_paths: Mapping[str, str] = field(default_factory=dict)  # laid-out path -> import name

    @property
    def fails(self) -> bool:
        """Built for this Python, and a module would not load (or the wheel cannot even be read)."""
        return self.for_this_python and not self.loads

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "tags": list(self.tags),
            "loads": self.loads,
            "fails": self.fails,
            "selected": self.selected,
            "not_selected": self.not_selected,
            "modules": [
                {"name": name, "file": file}
                for name, file in zip(self.modules, self.module_files, strict=False)
            ],
            "missing": [missing.as_json() for missing in self.missing],
            "problems": [problem.as_json() for problem in self.problems],
            "unreadable": self.unreadable,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class WheelProgress:
    """``finding`` the wheels, then ``checking`` one (``done`` of ``total``)."""

    stage: str
    message: str
    done: int
    total: int | None


@dataclass(frozen=True, slots=True, eq=False)
class WheelsReport:
    """Every wheel checked against one interpreter; ``as_json()`` is the ``wheels --json`` document
    without ``fixable_by_fix`` (added by the UIs from ``tui/verdict.py``: the one rule)."""

    interpreter: Interpreter
    wheels: tuple[WheelCheck, ...]
    sources: tuple[str, ...]
    cache: PipCache | None = None
    notes: tuple[str, ...] = ()

    @property
    def failing(self) -> tuple[WheelCheck, ...]:
        return tuple(wheel for wheel in self.wheels if wheel.fails)

    @property
    def exit_code(self) -> int:
        return 1 if self.failing else 0

    def in_cache(self, wheel: WheelCheck) -> bool:
        root = self.cache.wheels_dir if self.cache is not None else None
        return root is not None and os.path.commonpath([os.path.abspath(wheel.path), root]) == root

    def purgeable(self) -> tuple[WheelCheck, ...]:
        """The failing wheels that lie in pip's cache: what ``--purge`` removes."""
        return tuple(wheel for wheel in self.failing if self.in_cache(wheel))

    def as_json(self) -> dict[str, object]:
        interpreter = self.interpreter
        tags = interpreter.tags
        return {
            "target": interpreter.target.spec,
            "interpreter": interpreter.target.executable,
            "glibc": interpreter.glibc.as_json(),
            "stdenv": interpreter.stdenv.as_json() if interpreter.stdenv is not None else None,
            "python": {
                "version": f"{tags.python[0]}.{tags.python[1]}" if tags else None,
                "abi": tags.abi if tags else None,
                "arch": tags.arch if tags else None,
                "suffixes": list(interpreter.suffixes.suffixes),
            },
            "pip_cache": self.cache.as_json() if self.cache is not None else None,
            "sources": list(self.sources),
            "summary": {
                "wheels": len(self.wheels),
                "failing": len(self.failing),
                "not_selected": sum(1 for wheel in self.wheels if not wheel.selected),
                "with_modules": sum(1 for wheel in self.wheels if wheel.modules),
            },
            "wheels": [wheel.as_json() for wheel in self.wheels],
            "notes": list(self.notes) + list(interpreter.base.notes),
        }


# --- the interpreter ------------------------------------------------------------------------------------


def interpreter_for(
    target: Target, *, env: Mapping[str, str], glibc: str | None, shared: SharedLookups
) -> Interpreter:
    """The interpreter of a python target: its process alone, its suffixes, its tags."""
    if target.kind != "python":
        raise TargetError(
            f"{target.spec}: a {target.kind} program, not a Python interpreter or venv; wheels are for Python"
        )
    layout = python_layout(target.executable)
    bare = replace(target, extensions=())
    stdenv_memo: dict[tuple[int, int], tuple[StdenvInfo | None, tuple[str, ...]]] = {}

    def stdenv_of(elf_class: int, machine: int) -> tuple[StdenvInfo | None, tuple[str, ...]]:
        if (elf_class, machine) not in stdenv_memo:
            stdenv_memo[(elf_class, machine)] = stdenv_or_notes(glibc, env, elf_class, machine)
        return stdenv_memo[(elf_class, machine)]

    base = scan_target(bare, env=env, strict=False, stdenv_of=stdenv_of, shared=shared)
    facts = read_elf(target.executable)
    arch = _ARCH_OF_MACHINE.get((facts.machine, facts.elf_class))
    tags = interpreter_tags(
        layout.suffixes.suffixes, layout.version, arch, base.glibc.version, layout.suffixes.source
    )
    prefix = target.environment or layout.prefix
    return Interpreter(bare, layout.suffixes, layout.caller, tags, base, prefix)


# --- one wheel -------------------------------------------------------------------------------------------


def check_wheel(
    path: str,
    interpreter: Interpreter,
    *,
    workdir: str,
    env: Mapping[str, str],
    shared: SharedLookups,
) -> WheelCheck:
    """The verdict on the wheel at ``path``; raises ``WheelError`` when it cannot be read."""
    identity = _identity(path)
    filename = parse_wheel_name(os.path.basename(path))
    site = tempfile.mkdtemp(prefix="site-", dir=workdir)
    try:
        with open_wheel(path) as archive:
            info = read_info(archive, filename)
            layout = lay_out(archive, info, site)
        if not layout.libraries:
            return _pure(path, filename, info.name, info.version, info.notes, identity, interpreter)
        return _checked(
            path, filename, info.name, info.version, info.notes, layout, interpreter, env, shared, identity
        )
    finally:
        shutil.rmtree(site, ignore_errors=True)


def unreadable_wheel(path: str, interpreter: Interpreter, reason: str) -> WheelCheck:
    """The row of a wheel found under a directory that could not be read: it fails when pip would take
    it for this Python (pip would select it, then fail to install it)."""
    try:
        filename: WheelName | None = parse_wheel_name(os.path.basename(path))
    except WheelError:
        filename = None
    tags = interpreter.tags
    selected = filename is not None and tags is not None and tags.selects(filename.tags)
    ours = filename is not None and tags is not None and tags.accepts_python(filename.tags)
    return WheelCheck(
        path=path,
        name=filename.distribution if filename else os.path.basename(path),
        version=filename.version if filename else "?",
        tags=tuple(str(tag) for tag in filename.tags) if filename else (),
        tag_text=filename.tag_text if filename else "?",
        selected=selected,
        not_selected=_why_not(filename, tags),
        for_this_python=ours,
        modules=(),
        loads=False,
        unreadable=reason,
        identity=_identity_or_none(path),
    )


def _why_not(filename: WheelName | None, tags: InterpreterTags | None) -> str | None:
    if filename is None:
        return "not a wheel file name: pip ignores it"
    if tags is None:
        return "the interpreter's Python version is unknown"
    return tags.why_not(filename)


def _pure(
    path: str,
    filename: WheelName,
    name: str,
    version: str,
    notes: Sequence[str],
    identity: FileIdentity,
    interpreter: Interpreter,
) -> WheelCheck:
    """A wheel without a shared object: nothing for the loader to refuse (and no process to simulate);
    ``_checked`` starts from it too (name, tags, whether this interpreter's pip selects it)."""
    tags = interpreter.tags
    why_not = _why_not(filename, tags)
    return WheelCheck(
        path=path,
        name=name,
        version=version,
        tags=tuple(str(tag) for tag in filename.tags),
        tag_text=filename.tag_text,
        selected=why_not is None,
        not_selected=why_not,
        for_this_python=tags is not None and tags.accepts_python(filename.tags),
        modules=(),
        loads=True,
        notes=tuple(notes),
        identity=identity,
    )


def _checked(
    path: str,
    filename: WheelName,
    name: str,
    version: str,
    info_notes: Sequence[str],
    layout: Layout,
    interpreter: Interpreter,
    env: Mapping[str, str],
    shared: SharedLookups,
    identity: FileIdentity,
) -> WheelCheck:
    finder = ModuleFinder(interpreter.suffixes, Walk())
    modules = finder.find([layout.site])
    extensions = tuple(Extension(module.path, module.name, interpreter.caller) for module in modules)
    target = replace(interpreter.target, extensions=extensions)
    result = scan_target(
        target, env=env, strict=False, stdenv_of=lambda *_: (interpreter.stdenv, ()), shared=shared
    )
    blocking = extension_errors(result.graph, result.conflicts)
    records = _records(extensions, blocking)
    base = _pure(path, filename, name, version, info_notes, identity, interpreter)
    return replace(
        base,
        modules=tuple(module.name for module in modules),
        module_files=tuple(os.path.relpath(module.path, layout.site) for module in modules),
        loads=not any(extension.path in blocking for extension in extensions),
        missing=tuple(_missing(records, layout)),
        problems=tuple(_problems(records, layout)),
        notes=(*info_notes, *_layout_notes(layout, result, finder, base.for_this_python)),
        result=result,
        module_paths={extension.path: extension.name for extension in extensions},
    )


def _records(extensions: Sequence[Extension], blocking: Mapping[str, tuple[Conflict, ...]]) -> list[Conflict]:
    """The error records of the wheel's failing modules, each once, in module order."""
    seen: dict[int, Conflict] = {}
    for extension in extensions:
        for conflict in blocking.get(extension.path, ()):
            seen.setdefault(id(conflict), conflict)
    return list(seen.values())


def _member_or_path(path: str | None, layout: Layout) -> str:
    if path is None:
        return ""
    return layout.member(path) or path


def _missing(records: Sequence[Conflict], layout: Layout) -> Iterator[MissingVersion]:
    for conflict in records:
        if conflict.kind == Kind.MISSING_VERSION and conflict.version:
            yield MissingVersion(
                object=_member_or_path(conflict.object, layout),
                library=conflict.library or "",
                provider=_member_or_path(conflict.provider, layout) or None,
                version=conflict.version,
                symbols=conflict.symbols,
            )


def _problems(records: Sequence[Conflict], layout: Layout) -> Iterator[LoadProblem]:
    for conflict in records:
        if conflict.kind != Kind.MISSING_VERSION:
            yield LoadProblem(
                kind=str(conflict.kind),
                object=_member_or_path(conflict.object, layout),
                library=conflict.library,
                message=_in_members(conflict.message, layout),
            )


def _in_members(text: str, layout: Layout) -> str:
    """Paths of the laid-out files written as the members they are (``pkg/_core….so``)."""
    return text.replace(layout.site + os.sep, "")


def _layout_notes(layout: Layout, result: ScanResult, finder: ModuleFinder, ours: bool) -> Iterator[str]:
    """What the layout says beyond the verdict; nothing for a wheel of another Python (its tags say it)."""
    if not ours:
        return
    if finder.other_python:
        example = os.path.basename(finder.other_python[0])
        count = len(finder.other_python)
        yield f"{count} extension module(s) tagged for another Python (e.g. {example}): not imported here"
    dlopened = result.graph.graph.get("dlopened", {})
    reached = {os.path.normpath(node) for nodes in dlopened.values() for node in nodes}
    idle = [path for path in layout.libraries if path not in reached]
    if layout.libraries and not reached:
        count = len(layout.libraries)
        yield f"none of its {count} shared object(s) is an extension module this interpreter imports"
    elif idle:
        names = [layout.member(path) or path for path in idle]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        yield f"not checked (no extension module links them; only ctypes could load them): {shown}"


def _identity(path: str) -> FileIdentity:
    try:
        return FileIdentity.of(os.stat(path))
    except OSError as error:
        raise WheelError(f"{path}: cannot read: {error.strerror or error}") from None


def _identity_or_none(path: str) -> FileIdentity | None:
    try:
        return FileIdentity.of(os.stat(path))
    except OSError:
        return None


# --- many wheels -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    path: str
    given: bool  # named on the command line: a bad one is bad input (exit 2), not a row


def wheel_steps(
    spec: str,
    paths: Sequence[str] = (),
    *,
    pip_cache_wanted: bool = False,
    glibc: str | None = None,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    target: Target | None = None,
) -> Iterator[WheelProgress | WheelsReport]:
    """Yield ``WheelProgress`` events, then the ``WheelsReport`` (nothing more once ``cancel`` is set).

    ``paths`` are wheel files or directories to search; ``pip_cache_wanted`` adds the wheels of the
    interpreter's pip cache. A bad wheel file named in ``paths`` raises ``WheelError``; one found under a
    directory becomes a row that says why it could not be read.
    """
    environ = dict(os.environ if env is None else env)
    yield WheelProgress("finding", f"reading target {spec}", 0, None)
    target = target if target is not None else resolve_target(spec)
    shared = SharedLookups()
    interpreter = interpreter_for(target, env=environ, glibc=glibc, shared=shared)
    cache = pip_cache(interpreter.prefix, environ) if pip_cache_wanted else None
    sources, notes = _sources(paths, cache)
    checks: list[WheelCheck] = []
    workdir = tempfile.mkdtemp(prefix="glibc-doctor-wheels-")
    try:
        for done, source in enumerate(sources):
            if cancel is not None and cancel.is_set():
                return
            yield WheelProgress("checking", os.path.basename(source.path), done, len(sources))
            checks.append(_check_one(source, interpreter, workdir, environ, shared))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    yield WheelProgress("checking", "done", len(sources), len(sources))
    yield WheelsReport(interpreter, tuple(checks), tuple(paths), cache, tuple(notes))


def check_wheels(
    spec: str,
    paths: Sequence[str] = (),
    *,
    pip_cache_wanted: bool = False,
    glibc: str | None = None,
    env: Mapping[str, str] | None = None,
    target: Target | None = None,
) -> WheelsReport:
    """``wheel_steps`` driven to its report."""
    steps = wheel_steps(spec, paths, pip_cache_wanted=pip_cache_wanted, glibc=glibc, env=env, target=target)
    for event in steps:
        if isinstance(event, WheelsReport):
            return event
    raise WheelError(f"the check of the wheels for {spec} was cancelled")


def _check_one(
    source: _Source, interpreter: Interpreter, workdir: str, env: Mapping[str, str], shared: SharedLookups
) -> WheelCheck:
    try:
        return check_wheel(source.path, interpreter, workdir=workdir, env=env, shared=shared)
    except WheelError as error:
        if source.given:
            raise
        reason = str(error).removeprefix(f"{source.path}: ")
        return unreadable_wheel(source.path, interpreter, reason)


def _sources(paths: Sequence[str], cache: PipCache | None) -> tuple[list[_Source], list[str]]:
    """The wheel files to check, each once (by real path): given files, then those under given
    directories, then pip's cache."""
    sources: dict[str, _Source] = {}
    notes: list[str] = []
    for path in paths:
        absolute = os.path.abspath(os.path.expanduser(path))
        if os.path.isdir(absolute):
            found = wheel_files(absolute)
            if not found:
                notes.append(f"no *.whl file under {absolute}")
            for wheel in found:
                sources.setdefault(os.path.realpath(wheel), _Source(wheel, False))
        elif os.path.lexists(absolute):
            if not absolute.endswith(".whl"):
                raise WheelError(f"{absolute}: not a wheel (a *.whl file) or a directory of wheels")
            sources.setdefault(os.path.realpath(absolute), _Source(absolute, True))
        else:
            raise WheelError(f"{absolute}: no such file or directory")
    if cache is not None:
        if cache.path is None:
            notes.append(f"pip's cache is disabled ({cache.source}): no cached wheels")
        else:
            found = cached_wheels(cache)
            if not found:
                notes.append(f"no wheel in pip's cache {cache.wheels_dir} ({cache.source})")
            for wheel in found:
                sources.setdefault(os.path.realpath(wheel), _Source(wheel, False))
    return list(sources.values()), notes


def purge_failing(report: WheelsReport) -> Purged:
    """Remove from pip's cache exactly the failing wheels that lie in it (each as it was checked)."""
    if report.cache is None:
        raise WheelError("no pip cache was checked: nothing to purge")
    return purge(report.cache, [(wheel.path, wheel.identity) for wheel in report.purgeable()])
