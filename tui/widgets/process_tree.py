"""The process as a tree: the interpreter, its libraries, each extension and its libraries.

The graph is a DAG with shared nodes (every object needs libc); the tree shows each object expanded once,
at its first place in load order, and as a dim "(above)" leaf elsewhere, like lddtree. A filter keeps the
matching nodes and the branches that lead to them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from glibc_doctor.core.model import Conflict, Role
from glibc_doctor.tui.widgets.describe import (
    ProcessGraph,
    ScanLike,
    conflicts_by_object,
    node_label,
    node_name,
    role_of,
    root_of,
)
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode


@dataclass
class Branch:
    """One row of the tree before it is drawn: a graph node, its children, and whether it repeats."""

    node: str
    children: list[Branch] = field(default_factory=list)
    repeat: bool = False


def _children(graph: ProcessGraph, node: str) -> list[str]:
    """Libraries first, then dlopen()ed extensions, each in load order."""
    succ = list(graph.successors(node))

    def key(child: str) -> tuple[int, int, str]:
        is_ext = role_of(graph, child) == Role.EXTENSION
        order = graph.nodes[child].get("order")
        return (int(is_ext), order if isinstance(order, int) else 1 << 30, child)

    return sorted(succ, key=key)


def branches(graph: ProcessGraph) -> list[Branch]:
    """The tree of the process: depth-first from the root, each node expanded at its first place."""
    seen: set[str] = set()

    def visit(node: str) -> Branch:
        if node in seen:
            return Branch(node, repeat=True)
        seen.add(node)
        branch = Branch(node)
        for child in _children(graph, node):
            branch.children.append(visit(child))
        return branch

    tops: list[Branch] = []
    root = root_of(graph)
    if root is not None:
        tops.append(visit(root))
    order = sorted(graph.nodes, key=lambda n: (graph.nodes[n].get("order", 1 << 30), n))
    tops.extend(visit(node) for node in order if node not in seen and graph.in_degree(node) == 0)
    tops.extend(visit(node) for node in order if node not in seen)
    return tops


def prune(tops: list[Branch], keep: Callable[[str], bool]) -> list[Branch]:
    """Only the branches that lead to a node ``keep`` accepts (repeats count as their node)."""

    def visit(branch: Branch) -> Branch | None:
        kept = [child for child in (visit(c) for c in branch.children) if child is not None]
        if kept or keep(branch.node):
            return Branch(branch.node, kept, branch.repeat)
        return None

    return [b for b in (visit(top) for top in tops) if b is not None]


class ProcessTree(Tree[str]):
    """The tree widget; its node data is the graph node id (the path as found)."""

    DEFAULT_CSS = """
    ProcessTree { scrollbar-size-vertical: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("process", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._rows: dict[str, TreeNode[str]] = {}

    def show(
        self,
        result: ScanLike,
        *,
        text_filter: str = "",
        conflicts_only: bool = False,
        highlighted: Collection[str] = (),
    ) -> None:
        """Redraw from ``result`` with the given filter; keeps the cursor on the same node if shown."""
        keep_cursor = self.cursor_node.data if self.cursor_node is not None else None
        graph = result.graph
        conflicts = conflicts_by_object(result.conflicts)
        needle = text_filter.strip().lower()

        def keep(node: str) -> bool:
            if conflicts_only and node not in conflicts and node not in highlighted:
                return False
            return not needle or needle in node.lower()

        tops = branches(graph)
        if needle or conflicts_only:
            tops = prune(tops, keep)
        self.clear()
        self._rows = {}
        for top in tops:
            self._add(
                self.root, top, graph, conflicts, highlighted, expand_all=bool(needle or conflicts_only)
            )
        self.root.expand()
        if keep_cursor:
            self.select_path(keep_cursor)

    def _add(
        self,
        parent: TreeNode[str],
        branch: Branch,
        graph: ProcessGraph,
        conflicts: dict[str, list[Conflict]],
        highlighted: Collection[str],
        *,
        expand_all: bool,
    ) -> None:
        mine = conflicts.get(branch.node, [])
        if branch.repeat:
            label = Text(node_name(branch.node), style="dim")
            label.append(" (above)", style="dim italic")
            parent.add_leaf(label, data=branch.node)
            return
        label = node_label(graph, branch.node, mine, branch.node in highlighted)
        if not branch.children:
            self._rows[branch.node] = parent.add_leaf(label, data=branch.node)
            return
        role = role_of(graph, branch.node)
        hot = _leads_to(branch, conflicts) or branch.node in highlighted
        expand = expand_all or role == Role.INTERPRETER or hot
        item = parent.add(label, data=branch.node, expand=expand)
        self._rows[branch.node] = item
        for child in branch.children:
            self._add(item, child, graph, conflicts, highlighted, expand_all=expand_all)

    def select_path(self, node: str) -> bool:
        """Move the cursor to ``node`` (expanding its ancestors); False when it is not shown."""
        item = self._rows.get(node)
        if item is None:
            return False
        ancestor = item.parent
        while ancestor is not None:
            ancestor.expand()
            ancestor = ancestor.parent
        self.call_after_refresh(self._move_to, item)
        return True

    def _move_to(self, item: TreeNode[str]) -> None:
        self.move_cursor(item)
        self.scroll_to_node(item, animate=False)

    @property
    def shown_nodes(self) -> list[str]:
        """Graph nodes that have a row of their own (not counting "(above)" repeats)."""
        return list(self._rows)


def _leads_to(branch: Branch, conflicts: dict[str, list[Conflict]]) -> bool:
    return any(
        child.node in conflicts or _leads_to(child, conflicts)
        for child in branch.children
        if not child.repeat
    )
