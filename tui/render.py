"""The ``scan`` report for a terminal (rich): the glibc the process loads, its load tree, the conflicts.

Only the CLI imports this module; the data comes from ``core`` records (``ScanResult``, ``Conflict``),
so what is printed here is what the JSON says, in words and colour.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import networkx as nx
from glibc_doctor.core.model import Conflict, ElfFacts, Role, Severity
from glibc_doctor.core.versions import newest
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from glibc_doctor.core.scan import ScanResult


def make_console() -> Console:
    """stdout; piped output gets a wide page so long store paths are not folded mid-name."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 160))
    return console


def print_scan(result: ScanResult, console: Console | None = None) -> None:
    """The whole report on stdout (or ``console``)."""
    console = console or make_console()
    console.print(glibc_header(result))
    console.print(process_tree(result))
    for conflict in result.conflicts:
        console.print(conflict_panel(conflict))
    console.print(summary(result.conflicts))


def glibc_header(result: ScanResult) -> Group:
    glibc = result.glibc
    lines = [Text.from_markup(f"[bold]target[/] {escape(result.target.spec)} ({result.target.kind})")]
    version = glibc.version or "unknown release"
    libc = glibc.libc or "no libc.so.6"
    lines.append(Text.from_markup(f"[bold]glibc[/] {escape(version)}  {escape(libc)}"))
    if glibc.loader:
        lines.append(Text.from_markup(f"[bold]loader[/] {escape(glibc.loader)}"))
    lines += [Text.from_markup(f"  [dim]because[/] {escape(reason)}") for reason in glibc.why]
    if result.stdenv is not None:
        stdenv = result.stdenv
        lines.append(
            Text.from_markup(
                f"[bold]stdenv[/] glibc {escape(stdenv.version or '?')}  {escape(stdenv.libc)}"
                f"  [dim]({escape(stdenv.source)})[/]"
            )
        )
    lines += [Text.from_markup(f"[yellow]note[/] {escape(note)}") for note in result.notes]
    return Group(*lines)


def process_tree(result: ScanResult) -> Tree:
    """Each object under the object that first loaded it (the breadth-first load tree)."""
    graph = result.graph
    root = str(graph.graph.get("root", ""))
    badges = _badges(result.conflicts)
    tree = Tree(_node_text(graph, root, badges) if root in graph else Text(root))
    if root not in graph:
        return tree
    parents = _first_parents(graph, root)
    branches = {root: tree}
    for node, parent in parents.items():  # breadth-first: every parent is added before its children
        branches[node] = branches[parent].add(_node_text(graph, node, badges))
    return tree


def _first_parents(graph: nx.DiGraph, root: str) -> dict[str, str]:
    """node -> the node it hangs under, in breadth-first order from the root, children in load order."""
    parents: dict[str, str] = {}
    queue = [root]
    seen = {root}
    while queue:
        current = queue.pop(0)
        children = sorted(graph.successors(current), key=lambda n: (graph.nodes[n].get("order", 0), n))
        for child in children:
            if child not in seen:
                seen.add(child)
                parents[child] = current
                queue.append(child)
    return parents


def _node_text(graph: nx.DiGraph, node: str, badges: dict[str, list[str]]) -> Text:
    data: dict[str, Any] = graph.nodes[node]
    facts: ElfFacts = data["facts"]
    role = data.get("role")
    text = Text()
    if role == Role.MISSING:
        text.append(node.removeprefix("not-found:"), style="bold red")
        text.append("  not found", style="red")
    else:
        text.append(os.path.basename(node), style="bold" if role == Role.EXTENSION else "")
        text.append(f"  {os.path.dirname(node)}", style="dim")
        top = newest(tuple(need.version for need in facts.requires), "GLIBC")
        if top is not None:
            text.append(f"  {top}", style="cyan")
    for badge in badges.get(node, []):
        text.append(f"  {badge}", style="bold white on red")
    return text


def _badges(conflicts: Iterable[Conflict]) -> dict[str, list[str]]:
    badges: dict[str, list[str]] = {}
    for conflict in conflicts:
        if conflict.severity == Severity.ERROR:
            label = f"✗ {conflict.version}" if conflict.version else f"✗ {conflict.kind}"
            badges.setdefault(conflict.object, []).append(label)
    return badges


def conflict_panel(conflict: Conflict) -> Panel:
    body: list[Text] = [Text(conflict.message, style="bold")]
    if conflict.symbols:
        body.append(Text.from_markup(f"[bold]symbols[/] {escape(', '.join(conflict.symbols))}"))
    if len(conflict.chain) > 1:
        chain = " → ".join(os.path.basename(link) for link in conflict.chain)
        body.append(Text.from_markup(f"[bold]chain[/] {escape(chain)}"))
    if conflict.min_glibc:
        body.append(Text.from_markup(f"[bold]needs[/] glibc ≥ {escape(conflict.min_glibc)}"))
    if conflict.cause:
        body.append(Text(conflict.cause))
    body += [Text.from_markup(f"[green]fix[/] {escape(fix)}") for fix in conflict.fixes]
    error = conflict.severity == Severity.ERROR
    title = f"{conflict.kind}" + (f" {conflict.version}" if conflict.version else "")
    return Panel(
        Group(*body),
        title=escape(title),
        title_align="left",
        subtitle=escape(conflict.object),
        subtitle_align="right",
        border_style="red" if error else "yellow",
    )


def summary(conflicts: tuple[Conflict, ...]) -> Text:
    errors = sum(1 for c in conflicts if c.severity == Severity.ERROR)
    warnings = len(conflicts) - errors
    if not conflicts:
        return Text("✓ no conflicts", style="bold green")
    style = "bold red" if errors else "bold yellow"
    return Text(f"{errors} error(s), {warnings} warning(s)", style=style)


def print_explanation(explanation: Any, scanned: ScanResult | None, console: Console | None = None) -> None:
    """Each loader message with its cause, the next commands, then the scan of the target it names."""
    console = console or make_console()
    for finding in explanation.findings:
        body = [Text(finding.message.raw or str(finding.message.kind), style="bold"), Text(finding.cause)]
        if finding.min_glibc:
            body.append(Text.from_markup(f"[bold]needs[/] glibc ≥ {escape(finding.min_glibc)}"))
        if finding.min_gcc:
            body.append(Text.from_markup(f"[bold]built by[/] GCC ≥ {escape(finding.min_gcc)}"))
        console.print(Panel(Group(*body), title=escape(str(finding.message.kind)), title_align="left"))
    console.print(Text(explanation.summary))
    for command in explanation.commands:
        console.print(Text.from_markup(f"[green]next[/] {escape(command)}"))
    if scanned is not None:
        console.print(Text.from_markup(f"\n[bold]scan of {escape(scanned.target.spec)}[/]"))
        console.print(glibc_header(scanned))
        for conflict in scanned.conflicts:
            console.print(conflict_panel(conflict))
        console.print(summary(scanned.conflicts))
