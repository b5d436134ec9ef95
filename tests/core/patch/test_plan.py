"""The fix plan's decisions, on synthetic facts (pure: no file is read)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import pytest
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import (
    Conflict,
    ElfFacts,
    Extension,
    GlibcInfo,
    Kind,
    Role,
    StdenvInfo,
    Target,
    VersionNeed,
)
from glibc_doctor.core.patch.plan import (
    PackageSurvey,
    Symlink,
    TextFile,
    classify,
    destination_for,
    make_plan,
    needed_preloads,
    new_rpath,
    package_root,
    readable_name,
)
from glibc_doctor.core.patch.view import GlibcView, ViewLink, glibc_links, make_view_record, view_root

OLD = "/x/store/aaaa-python3.9"
OLD_GLIBC = "/x/store/bbbb-glibc-2.31/lib"
DEPS = "/x/store/cccc-deps/lib"
STDENV = StdenvInfo(
    version="2.36",
    loader="/lib64/ld-linux-x86-64.so.2",
    libc="/lib/x86_64-linux-gnu/libc.so.6",
    lib_dirs=("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"),
    source="probe: cc",
    fingerprint="f" * 64,
    libstdcxx="/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
)
SYSTEM_DIR = "/lib/x86_64-linux-gnu"
VIEW = GlibcView(
    root="/data/glibc/ffffffffffffffff",
    fingerprint="f" * 64,
    source_dir=SYSTEM_DIR,
    glibc=(
        ViewLink("libc.so.6", f"{SYSTEM_DIR}/libc.so.6"),
        ViewLink("libm.so.6", f"{SYSTEM_DIR}/libm.so.6"),
    ),
    runtime=(ViewLink("libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),),
)
FIRST = (VIEW.lib_dir,)
OLD_GLIBC_INFO = GlibcInfo("2.31", f"{OLD_GLIBC}/libc.so.6", f"{OLD_GLIBC}/ld-linux-x86-64.so.2")
GLIBC_236 = tuple(f"GLIBC_2.{n}" for n in range(2, 37))
PROVIDED: dict[str, tuple[str, ...] | None] = {
    "libc.so.6": GLIBC_236,
    "libstdc++.so.6": ("GLIBCXX_3.4.30",),
    "libresolv.so.2": ("GLIBC_2.2.5",),
}


@dataclass(frozen=True)
class FakeScan:
    target: Target
    graph: Any
    conflicts: tuple[Conflict, ...] = ()
    glibc: GlibcInfo = field(default=OLD_GLIBC_INFO)


def _python(**changes: Any) -> ElfFacts:
    base: dict[str, Any] = {
        "path": f"{OLD}/bin/python3.9",
        "interpreter": f"{OLD_GLIBC}/ld-linux-x86-64.so.2",
        "needed": ("libc.so.6",),
        "runpath": f"{OLD_GLIBC}:{DEPS}",
    }
    return ElfFacts(**{**base, **changes})


def _target(*extensions: Extension) -> Target:
    return Target("python", "/venv", f"{OLD}/bin/python3.9", extensions, environment="/venv")


def _plan(
    survey: PackageSurvey,
    scan: FakeScan | None = None,
    provided: dict[str, tuple[str, ...] | None] | None = None,
) -> Any:
    scan = scan or FakeScan(_target(), None)
    return make_plan(scan, STDENV, survey, provided or PROVIDED, "/data", "bin/python3.9", view=VIEW)


def test_package_root_of_a_store_interpreter_is_its_store_dir() -> None:
    assert package_root(f"{OLD}/bin/python3.9") == OLD


@pytest.mark.parametrize("path", ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"])
def test_a_system_interpreter_is_refused_with_a_clear_line(path: str) -> None:
    with pytest.raises(PatchError, match="system prefix"):
        package_root(path)


def test_a_clear_prefix_outside_the_system_is_a_package() -> None:
    assert package_root("/opt/python3.9/bin/python3.9") == "/opt/python3.9"


def test_an_interpreter_outside_any_bin_dir_is_refused() -> None:
    with pytest.raises(PatchError, match="not in a bin directory"):
        package_root("/x/store/aaaa-python3.9/python3.9")


def test_readable_name_drops_the_nix_hash() -> None:
    assert readable_name("/nix/store/0ml5w5f4zs58mkn80sikdiyrag28v85q-python3-3.9.2") == "python3-3.9.2"


def test_destination_is_readable_and_differs_per_stdenv() -> None:
    first = destination_for("/data", OLD, STDENV)
    other = destination_for("/data", OLD, replace(STDENV, fingerprint="e" * 64))
    assert first.startswith("/data/packages/aaaa-python3.9-")
    assert first != other


def test_new_rpath_puts_the_first_dirs_first_and_drops_the_old_glibc() -> None:
    rpath = new_rpath(_python(), FIRST, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert rpath.split(":") == [VIEW.lib_dir, DEPS]


def test_new_rpath_never_has_empty_or_relative_entries() -> None:
    facts = _python(runpath=None, rpath=f"::lib:{DEPS}:./here")
    rpath = new_rpath(facts, FIRST, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert all(entry.startswith("/") for entry in rpath.split(":"))
    assert "" not in rpath.split(":")


def test_new_rpath_keeps_origin_entries() -> None:
    facts = _python(runpath="$ORIGIN/../lib:" + OLD_GLIBC)
    rpath = new_rpath(facts, FIRST, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert "$ORIGIN/../lib" in rpath.split(":")


def test_new_rpath_moves_entries_into_the_package_to_the_copy() -> None:
    facts = _python(runpath=f"{OLD}/lib:{OLD_GLIBC}")
    rpath = new_rpath(facts, FIRST, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert "/new/lib" in rpath.split(":")
    assert f"{OLD}/lib" not in rpath


def test_an_old_glibc_dir_that_also_holds_other_libraries_stays_last() -> None:
    facts = _python(runpath=f"{OLD_GLIBC}:{DEPS}")
    rpath = new_rpath(facts, FIRST, frozenset({OLD_GLIBC}), frozenset({OLD_GLIBC}), OLD, "/new")
    assert rpath.split(":")[-1] == OLD_GLIBC


def test_the_interpreter_gets_the_stdenv_loader() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)))
    (patch,) = plan.elf_patches
    assert patch.new_interpreter == STDENV.loader
    assert patch.old_runpath == f"{OLD_GLIBC}:{DEPS}"


def test_the_interpreter_is_left_alone_when_it_already_is_the_stdenv_loader() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(interpreter=STDENV.loader),)))
    assert plan.elf_patches[0].new_interpreter is None


def test_a_library_without_interpreter_only_gets_a_new_rpath() -> None:
    library = ElfFacts(path=f"{OLD}/lib/libpython3.9.so.1.0", needed=("libc.so.6",), runpath=OLD_GLIBC)
    plan = _plan(PackageSurvey(OLD, (_python(), library)))
    assert plan.elf_patches[1].new_interpreter is None
    assert plan.elf_patches[1].new_rpath.split(":")[0] == VIEW.lib_dir


def test_a_file_already_patched_as_planned_is_not_patched_again() -> None:
    facts = ElfFacts(path=f"{OLD}/lib/x.so", needed=("libc.so.6",), rpath=VIEW.lib_dir)
    plan = _plan(PackageSurvey(OLD, (facts,)))
    assert plan.elf_patches == ()


def test_text_files_and_symlinks_into_the_package_are_planned() -> None:
    survey = PackageSurvey(
        OLD,
        (_python(),),
        (TextFile("lib/pkgconfig/python-3.9.pc", "pkg-config"),),
        (Symlink("bin/python3", "python3.9"), Symlink("lib/libpython.so", f"{OLD}/lib/libpython3.9.so")),
    )
    plan = _plan(survey)
    assert [text.relpath for text in plan.text_rewrites] == ["lib/pkgconfig/python-3.9.pc"]
    (link,) = plan.links
    assert link.new_target == f"{plan.destination}/lib/libpython3.9.so"


def _missing(obj: str, version: str, library: str = "libc.so.6") -> Conflict:
    return Conflict(Kind.MISSING_VERSION, obj, f"{version} not found", library=library, version=version)


def test_a_version_the_stdenv_defines_is_fixed() -> None:
    fixed, remaining = classify([_missing("/v/ext_pthread.so", "GLIBC_2.34")], STDENV, PROVIDED)
    assert len(fixed) == 1
    assert remaining == ()


def test_a_version_newer_than_the_stdenv_remains_with_the_reason() -> None:
    fixed, remaining = classify([_missing("/v/ext_strlcpy.so", "GLIBC_2.38")], STDENV, PROVIDED)
    assert fixed == ()
    assert "GLIBC_2.38" in remaining[0].reason
    assert "2.36" in remaining[0].reason


def test_a_library_the_stdenv_lacks_remains() -> None:
    _, remaining = classify([_missing("/v/x.so", "FOO_1.0", "libfoo.so.1")], STDENV, PROVIDED)
    assert "no libfoo.so.1" in remaining[0].reason


def test_a_stdenv_older_than_the_interpreters_glibc_is_refused() -> None:
    scan = FakeScan(_target(), None, glibc=GlibcInfo("2.41", f"{OLD_GLIBC}/libc.so.6", None))
    with pytest.raises(PatchError, match="older than the interpreter's glibc 2.41"):
        _plan(PackageSurvey(OLD, (_python(),)), scan)


def _graph_with_runpath_extension(provider: str) -> nx.DiGraph:
    graph = nx.DiGraph()
    ext = ElfFacts(path="/v/ext.so", needed=("libstdc++.so.6",), runpath="$ORIGIN/../ext.libs")
    graph.add_node("/v/ext.so", facts=ext, role=Role.EXTENSION)
    graph.add_node(provider, facts=ElfFacts(path=provider), role=Role.LIBRARY)
    graph.add_edge("/v/ext.so", provider, needed="libstdc++.so.6")
    return graph


def test_a_runpath_extension_missing_libstdcxx_makes_the_interpreter_load_the_stdenvs() -> None:
    graph = _graph_with_runpath_extension("not-found:libstdc++.so.6")
    assert needed_preloads(graph, STDENV, PROVIDED, OLD, frozenset({OLD_GLIBC})) == ("libstdc++.so.6",)


def test_a_runpath_extension_finding_the_stdenvs_libstdcxx_adds_nothing() -> None:
    graph = _graph_with_runpath_extension("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
    assert needed_preloads(graph, STDENV, PROVIDED, OLD, frozenset({OLD_GLIBC})) == ()


def test_a_dependency_outside_the_package_finding_old_glibc_libraries_gets_them_preloaded() -> None:
    graph = nx.DiGraph()
    graph.add_node(f"{DEPS}/libkrb5.so.3", facts=ElfFacts(path=f"{DEPS}/libkrb5.so.3"), role=Role.LIBRARY)
    graph.add_node(f"{OLD_GLIBC}/libresolv.so.2", facts=ElfFacts(path="r"), role=Role.LIBRARY)
    graph.add_edge(f"{DEPS}/libkrb5.so.3", f"{OLD_GLIBC}/libresolv.so.2", needed="libresolv.so.2")
    assert needed_preloads(graph, STDENV, PROVIDED, OLD, frozenset({OLD_GLIBC})) == ("libresolv.so.2",)


def test_preloads_go_on_the_interpreter_only() -> None:
    graph = _graph_with_runpath_extension("not-found:libstdc++.so.6")
    library = ElfFacts(path=f"{OLD}/lib/libpython3.9.so.1.0", needed=("libc.so.6",), runpath=OLD_GLIBC)
    plan = _plan(PackageSurvey(OLD, (_python(), library)), FakeScan(_target(), graph))
    assert plan.elf_patches[0].add_needed == ("libstdc++.so.6",)
    assert plan.elf_patches[1].add_needed == ()


def test_the_plan_describes_itself_for_a_dry_run() -> None:
    ext = Extension("/venv/lib/ext_strlcpy.so", "ext_strlcpy")
    scan = FakeScan(_target(ext), None, (_missing(ext.path, "GLIBC_2.38"),))
    lines = _plan(PackageSurvey(OLD, (_python(),)), scan).describe()
    assert any(line.startswith("copy to   /data/packages/aaaa-python3.9-") for line in lines)
    assert "conflicts remaining: 1" in lines


# --- the glibc view in the plan ---------------------------------------------------------------------


def _interpreter_rpath(plan: Any) -> list[str]:
    main = next(patch for patch in plan.elf_patches if patch.relpath == "bin/python3.9")
    entries: list[str] = main.new_rpath.split(":")
    return entries


def _graph_loading_libstdcxx(versions: tuple[str, ...] = ("GLIBCXX_3.4.30",)) -> nx.DiGraph:
    """ext.so (no RUNPATH) needs libstdc++.so.6 with ``versions``; it was found in the system dir."""
    graph = nx.DiGraph()
    needs = tuple(VersionNeed("libstdc++.so.6", version) for version in versions)
    ext = ElfFacts(path="/v/ext.so", needed=("libstdc++.so.6",), requires=needs)
    graph.add_node("/v/ext.so", facts=ext, role=Role.EXTENSION)
    provider = f"{SYSTEM_DIR}/libstdc++.so.6"
    graph.add_node(provider, facts=ElfFacts(path=provider), role=Role.LIBRARY)
    graph.add_edge("/v/ext.so", provider, needed="libstdc++.so.6")
    return graph


def test_the_interpreter_rpath_is_the_glibc_view_then_the_packages_own_deps() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)))
    assert _interpreter_rpath(plan) == [VIEW.lib_dir, DEPS]


def test_no_system_library_dir_is_put_before_the_packages_deps() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)))
    assert not set(_interpreter_rpath(plan)) & set(STDENV.lib_dirs)


def test_the_cxx_runtime_view_follows_the_glibc_view_when_the_process_loads_libstdcxx() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)), FakeScan(_target(), _graph_loading_libstdcxx()))
    assert plan.uses_runtime
    assert _interpreter_rpath(plan) == [VIEW.lib_dir, VIEW.runtime_dir, DEPS]


def test_the_cxx_runtime_view_is_left_out_when_nothing_loads_libstdcxx() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)), FakeScan(_target(), nx.DiGraph()))
    assert not plan.uses_runtime
    assert VIEW.runtime_dir not in _interpreter_rpath(plan)


def test_a_stdenv_libstdcxx_older_than_the_process_needs_is_not_put_first() -> None:
    graph = _graph_loading_libstdcxx(("GLIBCXX_3.4.32",))
    plan = _plan(PackageSurvey(OLD, (_python(),)), FakeScan(_target(), graph))
    assert not plan.uses_runtime
    assert any("libstdc++.so.6 lacks GLIBCXX_3.4.32" in note for note in plan.notes)


def test_every_rpath_of_the_plan_is_absolute_or_origin_and_never_empty() -> None:
    library = ElfFacts(path=f"{OLD}/lib/libx.so", needed=("libc.so.6",), rpath=f":lib::$ORIGIN:{DEPS}:")
    plan = _plan(PackageSurvey(OLD, (_python(runpath=f"::{OLD_GLIBC}:./x:{DEPS}"), library)))
    for patch in plan.elf_patches:
        entries = patch.new_rpath.split(":")
        assert all(entry.startswith(("/", "$ORIGIN")) for entry in entries), patch.new_rpath


def test_the_loader_stays_the_stdenvs_real_loader_path_not_the_view_link() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)))
    assert plan.elf_patches[0].new_interpreter == STDENV.loader


def test_the_plan_shows_the_view_and_what_it_links_to() -> None:
    plan = _plan(PackageSurvey(OLD, (_python(),)))
    lines = plan.describe()
    assert any(line.startswith(f"glibc view {VIEW.lib_dir}") for line in lines)
    assert f"    libc.so.6 -> {SYSTEM_DIR}/libc.so.6" in lines
    view = plan.as_json()["glibc_view"]
    assert view["lib_dir"] == VIEW.lib_dir
    assert view["glibc"] == {"libc.so.6": f"{SYSTEM_DIR}/libc.so.6", "libm.so.6": f"{SYSTEM_DIR}/libm.so.6"}
    assert view["uses_runtime"] is False


def test_the_view_links_exactly_glibcs_own_libraries_of_a_distribution_dir() -> None:
    listing = [
        "libc.so.6", "libc.so", "libc.a", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2",
        "libnss_files.so.2", "libnss_dns.so.2", "libnsl.so.1", "libnsl.so.2", "libexpat.so.1",
        "libz.so.1", "libsqlite3.so.0", "libncursesw.so.6", "libstdc++.so.6", "libc_malloc_debug.so.0",
    ]  # fmt: skip
    names = [link.name for link in glibc_links(SYSTEM_DIR, listing)]
    assert names == sorted(
        [
            "libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2", "libnss_files.so.2",
            "libnss_dns.so.2", "libnsl.so.1", "libc_malloc_debug.so.0",
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    "loader", ["ld-linux-aarch64.so.1", "ld-linux.so.2", "ld64.so.2", "ld-linux-armhf.so.3"]
)
def test_the_loader_of_another_architecture_is_linked_too(loader: str) -> None:
    assert [link.name for link in glibc_links("/g/lib", [loader, "libc.so.6"])] == sorted(
        [loader, "libc.so.6"]
    )


def test_the_view_of_a_stdenv_lives_under_its_short_fingerprint() -> None:
    view = make_view_record(STDENV, "/data", ["libc.so.6"], "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1")
    assert view.root == view_root("/data", STDENV.fingerprint) == "/data/glibc/ffffffffffffffff"
    assert [link.target for link in view.glibc] == [f"{SYSTEM_DIR}/libc.so.6"]
    assert [link.name for link in view.runtime] == ["libstdc++.so.6", "libgcc_s.so.1"]


@pytest.mark.parametrize("store", ["/home/me/a:b/glibc-doctor", "/data/$LIB/x", "data/glibc-doctor"])
def test_a_store_path_an_rpath_cannot_hold_is_refused_before_anything_is_planned(store: str) -> None:
    scan = FakeScan(_target(), None)
    with pytest.raises(PatchError, match="cannot be named in an RPATH"):
        make_plan(scan, STDENV, PackageSurvey(OLD, (_python(),)), PROVIDED, store, "bin/python3.9", view=VIEW)
