"""Mermaid, DOT and GraphML of a real scan parse back, with the conflicting objects marked."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core.export import node_label, printable, to_dot, to_graphml, to_mermaid
from glibc_doctor.core.scan import ScanResult, scan

from tests.synthetic import Synthetic

MERMAID_NODE = re.compile(r'^    (n\d+)(\["(.*)"\]|\(\["(.*)"\]\))$')
MERMAID_EDGE = re.compile(r'^    (n\d+) -->\|"(.*)"\| (n\d+)$')
DOT_NODE = re.compile(r'^    "((?:[^"\\]|\\.)*)" \[(.*)\];$')
DOT_EDGE = re.compile(r'^    "((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[label="(?:[^"\\]|\\.)*"\];$')


@pytest.fixture(scope="module")
def result(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    return scan(
        str(synthetic.app),
        ext=(str(synthetic.ext_needs_238), str(synthetic.ext_clean)),
        env=env,
        use_cache=False,
    )


def mermaid_ids(text: str, result: ScanResult) -> dict[str, str]:
    """Mermaid id -> node path, through the labels (each label is unique in this graph)."""
    labels = {node_label(node, result.graph.nodes[node]["facts"]): node for node in result.graph.nodes}
    ids = {}
    for line in text.splitlines():
        match = MERMAID_NODE.match(line)
        if match:
            ids[match[1]] = labels[match[3] or match[4]]
    return ids


def test_mermaid_has_one_line_per_node_and_edge(result: ScanResult) -> None:
    text = to_mermaid(result)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert sum(1 for line in lines if MERMAID_NODE.match(line)) == result.graph.number_of_nodes()
    assert sum(1 for line in lines if MERMAID_EDGE.match(line)) == result.graph.number_of_edges()


def test_mermaid_edges_connect_the_graphs_nodes(result: ScanResult) -> None:
    text = to_mermaid(result)
    ids = mermaid_ids(text, result)
    edges = {(ids[m[1]], ids[m[3]]) for line in text.splitlines() if (m := MERMAID_EDGE.match(line))}
    assert edges == set(result.graph.edges)


def test_mermaid_marks_exactly_the_conflicting_objects_red(result: ScanResult, synthetic: Synthetic) -> None:
    text = to_mermaid(result)
    ids = mermaid_ids(text, result)
    assert "    classDef conflict fill:#fdd,stroke:#c00,stroke-width:2px,color:#900" in text.splitlines()
    (class_line,) = [line for line in text.splitlines() if line.startswith("    class ")]
    marked = {ids[i] for i in class_line.split()[1].split(",")}
    assert marked == {str(synthetic.ext_needs_238)}


def test_dot_is_one_digraph_of_quoted_statements(result: ScanResult) -> None:
    lines = to_dot(result).splitlines()
    assert lines[0] == "digraph process {"
    assert lines[-1] == "}"
    body = [line for line in lines[1:-1] if not line.startswith(("    rankdir", "    node "))]
    assert all(DOT_NODE.match(line) or DOT_EDGE.match(line) for line in body)
    assert sum(1 for line in body if DOT_EDGE.match(line)) == result.graph.number_of_edges()


def test_dot_draws_the_conflicting_object_red(result: ScanResult, synthetic: Synthetic) -> None:
    red = {
        m[1] for line in to_dot(result).splitlines() if (m := DOT_NODE.match(line)) and "color=red" in m[2]
    }
    assert red == {str(synthetic.ext_needs_238)}


def test_graphml_reads_back_with_the_same_nodes_and_edges(result: ScanResult, tmp_path: Path) -> None:
    path = tmp_path / "process.graphml"
    path.write_text(to_graphml(result))
    graph = nx.read_graphml(path)
    assert set(graph.nodes) == set(result.graph.nodes)
    assert set(graph.edges) == set(result.graph.edges)


def test_graphml_attributes_are_strings_with_the_conflict_flag(
    result: ScanResult, synthetic: Synthetic, tmp_path: Path
) -> None:
    path = tmp_path / "process.graphml"
    path.write_text(to_graphml(result))
    graph = nx.read_graphml(path)
    ext = graph.nodes[str(synthetic.ext_needs_238)]
    assert (ext["conflict"], ext["max_glibc"], ext["role"]) == ("true", "GLIBC_2.38", "extension")
    assert graph.nodes[str(synthetic.ext_clean)]["conflict"] == "false"


def test_labels_carry_the_newest_glibc_need(result: ScanResult, synthetic: Synthetic) -> None:
    facts = result.graph.nodes[str(synthetic.ext_needs_238)]["facts"]
    assert node_label(str(synthetic.ext_needs_238), facts) == f"{synthetic.ext_needs_238.name} GLIBC_2.38"


@pytest.fixture(scope="module")
def odd_names(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    """Extensions named with a byte that is not UTF-8 (``caf\\xe9.so``) and with a control character."""
    plugins = tmp_path_factory.mktemp("odd")
    for name in (b"caf\xe9.so", b"bell\x07.so"):
        with open(os.fsencode(plugins) + b"/" + name, "wb") as out:
            out.write(synthetic.ext_needs_238.read_bytes())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    return scan(str(synthetic.app), ext=(str(plugins),), env=env, use_cache=False)


def test_graphml_of_names_that_are_not_utf8_or_hold_control_characters_reads_back(
    odd_names: ScanResult, tmp_path: Path
) -> None:
    path = tmp_path / "process.graphml"
    path.write_text(to_graphml(odd_names), encoding="utf-8")
    names = {os.path.basename(node) for node in nx.read_graphml(path).nodes}
    assert {"caf\\xe9.so", "bell\\x07.so"} <= names


@pytest.mark.parametrize("render", [to_mermaid, to_dot], ids=["mermaid", "dot"])
def test_mermaid_and_dot_of_a_name_that_is_not_utf8_are_utf8_with_the_byte_escaped(
    odd_names: ScanResult, render: Callable[[ScanResult], str]
) -> None:
    text = render(odd_names)
    text.encode("utf-8")  # no lone surrogate left: a strict writer accepts it
    assert "caf\\xe9.so" in text.replace("\\\\", "\\")


def test_printable_keeps_valid_text_and_escapes_only_the_bytes_that_were_not_utf8() -> None:
    assert printable("/x/café/caf\udce9.so") == "/x/café/caf\\xe9.so"
