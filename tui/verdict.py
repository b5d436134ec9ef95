"""One rule for both UIs: which extensions cannot load, and whether ``glibc-doctor fix`` helps each.

The CLI report (``tui/cli/report.py``) prints a table row per ``BrokenRoot`` with its ``verdict``; the
TUI's summary and tree ask the same ``verdict``. The decision itself (what the glibc view would provide)
is core's (``core/patch/view.py`` through ``core.analysis``); here it is grouped per extension and put in
the table's words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import networkx as nx
from glibc_doctor.core.analysis import extension_errors, stdenv_provides, stdenv_unmet
from glibc_doctor.core.model import Conflict, Effect, Kind, Severity, StdenvInfo
from glibc_doctor.core.patch.plan import REFUSAL_KINDS
from glibc_doctor.core.refusals import refused_under, setting_for
from glibc_doctor.core.versions import min_glibc_for

if TYPE_CHECKING:
    from glibc_doctor.core.scan import ScanResult


# --- the report's rows: one per extension that cannot load ---------------------------------------------


@dataclass(slots=True)
class BrokenRoot:
    """An extension (or the interpreter itself) with the error records of its failing chains."""

    node: str
    name: str
    own: list[Conflict] = field(default_factory=list)  # records on the extension itself
    through: dict[str, list[Conflict]] = field(default_factory=dict)  # library -> its records

    @property
    def records(self) -> list[Conflict]:
        return self.own + [c for records in self.through.values() for c in records]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Does ``glibc-doctor fix`` (a repatch against the stdenv) make this extension load?"""

    fixable: bool | None  # None: no stdenv known
    words: str


def extension_names(result: ScanResult) -> dict[str, str]:
    return {extension.path: extension.name for extension in result.target.extensions}


def broken_roots(result: ScanResult) -> list[BrokenRoot]:
    """One row per extension that cannot load (core's ``extension_errors``: every one whose dlopen()
    reaches a refused object), and one for the interpreter when records fall outside every dlopen()."""
    graph = result.graph
    root = _root(graph)
    rows: dict[str, BrokenRoot] = {}
    blocking = extension_errors(graph, result.conflicts)
    attributed: set[int] = set()
    for extension in result.target.extensions:
        records = blocking.get(extension.path, ())
        if not records:
            continue
        row = rows.setdefault(extension.path, BrokenRoot(extension.path, extension.name))
        for conflict in records:
            attributed.add(id(conflict))
            if extension.path in (conflict.object, conflict.library):
                row.own.append(conflict)
            else:
                row.through.setdefault(conflict.object, []).append(conflict)
    for conflict in result.errors:
        if id(conflict) in attributed:
            continue
        row = rows.setdefault(root, BrokenRoot(root, os.path.basename(root)))
        if conflict.object == root or conflict.object not in graph:
            row.own.append(conflict)
        else:
            row.through.setdefault(conflict.object, []).append(conflict)
    return sorted(rows.values(), key=lambda row: (row.node != root, row.name))


def verdict(row: BrokenRoot, stdenv: StdenvInfo | None, graph: nx.DiGraph[str] | None = None) -> Verdict:
    """What the repatch does for this row, in the table's words (``no: needs 2.38 > stdenv 2.36``),
    by the rule the fix plan follows (``graph``: the scanned process, for its C++ runtime needs)."""
    if stdenv is None:
        return Verdict(None, "? no stdenv found")
    blockers = [c for c in row.records if c.kind in (Kind.WRONG_ELF, Kind.UNREADABLE)]
    if blockers:
        return Verdict(False, f"no: {blockers[0].kind}")
    refused = _refused_by_the_stdenv(row, stdenv, graph)
    if refused is not None:
        return Verdict(False, f"no: {refused.kind}, glibc {stdenv.version or '?'} refuses it")
    missing = [
        c.library
        for c in row.records
        if c.kind == Kind.NOT_FOUND and c.library and not stdenv_provides(stdenv, c.library, graph)
    ]
    if missing:
        what = "file not found" if "/" in missing[0] else f"stdenv has no {missing[0]}"
        return Verdict(False, f"no: {what}")
    pairs = [
        (c.library, c.version)
        for c in row.records
        if c.library and c.version and c.version != "GLIBC_PRIVATE"
    ]
    unmet = stdenv_unmet(stdenv, pairs, graph) or ()
    if not unmet:
        return Verdict(True, "yes")
    top = min_glibc_for(list(unmet))
    if top is not None:
        return Verdict(False, f"no: needs {top} > stdenv {stdenv.version or '?'}")
    return Verdict(False, f"no: stdenv lacks {unmet[0]}")


def _refused_by_the_stdenv(
    row: BrokenRoot, stdenv: StdenvInfo, graph: nx.DiGraph[str] | None
) -> Conflict | None:
    """A refusal beyond versions (executable stack, ISA level, static TLS, DT_RELR) that the stdenv's
    loader would make too: the fix plan's rule (``core.refusals.refused_under``)."""
    records = [c for c in row.records if c.kind in REFUSAL_KINDS]
    if not records or graph is None:
        return None
    setting = setting_for(graph, None, stdenv.version)
    if setting.stdenv is None:
        return records[0]
    still = refused_under(graph, setting, setting.stdenv)
    return next((c for c in records if (str(c.kind), c.object) in still), None)


def problem_label(conflict: Conflict) -> str:
    """A few words for a record that is not a missing version: the scan table's cell, a badge."""
    if conflict.kind == Kind.DT_RELR:
        if conflict.effect == Effect.CRASH:
            return "DT_RELR, loader < 2.36: crashes as it loads"
        if conflict.effect == Effect.LOADS:
            return "DT_RELR, loader < 2.36: unrelocated pointers"
        return "DT_RELR without its GLIBC_ABI_DT_RELR marker"
    if conflict.kind == Kind.EXEC_STACK:
        later = " after a repatch" if conflict.severity == Severity.WARNING else ""
        return f"executable stack: refused by glibc 2.41+{later}"
    if conflict.kind == Kind.ISA_LEVEL:
        return "x86 ISA level above this CPU" + (
            " (unchecked: SIGILL risk)" if conflict.effect == Effect.LOADS else ""
        )
    if conflict.kind == Kind.STATIC_TLS:
        return "static TLS: no room left for its block"
    if conflict.kind == Kind.PAGE_SIZE:
        return "PT_LOAD aligned below the kernel's page size" + (
            " (64 KiB kernels)" if conflict.effect == Effect.LOADS else ""
        )
    if conflict.kind == Kind.MIXED_GLIBC:
        return conflict.message.removeprefix(f"{conflict.object}: ")
    return str(conflict.kind)


def _root(graph: nx.DiGraph[str]) -> str:
    return str(graph.graph.get("root", ""))
