"""The process graph as text other tools draw: Mermaid (docs, GitHub), Graphviz DOT, GraphML.

All three render the same nodes and edges as the CLI and the TUI, with the objects that carry an error
record marked (Mermaid ``classDef conflict``, DOT red, GraphML ``conflict="true"``), so a picture of
the process shows where it breaks.
"""

from __future__ import annotations

import io
import os
import re
from typing import TYPE_CHECKING

import networkx as nx
from glibc_doctor.core.analysis import conflicting_nodes
from glibc_doctor.core.model import ElfFacts, Resolution, Role, edge_names, edge_requests
from glibc_doctor.core.versions import newest

if TYPE_CHECKING:
    from glibc_doctor.core.scan import ScanResult


def node_label(path: str, facts: ElfFacts) -> str:
    """The file name and its newest GLIBC need (``_psycopg.so GLIBC_2.38``): the two things to compare."""
    name = os.path.basename(path) if not path.startswith("not-found:") else path.removeprefix("not-found:")
    top = newest(tuple(need.version for need in facts.requires), "GLIBC")
    return printable(f"{name} {top}" if top is not None else name)


# Characters XML 1.0 forbids even as character references: C0 controls other than tab, LF and CR.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def printable(text: str) -> str:
    """``text`` as valid UTF-8: a byte of a file name that was not UTF-8 (held by Python as a lone
    surrogate, ``\\udce9``) is written ``\\xe9``, so Mermaid, DOT and GraphML readers get text they
    can decode, and the byte is still recognisable."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that does not stand for a byte: write its code point
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def xml_text(text: str) -> str:
    """``printable`` plus the control characters XML cannot hold at all, written ``\\x01``."""
    return _XML_FORBIDDEN.sub(lambda match: f"\\x{ord(match[0]):02x}", printable(text))


def to_mermaid(result: ScanResult) -> str:
    """A ``flowchart LR``; conflicting objects get the red ``conflict`` class."""
    graph = result.graph
    ids = _short_ids(graph)
    bad = conflicting_nodes(result.conflicts)
    lines = ["flowchart LR", "    classDef conflict fill:#fdd,stroke:#c00,stroke-width:2px,color:#900"]
    for node in _sorted_nodes(graph):
        label = _mermaid_text(node_label(node, graph.nodes[node]["facts"]))
        shape = f'(["{label}"])' if graph.nodes[node].get("role") == Role.MISSING else f'["{label}"]'
        lines.append(f"    {ids[node]}{shape}")
    for source, target, data in _sorted_edges(graph):
        lines.append(f'    {ids[source]} -->|"{_mermaid_text(_edge_label(data))}"| {ids[target]}')
    marked = [ids[node] for node in _sorted_nodes(graph) if node in bad]
    if marked:
        lines.append(f"    class {','.join(marked)} conflict")
    return "\n".join(lines) + "\n"


def to_dot(result: ScanResult) -> str:
    """A Graphviz digraph; conflicting objects are drawn red."""
    graph = result.graph
    bad = conflicting_nodes(result.conflicts)
    lines = ["digraph process {", "    rankdir=LR;", '    node [shape=box, fontname="monospace"];']
    for node in _sorted_nodes(graph):
        attrs = [f"label={_dot_quote(node_label(node, graph.nodes[node]['facts']))}"]
        attrs.append(f"tooltip={_dot_quote(node)}")
        if node in bad:
            attrs += ["color=red", "fontcolor=red", "penwidth=2"]
        if graph.nodes[node].get("role") == Role.MISSING:
            attrs.append("style=dashed")
        lines.append(f"    {_dot_quote(node)} [{', '.join(attrs)}];")
    for source, target, data in _sorted_edges(graph):
        lines.append(
            f"    {_dot_quote(source)} -> {_dot_quote(target)} [label={_dot_quote(_edge_label(data))}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_graphml(result: ScanResult) -> str:
    """GraphML via networkx, on a copy whose attributes are all strings (GraphML has no records).

    Every string goes through ``xml_text``: networkx would write a lone surrogate (a file name that is
    not UTF-8) as ``&#56553;``, a character reference XML does not allow, and readers refuse the file."""
    graph = result.graph
    bad = conflicting_nodes(result.conflicts)
    plain: nx.DiGraph[str] = nx.DiGraph()
    for node in _sorted_nodes(graph):
        attributes = _node_attributes(node, graph.nodes[node], node in bad)
        plain.add_node(xml_text(node), **{key: xml_text(value) for key, value in attributes.items()})
    for source, target, data in _sorted_edges(graph):
        resolution = data.get("resolution")
        fallback = resolution.detail if isinstance(resolution, Resolution) else ""
        plain.add_edge(
            xml_text(source),
            xml_text(target),
            needed=xml_text(" ".join(edge_names(data))),
            via=xml_text(str(data.get("via", ""))),
            detail=xml_text(str(data.get("detail", "") or fallback)),
        )
    buffer = io.BytesIO()
    nx.write_graphml(plain, buffer, encoding="utf-8")
    return buffer.getvalue().decode("utf-8")


def _node_attributes(node: str, data: dict[str, object], conflict: bool) -> dict[str, str]:
    facts = data["facts"]
    assert isinstance(facts, ElfFacts)
    top = newest(tuple(need.version for need in facts.requires), "GLIBC")
    return {
        "label": node_label(node, facts),
        "path": node,
        "role": str(data.get("role", "")),
        "soname": facts.soname or "",
        "max_glibc": str(top) if top is not None else "",
        "needed": " ".join(facts.needed),
        "conflict": "true" if conflict else "false",
    }


def _sorted_nodes(graph: nx.DiGraph[str]) -> list[str]:
    return sorted(graph.nodes, key=lambda node: (graph.nodes[node].get("order", 0), node))


def _sorted_edges(graph: nx.DiGraph[str]) -> list[tuple[str, str, dict[str, object]]]:
    order = {node: index for index, node in enumerate(_sorted_nodes(graph))}
    return sorted(graph.edges(data=True), key=lambda edge: (order[edge[0]], order[edge[1]]))


def _short_ids(graph: nx.DiGraph[str]) -> dict[str, str]:
    return {node: f"n{index}" for index, node in enumerate(_sorted_nodes(graph))}


def _edge_label(data: dict[str, object]) -> str:
    """``libx.so (runpath)``; an edge that answers two names shows both: ``libx.so (runpath), libalias.so
    (already-loaded)``."""
    return printable(", ".join(f"{request.needed} ({request.via})" for request in edge_requests(data)))


def _mermaid_text(text: str) -> str:
    """Mermaid labels are in double quotes; a quote inside is written as an entity."""
    return text.replace('"', "#quot;")


def _dot_quote(text: str) -> str:
    text = printable(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
