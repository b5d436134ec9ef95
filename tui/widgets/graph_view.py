"""A drawn, layered picture of the process graph: boxes and arrows, scrollable in both directions.

Layout is the classic layered (Sugiyama) recipe kept small: break cycles, put each node one layer below
its deepest parent, thread long edges through one-column dummy nodes, order each layer by the mean
position of its parents, then route every edge through its own track in the channel between two layers.
Lines are drawn by recording which directions leave each cell and picking the box-drawing character for
that set, so joins and crossings come out right. The glibc objects collapse into one box, and extensions
with nothing wrong collapse into one box per caller: what matters is the path to the conflict.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
from glibc_doctor.core.model import Conflict, Role
from glibc_doctor.core.versions import VersionName
from glibc_doctor.tui.widgets.describe import (
    ProcessGraph,
    ScanLike,
    conflicts_by_object,
    errors,
    facts_of,
    max_glibc_need,
    node_name,
    role_of,
    root_of,
)
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Static

GLIBC_NAME = re.compile(
    r"^(ld-linux[-\w.]*|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libnsl|libanl|libcrypt"
    r"|libBrokenLocale|libnss_\w+|libthread_db|libc_malloc_debug)\.so(\.[\d.]+)?$"
)
GLIBC_BOX = "glibc"
N, S, E, W = 1, 2, 4, 8
LINES = {
    N | S: "│", E | W: "─", N | E: "└", N | W: "┘", S | E: "┌", S | W: "┐", N | S | E: "├",
    N | S | W: "┤", E | W | S: "┬", E | W | N: "┴", N | S | E | W: "┼", N: "│", S: "│", E: "─", W: "─",
}  # fmt: skip
GAP = 3


@dataclass(frozen=True)
class Box:
    """One drawn node: its lines of text and the style of its border and text."""

    lines: tuple[str, ...]
    style: str = ""


@dataclass(frozen=True)
class Picture:
    """What to draw: boxes by id, edges (from, to, style), and the root that goes on top."""

    boxes: Mapping[str, Box]
    edges: tuple[tuple[str, str, str], ...]
    root: str | None


# --- from a scan to a picture ---------------------------------------------------------------------


def _glibc_members(result: ScanLike) -> set[str]:
    """The nodes of the glibc the process loads (same directory as its libc, glibc file names)."""
    libc = result.glibc.libc
    home = os.path.dirname(libc) if libc else None
    members = set()
    for node in result.graph.nodes:
        if (
            role_of(result.graph, node) == Role.LOADER
            and node == result.glibc.loader
            or GLIBC_NAME.match(os.path.basename(node))
            and os.path.dirname(node) == home
        ):
            members.add(node)
    return members


def picture(result: ScanLike, highlighted: Collection[str] = ()) -> Picture:
    """Condense the scan graph into the boxes worth drawing."""
    graph = result.graph
    conflicts = conflicts_by_object(result.conflicts)
    hot = set(conflicts) | set(highlighted)
    for conflict in result.conflicts:
        hot.update(conflict.chain)
    group, quiet = _groups(result, hot)
    boxes: dict[str, Box] = {}
    for node in graph.nodes:
        box_id = group.get(node, node)
        if box_id not in boxes:
            boxes[box_id] = _box(result, box_id, node, conflicts, highlighted, quiet)
    root = root_of(graph)
    return Picture(boxes, _condensed_edges(result, group), group.get(root, root) if root else None)


def _groups(result: ScanLike, hot: set[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Node -> box id for the nodes drawn together: glibc, and per caller the extensions (with their
    private libraries) that have nothing wrong."""
    graph = result.graph
    group: dict[str, str] = {node: GLIBC_BOX for node in _glibc_members(result)}
    quiet: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes:
        if role_of(graph, node) == Role.EXTENSION and node not in hot:
            callers = sorted(graph.predecessors(node))
            quiet[callers[0] if callers else ""].append(node)
    for caller, members in quiet.items():
        if len(members) > 1:
            group.update((member, f"quiet:{caller}") for member in members)
    _fold_private_libraries(graph, group, hot)
    return group, quiet


def _condensed_edges(result: ScanLike, group: Mapping[str, str]) -> tuple[tuple[str, str, str], ...]:
    """Edges between boxes; red when any edge behind it is a failing one."""
    bad_edges = {(c.object, c.provider) for c in errors(result.conflicts)}
    edges: dict[tuple[str, str], str] = {}
    for u, v in result.graph.edges:
        a, b = group.get(u, u), group.get(v, v)
        if a != b and edges.get((a, b)) != "red":
            edges[(a, b)] = "red" if (u, v) in bad_edges else ""
    return tuple((a, b, style) for (a, b), style in edges.items())


def _fold_private_libraries(graph: ProcessGraph, group: dict[str, str], hot: set[str]) -> None:
    """A library only the collapsed extensions need joins their box (to a fixpoint): a box that stands
    for 46 modules should not fan out to the 15 libraries behind them."""
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            if node in group or node in hot:
                continue
            owners = {group.get(pred) for pred in graph.predecessors(node)}
            if len(owners) == 1 and (owner := owners.pop()) is not None and owner.startswith("quiet:"):
                group[node] = owner
                changed = True


def _box(
    result: ScanLike,
    box_id: str,
    node: str,
    conflicts: Mapping[str, list[Conflict]],
    highlighted: Collection[str],
    quiet: Mapping[str, list[str]],
) -> Box:
    graph = result.graph
    if box_id == GLIBC_BOX:
        return Box((f"glibc {result.glibc.version or '?'}", "libc.so.6 + ld.so"), "cyan")
    if box_id.startswith("quiet:"):
        count = len(quiet[box_id.removeprefix("quiet:")])
        return Box((f"{count} more extensions", "and their libraries: ok"), "dim")
    need = max_glibc_need(facts_of(graph, node))
    mine = conflicts.get(node, [])
    if mine:
        missing = sorted(
            {c.version for c in result.conflicts if c.object == node and c.version}, key=VersionName.parse
        )
        second = "✗ " + (", ".join(missing) if missing else "conflict")
        style = "bold red"
    else:
        second = f"needs {VersionName.parse(need).release}" if need else str(role_of(graph, node) or "")
        style = "bold" if role_of(graph, node) in (Role.INTERPRETER, Role.EXTENSION) else ""
    if node in highlighted:
        style = "bold magenta"
    return Box((node_name(node), second), style)


# --- layout and drawing ------------------------------------------------------------------------------


def _acyclic(boxes: Collection[str], edges: list[tuple[str, str, str]], root: str | None) -> nx.DiGraph[str]:
    dag: nx.DiGraph[str] = nx.DiGraph()
    dag.add_nodes_from(boxes)
    for u, v, style in edges:
        dag.add_edge(u, v, style=style)
    while True:
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            return dag
        dag.remove_edge(*cycle[-1][:2])


def _layers(dag: nx.DiGraph[str], root: str | None) -> dict[str, int]:
    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        preds = [layer[p] + 1 for p in dag.predecessors(node)]
        layer[node] = max(preds, default=0)
    if root in layer and layer[root] != 0:
        layer[root] = 0
    return layer


def _with_dummies(dag: nx.DiGraph[str], layer: dict[str, int]) -> tuple[nx.DiGraph[str], set[str]]:
    """Split every edge that spans more than one layer into one-layer steps through dummy nodes."""
    out: nx.DiGraph[str] = nx.DiGraph()
    out.add_nodes_from(dag.nodes)
    dummies: set[str] = set()
    for u, v, data in dag.edges(data=True):
        prev = u
        for step in range(layer[u] + 1, layer[v]):
            dummy = f"\0{u}\0{v}\0{step}"
            dummies.add(dummy)
            layer[dummy] = step
            out.add_edge(prev, dummy, style=data["style"])
            prev = dummy
        out.add_edge(prev, v, style=data["style"])
    return out, dummies


def _order(graph: nx.DiGraph[str], layer: dict[str, int]) -> list[list[str]]:
    depth = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for node in nx.topological_sort(graph):
        rows[layer[node]].append(node)
    for _ in range(4):
        for k in range(1, depth):
            rows[k] = _sorted_by(rows[k], rows[k - 1], graph.predecessors)
        for k in range(depth - 2, -1, -1):
            rows[k] = _sorted_by(rows[k], rows[k + 1], graph.successors)
    return rows


def _sorted_by(
    row: list[str], neighbours_row: list[str], neighbours: Callable[[str], Iterable[str]]
) -> list[str]:
    """Barycenter ordering: each node moves to the mean position of its neighbours in the next row."""
    place = {node: i for i, node in enumerate(neighbours_row)}
    here = {node: i for i, node in enumerate(row)}

    def key(node: str) -> float:
        return _mean([place[n] for n in neighbours(node) if n in place], here[node])

    return sorted(row, key=key)


def _mean(values: list[int], default: int) -> float:
    return sum(values) / len(values) if values else float(default)


class Canvas:
    """Cells with line directions, or text, each with a style."""

    def __init__(self) -> None:
        self.lines: dict[tuple[int, int], int] = defaultdict(int)
        self.chars: dict[tuple[int, int], str] = {}
        self.styles: dict[tuple[int, int], str] = {}

    def _mark(self, x: int, y: int, bits: int, style: str) -> None:
        self.lines[(x, y)] |= bits
        if style or (x, y) not in self.styles:
            self.styles[(x, y)] = style

    def vline(self, x: int, y0: int, y1: int, style: str = "") -> None:
        for y in range(y0, y1 + 1):
            self._mark(x, y, (S if y < y1 else 0) | (N if y > y0 else 0), style)

    def hline(self, y: int, x0: int, x1: int, style: str = "") -> None:
        lo, hi = min(x0, x1), max(x0, x1)
        for x in range(lo, hi + 1):
            self._mark(x, y, (E if x < hi else 0) | (W if x > lo else 0), style)

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        for i, char in enumerate(text):
            self.chars[(x + i, y)] = char
            self.styles[(x + i, y)] = style

    def render(self) -> Text:
        cells = set(self.lines) | set(self.chars)
        if not cells:
            return Text()
        width = max(x for x, _ in cells) + 1
        height = max(y for _, y in cells) + 1
        text = Text(no_wrap=True, overflow="ignore")
        for y in range(height):
            for x in range(width):
                char = self.chars.get((x, y)) or LINES.get(self.lines.get((x, y), 0), " ")
                text.append(char, style=self.styles.get((x, y), ""))
            if y < height - 1:
                text.append("\n")
        return text


def draw(pic: Picture) -> Text:
    """Lay out and draw ``pic``; an empty picture draws nothing."""
    if not pic.boxes:
        return Text("(empty graph)", style="dim")
    dag = _acyclic(pic.boxes, list(pic.edges), pic.root)
    layer = _layers(dag, pic.root)
    graph, dummies = _with_dummies(dag, layer)
    rows = _order(graph, layer)
    width = {n: 1 if n in dummies else max(len(line) for line in pic.boxes[n].lines) + 4 for n in graph.nodes}
    height = max((len(box.lines) for box in pic.boxes.values()), default=1) + 2
    left = _place(graph, rows, width)
    center = {n: left[n] + width[n] // 2 for n in graph.nodes}
    canvas = Canvas()
    top = 0
    for k, row in enumerate(rows):
        for node in row:
            if node in dummies:
                style = graph.edges[next(iter(graph.in_edges(node)))]["style"]
                canvas.vline(center[node], top, top + height - 1, style)
            else:
                _draw_box(canvas, left[node], top, width[node], height, pic.boxes[node])
        if k + 1 < len(rows):
            top = _draw_channel(canvas, graph, row, center, top + height - 1)
    return canvas.render()


def _place(graph: nx.DiGraph[str], rows: list[list[str]], width: Mapping[str, int]) -> dict[str, int]:
    """Left edges: each node under the mean centre of its parents, pushed right past its neighbour."""
    left: dict[str, int] = {}
    for row in rows:
        cursor = 0
        for node in row:
            parents = [left[p] + width[p] // 2 for p in graph.predecessors(node) if p in left]
            want = int(_mean(parents, 0)) - width[node] // 2 if parents else 0
            left[node] = max(cursor, want)
            cursor = left[node] + width[node] + GAP
    return left


def _draw_box(canvas: Canvas, x: int, y: int, width: int, height: int, box: Box) -> None:
    style = box.style
    canvas.hline(y, x, x + width - 1, style)
    canvas.hline(y + height - 1, x, x + width - 1, style)
    canvas.vline(x, y, y + height - 1, style)
    canvas.vline(x + width - 1, y, y + height - 1, style)
    for i, line in enumerate(box.lines):
        canvas.put(
            x + 2 + (width - 4 - len(line)) // 2, y + 1 + i, line, style if i == 0 else box.style or "dim"
        )


def _draw_channel(
    canvas: Canvas, graph: nx.DiGraph[str], row: list[str], center: dict[str, int], bottom: int
) -> int:
    """Route the edges leaving ``row``; return the y of the next layer's top.

    Each net gets a track row: a fan-out net is one source with its targets (python -> its libraries),
    a fan-in net one target with its sources (everything -> glibc). Whichever grouping packs into fewer
    rows wins, so a channel stays as short as the picture allows.
    """
    edges = [(u, v, graph.edges[u, v]["style"]) for u in row for v in graph.successors(u)]
    bent = [(u, v, s) for u, v, s in edges if center[u] != center[v]]
    by_target = _pack_tracks(_nets(bent, center, key=1))
    by_source = _pack_tracks(_nets(bent, center, key=0))
    fan_in = len(set(by_target.values())) <= len(set(by_source.values()))
    tracks = by_target if fan_in else by_source
    arrow_row = bottom + 1 + (max(tracks.values()) + 1 if tracks else 0)
    for u, v, style in sorted(edges, key=lambda e: e[2] == "red"):
        net = v if fan_in else u
        if net in tracks and center[u] != center[v]:
            y = bottom + 1 + tracks[net]
            canvas.vline(center[u], bottom, y, style)
            canvas.hline(y, center[u], center[v], style)
            canvas.vline(center[v], y, arrow_row, style)
        else:
            canvas.vline(center[u], bottom, arrow_row, style)
    for v in {v for _, v, _ in edges}:
        if not v.startswith("\0"):
            red = any(s == "red" for _, w, s in edges if w == v)
            canvas.put(center[v], arrow_row, "▼", "red" if red else "")
    return arrow_row + 1


def _nets(edges: list[tuple[str, str, str]], center: dict[str, int], key: int) -> dict[str, tuple[int, int]]:
    """The horizontal span of each net: edges grouped by source (key 0) or by target (key 1)."""
    spans: dict[str, tuple[int, int]] = {}
    for edge in edges:
        net = edge[key]
        xs = (center[edge[0]], center[edge[1]])
        low, high = spans.get(net, (min(xs), max(xs)))
        spans[net] = (min(low, *xs), max(high, *xs))
    return spans


def _pack_tracks(spans: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Left-edge channel routing: nets whose horizontal spans do not touch share a track row."""
    rows: list[int] = []  # the right end of the last span on each track
    placed: dict[str, int] = {}
    for (left, right), net in sorted((span, net) for net, span in spans.items()):
        for row, end in enumerate(rows):
            if end + 1 < left:
                rows[row] = right
                placed[net] = row
                break
        else:
            rows.append(right)
            placed[net] = len(rows) - 1
    return placed


class GraphView(ScrollableContainer):
    """The drawn graph in a container that scrolls both ways."""

    DEFAULT_CSS = """
    GraphView { overflow: auto auto; }
    GraphView > Static { width: auto; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="graph-drawing")

    def show(self, result: ScanLike, highlighted: Collection[str] = ()) -> None:
        self.query_one("#graph-drawing", Static).update(draw(picture(result, highlighted)))
