"""The TUI summary's verdict (tui/widgets/describe.py ``verdict``, over tui/verdict.py): "press f to
fix" only when the fix plan's rule (the patched interpreter's glibc view, core/patch/view.py) says the
repatch helps, not when the stdenv merely has a newer glibc release number."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import networkx as nx
from glibc_doctor.core.analysis import analyze, glibc_info
from glibc_doctor.core.model import Conflict, Effect, GlibcInfo, Kind, Severity, StdenvInfo, Target
from glibc_doctor.tui.widgets.describe import badge, verdict

from tests.core.test_analysis import (  # noqa: F401 (debian_like, libc_236: fixtures)
    app_closure,
    debian_like,
    ext_238_process,
    libc_236,
    process,
    stdenv_with,
)
from tests.synthetic import Synthetic


@dataclasses.dataclass(frozen=True)
class Scanned:
    """What the summary reads of a scan (``ScanLike``), around a graph built by the core tests."""

    target: Target
    graph: nx.DiGraph[str]
    conflicts: tuple[Conflict, ...]
    glibc: GlibcInfo
    stdenv: StdenvInfo | None


def scanned(graph: nx.DiGraph[str], stdenv: StdenvInfo | None) -> Scanned:
    root = str(graph.graph["root"])
    conflicts = analyze(graph, stdenv=stdenv)
    return Scanned(Target("generic", root, root), graph, conflicts, glibc_info(graph), stdenv)


def test_a_stdenv_whose_view_defines_every_missing_version_offers_f(synthetic: Synthetic) -> None:
    result = scanned(ext_238_process(synthetic), stdenv_with(synthetic.new_libc, "2.38"))
    ok, sentence = verdict(result)
    assert not ok
    assert sentence == "✗ 1 object cannot load on glibc 2.31; the stdenv has 2.38: press f to fix"


def test_a_non_glibc_library_only_next_to_the_stdenv_libc_offers_no_f(
    debian_like: tuple[nx.DiGraph[str], StdenvInfo, Path],  # noqa: F811 (the imported fixture)
) -> None:
    graph, stdenv, _ = debian_like
    result = scanned(graph, stdenv)
    assert (result.glibc.version, stdenv.version) == ("2.31", "2.38")  # release numbers: "fixable"
    ok, sentence = verdict(result)
    assert not ok
    assert "press f" not in sentence
    assert sentence == "✗ 1 object cannot load; f cannot fix it (ext_foo.so: stdenv lacks FOO_2.0)"


def test_a_stdenv_labelled_newer_than_its_libc_defines_offers_no_f(
    synthetic: Synthetic,
    libc_236: Path,  # noqa: F811 (the imported fixture)
) -> None:
    result = scanned(ext_238_process(synthetic), stdenv_with(libc_236, "2.38"))
    ok, sentence = verdict(result)
    assert not ok
    assert "press f" not in sentence
    assert "f cannot fix it (ext_needs_238.so: needs 2.38" in sentence


def test_when_f_fixes_some_objects_the_summary_says_how_many_and_why_not_the_rest(
    synthetic: Synthetic,
    libc_236: Path,  # noqa: F811 (the imported fixture)
) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "ext_238.so", s.ext_needs_238),
            (s.ext_needs_238, "libc.so.6", s.old_libc),
            (s.app, "ext_234.so", s.ext_needs_234),
            (s.ext_needs_234, "libc.so.6", s.old_libc),
        ],
        extensions=[s.ext_needs_238, s.ext_needs_234],
    )
    ok, sentence = verdict(scanned(graph, stdenv_with(libc_236, "2.36")))
    assert not ok
    assert (
        sentence == "✗ 2 objects cannot load; press f to fix 1 (ext_needs_238.so: needs 2.38 > stdenv 2.36)"
    )


def test_without_a_stdenv_the_summary_points_at_the_conflicts(synthetic: Synthetic) -> None:
    ok, sentence = verdict(scanned(ext_238_process(synthetic), None))
    assert (ok, sentence) == (False, "✗ 1 object cannot load: see Conflicts (2)")


def test_a_node_badge_names_what_the_loader_refuses_beside_the_missing_versions() -> None:
    missing = Conflict(Kind.MISSING_VERSION, "/x/ext.so", "m", version="GLIBC_2.38")
    stack = Conflict(Kind.EXEC_STACK, "/x/ext.so", "cannot enable executable stack …")
    assert badge([missing, stack]).plain == " ✗ GLIBC_2.38, exec-stack"
    crash = Conflict(Kind.DT_RELR, "/x/relr.so", "crashes as it loads", effect=Effect.CRASH)
    assert badge([crash]).plain == " ✗ dt-relr crash"
    warned = Conflict(Kind.EXEC_STACK, "/x/ext.so", "after a repatch …", severity=Severity.WARNING)
    assert badge([warned]).plain == " ! exec-stack"
