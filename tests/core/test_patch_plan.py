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


def _plan(survey: PackageSurvey, scan: FakeScan | None = None) -> Any:
    return make_plan(scan or FakeScan(_target(), None), STDENV, survey, PROVIDED, "/data", "bin/python3.9")


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


def test_new_rpath_puts_the_stdenv_first_and_drops_the_old_glibc() -> None:
    rpath = new_rpath(_python(), STDENV, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert rpath.split(":") == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", DEPS]


def test_new_rpath_never_has_empty_or_relative_entries() -> None:
    facts = _python(runpath=None, rpath=f"::lib:{DEPS}:./here")
    rpath = new_rpath(facts, STDENV, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert all(entry.startswith("/") for entry in rpath.split(":"))
    assert "" not in rpath.split(":")


def test_new_rpath_keeps_origin_entries() -> None:
    facts = _python(runpath="$ORIGIN/../lib:" + OLD_GLIBC)
    rpath = new_rpath(facts, STDENV, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert "$ORIGIN/../lib" in rpath.split(":")


def test_new_rpath_moves_entries_into_the_package_to_the_copy() -> None:
    facts = _python(runpath=f"{OLD}/lib:{OLD_GLIBC}")
    rpath = new_rpath(facts, STDENV, frozenset({OLD_GLIBC}), frozenset(), OLD, "/new")
    assert "/new/lib" in rpath.split(":")
    assert f"{OLD}/lib" not in rpath


def test_an_old_glibc_dir_that_also_holds_other_libraries_stays_last() -> None:
    facts = _python(runpath=f"{OLD_GLIBC}:{DEPS}")
    rpath = new_rpath(facts, STDENV, frozenset({OLD_GLIBC}), frozenset({OLD_GLIBC}), OLD, "/new")
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
    assert plan.elf_patches[1].new_rpath.startswith("/lib/x86_64-linux-gnu")


def test_a_file_already_patched_as_planned_is_not_patched_again() -> None:
    facts = ElfFacts(path=f"{OLD}/lib/x.so", needed=("libc.so.6",), rpath=":".join(STDENV.lib_dirs))
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
