"""Turning core records into text for people: names, badges, the summary, the details of one node.

Pure functions over a scan result (no widgets here), so that what the screens show can be tested and
reused. Paths go through a ``PathNamer`` so a snapshot can show ``$LAB/venv/bin/python`` instead of a
machine-specific absolute path.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeAlias

import networkx as nx
from glibc_doctor.core.model import (
    Conflict,
    Effect,
    ElfFacts,
    Kind,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    edge_names,
)
from glibc_doctor.core.model import ScanLike as CoreScanLike
from glibc_doctor.core.patch.plan import REFUSAL_KINDS
from glibc_doctor.core.versions import VersionName, newest
from glibc_doctor.tui.paths import elide_store_hashes
from glibc_doctor.tui.verdict import BrokenRoot
from glibc_doctor.tui.verdict import verdict as fix_verdict
from rich.text import Text

MAX_SYMBOLS = 8

# The process graph of ``core.process.simulate`` (node id = path); networkx is not subscriptable at runtime.
ProcessGraph: TypeAlias = "nx.DiGraph[str]"


class ScanLike(CoreScanLike, Protocol):
    """What the TUI reads of ``core.scan.ScanResult``: the core view of a scan, and the stdenv."""

    @property
    def stdenv(self) -> StdenvInfo | None: ...


@dataclass(frozen=True)
class PathNamer:
    """Shows paths under a known root by an alias (``$LAB/…``), then store hashes elided
    (``…/store/32yy…-glibc-2.31``, as the CLI report does): stable screens, lines that fit 80 columns."""

    aliases: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, path: str | None) -> str:
        if path is None:
            return "-"
        best = ""
        for root in self.aliases:
            clean = root.rstrip("/")
            if (path == clean or path.startswith(clean + "/")) and len(clean) > len(best):
                best = clean
        named = self.aliases[best] + path[len(best) :] if best else path
        return elide_store_hashes(named)

    def text(self, text: str) -> str:
        """Replace every aliased root inside free text (messages, causes, log lines), then elide hashes."""
        for root in sorted(self.aliases, key=len, reverse=True):
            clean = re.escape(root.rstrip("/"))
            # A root only where a whole path component ends: "/root" must not rename "/rootfs".
            text = re.sub(rf"{clean}(?=/|$|[^\w.~-])", partial(_literal, self.aliases[root]), text)
        return elide_store_hashes(text)


def _literal(alias: str, _match: re.Match[str]) -> str:
    """The alias as it is: ``re.sub`` would read ``\\`` or ``\\g<…>`` in a replacement string."""
    return alias


def namer_of(app: object) -> PathNamer:
    """The app's path namer (``DoctorApp.namer``); a plain one when a screen runs in another app."""
    namer = getattr(app, "namer", None)
    return namer if isinstance(namer, PathNamer) else PathNamer()


def facts_of(graph: ProcessGraph, node: str) -> ElfFacts | None:
    facts = graph.nodes[node].get("facts")
    return facts if isinstance(facts, ElfFacts) else None


def role_of(graph: ProcessGraph, node: str) -> Role | None:
    role = graph.nodes[node].get("role")
    return role if isinstance(role, Role) else None


PY_ABI_TAG = re.compile(r"\.(cpython-[^.]+|abi3|pypy[^.]*)(?=\.so$)")


def short_name(path: str) -> str:
    """A file name without the Python ABI tag: ``ext_pthread.so``."""
    return PY_ABI_TAG.sub("", os.path.basename(path)) or path


def node_name(node: str) -> str:
    """The short name people know an object by: its file name without the Python ABI tag
    (``ext_pthread.so``), or the needed name when it was not found."""
    if node.startswith("not-found:"):
        return node.removeprefix("not-found:")
    return short_name(node)


def max_glibc_need(facts: ElfFacts | None) -> str | None:
    """The newest ``GLIBC_x.y`` the object requires (what decides the oldest glibc it runs on)."""
    if facts is None:
        return None
    top = newest([need.version for need in facts.requires], "GLIBC")
    return top.text if top is not None else None


def conflicts_by_object(conflicts: Iterable[Conflict]) -> dict[str, list[Conflict]]:
    grouped: dict[str, list[Conflict]] = defaultdict(list)
    for conflict in conflicts:
        grouped[conflict.object].append(conflict)
    return dict(grouped)


def errors(conflicts: Iterable[Conflict]) -> list[Conflict]:
    return [conflict for conflict in conflicts if conflict.severity == Severity.ERROR]


def root_of(graph: ProcessGraph) -> str | None:
    root = graph.graph.get("root")
    if isinstance(root, str) and root in graph:
        return root
    for node, data in graph.nodes(data=True):
        if data.get("role") == Role.INTERPRETER:
            return str(node)
    return None


def badge(conflicts: list[Conflict]) -> Text:
    """The red mark a conflicting node wears: its missing versions, or the kind of trouble."""
    if not conflicts:
        return Text()
    versions = sorted({c.version for c in conflicts if c.version}, key=VersionName.parse)
    refusals = sorted({_refusal_word(c) for c in conflicts if c.kind in REFUSAL_KINDS})
    words = (
        ", ".join(versions + refusals)
        if versions or refusals
        else ", ".join(sorted({str(c.kind) for c in conflicts}))
    )
    style = "bold red" if errors(conflicts) else "bold yellow"
    mark = "✗" if errors(conflicts) else "!"
    return Text(f" {mark} {words}", style=style)


def _refusal_word(conflict: Conflict) -> str:
    """What the loader does beyond versions, in the badge: ``exec-stack``, ``dt-relr crash``."""
    return f"{conflict.kind} crash" if conflict.effect == Effect.CRASH else str(conflict.kind)


def node_label(graph: ProcessGraph, node: str, conflicts: list[Conflict], highlighted: bool = False) -> Text:
    """One tree row: name, role, the newest GLIBC need, and the conflict badge."""
    role = role_of(graph, node)
    label = Text()
    if highlighted:
        label.append("★ ", style="bold magenta")
    name_style = "bold" if role in (Role.INTERPRETER, Role.EXTENSION) else ""
    if role == Role.MISSING:
        name_style = "red"
    label.append(node_name(node), style=name_style)
    if role is not None and role not in (Role.LIBRARY, Role.EXTENSION):
        label.append(f" ({role})", style="dim")
    need = max_glibc_need(facts_of(graph, node))
    if need:
        label.append(f" {need}", style="cyan" if not conflicts else "red")
    label.append_text(badge(conflicts))
    return label


def counts_by_kind(conflicts: Iterable[Conflict]) -> str:
    counts = Counter(str(conflict.kind) for conflict in conflicts)
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "none"


def verdict(result: ScanLike) -> tuple[bool, str]:
    """Green or red, and the one sentence that says why: whether ``f`` makes the objects load.

    Each object is judged by the CLI report's verdict (tui/verdict.py), which asks the fix plan's own
    rule (core/patch/view.py: what the patched interpreter's glibc view provides): a stdenv with a newer
    release number can still lack what an object needs (a library that merely sits next to its libc).
    """
    failing = errors(result.conflicts)
    if not failing:
        warnings = len(result.conflicts)
        extra = f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
        return True, f"✓ every object this process loads can run on its glibc{extra}"
    by_object = conflicts_by_object(failing)
    objects = len(by_object)
    head = f"✗ {objects} object{'s' * (objects != 1)} cannot load"
    if result.stdenv is None:
        return False, f"{head}: see Conflicts (2)"
    decided = {
        node: fix_verdict(BrokenRoot(node, node_name(node), own=records), result.stdenv, result.graph)
        for node, records in by_object.items()
    }
    unfixed = [(node, found) for node, found in decided.items() if not found.fixable]
    if not unfixed:
        loaded, stdenv = result.glibc.version or "?", result.stdenv.version or "?"
        return False, f"{head} on glibc {loaded}; the stdenv has {stdenv}: press f to fix"
    node, found = unfixed[0]
    why = f"{node_name(node)}: {found.words.removeprefix('no: ')}"
    if len(unfixed) > 1:
        why += f"; {len(unfixed) - 1} more"
    if len(unfixed) < objects:
        return False, f"{head}; press f to fix {objects - len(unfixed)} ({why})"
    return False, f"{head}; f cannot fix {'them' if objects > 1 else 'it'} ({why})"


def summary_text(result: ScanLike, name: PathNamer) -> Text:
    """The summary bar: interpreter, loaded glibc and why, stdenv glibc, conflict counts.

    One fact per line, cut with an ellipsis rather than wrapped, so the bar keeps its height at 80x24.
    """
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("Interpreter  ", style="bold")
    if result.target.environment:
        text.append(f"{name(result.target.environment)} → ")
    text.append(f"{name(result.target.executable)}  ({result.target.kind})\n")
    text.append("Loads glibc  ", style="bold")
    text.append(f"{result.glibc.version or '?'}", style="bold cyan")
    text.append(f"  {name(result.glibc.libc)}")
    if result.glibc.why:
        text.append("  why: " + name.text("; ".join(result.glibc.why)), style="dim")
    text.append("\n")
    text.append("Stdenv glibc ", style="bold")
    if result.stdenv is None:
        text.append("unknown (no compiler found)", style="yellow")
    else:
        text.append(f"{result.stdenv.version or '?'}", style="bold cyan")
        text.append(f"  {name(result.stdenv.libc)}  from {result.stdenv.source}")
    text.append("\n")
    ok, sentence = verdict(result)
    text.append(sentence, style="bold green" if ok else "bold red")
    text.append(f"   ({counts_by_kind(result.conflicts)})", style="dim")
    return text


def _found_line(found: Resolution | None, name: PathNamer) -> str:
    if found is None:
        return "-"
    where = f"{found.via}"
    if found.detail:
        where += f" ({name.text(found.detail)})"
    if found.requester and found.requester != found.path and found.name != found.path:
        where += f", asked for {name.text(found.name)!r} by {name(found.requester)}"
    return where


def _section(text: Text, title: str) -> None:
    text.append(f"\n{title}\n", style="bold underline")


def _providers(graph: ProcessGraph, node: str) -> dict[str, str]:
    """DT_NEEDED name -> provider node, from the graph's edges."""
    providers: dict[str, str] = {}
    for _, provider, data in graph.out_edges(node, data=True):
        for name in edge_names(data):
            providers[name or node_name(provider)] = provider
    return providers


def _chain(result: ScanLike, node: str, conflicts: list[Conflict]) -> list[str]:
    for conflict in conflicts:
        if conflict.chain:
            return list(conflict.chain)
    root = root_of(result.graph)
    if root is None:
        return []
    try:
        return [str(step) for step in nx.shortest_path(result.graph, root, node)]
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []


def details_text(result: ScanLike, node: str, name: PathNamer) -> Text:
    """Everything about one node: what it is, how it was found, what it needs and lacks, its chain."""
    graph = result.graph
    if node not in graph:
        return Text("Select an object in the tree.", style="dim")
    facts = facts_of(graph, node)
    mine = conflicts_by_object(result.conflicts).get(node, [])
    text = Text()
    text.append(node_name(node), style="bold")
    text.append_text(badge(mine))
    text.append(f"\nPath     {name(node)}\n")
    text.append(f"Role     {role_of(graph, node) or '-'}\n")
    text.append(f"Soname   {facts.soname if facts and facts.soname else '-'}\n")
    text.append(f"Found    {_found_line(graph.nodes[node].get('found'), name)}\n")
    if facts is not None:
        if facts.interpreter:
            text.append(f"Loader   {name(facts.interpreter)} (PT_INTERP)\n")
        if facts.rpath:
            text.append(f"RPATH    {name.text(facts.rpath)}\n")
        if facts.runpath:
            text.append(f"RUNPATH  {name.text(facts.runpath)}\n")
        if facts.problem:
            text.append(f"Problem  {facts.problem}: {facts.detail}\n", style="red")
    _requires_section(text, graph, node, facts, name)
    _missing_section(text, mine, name)
    chain = _chain(result, node, mine)
    if chain:
        _section(text, "Chain from the root")
        for depth, step in enumerate(chain):
            text.append("  " * depth + ("└─ " if depth else "") + name(step) + "\n")
    return text


def _requires_section(
    text: Text, graph: ProcessGraph, node: str, facts: ElfFacts | None, name: PathNamer
) -> None:
    providers = _providers(graph, node)
    if not providers and not (facts and facts.requires):
        return
    _section(text, "Needs")
    libraries = list(
        dict.fromkeys([*providers, *(need.library for need in facts.requires)] if facts else providers)
    )
    for library in libraries:
        provider = providers.get(library)
        text.append(f"  {library}", style="bold")
        text.append(f" -> {name(provider) if provider else '(not in graph)'}")
        via = graph.edges[node, provider].get("via") if provider else None
        text.append(f"  [{via}]\n" if via else "\n", style="dim")
        versions = [need.version for need in facts.requires_from(library)] if facts else []
        if versions:
            ordered = sorted(versions, key=VersionName.parse)
            text.append("     " + " ".join(ordered) + "\n", style="cyan")


def _missing_section(text: Text, mine: list[Conflict], name: PathNamer) -> None:
    if not mine:
        return
    _section(text, "Problems")
    for conflict in mine:
        style = "red" if conflict.severity == Severity.ERROR else "yellow"
        what = conflict.version or str(conflict.kind)
        text.append(f"  {what}", style=f"bold {style}")
        if conflict.library:
            text.append(f" from {conflict.library}")
        if conflict.provider:
            text.append(f" ({name(conflict.provider)})")
        text.append("\n")
        if conflict.kind == Kind.MISSING_VERSION and conflict.symbols:
            shown = ", ".join(conflict.symbols[:MAX_SYMBOLS])
            more = len(conflict.symbols) - MAX_SYMBOLS
            text.append(f"     symbols: {shown}{f' (+{more} more)' if more > 0 else ''}\n", style="dim")
        if conflict.cause:
            text.append(f"     {name.text(conflict.cause)}\n")
        for fix in conflict.fixes[:2]:
            text.append(f"     fix: {name.text(fix)}\n", style="green")
