"""One scan: target -> process graph (exact, and strict when asked) -> conflicts -> one result record.

The work is a generator (``scan_steps``) that yields ``ScanProgress`` between stages and ends with the
``ScanResult``, and stops early when its cancellation event is set: the TUI's worker loops over it, the
CLI calls ``scan()`` which drives it. Nothing here runs the target.

A finished scan is stored in the result cache (``core/scancache.py``) with every file and directory it
depends on, so a repeated ``scan --json`` of an unchanged environment is answered without reading ELF.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
from glibc_doctor.core import scancache
from glibc_doctor.core.analysis import analyze, glibc_info
from glibc_doctor.core.errors import DoctorError, StdenvError, TargetError
from glibc_doctor.core.model import (
    EM_386,
    Conflict,
    ElfFacts,
    GlibcInfo,
    Kind,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    Target,
    edge_requests,
)
from glibc_doctor.core.process import simulate
from glibc_doctor.core.stdenv import find_stdenv
from glibc_doctor.core.sysroot import Sysroot
from glibc_doctor.core.targets import resolve_target, target_from_pid
from glibc_doctor.core.targets.rooted import resolve_in_root
from glibc_doctor.core.versions import newest

if TYPE_CHECKING:
    from glibc_doctor.core.lookups import SharedLookups


class ScanCancelled(DoctorError):
    """``scan()`` was interrupted (its generator stopped without a result)."""


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """A stage of the scan starting: ``done`` of ``total`` stages, and what is happening."""

    stage: str
    message: str
    done: int
    total: int


@dataclass(frozen=True, slots=True, eq=False)
class ScanResult:
    """Everything one scan found; ``as_json()`` is the stable ``scan --json`` document."""

    target: Target
    graph: nx.DiGraph[str]
    strict_graph: nx.DiGraph[str] | None
    conflicts: tuple[Conflict, ...]
    glibc: GlibcInfo
    stdenv: StdenvInfo | None
    notes: tuple[str, ...] = ()
    root: str | None = None  # ``--root DIR``: every path of the result is a path inside DIR

    @property
    def errors(self) -> tuple[Conflict, ...]:
        return tuple(c for c in self.conflicts if c.severity == Severity.ERROR)

    @property
    def exit_code(self) -> int:
        """1 when the process would fail to load something (an error record), else 0.

        A strict scan was asked for the conflicts that load order hides today, so its LATENT records
        count too (a CI job running ``scan --strict`` should fail on them).
        """
        latent = self.strict_graph is not None and any(c.kind == Kind.LATENT for c in self.conflicts)
        return 1 if self.errors or latent else 0

    def as_json(self) -> dict[str, object]:
        return {
            "target": _target_json(self.target),
            "interpreter": self.target.executable,
            "glibc": self.glibc.as_json(),
            "stdenv": self.stdenv.as_json() if self.stdenv is not None else None,
            "objects": [_object_json(self.graph, node) for node in _load_order(self.graph)],
            "edges": edges_json(self.graph),
            "conflicts": [conflict.as_json() for conflict in self.conflicts],
            "notes": list(self.notes),
            # --strict: every edge resolved on its own (where each name would be found if nothing were
            # loaded yet); the objects it reaches that the exact graph lacks are in strict_objects.
            "strict_edges": edges_json(self.strict_graph) if self.strict_graph is not None else None,
            "strict_objects": _strict_only_objects(self.graph, self.strict_graph),
            "root": self.root,
        }


STAGES = ("target", "graph", "strict", "analysis", "done")


def scan_steps(
    spec: str,
    *,
    ext: Sequence[str] = (),
    glibc: str | None = None,
    pid: int | None = None,
    env: Mapping[str, str] | None = None,
    strict: bool = False,
    cancel: threading.Event | None = None,
    root: str | None = None,
) -> Iterator[ScanProgress | ScanResult]:
    """Yield a ``ScanProgress`` before each stage, then the ``ScanResult``.

    When ``cancel`` is set the generator stops between stages without a result (no exception: the
    TUI's worker simply sees the loop end). ``root`` is a directory seen as ``/`` (a sysroot, chroot
    or unpacked image): ``spec`` and ``ext`` are paths inside it, and so is every path of the result.
    """
    environ = dict(os.environ if env is None else env)
    sysroot = open_root(root) if root is not None else None
    total = len(STAGES)

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    yield ScanProgress(STAGES[0], f"reading target {spec if pid is None else pid}", 0, total)
    if sysroot is not None:
        if pid is not None:
            raise TargetError("--root and --pid do not go together: a running process has its own root")
        target = resolve_in_root(spec, tuple(ext), sysroot)
    else:
        target = target_from_pid(pid) if pid is not None else resolve_target(spec, tuple(ext))
    if cancelled():
        return
    yield ScanProgress(STAGES[1], f"resolving what {os.path.basename(target.executable)} loads", 1, total)
    graph = simulate(target, strict=False, env=environ, root=sysroot)
    _check_root(graph)
    strict_graph = None
    if strict and not cancelled():
        yield ScanProgress(STAGES[2], "resolving each dependency on its own (strict)", 2, total)
        strict_graph = simulate(target, strict=True, env=environ, root=sysroot)
    if cancelled():
        return
    yield ScanProgress(STAGES[3], "checking symbol versions", 3, total)
    notes: tuple[str, ...]
    if sysroot is not None and glibc is None:
        stdenv, notes = None, (ROOT_STDENV_NOTE,)
    else:
        stdenv, notes = stdenv_or_notes(glibc, environ, target_class(graph), target_machine(graph))
    result = _analysed(target, graph, strict_graph, stdenv, notes, sysroot)
    if cancelled():
        return
    yield ScanProgress(STAGES[4], "done", 4, total)
    yield result


def scan_target(
    target: Target,
    *,
    env: Mapping[str, str],
    strict: bool,
    stdenv_of: Callable[[int, int], tuple[StdenvInfo | None, tuple[str, ...]]],
    shared: SharedLookups | None = None,
) -> ScanResult:
    """The scan of an already resolved ``target``, as ``scan_steps`` makes it.

    Many scans in a row (an audit) share ``shared`` (``core/lookups.py``) and ask ``stdenv_of`` (the
    stdenv and its notes for an ELF class and machine, ``stdenv_or_notes`` memoised by the caller) instead of
    finding the stdenv each time. Raises ``TargetError`` when the program itself cannot be loaded.
    """
    graph = simulate(target, strict=False, env=env, shared=shared)
    _check_root(graph)
    strict_graph = simulate(target, strict=True, env=env, shared=shared) if strict else None
    stdenv, notes = stdenv_of(target_class(graph), target_machine(graph))
    return _analysed(target, graph, strict_graph, stdenv, notes)


def _analysed(
    target: Target,
    graph: nx.DiGraph[str],
    strict_graph: nx.DiGraph[str] | None,
    stdenv: StdenvInfo | None,
    notes: tuple[str, ...],
    sysroot: Sysroot | None = None,
) -> ScanResult:
    return ScanResult(
        target=target,
        graph=graph,
        strict_graph=strict_graph,
        conflicts=analyze(graph, strict_graph, stdenv=stdenv),
        glibc=glibc_info(graph),
        stdenv=stdenv,
        notes=target.notes + notes,
        root=sysroot.dir if sysroot is not None else None,
    )


ROOT_STDENV_NOTE = (
    "no stdenv under --root: this machine's compiler does not build for the image (give --glibc DIR "
    "to compare with a glibc)"
)


def open_root(directory: str) -> Sysroot:
    """The ``--root`` directory, or ``TargetError`` with one line."""
    try:
        return Sysroot.at(directory)
    except OSError as error:
        raise TargetError(f"--root {directory}: {error.strerror or error}") from error


def scan(
    spec: str,
    *,
    ext: Sequence[str] = (),
    glibc: str | None = None,
    pid: int | None = None,
    env: Mapping[str, str] | None = None,
    strict: bool = False,
    progress: Callable[[ScanProgress], None] | None = None,
    use_cache: bool = True,
    root: str | None = None,
) -> ScanResult:
    """Run ``scan_steps`` to the end; with ``use_cache`` store the result for a repeated ``scan --json``
    (not under ``root``: the result cache keys on this machine's files)."""
    result: ScanResult | None = None
    steps = scan_steps(spec, ext=ext, glibc=glibc, pid=pid, env=env, strict=strict, root=root)
    for event in steps:
        if isinstance(event, ScanResult):
            result = event
        elif progress is not None:
            progress(event)
    if result is None:
        raise ScanCancelled(f"scan of {spec} cancelled")
    if use_cache and pid is None and root is None:
        environ = os.environ if env is None else env
        request = scancache.ScanRequest(spec, tuple(ext), glibc, strict)
        store_result(request, environ, result)
    return result


def result_text(result: ScanResult) -> str:
    """The ``scan --json`` output, byte for byte what the cache replays.

    One object, edge and conflict per line: readable and diffable, and written by the C encoder
    (``json.dumps(indent=...)`` falls back to the pure-Python one, slower than the whole scan's ELF
    reading on a large venv).
    """
    return json_lines(result.as_json())


def json_lines(document: Mapping[str, object]) -> str:
    """``document`` as JSON with each top-level key on its line and each list item on its own line."""
    dumps = json.dumps
    lines = ["{"]
    last = len(document) - 1
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index < last else ""
        if isinstance(value, list) and value:
            lines.append(f"  {dumps(key)}: [")
            lines.append(",\n".join("    " + dumps(item) for item in value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {dumps(key)}: {dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def store_result(
    request: scancache.ScanRequest, env: Mapping[str, str], result: ScanResult, text: str | None = None
) -> str | None:
    """Store ``result`` (its ``result_text``, or ``text`` when the caller already has it) in the cache."""
    files, dirs = dependencies(result)
    return scancache.store(request, env, text or result_text(result), result.exit_code, files, dirs)


def dependencies(result: ScanResult) -> tuple[set[str], set[str]]:
    """The files whose content and the directories whose listing decided this result."""
    files = {result.target.executable}
    files.update(extension.path for extension in result.target.extensions)
    files.update(result.target.examined)
    dirs = set(result.target.searched_dirs)
    if os.sep not in result.target.spec:  # a bare name was looked up on PATH: a new one may shadow it
        dirs.update(entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry)
    if result.target.environment:
        dirs.add(result.target.environment)
        dirs.add(os.path.join(result.target.environment, "bin"))  # a fix retargets the venv's python here
        files.add(os.path.join(result.target.environment, "pyvenv.cfg"))
    for graph in (result.graph, result.strict_graph):
        if graph is not None:
            _graph_dependencies(graph, files, dirs)
    if result.stdenv is not None:
        files.update(p for p in (result.stdenv.loader, result.stdenv.libc, result.stdenv.libstdcxx) if p)
    return files, dirs


def _graph_dependencies(graph: nx.DiGraph[str], files: set[str], dirs: set[str]) -> None:
    for node, data in graph.nodes(data=True):
        if data.get("role") != Role.MISSING:
            files.add(node)
            dirs.add(os.path.dirname(node))
        found: Resolution | None = data.get("found")
        if found is not None:
            dirs.update(found.searched)
    for _source, _target, data in graph.edges(data=True):
        for request in edge_requests(data):
            if request.resolution is not None:
                dirs.update(request.resolution.searched)
                files.update(rejected.path for rejected in request.resolution.rejected)
    config = graph.graph.get("config")
    cache_path = getattr(config, "cache_path", None)
    if cache_path:
        files.add(str(cache_path))
    loader = graph.graph.get("loader")
    if loader:
        files.add(str(loader))


def _check_root(graph: nx.DiGraph[str]) -> None:
    """A target the loader could not even start is bad input (exit 2), not a conflict to report."""
    root = graph.graph.get("root")
    if root is None or root not in graph:
        return
    facts: ElfFacts = graph.nodes[root]["facts"]
    if facts.problem is not None:
        detail = facts.detail or str(facts.problem)
        raise TargetError(f"{root}: cannot be loaded: {detail}")


def target_class(graph: nx.DiGraph[str]) -> int:
    """The ELF class of the target's loader: 32 for an i386 program, whose stdenv is the i386 glibc."""
    config = graph.graph.get("config")
    return 32 if getattr(config, "elf_class", 64) == 32 and getattr(config, "machine", 0) == EM_386 else 64


def target_machine(graph: nx.DiGraph[str]) -> int:
    """The e_machine of the target's loader: an aarch64 program's stdenv is an aarch64 glibc (the
    cross compiler's on another machine)."""
    machine: int = getattr(graph.graph.get("config"), "machine", 0)
    return machine


def stdenv_or_notes(
    glibc: str | None, env: Mapping[str, str], elf_class: int = 64, machine: int = 0
) -> tuple[StdenvInfo | None, tuple[str, ...]]:
    """The stdenv when it can be found; a scan is still useful without it, so errors become a note."""
    try:
        return find_stdenv(glibc, env=env, elf_class=elf_class, machine=machine), ()
    except (StdenvError, OSError) as error:
        i386 = " (the i386 glibc: is gcc-multilib installed?)" if elf_class == 32 else ""
        return None, (f"stdenv not found{i386}: {error}",)


# --- JSON -------------------------------------------------------------------------------------------


def _target_json(target: Target) -> dict[str, object]:
    return {
        "kind": target.kind,
        "spec": target.spec,
        "executable": target.executable,
        "environment": target.environment,
        "pid": target.pid,
        "extensions": [
            {"path": extension.path, "name": extension.name, "caller": extension.caller}
            for extension in target.extensions
        ],
    }


def _load_order(graph: nx.DiGraph[str]) -> list[str]:
    return sorted(graph.nodes, key=lambda node: (graph.nodes[node].get("order", 0), node))


def _edges(graph: nx.DiGraph[str]) -> list[tuple[str, str, dict[str, object]]]:
    order = {node: index for index, node in enumerate(_load_order(graph))}
    return sorted(graph.edges(data=True), key=lambda edge: (order[edge[0]], order[edge[1]]))


def _object_json(graph: nx.DiGraph[str], node: str) -> dict[str, object]:
    data = graph.nodes[node]
    facts: ElfFacts = data["facts"]
    found: Resolution | None = data.get("found")
    top = newest(tuple(need.version for need in facts.requires), "GLIBC")
    return {
        "path": node,
        "role": str(data.get("role", "")),
        "soname": facts.soname,
        "needed": list(facts.needed),
        "rpath": facts.rpath,
        "runpath": facts.runpath,
        "requires": [
            {"library": need.library, "version": need.version, "weak": need.weak} for need in facts.requires
        ],
        "defines": list(facts.defines),
        "max_glibc": str(top) if top is not None else None,
        "interpreter": facts.interpreter,
        "build_id": facts.build_id,
        "elf_class": facts.elf_class,
        "machine": facts.machine,
        "problem": str(facts.problem) if facts.problem is not None else None,
        "order": data.get("order", 0),
        "loaded": bool(data.get("loaded", False)),
        "found_via": str(found.via) if found is not None else None,
    }


def _strict_only_objects(
    graph: nx.DiGraph[str], strict: nx.DiGraph[str] | None
) -> list[dict[str, object]] | None:
    """The objects only the strict graph has (another copy a name would find on its own), as ``objects``."""
    if strict is None:
        return None
    return [_object_json(strict, node) for node in _load_order(strict) if node not in graph]


def edges_json(graph: nx.DiGraph[str]) -> list[dict[str, object]]:
    """The ``edges`` of ``scan --json``: one record per request, so an object that asks for one file
    under two names (or a preloaded object that serves a DT_NEEDED name) has two records."""
    return [
        {
            "from": source,
            "to": target,
            "needed": request.needed,
            "via": str(request.via),
            "detail": request.detail,
        }
        for source, target, data in _edges(graph)
        for request in edge_requests(data)
    ]
