"""Conflicts on process graphs of the synthetic corpus (real gcc-built ELF, read by core/elf.py).

The graphs are assembled here edge by edge (which file answers which DT_NEEDED name), so each test
states the loader's decision it starts from and checks only what analysis concludes from it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core.analysis import analyze, glibc_info
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.loader import Loader, loader_config
from glibc_doctor.core.model import (
    DF_1_NODEFLIB,
    Conflict,
    ElfFacts,
    Extension,
    GlibcInfo,
    Kind,
    Problem,
    Rejected,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    Target,
    Via,
)
from glibc_doctor.core.patch.plan import FixPlan, PackageSurvey, classify, make_plan
from glibc_doctor.core.patch.view import survey_view, view_provides

from tests.gcc import compile_elf
from tests.synthetic import NEW_LIBC_VERSIONS, OLD_LIBC_VERSIONS, Synthetic, _fake_library

Link = tuple[Path | str, str, Path | str | None]  # requester, needed name, provider (None: not found)


def process(
    root: Path,
    links: Sequence[Link],
    *,
    loader: Path | None = None,
    extensions: Sequence[Path] = (),
    rejected: Sequence[Rejected] = (),
    order_dependent: Sequence[str] = (),
) -> nx.DiGraph:
    """A process graph as core/process.py builds it, with the loader's answers given by ``links``."""
    graph = nx.DiGraph(
        root=str(root), loader=str(loader) if loader else None, order_dependent=list(order_dependent)
    )
    _add(graph, str(root), Role.INTERPRETER)
    if loader is not None:
        _add(graph, str(loader), Role.LOADER)
    for requester, needed, provider in links:
        requester_id = str(requester)
        if provider is None:
            node = f"not-found:{needed}"
            graph.add_node(node, facts=ElfFacts(path=needed, problem=Problem.MISSING), role=Role.MISSING)
            graph.nodes[node]["order"] = len(graph) - 1
            resolution = Resolution(
                needed, requester_id, None, Via.NOT_FOUND, searched=("/nowhere",), rejected=tuple(rejected)
            )
        else:
            node = str(provider)
            role = Role.EXTENSION if Path(provider) in extensions else Role.LIBRARY
            _add(graph, node, role)
            resolution = Resolution(needed, requester_id, node, Via.RPATH)
        graph.add_edge(
            requester_id, node, needed=needed, via=resolution.via, detail="", resolution=resolution
        )
    return graph


def _add(graph: nx.DiGraph, path: str, role: Role) -> None:
    if path not in graph:
        graph.add_node(path, facts=read_elf(path), role=role, order=len(graph))


def app_closure(s: Synthetic, libc: Path | None = None) -> list[Link]:
    libc = libc or s.old_libc
    return [
        (s.app, "libc.so.6", libc),
        (s.app, "libm.so.6", s.old_libm),
        (s.app, "libpthread.so.0", s.old_libpthread),
    ]


def errors(conflicts: Sequence[Conflict]) -> list[Conflict]:
    return [c for c in conflicts if c.severity == Severity.ERROR]


def test_an_extension_missing_two_versions_gets_one_record_per_version(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_238), (s.ext_needs_238, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_238],
    )
    conflicts = analyze(graph)
    assert [(c.kind, c.object, c.version) for c in conflicts] == [
        (Kind.MISSING_VERSION, str(s.ext_needs_238), "GLIBC_2.34"),
        (Kind.MISSING_VERSION, str(s.ext_needs_238), "GLIBC_2.38"),
    ]


def test_each_missing_version_names_the_symbols_bound_to_it(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_238), (s.ext_needs_238, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_238],
    )
    symbols = {c.version: c.symbols for c in analyze(graph)}
    assert "pthread_create" in symbols["GLIBC_2.34"]
    assert "strlcpy" in symbols["GLIBC_2.38"]
    assert "strlcpy" not in symbols["GLIBC_2.34"]


def test_the_message_is_in_the_loaders_own_words(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_234), (s.ext_needs_234, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_234],
    )
    (conflict,) = analyze(graph)
    assert conflict.message == f"{s.old_libc}: version `GLIBC_2.34' not found (required by {s.ext_needs_234})"


def test_a_record_carries_the_oldest_glibc_that_satisfies_the_object(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_238), (s.ext_needs_238, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_238],
    )
    assert {c.min_glibc for c in analyze(graph)} == {"2.38"}


def test_the_cause_names_the_loaded_glibc_and_what_the_object_needs(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_234), (s.ext_needs_234, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_234],
    )
    (conflict,) = analyze(graph)
    assert "glibc 2.31" in conflict.cause
    assert "built against a newer glibc" in conflict.cause
    assert any(fix.startswith("glibc-doctor fix ") for fix in conflict.fixes)


def test_a_transitive_library_conflict_is_reported_on_the_library_with_its_chain(
    synthetic: Synthetic,
) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "ext_transitive.so", s.ext_transitive),
            (s.ext_transitive, "libdep.so", s.libdep),
            (s.ext_transitive, "libc.so.6", s.old_libc),
            (s.libdep, "libc.so.6", s.old_libc),
        ],
        extensions=[s.ext_transitive],
    )
    (conflict,) = analyze(graph)
    assert (conflict.object, conflict.version) == (str(s.libdep), "GLIBC_2.33")
    assert conflict.chain == (str(s.app), str(s.ext_transitive), str(s.libdep))
    assert "stat" in conflict.symbols


def test_a_missing_weak_version_is_not_an_error(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext_weak.so", s.ext_weak), (s.ext_weak, "libc.so.6", s.old_libc)],
        extensions=[s.ext_weak],
    )
    conflicts = analyze(graph)
    assert errors(conflicts) == []
    assert [(c.version, c.severity) for c in conflicts] == [("GLIBC_2.34", Severity.WARNING)]


def test_an_extension_built_against_an_old_enough_glibc_is_clean(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "ext_clean.so", s.ext_clean), (s.ext_clean, "libc.so.6", s.old_libc)],
        extensions=[s.ext_clean],
    )
    assert analyze(graph) == ()


def test_the_same_extension_with_the_new_glibc_loaded_is_clean(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            (s.app, "libc.so.6", s.new_libc),
            (s.app, "ext.so", s.ext_needs_238),
            (s.ext_needs_238, "libc.so.6", s.new_libc),
        ],
        extensions=[s.ext_needs_238],
    )
    assert analyze(graph) == ()


def test_a_library_not_found_is_reported_on_its_requester(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "ext_transitive.so", s.ext_transitive),
            (s.ext_transitive, "libdep.so", None),
        ],
        extensions=[s.ext_transitive],
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object, conflict.library) == (
        Kind.NOT_FOUND,
        str(s.ext_transitive),
        "libdep.so",
    )
    assert conflict.message == "libdep.so: cannot open shared object file: No such file or directory"
    assert "/nowhere" in conflict.cause


def test_only_wrong_class_candidates_make_a_wrong_elf_record(synthetic: Synthetic) -> None:
    s = synthetic
    rejected = [Rejected(str(s.libc32), "wrong ELF class: ELFCLASS32")]
    graph = process(s.app, [(s.app, "libc.so.6", None)], rejected=rejected)
    (conflict,) = analyze(graph)
    assert conflict.kind == Kind.WRONG_ELF
    assert str(s.libc32) in conflict.cause


def test_a_32_bit_extension_in_a_64_bit_process_is_wrong_elf(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app, [*app_closure(s), (s.app, "ext32.so", s.ext32_needs_234)], extensions=[s.ext32_needs_234]
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object) == (Kind.WRONG_ELF, str(s.ext32_needs_234))
    assert "ELFCLASS32" in conflict.message


def test_a_foreign_machine_extension_is_wrong_elf(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app, [*app_closure(s), (s.app, "ext.so", s.foreign_machine)], extensions=[s.foreign_machine]
    )
    assert [c.kind for c in analyze(graph)] == [Kind.WRONG_ELF]


def test_an_unparsable_object_is_unreadable_not_a_crash(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app, [*app_closure(s), (s.app, "ext.so", s.truncated_dynamic)], extensions=[s.truncated_dynamic]
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object) == (Kind.UNREADABLE, str(s.truncated_dynamic))


def test_glibc_libraries_of_two_builds_sharing_glibc_private_are_an_error(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            (s.app, "libc.so.6", s.new_libc),
            (s.app, "libpthread.so.0", s.old_libpthread),
            (s.old_libpthread, "libc.so.6", s.new_libc),
        ],
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object, conflict.severity) == (
        Kind.MIXED_GLIBC,
        str(s.old_libpthread),
        Severity.ERROR,
    )
    assert conflict.version == "GLIBC_PRIVATE"


def test_glibc_libraries_of_two_builds_without_private_calls_are_a_warning(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            (s.app, "libc.so.6", s.new_libc),
            (s.app, "libm.so.6", s.old_libm),
            (s.old_libm, "libc.so.6", s.new_libc),
        ],
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.severity) == (Kind.MIXED_GLIBC, Severity.WARNING)


def test_a_loader_of_another_glibc_than_the_libc_is_a_loader_mismatch(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(s.app, [(s.app, "libc.so.6", s.new_libc)], loader=s.old_loader)
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object) == (Kind.LOADER_MISMATCH, str(s.new_libc))
    assert str(s.old_loader) in conflict.cause


def test_loader_and_libc_of_one_glibc_are_no_mismatch(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(s.app, app_closure(s), loader=s.old_loader)
    assert analyze(graph) == ()


def test_an_order_dependent_soname_is_a_warning(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(s.app, app_closure(s), order_dependent=["libdep.so"])
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.severity, conflict.library) == (
        Kind.ORDER_DEPENDENT,
        Severity.WARNING,
        "libdep.so",
    )


def test_a_conflict_only_in_the_strict_graph_is_a_latent_warning(synthetic: Synthetic) -> None:
    s = synthetic
    exact = process(
        s.app,
        [
            (s.app, "libc.so.6", s.new_libc),
            (s.app, "ext.so", s.ext_needs_234),
            (s.ext_needs_234, "libc.so.6", s.new_libc),
        ],
        extensions=[s.ext_needs_234],
    )
    strict = process(
        s.app,
        [
            (s.app, "libc.so.6", s.new_libc),
            (s.app, "ext.so", s.ext_needs_234),
            (s.ext_needs_234, "libc.so.6", s.old_libc),
        ],
        extensions=[s.ext_needs_234],
    )
    conflicts = analyze(exact, strict)
    assert [(c.kind, c.version, c.mode, c.severity) for c in conflicts] == [
        (Kind.LATENT, "GLIBC_2.34", "strict", Severity.WARNING)
    ]


def test_a_conflict_in_both_graphs_is_reported_once(synthetic: Synthetic) -> None:
    s = synthetic
    links = [*app_closure(s), (s.app, "ext.so", s.ext_needs_234), (s.ext_needs_234, "libc.so.6", s.old_libc)]
    graph = process(s.app, links, extensions=[s.ext_needs_234])
    assert [c.kind for c in analyze(graph, process(s.app, links, extensions=[s.ext_needs_234]))] == [
        Kind.MISSING_VERSION
    ]


def test_errors_come_before_warnings_and_records_are_ordered(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "b.so", s.ext_needs_238),
            (s.ext_needs_238, "libc.so.6", s.old_libc),
            (s.app, "a.so", s.ext_needs_234),
            (s.ext_needs_234, "libc.so.6", s.old_libc),
        ],
        extensions=[s.ext_needs_238, s.ext_needs_234],
        order_dependent=["libm.so.6"],
    )
    conflicts = analyze(graph)
    assert [c.severity for c in conflicts] == [Severity.ERROR] * 3 + [Severity.WARNING]
    assert [c.object for c in conflicts[:3]] == sorted(c.object for c in conflicts[:3])
    assert analyze(graph) == conflicts


def test_glibc_info_reports_the_release_of_the_libc_that_loads(synthetic: Synthetic) -> None:
    s = synthetic
    info = glibc_info(process(s.app, app_closure(s), loader=s.old_loader))
    assert (info.version, info.libc, info.loader) == ("2.31", str(s.old_libc), str(s.old_loader))


def test_a_provider_without_version_definitions_is_not_checked(synthetic: Synthetic) -> None:
    s = synthetic
    graph = process(
        s.app,
        [(s.app, "ext.so", s.ext_needs_234), (s.ext_needs_234, "libc.so.6", s.ext_clean)],
        extensions=[s.ext_needs_234],
    )
    assert errors(analyze(graph)) == []


# --- libstdc++ -------------------------------------------------------------------------------------------

CXX_SCRIPT = "GLIBCXX_3.4 {{ global: cxx_base; local: *; }};\n{extra}"


def fake_libstdcxx(path: Path, newest: str) -> Path:
    """A libstdc++.so.6 defining GLIBCXX_3.4 and ``newest`` (one function each)."""
    source = "void cxx_base(void) {}\nvoid cxx_new(void) {}\n"
    script = CXX_SCRIPT.format(extra=f"{newest} {{ global: cxx_new; }} GLIBCXX_3.4;\n")
    return compile_elf(path, source, soname="libstdc++.so.6", version_script=script, nostdlib=True)


def cxx_extension(path: Path, libstdcxx: Path) -> Path:
    """An extension calling ``cxx_new``, linked against ``libstdcxx``: it needs that one's newest GLIBCXX."""
    return compile_elf(path, "void cxx_new(void);\nvoid f(void) { cxx_new(); }\n", libs=[libstdcxx])


def test_a_libstdcxx_version_missing_is_reported_with_the_stdenvs_libstdcxx(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    new = fake_libstdcxx(tmp_path / "new" / "libstdc++.so.6", "GLIBCXX_3.4.30")
    old = fake_libstdcxx(tmp_path / "old" / "libstdc++.so.6", "GLIBCXX_3.4.28")
    ext = cxx_extension(tmp_path / "ext_cxx.so", new)
    s = synthetic
    graph = process(s.app, [(s.app, "ext_cxx.so", ext), (ext, "libstdc++.so.6", old)], extensions=[ext])
    stdenv = StdenvInfo("2.38", str(s.new_loader), str(s.new_libc), (), "test", "x", libstdcxx=str(new))
    (conflict,) = [c for c in analyze(graph, stdenv=stdenv) if c.library == "libstdc++.so.6"]
    assert (conflict.object, conflict.version, conflict.provider) == (str(ext), "GLIBCXX_3.4.30", str(old))
    assert conflict.symbols == ("cxx_new",)
    assert "libstdc++" in conflict.cause
    assert str(new) in conflict.cause


# --- fixes that follow the stdenv ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def libc_236(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A libc.so.6 defining GLIBC_2.2.5 … GLIBC_2.36: a stdenv too old for an object needing 2.38."""
    nodes = [*OLD_LIBC_VERSIONS, *(node for node in NEW_LIBC_VERSIONS if node[0] <= "GLIBC_2.36")]
    return _fake_library(tmp_path_factory.mktemp("glibc-2.36") / "libc.so.6", "libc.so.6", nodes)


def stdenv_with(libc: Path, version: str, libstdcxx: Path | None = None) -> StdenvInfo:
    return StdenvInfo(version, "ld.so", str(libc), (), "test", "x", str(libstdcxx) if libstdcxx else None)


def ext_238_process(s: Synthetic) -> nx.DiGraph:
    return process(
        s.app,
        [*app_closure(s), (s.app, "ext.so", s.ext_needs_238), (s.ext_needs_238, "libc.so.6", s.old_libc)],
        extensions=[s.ext_needs_238],
    )


def test_a_stdenv_defining_every_missing_version_makes_the_repatch_the_first_fix(
    synthetic: Synthetic,
) -> None:
    s = synthetic
    for conflict in analyze(ext_238_process(s), stdenv=stdenv_with(s.new_libc, "2.38")):
        assert conflict.fixes[0] == (
            f"glibc-doctor fix {s.app}: repatch a copy of the interpreter against the stdenv glibc 2.38 "
            "(the original is not touched)"
        )


def test_a_stdenv_too_old_for_one_version_of_the_object_offers_no_repatch_for_any_of_its_records(
    synthetic: Synthetic, libc_236: Path
) -> None:
    s = synthetic
    conflicts = analyze(ext_238_process(s), stdenv=stdenv_with(libc_236, "2.36"))
    assert [c.version for c in conflicts] == ["GLIBC_2.34", "GLIBC_2.38"]
    for conflict in conflicts:
        assert "The stdenv glibc 2.36 is too old for it too (it needs 2.38)." in conflict.cause
        assert not any(fix.startswith("glibc-doctor fix") for fix in conflict.fixes)
        assert conflict.fixes[0].startswith(
            f"rebuild {s.ext_needs_238.name} with a toolchain whose glibc is ≤ 2.31"
        )
        assert conflict.fixes[1] == f"move the stdenv to glibc ≥ 2.38, then run glibc-doctor fix {s.app}"


def test_the_stdenv_is_judged_by_the_versions_its_libc_defines_not_its_release_label(
    synthetic: Synthetic, libc_236: Path
) -> None:
    s = synthetic
    conflicts = analyze(ext_238_process(s), stdenv=stdenv_with(libc_236, "2.38"))
    assert all(not fix.startswith("glibc-doctor fix") for c in conflicts for fix in c.fixes)


def test_without_a_stdenv_the_fix_asks_for_a_glibc_dir_new_enough_for_the_object(
    synthetic: Synthetic,
) -> None:
    s = synthetic
    for conflict in analyze(ext_238_process(s)):
        assert conflict.fixes[0].startswith(f"glibc-doctor fix {s.app} --glibc DIR: ")
        assert "a glibc ≥ 2.38" in conflict.fixes[0]


def test_a_cause_is_about_the_object_not_why_the_process_loads_its_glibc(synthetic: Synthetic) -> None:
    s = synthetic
    graph = ext_238_process(s)
    graph.graph["loader"] = str(s.old_loader)
    for conflict in analyze(graph, stdenv=stdenv_with(s.new_libc, "2.38")):
        assert "PT_INTERP" not in conflict.cause
        assert "requested first" not in conflict.cause
        assert conflict.cause.count(". ") <= 1  # one or two sentences


def transitive_process(s: Synthetic) -> nx.DiGraph:
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "ext_transitive.so", s.ext_transitive),
            (s.ext_transitive, "libdep.so", s.libdep),
            (s.ext_transitive, "libc.so.6", s.old_libc),
            (s.libdep, "libc.so.6", s.old_libc),
        ],
        extensions=[s.ext_transitive],
    )
    cache = Resolution(
        "libdep.so",
        str(s.ext_transitive),
        str(s.libdep),
        Via.CACHE,
        f"/etc/ld.so.cache: libdep.so => {s.libdep}",
    )
    graph.edges[str(s.ext_transitive), str(s.libdep)].update(via=Via.CACHE, resolution=cache)
    return graph


def test_a_library_pulled_in_by_an_extension_is_named_through_it_and_how_it_was_found(
    synthetic: Synthetic,
) -> None:
    s = synthetic
    (conflict,) = analyze(transitive_process(s), stdenv=stdenv_with(s.new_libc, "2.38"))
    assert conflict.cause.startswith(
        f"{s.ext_transitive.name}'s libdep.so is the one in {s.libdep.parent}, "
        "found through /etc/ld.so.cache, built for glibc 2.33: it needs GLIBC_2.33"
    )


def test_the_fix_for_a_pulled_in_library_points_at_the_extension_not_the_library(
    synthetic: Synthetic,
) -> None:
    s = synthetic
    (conflict,) = analyze(transitive_process(s), stdenv=stdenv_with(s.new_libc, "2.38"))
    assert conflict.fixes[0].startswith(f"glibc-doctor fix {s.app}: repatch a copy of the interpreter")
    assert conflict.fixes[1].startswith(f"rebuild {s.ext_transitive.name} ")
    assert not any("rebuild libdep" in fix for fix in conflict.fixes)


def test_a_python_extension_is_rebuilt_with_pip_under_the_name_of_its_distribution(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    s = synthetic
    site = tmp_path / "venv" / "lib" / "python3.9" / "site-packages"
    (site / "Foo_Bar-1.0.dist-info").mkdir(parents=True)
    module = site / "foo" / "_speedups.so"
    module.parent.mkdir()
    module.write_bytes(s.ext_needs_234.read_bytes())
    (site / "Foo_Bar-1.0.dist-info" / "RECORD").write_text("foo/__init__.py,,\nfoo/_speedups.so,sha256=x,1\n")
    graph = process(
        s.app,
        [*app_closure(s), (s.app, "_speedups.so", module), (module, "libc.so.6", s.old_libc)],
        extensions=[module],
    )
    graph.graph["target"] = Target(
        "python", str(tmp_path / "venv"), str(s.app), (Extension(str(module), "foo._speedups"),)
    )
    (conflict,) = analyze(graph, stdenv=stdenv_with(s.old_libc, "2.31"))
    assert "`pip install --no-binary :all: --force-reinstall Foo_Bar`" in conflict.fixes[0]
    assert conflict.fixes[0].startswith("rebuild foo._speedups ")
    assert "manylinux_2_31 or older wheel of Foo_Bar" in conflict.fixes[0]


def test_the_fix_command_of_a_generic_program_repeats_its_ext_files_and_glibc_dir(
    synthetic: Synthetic,
) -> None:
    from glibc_doctor.core.analysis import fix_command

    s = synthetic
    target = Target("generic", str(s.app), str(s.app), (Extension(str(s.ext_needs_238), "ext"),))
    stdenv = StdenvInfo("2.38", "ld.so", str(s.new_libc), (), f"--glibc {s.new_glibc}", "x")
    assert fix_command(str(s.app), target, stdenv) == (
        f"glibc-doctor fix {s.app} --ext {s.ext_needs_238} --glibc {s.new_glibc}"
    )


def test_a_libstdcxx_version_the_stdenvs_libstdcxx_lacks_too_offers_no_repatch(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    old = fake_libstdcxx(tmp_path / "old" / "libstdc++.so.6", "GLIBCXX_3.4.28")
    new = fake_libstdcxx(tmp_path / "new" / "libstdc++.so.6", "GLIBCXX_3.4.30")
    ext = cxx_extension(tmp_path / "ext_cxx.so", new)
    s = synthetic
    graph = process(s.app, [(s.app, "ext_cxx.so", ext), (ext, "libstdc++.so.6", old)], extensions=[ext])
    (conflict,) = analyze(graph, stdenv=stdenv_with(s.new_libc, "2.38", libstdcxx=old))
    assert f"The stdenv's libstdc++ ({old}) does not define it either." in conflict.cause
    assert not any(fix.startswith("glibc-doctor fix") for fix in conflict.fixes)
    assert "GLIBCXX_3.4.30" in conflict.fixes[1]


def resolved_by_the_loader(s: Synthetic, name: str, search_dir: Path) -> Resolution:
    """The loader model's answer for ``name`` asked by an extension whose only search dir is
    ``search_dir`` (RUNPATH, and DF_1_NODEFLIB so neither the cache nor the default dirs answer)."""
    requester = dataclasses.replace(
        read_elf(str(s.ext_clean)), runpath=str(search_dir), flags_1=DF_1_NODEFLIB
    )
    return Loader(loader_config(str(s.app), {})).resolve(name, requester, [read_elf(str(s.app))])


def test_a_library_found_only_in_the_other_class_is_reported_in_ld_sos_words(synthetic: Synthetic) -> None:
    s = synthetic
    resolution = resolved_by_the_loader(s, "libc.so.6", s.libc32.parent)
    graph = process(
        s.app, [*app_closure(s), (s.app, "ext.so", s.ext_clean), (s.ext_clean, "libc.so.6", None)]
    )
    graph.edges[str(s.ext_clean), "not-found:libc.so.6"]["resolution"] = resolution
    (conflict,) = [c for c in analyze(graph) if c.object == str(s.ext_clean)]
    assert (conflict.kind, conflict.message) == (Kind.WRONG_ELF, "libc.so.6: wrong ELF class: ELFCLASS32")


def test_a_library_found_nowhere_keeps_the_no_such_file_words(synthetic: Synthetic, tmp_path: Path) -> None:
    s = synthetic
    resolution = resolved_by_the_loader(s, "libnothere.so", tmp_path)
    graph = process(
        s.app, [*app_closure(s), (s.app, "ext.so", s.ext_clean), (s.ext_clean, "libnothere.so", None)]
    )
    graph.edges[str(s.ext_clean), "not-found:libnothere.so"]["resolution"] = resolution
    (conflict,) = [c for c in analyze(graph) if c.object == str(s.ext_clean)]
    assert conflict.message == "libnothere.so: cannot open shared object file: No such file or directory"


def test_an_extension_whose_link_leads_nowhere_is_its_own_record_not_the_interpreters(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    s = synthetic
    dangling = tmp_path / "gone.so"
    dangling.symlink_to(tmp_path / "removed.so")
    graph = process(s.app, [*app_closure(s), (s.app, str(dangling), None)])
    graph.graph["target"] = Target(
        kind="generic", spec=str(s.app), executable=str(s.app), extensions=(Extension(str(dangling), "gone"),)
    )
    (conflict,) = analyze(graph)
    assert (conflict.kind, conflict.object, conflict.library) == (
        Kind.NOT_FOUND,
        str(dangling),
        str(dangling),
    )
    assert conflict.chain == (str(s.app), str(dangling))


def test_a_dt_needed_path_that_leads_nowhere_stays_a_record_of_its_requester(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    s = synthetic
    missing = str(tmp_path / "libabsolute.so")
    graph = process(s.app, [*app_closure(s), (s.app, "ext.so", s.ext_clean), (s.ext_clean, missing, None)])
    (conflict,) = analyze(graph)
    assert (conflict.object, conflict.library) == (str(s.ext_clean), missing)


# --- one rule for "fixable by fix": the scan's advice and the fix plan agree --------------------------


@pytest.fixture
def debian_like(synthetic: Synthetic, tmp_path: Path) -> tuple[nx.DiGraph[str], StdenvInfo, Path]:
    """A stdenv whose libc dir also holds a non-glibc library (libfoo.so.1 defining FOO_2.0), as
    /lib/x86_64-linux-gnu does, and a process whose extension needs FOO_2.0 and GLIBC_2.38 but loads
    an older libfoo (FOO_1.0 only) and the old libc."""
    s = synthetic
    stdenv_dir, old_dir = tmp_path / "stdenv", tmp_path / "old"
    stdenv_dir.mkdir()
    shutil.copy(s.new_libc, stdenv_dir / "libc.so.6")
    shutil.copy(s.new_loader, stdenv_dir / "ld-linux-x86-64.so.2")
    new_foo = _fake_library(
        stdenv_dir / "libfoo.so.1", "libfoo.so.1", [("FOO_1.0", ["foo_one"]), ("FOO_2.0", ["foo_two"])]
    )
    old_foo = _fake_library(old_dir / "libfoo.so.1", "libfoo.so.1", [("FOO_1.0", ["foo_one"])])
    ext = compile_elf(
        tmp_path / "ext" / "ext_foo.so",
        "void foo_two(void); char *strlcpy(char *, const char *, unsigned long);\n"
        "void use(void) { foo_two(); strlcpy(0, 0, 0); }\n",
        libs=[new_foo, s.new_libc],
        nostdlib=True,
    )
    graph = process(
        s.app,
        [
            *app_closure(s),
            (s.app, "ext_foo.so", ext),
            (ext, "libfoo.so.1", old_foo),
            (ext, "libc.so.6", s.old_libc),
        ],
        extensions=[ext],
    )
    stdenv = StdenvInfo(
        "2.38",
        str(stdenv_dir / "ld-linux-x86-64.so.2"),
        str(stdenv_dir / "libc.so.6"),
        (str(stdenv_dir),),
        "test",
        "fp",
    )
    return graph, stdenv, tmp_path / "store"


def test_a_non_glibc_library_next_to_the_stdenv_libc_is_not_fixable_in_the_scan_or_the_plan(
    debian_like: tuple[nx.DiGraph[str], StdenvInfo, Path],
) -> None:
    graph, stdenv, store = debian_like
    conflicts = analyze(graph, stdenv=stdenv)
    provided = view_provides(survey_view(stdenv, str(store)), {c.library for c in conflicts if c.library})
    fixed, remaining = classify(conflicts, stdenv, provided)
    by_version = {c.version: c for c in conflicts}
    assert set(by_version) == {"FOO_2.0", "GLIBC_2.38"}
    assert [r.conflict.version for r in remaining] == ["FOO_2.0"]
    assert remaining[0].reason == "the stdenv has no libfoo.so.1 to provide FOO_2.0"
    assert not by_version["FOO_2.0"].fixes[0].startswith("glibc-doctor fix")  # no repatch offered
    assert by_version["FOO_2.0"].cause.endswith("The stdenv does not define FOO_2.0 either.")


@dataclasses.dataclass(frozen=True)
class Scanned:
    """What ``make_plan`` reads of a scan (``ScanLike``), around a graph built here."""

    target: Target
    graph: nx.DiGraph[str]
    conflicts: tuple[Conflict, ...]
    glibc: GlibcInfo


def planned(graph: nx.DiGraph[str], stdenv: StdenvInfo, store: Path) -> FixPlan:
    """The fix plan's own decision on this graph (``plan_fix`` minus the package survey)."""
    conflicts = analyze(graph, stdenv=stdenv)
    view = survey_view(stdenv, str(store))
    libraries = {c.library for c in conflicts if c.library} | {"libstdc++.so.6", "libgcc_s.so.1"}
    target = Target("generic", str(graph.graph["root"]), str(graph.graph["root"]))
    scanned = Scanned(target, graph, conflicts, glibc_info(graph))
    package = PackageSurvey(str(store.parent / "pkg"), ())
    return make_plan(scanned, stdenv, package, view_provides(view, libraries), str(store), "app", view=view)


def test_a_cxx_runtime_the_process_outgrows_is_not_fixable_in_the_scan_or_the_plan(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """ext_a needs GLIBCXX_3.4.30, which the stdenv's libstdc++ defines; ext_b needs 3.4.32, which it
    lacks: the package keeps its own libstdc++, so the repatch fixes neither, and both say so."""
    s = synthetic
    old = fake_libstdcxx(tmp_path / "old" / "libstdc++.so.6", "GLIBCXX_3.4.28")
    stdenv_cxx = fake_libstdcxx(tmp_path / "stdenv" / "libstdc++.so.6", "GLIBCXX_3.4.30")
    newest = fake_libstdcxx(tmp_path / "newest" / "libstdc++.so.6", "GLIBCXX_3.4.32")
    ext_a = cxx_extension(tmp_path / "ext_a.so", stdenv_cxx)
    ext_b = cxx_extension(tmp_path / "ext_b.so", newest)
    links: list[Link] = [(s.app, "ext_a.so", ext_a), (ext_a, "libstdc++.so.6", old)]
    links += [(s.app, "ext_b.so", ext_b), (ext_b, "libstdc++.so.6", old)]
    graph = process(s.app, [*app_closure(s), *links], extensions=[ext_a, ext_b])
    stdenv = dataclasses.replace(stdenv_with(s.new_libc, "2.38", libstdcxx=stdenv_cxx), fingerprint="f" * 64)
    (record_a,) = [c for c in analyze(graph, stdenv=stdenv) if c.object == str(ext_a)]
    assert not record_a.fixes[0].startswith("glibc-doctor fix")
    assert record_a.cause.endswith(
        "A repatch would not use the stdenv's: the stdenv's libstdc++.so.6 lacks GLIBCXX_3.4.32, "
        "which the process needs."
    )
    plan = planned(graph, stdenv, tmp_path / "store")
    assert {r.conflict.object: r.reason for r in plan.remaining}[str(ext_a)] == (
        "the stdenv's libstdc++.so.6 lacks GLIBCXX_3.4.32, which the process needs: "
        "the package keeps its own libstdc++.so.6"
    )
