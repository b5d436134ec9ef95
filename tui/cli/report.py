"""The ``scan`` report for a terminal (rich): the cause and the safe fix on one screen.

Someone who just hit ``version 'GLIBC_2.38' not found`` needs, in this order: which glibc the process
loads and why (the header), which extensions cannot load and whether ``fix`` helps each (one table row per
extension), and the one command to run. The load tree and every record's evidence (symbols, chain, how
each file was found) are there with ``--verbose``. Paths are shortened for display only (``~`` for
$HOME, Nix-style store hashes elided); the JSON keeps them whole.

The rows (one per extension that cannot load) and their "does ``fix`` help" verdict come from
``tui/verdict.py``, which the TUI's summary asks too. The data comes from ``core`` records
(``ScanResult``, ``Conflict``), so what is printed here is what the JSON says, in words and colour.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
from glibc_doctor.core.analysis import fix_command
from glibc_doctor.core.model import (
    Conflict,
    Effect,
    ElfFacts,
    GlibcInfo,
    Kind,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    Via,
)
from glibc_doctor.core.patch.plan import REFUSAL_KINDS
from glibc_doctor.core.versions import VersionName, newest
from glibc_doctor.tui.paths import home_path, short_path, shorten_text
from glibc_doctor.tui.verdict import (
    BrokenRoot,
    Verdict,
    broken_roots,
    extension_names,
    problem_label,
    verdict,
)
from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from glibc_doctor.core.scan import ScanResult

_MAX_SYMBOLS = 3
_MAX_WARNINGS = 5
_MAX_CLOSURE_DIRS = 4
# Past these, the default report summarises (a venv full of broken files still fits a screen or two);
# --verbose shows everything.
_MAX_NAMES = 6
_MAX_REMAINING = 3
_MAX_CHAINS = 8
_MAX_FINDINGS = 5  # explain: panels for the first messages, then counts per kind and version
_MAX_FINDING_GROUPS = 8


# --- printing ------------------------------------------------------------------------------------------


def make_console() -> Console:
    """stdout; piped output gets a 100-column page (the report is laid out for 80-100 columns)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=100)
    return console


def print_scan(result: ScanResult, console: Console | None = None, *, verbose: bool = False) -> None:
    """The whole report on stdout (or ``console``): short by default, everything with ``verbose``."""
    console = console or make_console()
    for part in scan_report(result, verbose=verbose, width=console.width):
        console.print(part, soft_wrap=isinstance(part, CommandLine))


def scan_report(result: ScanResult, *, verbose: bool = False, width: int = 100) -> list[RenderableType]:
    """The report's parts in reading order, laid out for a page ``width`` columns wide."""
    rows = broken_roots(result)
    parts: list[RenderableType] = [glibc_header(result, verbose=verbose), verdict_line(result, rows)]
    if rows:
        parts.append(broken_table(result, rows, width))  # every broken extension, even when many
    parts += what_to_do(result, rows)
    parts += warning_lines(result, verbose=verbose)
    if verbose:
        parts += [Text("\nLoad tree", style="bold"), process_tree(result)]
        parts += [conflict_panel(conflict, result.graph) for conflict in result.conflicts]
    else:
        parts.append(failing_chains(result, rows))
    return parts


def glibc_header(result: ScanResult, *, verbose: bool = False) -> Group:
    """Target; the glibc it loads and why (PT_INTERP, the RPATH/RUNPATH that found libc.so.6); stdenv."""
    target, glibc = result.target, result.glibc
    executable = os.path.basename(target.executable)
    role = "interpreter" if target.kind in _INTERPRETER_KINDS else "program"
    lines: list[RenderableType] = [
        Text.from_markup(
            f"[bold]{escape(short_path(target.spec))}[/]  [dim]({escape(target.kind)}, "
            f"{role} {escape(executable)})[/]"
        )
    ]
    lines.append(_loads_line(glibc))
    reasons = _why_lines(result) if not verbose else [shorten_text(reason) for reason in glibc.why]
    lines += [_indented(f"{'because' if i == 0 else 'and'} {reason}") for i, reason in enumerate(reasons)]
    lines.append(_stdenv_line(result.stdenv))
    lines += [Text.from_markup(f"[yellow]note[/] {escape(shorten_text(note))}") for note in result.notes]
    return Group(*lines)


_INTERPRETER_KINDS = ("python", "ruby", "venv")


def _loads_line(glibc: GlibcInfo) -> Text:
    """``loads glibc 2.36  /lib/…/libc.so.6``; a process that maps no libc.so.6 is told as such (its
    loader's release is not a glibc the process loads)."""
    if glibc.libc is None:
        loader = (
            f"  (its loader {short_path(glibc.loader)} is glibc {glibc.version or '?'})"
            if glibc.loader
            else ""
        )
        return Text.from_markup(f"loads [bold]no libc.so.6[/]{escape(loader)}")
    version = f"glibc {glibc.version}" if glibc.version else "an unknown glibc"
    return Text.from_markup(f"loads [bold]{escape(version)}[/]  {escape(short_path(glibc.libc))}")


def _why_lines(result: ScanResult) -> list[str]:
    graph = result.graph
    root = _root(graph)
    lines: list[str] = []
    name = os.path.basename(root)
    facts = _facts(graph, root)
    if facts is not None and facts.interpreter:
        lines.append(f"{name}'s PT_INTERP is {short_path(facts.interpreter)}")
    libc = result.glibc.libc
    found: Resolution | None = graph.nodes[libc].get("found") if libc and libc in graph else None
    if found is not None:
        lines.append(_found_words(found))
    return lines


def _found_words(found: Resolution) -> str:
    """``its RUNPATH …/lib finds libc.so.6 first`` from the loader's resolution record."""
    owner, _, where = found.detail.partition(": ")
    if found.via in (Via.RPATH, Via.RUNPATH) and " of " in owner:
        tag, _, whose = owner.partition(" of ")
        return f"{os.path.basename(whose)}'s {tag} {short_path(where)} finds {found.name} first"
    if found.via == Via.CACHE:
        return f"{found.name} is found through {owner or 'the ld.so.cache'}"
    if found.via == Via.DEFAULT:
        where = short_path(os.path.dirname(found.path or ""))
        return f"{found.name} is found in the loader's default directories ({where})"
    return f"{found.name} found via {found.via}" + (
        f" ({shorten_text(found.detail)})" if found.detail else ""
    )


def _stdenv_line(stdenv: StdenvInfo | None) -> Text:
    if stdenv is None:
        return Text.from_markup("stdenv [yellow]not found[/] (give one with --glibc DIR)")
    return Text.from_markup(
        f"stdenv [bold]glibc {escape(stdenv.version or '?')}[/]  {escape(short_path(stdenv.libc))}"
        f"  [dim](from {escape(stdenv.source)})[/]"
    )


def verdict_line(result: ScanResult, rows: list[BrokenRoot]) -> Text:
    """One line in red or green: how many extensions cannot load, and which."""
    total = len(result.target.extensions)
    root = _root(result.graph)
    extensions = [row for row in rows if row.node != root]
    warnings = len(result.conflicts) - len(result.errors)
    tail = f"  ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
    if not rows:
        loaded = result.glibc.version and result.glibc.libc
        glibc = f" with glibc {result.glibc.version}" if loaded else ""
        what = f"all {total} extensions load{glibc}" if total else f"no conflicts{glibc}"
        return Text(f"✓ {what}{tail}", style="bold yellow" if warnings else "bold green")
    parts = []
    if len(extensions) < len(rows):
        parts.append(f"{os.path.basename(root)} itself cannot start")
    if extensions:
        names = ", ".join(row.name for row in extensions[:_MAX_NAMES])
        if len(extensions) > _MAX_NAMES:
            names += f" and {len(extensions) - _MAX_NAMES} more"
        parts.append(f"{len(extensions)} of {total} extensions cannot load: {names}")
    return Text("✗ " + "; ".join(parts) + tail, style="bold red")


def broken_table(
    result: ScanResult, rows: list[BrokenRoot], width: int = 100, *, limit: int | None = None
) -> Table:
    """One row per extension: what it needs, through which library, and whether ``fix`` helps.

    Past ``limit`` rows the rest is one line ("… and 14 more"); fixable rows come first.
    """
    hidden = rows[limit:] if limit is not None else []
    rows = rows[:limit] if limit is not None else rows
    verdicts = [verdict(row, result.stdenv, result.graph) for row in rows]
    cells = [
        (row.name, _needs_cell(row.own) or "—", _through_cell(row.through), decided.words)
        for row, decided in zip(rows, verdicts, strict=True)
    ]
    widths = column_widths(cells, width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for header, column_width in zip(("extension", "needs", "through", "fixed by `fix`"), widths, strict=True):
        table.add_column(header, width=column_width, overflow="fold")
    for (name, needs, through, words), decided in zip(cells, verdicts, strict=True):
        style = "green" if decided.fixable else ("red" if decided.fixable is False else "yellow")
        table.add_row(Text(name, style="bold"), needs, through, Text(words, style=style))
    if hidden:
        table.add_row(
            Text(f"… {len(hidden)} more", style="dim"), Text("(--verbose lists them)", style="dim"), "", ""
        )
    return table


# How narrow each column may get, in the order they give up width: "needs" first (its symbols wrap
# well), then the verdict, then "through" (a library and its versions read as one item).
_SHRINK_ORDER = ((1, 20), (3, 12), (2, 16), (1, 10))


def column_widths(cells: Sequence[tuple[str, str, str, str]], width: int) -> list[int]:
    """Widths of the table's four columns that fit ``width`` (two spaces between columns)."""
    headers = (len("extension"), len("needs"), len("through"), len("fixed by `fix`"))
    natural = [
        max([headers[i]] + [len(line) for cell in cells for line in cell[i].splitlines()]) for i in range(4)
    ]
    widths = list(natural)
    excess = sum(widths) + 4 + 3 - width  # rich pads every column and puts a divider between them
    for column, floor in _SHRINK_ORDER:
        if excess <= 0:
            break
        give = max(0, min(excess, widths[column] - floor))
        widths[column] -= give
        excess -= give
    return widths


def _needs_cell(records: list[Conflict]) -> str:
    lines = []
    for conflict in records:
        if conflict.kind == Kind.MISSING_VERSION and conflict.version:
            lines.append(conflict.version + _symbol_hint(conflict.symbols))
        else:
            lines.append(_problem_words(conflict))
    return "\n".join(lines)


def _symbol_hint(symbols: tuple[str, ...]) -> str:
    if not symbols:
        return ""
    shown = ", ".join(symbols[:_MAX_SYMBOLS])
    more = f", +{len(symbols) - _MAX_SYMBOLS}" if len(symbols) > _MAX_SYMBOLS else ""
    return f" ({shown}{more})"


def _problem_words(conflict: Conflict) -> str:
    if conflict.kind == Kind.NOT_FOUND:
        return f"{os.path.basename(conflict.library or '')} (not found)"
    if conflict.kind in REFUSAL_KINDS or conflict.kind == Kind.MIXED_GLIBC:
        return problem_label(conflict)
    if conflict.version:
        return f"{conflict.version} ({conflict.kind})"
    return shorten_text(conflict.message.removeprefix(f"{conflict.object}: "))


def _through_cell(through: dict[str, list[Conflict]]) -> str:
    lines = []
    for obj, records in through.items():
        versions = [c.version for c in records if c.kind == Kind.MISSING_VERSION and c.version]
        what = version_range(versions) if versions else ", ".join(_problem_words(c) for c in records)
        lines.append(f"{os.path.basename(obj)} → {what}")
    return "\n".join(lines) or "—"


def version_range(versions: Iterable[str]) -> str:
    """``GLIBC_2.32..2.36`` for several versions of one family; families joined by commas."""
    by_family: dict[str, list[VersionName]] = {}
    for version in sorted({VersionName.parse(v) for v in versions}):
        by_family.setdefault(version.family, []).append(version)
    parts = []
    for names in by_family.values():
        first, last = names[0], names[-1]
        parts.append(first.text if first == last else f"{first.text}..{last.release}")
    return ", ".join(parts)


def _nothing_to_do(result: ScanResult) -> str:
    name = os.path.basename(result.target.executable)
    if result.target.extensions:
        return "nothing: every extension loads with the glibc this process has."
    if result.glibc.libc is None:
        return f"nothing: {name} starts (it loads no libc.so.6)."
    return f"nothing: {name} starts with the glibc it loads."


class CommandLine(Text):
    """A command to copy: printed with soft wrapping, so a long one is never broken into two lines."""


def what_to_do(result: ScanResult, rows: list[BrokenRoot]) -> list[RenderableType]:
    """The one command to run, what it does, what remains; and where the details are."""
    lines: list[RenderableType] = [Text("\nWhat to do", style="bold")]
    stdenv = result.stdenv
    command = home_path(fix_command(result.target.spec, result.target, stdenv))
    decided = [(row, verdict(row, stdenv, result.graph)) for row in rows]
    fixable = [row.name for row, v in decided if v.fixable]
    remaining = [(row, v) for row, v in decided if v.fixable is False]
    if not rows:
        lines.append(_indented(_nothing_to_do(result)))
    elif stdenv is None:
        lines.append(_command(f"{command} --glibc DIR"))
        lines.append(_indented("No compiler was found to tell your stdenv glibc: name a glibc lib dir."))
    elif fixable:
        lines.append(_command(command))
        lines.append(_indented(_fix_summary(result, stdenv, fixable)))
    lines += [
        _remaining_line(result, row, v, after_fix=bool(fixable)) for row, v in remaining[:_MAX_REMAINING]
    ]
    if len(remaining) > _MAX_REMAINING:
        more = len(remaining) - _MAX_REMAINING
        lines.append(
            _indented(f"… and {more} more that no repatch helps (--verbose has each one's fix).", "yellow")
        )
    lines.append(
        _indented(
            "details: rerun with --verbose (tree, symbols, chains) or --json; "
            "glibc-doctor TARGET opens the TUI",
            "dim",
        )
    )
    return lines


def _indented(text: str | Text, style: str = "") -> Padding:
    """A paragraph whose wrapped lines keep the indent."""
    return Padding(Text(text, style=style) if isinstance(text, str) else text, (0, 0, 0, 2), expand=False)


def _command(command: str) -> CommandLine:
    line = CommandLine("  run  ")
    line.append(command, style="bold green")
    return line


def _fix_summary(result: ScanResult, stdenv: StdenvInfo, fixable: list[str]) -> str:
    interpreter = os.path.basename(result.target.executable)
    switch = "points the venv at it" if result.target.environment else "tells you how to use it"
    return (
        f"It patches a copy of {interpreter} to load the stdenv glibc {stdenv.version}, checks that "
        f"{', '.join(fixable)} {'loads' if len(fixable) == 1 else 'load'} with it, then {switch}; "
        "the original interpreter is not touched (glibc-doctor rollback TARGET undoes it)."
    )


def _remaining_line(result: ScanResult, row: BrokenRoot, decided: Verdict, *, after_fix: bool) -> Padding:
    """What remains for an extension the repatch cannot help, in words taken from its records' fixes."""
    why = decided.words.removeprefix("no: ")
    lead = (
        f"{row.name} still fails after it ({why})" if after_fix else f"{row.name}: no repatch helps ({why})"
    )
    fixes = next((c.fixes for c in row.records if c.fixes), ())
    commands = [match for fix in fixes[:1] for match in re.findall(r"`([^`]+)`", fix)]
    loaded = result.glibc.version
    against = f" against glibc ≤ {loaded}" if loaded else " for the interpreter's glibc"
    if commands:
        advice = f": rebuild it{against} ({shorten_text(commands[0])} under the interpreter's own compiler)"
    else:
        advice = f": {shorten_text(fixes[0].replace(row.node, os.path.basename(row.node)))}" if fixes else ""
    newer = next((fix for fix in fixes if fix.startswith("move the stdenv")), None)
    if newer is not None:
        advice += f", or {shorten_text(newer.split(', then')[0])} and fix again"
    return _indented(Text(f"{lead}{advice}.", style="yellow"))


def warning_lines(result: ScanResult, *, verbose: bool) -> list[Text]:
    warnings = [c for c in result.conflicts if c.severity != Severity.ERROR]
    shown = warnings if verbose else warnings[:_MAX_WARNINGS]
    lines = [
        Text.from_markup(f"[yellow]warning[/] {escape(str(c.kind))}: {escape(shorten_text(c.message))}")
        for c in shown
    ]
    if len(shown) < len(warnings):
        lines.append(Text(f"  +{len(warnings) - len(shown)} more warnings (--verbose)", style="dim"))
    return lines


# --- the load tree: failing chains by default, everything with --verbose -------------------------------


def failing_chains(result: ScanResult, rows: list[BrokenRoot]) -> Group:
    """The interpreter's start-up closure in a line per directory, then only the chains that fail."""
    graph = result.graph
    root = _root(graph)
    lines: list[RenderableType] = [Text("\nLoad chains", style="bold")]
    lines += _closure_summary(graph, root)
    badges = _badges(result.conflicts)
    tree = Tree(Text(os.path.basename(root), style="bold"))
    names = extension_names(result)
    broken = [row for row in rows if row.node != root]
    for row in broken[:_MAX_CHAINS]:
        branch = tree.add(_short_node(graph, row.node, names, badges))
        _add_chain_nodes(graph, branch, row, names, badges)
    if len(broken) > _MAX_CHAINS:
        tree.add(Text(f"{len(broken) - _MAX_CHAINS} more that cannot load (the table above)", style="dim"))
    clean = len(result.target.extensions) - sum(1 for row in rows if row.node != root)
    if clean > 0:
        tree.add(Text(f"{clean} more extensions load cleanly (--verbose lists them)", style="dim"))
    lines.append(tree)
    return Group(*lines)


def _add_chain_nodes(
    graph: nx.DiGraph[str], branch: Tree, row: BrokenRoot, names: dict[str, str], badges: dict[str, list[str]]
) -> None:
    """Each library of the row under the objects that pulled it in (the chain after the extension)."""
    added: dict[str, Tree] = {row.node: branch}
    for record in (c for records in row.through.values() for c in records):
        chain = list(record.chain)
        start = chain.index(row.node) + 1 if row.node in chain else len(chain) - 1
        parent = branch
        for node in chain[start:]:
            if node not in added:
                added[node] = parent.add(_short_node(graph, node, names, badges))
            parent = added[node]


def _closure_summary(graph: nx.DiGraph[str], root: str) -> list[RenderableType]:
    """What the interpreter maps at start (no extension yet), grouped by directory."""
    if root not in graph:
        return []
    closure = _closure(graph, root)
    by_dir: dict[str, list[str]] = {}
    for node in sorted(closure, key=lambda n: graph.nodes[n].get("order", 0)):
        by_dir.setdefault(os.path.dirname(node), []).append(os.path.basename(node))
    libraries = "1 library" if len(closure) == 1 else f"{len(closure)} libraries"
    lines: list[RenderableType] = [Text(f"{os.path.basename(root)} starts with {libraries}:", style="dim")]
    for directory, files in list(by_dir.items())[:_MAX_CLOSURE_DIRS]:
        lines.append(_indented(f"{short_path(directory)}: {', '.join(files)}", "dim"))
    if len(by_dir) > _MAX_CLOSURE_DIRS:
        lines.append(Text(f"  +{len(by_dir) - _MAX_CLOSURE_DIRS} more directories (--verbose)", style="dim"))
    return lines


def _closure(graph: nx.DiGraph[str], root: str) -> list[str]:
    seen = {root}
    queue = [root]
    while queue:
        current = queue.pop(0)
        for child in graph.successors(current):
            if child not in seen and graph.nodes[child].get("role") not in (Role.EXTENSION, Role.MISSING):
                seen.add(child)
                queue.append(child)
    return [node for node in seen if node != root]


def _short_node(
    graph: nx.DiGraph[str], node: str, names: dict[str, str], badges: dict[str, list[str]]
) -> Text:
    text = Text(names.get(node) or os.path.basename(node.removeprefix("not-found:")), style="bold")
    data: dict[str, Any] = graph.nodes[node] if node in graph else {}
    found: Resolution | None = data.get("found")
    if node not in names and data.get("role") != Role.MISSING:
        via = f" (via {found.via})" if found is not None else ""
        text.append(f"  {short_path(os.path.dirname(node))}{via}", style="dim")
    for badge in _merged_badges(badges.get(node, [])):
        text.append(f"  {badge}", style="bold red")
    return text


def _merged_badges(badges: list[str]) -> list[str]:
    versions = [b.removeprefix("✗ ") for b in badges if VersionName.parse(b.removeprefix("✗ ")).number]
    others = [b for b in badges if VersionName.parse(b.removeprefix("✗ ")).number == ()]
    return ([f"✗ {version_range(versions)}"] if versions else []) + others


def process_tree(result: ScanResult) -> Tree:
    """Each object under the object that first loaded it (the breadth-first load tree)."""
    graph = result.graph
    root = _root(graph)
    badges = _badges(result.conflicts)
    tree = Tree(_node_text(graph, root, badges) if root in graph else Text(root))
    if root not in graph:
        return tree
    parents = _first_parents(graph, root)
    branches = {root: tree}
    for node, parent in parents.items():  # breadth-first: every parent is added before its children
        branches[node] = branches[parent].add(_node_text(graph, node, badges))
    return tree


def _first_parents(graph: nx.DiGraph[str], root: str) -> dict[str, str]:
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


def _node_text(graph: nx.DiGraph[str], node: str, badges: dict[str, list[str]]) -> Text:
    data: dict[str, Any] = graph.nodes[node]
    facts: ElfFacts = data["facts"]
    role = data.get("role")
    text = Text()
    if role == Role.MISSING:
        text.append(node.removeprefix("not-found:"), style="bold red")
        text.append("  not found", style="red")
    else:
        text.append(os.path.basename(node), style="bold" if role == Role.EXTENSION else "")
        text.append(f"  {short_path(os.path.dirname(node))}", style="dim")
        top = newest(tuple(need.version for need in facts.requires), "GLIBC")
        if top is not None:
            text.append(f"  {top}", style="cyan")
    for badge in _merged_badges(badges.get(node, [])):
        text.append(f"  {badge}", style="bold white on red")
    return text


def _badges(conflicts: Iterable[Conflict]) -> dict[str, list[str]]:
    badges: dict[str, list[str]] = {}
    for conflict in conflicts:
        if conflict.severity == Severity.ERROR:
            label = f"✗ {conflict.version}" if conflict.version else f"✗ {conflict.kind}"
            if conflict.effect == Effect.CRASH:
                label += " (crash)"
            badges.setdefault(conflict.object, []).append(label)
    return badges


def conflict_panel(conflict: Conflict, graph: nx.DiGraph[str] | None = None) -> Panel:
    """Every detail of one record: ld.so's words, symbols, chain, how the object was found, cause, fixes."""
    body: list[Text] = [Text(shorten_text(conflict.message), style="bold")]
    if conflict.symbols:
        body.append(Text.from_markup(f"[bold]symbols[/] {escape(', '.join(conflict.symbols))}"))
    if len(conflict.chain) > 1:
        chain = " → ".join(os.path.basename(link) for link in conflict.chain)
        body.append(Text.from_markup(f"[bold]chain[/] {escape(chain)}"))
    found = _found_of(graph, conflict.object)
    if found is not None and found.via not in (Via.PATH, Via.ROOT):
        detail = f" ({shorten_text(found.detail)})" if found.detail else ""
        body.append(Text.from_markup(f"[bold]found[/] via {escape(str(found.via))}{escape(detail)}"))
    if conflict.min_glibc:
        body.append(Text.from_markup(f"[bold]needs[/] glibc ≥ {escape(conflict.min_glibc)}"))
    if conflict.cause:
        body.append(Text(shorten_text(conflict.cause)))
    body += [Text.from_markup(f"[green]fix[/] {escape(shorten_text(fix))}") for fix in conflict.fixes]
    error = conflict.severity == Severity.ERROR
    title = f"{conflict.kind}" + (f" {conflict.version}" if conflict.version else "")
    return Panel(
        Group(*body),
        title=escape(title),
        title_align="left",
        subtitle=escape(os.path.basename(conflict.object)),
        subtitle_align="right",
        border_style="red" if error else "yellow",
    )


def _found_of(graph: nx.DiGraph[str] | None, node: str) -> Resolution | None:
    if graph is None or node not in graph:
        return None
    found: Resolution | None = graph.nodes[node].get("found")
    return found


def summary(conflicts: tuple[Conflict, ...]) -> Text:
    errors = sum(1 for c in conflicts if c.severity == Severity.ERROR)
    warnings = len(conflicts) - errors
    if not conflicts:
        return Text("✓ no conflicts", style="bold green")
    style = "bold red" if errors else "bold yellow"
    return Text(f"{errors} error(s), {warnings} warning(s)", style=style)


def print_explanation(explanation: Any, scanned: ScanResult | None, console: Console | None = None) -> None:
    """Each loader message with its cause (the first few; the rest counted by kind and version), the
    next commands, then the scan of the target it names."""
    console = console or make_console()
    findings = explanation.findings
    for finding in findings[:_MAX_FINDINGS]:
        console.print(finding_panel(finding))
    for line in more_findings(findings[_MAX_FINDINGS:]):
        console.print(line)
    console.print(Text(explanation.summary))
    for command in explanation.commands:
        console.print(Text.from_markup(f"[green]next[/] {escape(home_path(command))}"), soft_wrap=True)
    if scanned is not None:
        console.print(Text.from_markup(f"\n[bold]scan of {escape(home_path(scanned.target.spec))}[/]"))
        rows = broken_roots(scanned)
        console.print(glibc_header(scanned))
        console.print(verdict_line(scanned, rows))
        if rows:
            console.print(broken_table(scanned, rows, console.width))
        for part in what_to_do(scanned, rows):
            console.print(part, soft_wrap=isinstance(part, CommandLine))


def finding_panel(finding: Any) -> Panel:
    """One loader message: its words, the cause, and the oldest glibc (or GCC) that would do."""
    raw = shorten_text(finding.message.raw or str(finding.message.kind))
    body = [Text(raw, style="bold"), Text(shorten_text(finding.cause))]
    if finding.min_glibc:
        body.append(Text.from_markup(f"[bold]needs[/] glibc ≥ {escape(finding.min_glibc)}"))
    if finding.min_gcc:
        body.append(Text.from_markup(f"[bold]built by[/] GCC ≥ {escape(finding.min_gcc)}"))
    return Panel(Group(*body), title=escape(str(finding.message.kind)), title_align="left")


def more_findings(rest: Sequence[Any]) -> list[Text]:
    """The findings past the first panels, counted per (kind, version), most frequent first: a log of
    20,000 errors is a few lines, not 20,000 panels (``--json`` lists every one)."""
    if not rest:
        return []
    counts: dict[tuple[str, str], int] = {}
    for finding in rest:
        key = (str(finding.message.kind), finding.message.version or "")
        counts[key] = counts.get(key, 0) + 1
    groups = sorted(counts.items(), key=lambda item: (-item[1], VersionName.parse(item[0][1]), item[0][0]))
    lines = [Text(f"{len(rest)} more loader message(s) (--json lists every one):", style="bold")]
    for (kind, version), count in groups[:_MAX_FINDING_GROUPS]:
        lines.append(Text(f"  {count} × {kind}" + (f" {version}" if version else "")))
    if len(groups) > _MAX_FINDING_GROUPS:
        hidden = sum(count for _key, count in groups[_MAX_FINDING_GROUPS:])
        lines.append(Text(f"  {hidden} in {len(groups) - _MAX_FINDING_GROUPS} other groups", style="dim"))
    return lines


# --- small helpers ---------------------------------------------------------------------------------------


def _root(graph: nx.DiGraph[str]) -> str:
    return str(graph.graph.get("root", ""))


def _facts(graph: nx.DiGraph[str], node: str) -> ElfFacts | None:
    if node not in graph:
        return None
    facts: ElfFacts = graph.nodes[node]["facts"]
    return facts
