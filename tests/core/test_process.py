"""The process graph: load order, dlopen chains, reuse, strict mode, order dependence.

Where the real loader can say what it maps, the prediction is checked against it: a small host
program dlopen()s the extensions (directly or through a host library, like libpython) and prints
``/proc/self/maps``; trace mode (``LD_TRACE_LOADED_OBJECTS``) gives the load order.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core.analysis import analyze, extension_errors
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.model import Extension, Role, Target, Via
from glibc_doctor.core.process import MISSING_PREFIX, simulate

from tests.budget import cpu_budget
from tests.core.test_loader import SYSTEM_LOADER, build_lib, build_prog, calling, calls, clean_env
from tests.gcc import compile_elf
from tests.synthetic import Synthetic

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_LOADER), reason="needs an x86-64 glibc system")

HOST = r"""
#include <dlfcn.h>
#include <stdio.h>
%(declarations)s
static void *open_one(const char *path) { return %(opener)s(path, RTLD_NOW); }
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!open_one(argv[i])) { fprintf(stderr, "%%s\n", dlerror()); return 1; }
    }
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    while (fgets(line, sizeof line, maps)) fputs(line, stdout);
    return %(uses)s == 0;
}
"""
HOST_LIB = r"""
#include <dlfcn.h>
void *host_dlopen(const char *path, int mode) { return dlopen(path, mode); }
"""


def build_host(
    path: Path, *, needed: Sequence[Path] = (), rpath: Sequence[str] = (), via: Path | None = None
) -> Path:
    """A program that dlopen()s its arguments (itself, or via ``via``'s host_dlopen), then prints its maps."""
    libs = [*needed, *([via] if via else [])]
    source = HOST % {
        "declarations": calling(needed) + ("void *host_dlopen(const char *, int);" if via else ""),
        "opener": "host_dlopen" if via else "dlopen",
        "uses": calls(needed) if needed else "1",
    }
    return build_prog(path, needed=libs, rpath=rpath, extra=["-ldl"], source=source)


def mapped(host: Path, extensions: Sequence[Path], env: dict[str, str] | None = None) -> set[str]:
    """Real paths of every file the host maps after dlopen()ing ``extensions`` in order."""
    run = subprocess.run(
        [str(host), *map(str, extensions)], env=clean_env(env), capture_output=True, text=True, check=True
    )
    paths = {line.split(None, 5)[5] for line in run.stdout.splitlines() if len(line.split(None, 5)) == 6}
    return {os.path.realpath(path) for path in paths if path.startswith("/")}


def predicted(graph: nx.DiGraph) -> set[str]:
    return {os.path.realpath(node) for node, data in graph.nodes(data=True) if data["role"] != Role.MISSING}


def target(host: Path, extensions: Sequence[Path] = (), caller: str | None = None) -> Target:
    exts = tuple(Extension(str(ext), ext.name, caller) for ext in extensions)
    return Target("generic", str(host), str(host), exts)


# --- the start of the process -------------------------------------------------------------------


def test_main_program_comes_first_and_its_loader_second(tmp_path: Path) -> None:
    graph = simulate(target(build_prog(tmp_path / "prog")), env={})
    nodes = sorted(graph.nodes(data=True), key=lambda item: item[1]["order"])
    assert nodes[0][0] == str(tmp_path / "prog")
    assert nodes[0][1]["role"] is Role.INTERPRETER
    assert nodes[1][1]["role"] is Role.LOADER
    assert nodes[1][0] == graph.graph["loader"] == read_elf(str(tmp_path / "prog")).interpreter


def test_graph_attributes_follow_the_contract(tmp_path: Path) -> None:
    prog = build_prog(tmp_path / "prog")
    graph = simulate(target(prog), strict=True, env={})
    assert graph.graph["root"] == str(prog)
    assert graph.graph["target"].executable == str(prog)
    assert graph.graph["strict"] is True
    assert graph.graph["order_dependent"] == []
    assert graph.graph["config"].path == graph.graph["loader"]
    for _node, data in graph.nodes(data=True):
        assert {"facts", "role", "order", "found", "loaded"} <= set(data)
    for _a, _b, data in graph.edges(data=True):
        assert {"needed", "via", "detail", "resolution"} <= set(data)


def test_libc_needing_ld_so_gets_the_running_loader(tmp_path: Path) -> None:
    graph = simulate(target(build_prog(tmp_path / "prog")), env={})
    libc = next(node for node, data in graph.nodes(data=True) if data["facts"].soname == "libc.so.6")
    edge = graph.edges[libc, graph.graph["loader"]]
    assert edge["needed"] == "ld-linux-x86-64.so.2"
    assert edge["via"] is Via.LOADED


def test_dependencies_load_breadth_first_like_the_real_loader(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    c = build_lib(lib / "libc3.so.1")
    d = build_lib(lib / "libd4.so.1")
    a = build_lib(lib / "liba1.so.1", needed=[c])
    b = build_lib(lib / "libb2.so.1", needed=[d])
    prog = build_prog(tmp_path / "prog", needed=[a, b], rpath=[str(lib)])
    graph = simulate(target(prog), env={})
    order = [node for node, _ in sorted(graph.nodes(data=True), key=lambda item: item[1]["order"])]
    run = subprocess.run(
        [str(prog)], env=clean_env({"LD_TRACE_LOADED_OBJECTS": "1"}), capture_output=True, text=True
    )
    real = [match[1] for match in re.finditer(r"=> (\S+) \(0x", run.stdout)]
    assert [node for node in order if node in real] == real


def test_preloads_come_before_the_programs_own_dependencies(tmp_path: Path) -> None:
    pre = build_lib(tmp_path / "pre" / "libpre.so.1")
    dep = build_lib(tmp_path / "lib" / "libdep.so.1")
    prog = build_host(tmp_path / "prog", needed=[dep], rpath=[str(tmp_path / "lib")])
    graph = simulate(target(prog), env={"LD_PRELOAD": str(pre)})
    assert graph.nodes[str(pre)]["role"] is Role.PRELOAD
    assert graph.nodes[str(pre)]["order"] < graph.nodes[str(dep)]["order"]
    assert graph.edges[str(prog), str(pre)]["via"] is Via.PRELOAD
    assert os.path.realpath(pre) in mapped(prog, [], {"LD_PRELOAD": str(pre)})


def test_a_missing_library_is_a_missing_node(tmp_path: Path) -> None:
    gone = build_lib(tmp_path / "gone" / "libgone.so.1")
    prog = build_prog(tmp_path / "prog", needed=[gone])
    graph = simulate(target(prog), env={})
    node = MISSING_PREFIX + "libgone.so.1"
    assert graph.nodes[node]["role"] is Role.MISSING
    assert graph.edges[str(prog), node]["via"] is Via.NOT_FOUND


def test_an_unreadable_program_is_a_lone_root(tmp_path: Path) -> None:
    (tmp_path / "prog").write_text("#!/bin/sh\n")
    graph = simulate(target(tmp_path / "prog"), env={})
    assert list(graph.nodes) == [str(tmp_path / "prog")]
    assert graph.nodes[str(tmp_path / "prog")]["facts"].problem is not None


# --- extensions -----------------------------------------------------------------------------------


def test_an_extensions_dependency_is_found_through_the_main_programs_rpath(tmp_path: Path) -> None:
    dep = build_lib(tmp_path / "main-rpath" / "libdep.so.1")
    ext = build_lib(tmp_path / "ext" / "ext.so", needed=[dep])
    host = build_host(tmp_path / "host", rpath=[str(tmp_path / "main-rpath")])
    graph = simulate(target(host, [ext]), env={})
    edge = graph.edges[str(ext), str(dep)]
    assert edge["via"] is Via.RPATH
    assert edge["detail"].startswith(f"RPATH of {host}")
    assert graph.nodes[str(ext)]["role"] is Role.EXTENSION
    assert predicted(graph) <= mapped(host, [ext])


def test_an_extension_dlopened_by_a_host_library_does_not_inherit_that_librarys_rpath(tmp_path: Path) -> None:
    dep = build_lib(tmp_path / "host-rpath" / "libdep.so.1")
    hostlib = compile_elf(
        tmp_path / "hostlib" / "libhost.so.1",
        HOST_LIB,
        soname="libhost.so.1",
        rpath=[str(tmp_path / "host-rpath")],
    )
    ext = build_lib(tmp_path / "ext" / "ext.so", needed=[dep])
    host = build_host(tmp_path / "host", via=hostlib, rpath=[str(tmp_path / "hostlib")])
    graph = simulate(target(host, [ext], caller="libhost.so.1"), env={})
    assert graph.has_edge(str(hostlib), str(ext))
    assert graph.edges[str(ext), MISSING_PREFIX + "libdep.so.1"]["via"] is Via.NOT_FOUND
    run = subprocess.run([str(host), str(ext)], env=clean_env(), capture_output=True, text=True)
    assert run.returncode == 1
    assert "libdep.so.1: cannot open shared object file" in run.stderr


def test_an_extension_dlopened_by_a_host_library_still_gets_the_main_programs_rpath(tmp_path: Path) -> None:
    dep = build_lib(tmp_path / "main-rpath" / "libdep.so.1")
    hostlib = compile_elf(tmp_path / "hostlib" / "libhost.so.1", HOST_LIB, soname="libhost.so.1")
    ext = build_lib(tmp_path / "ext" / "ext.so", needed=[dep])
    rpath = [str(tmp_path / "hostlib"), str(tmp_path / "main-rpath")]
    host = build_host(tmp_path / "host", via=hostlib, rpath=rpath)
    graph = simulate(target(host, [ext], caller="libhost.so.1"), env={})
    assert graph.edges[str(ext), str(dep)]["detail"].startswith(f"RPATH of {host}")
    assert predicted(graph) == mapped(host, [ext])


def test_a_caller_that_is_not_loaded_falls_back_to_the_main_program_with_a_note(tmp_path: Path) -> None:
    ext = build_lib(tmp_path / "ext" / "ext.so")
    host = build_host(tmp_path / "host")
    graph = simulate(target(host, [ext], caller="libpython9.so"), env={})
    assert graph.has_edge(str(host), str(ext))
    assert any("libpython9.so" in note for note in graph.graph["notes"])


def _two_copies(tmp_path: Path) -> tuple[Path, Path, Path]:
    """libfoo.so.1 in dirs one/ and two/; the host links one/'s, ext.so's RUNPATH points at two/."""
    one = build_lib(tmp_path / "one" / "libfoo.so.1")
    two = build_lib(tmp_path / "two" / "libfoo.so.1")
    ext = build_lib(tmp_path / "ext" / "ext.so", needed=[two], runpath=[str(tmp_path / "two")])
    return one, two, ext


def test_an_already_loaded_soname_wins_over_an_extensions_own_runpath(tmp_path: Path) -> None:
    one, two, ext = _two_copies(tmp_path)
    host = build_host(tmp_path / "host", needed=[one], rpath=[str(tmp_path / "one")])
    graph = simulate(target(host, [ext]), env={})
    edge = graph.edges[str(ext), str(one)]
    assert edge["via"] is Via.LOADED
    assert str(two) not in graph
    maps = mapped(host, [ext])
    assert os.path.realpath(one) in maps
    assert os.path.realpath(two) not in maps
    assert predicted(graph) <= maps


def test_strict_mode_resolves_each_edge_on_its_own(tmp_path: Path) -> None:
    one, two, ext = _two_copies(tmp_path)
    host = build_host(tmp_path / "host", needed=[one], rpath=[str(tmp_path / "one")])
    graph = simulate(target(host, [ext]), strict=True, env={})
    assert graph.edges[str(ext), str(two)]["via"] is Via.RUNPATH
    assert str(one) in graph


def test_two_extensions_with_their_own_copies_are_order_dependent(tmp_path: Path) -> None:
    first_lib = build_lib(tmp_path / "x" / "libfoo.so.1")
    second_lib = build_lib(tmp_path / "y" / "libfoo.so.1", extra=["-O2"])  # another build of libfoo
    first = build_lib(tmp_path / "e1" / "first.so", needed=[first_lib], runpath=[str(tmp_path / "x")])
    second = build_lib(tmp_path / "e2" / "second.so", needed=[second_lib], runpath=[str(tmp_path / "y")])
    host = build_host(tmp_path / "host")
    graph = simulate(target(host, [first, second]), env={})
    assert graph.graph["order_dependent"] == ["libfoo.so.1"]
    assert graph.graph["order_alternatives"]["libfoo.so.1"] == sorted([str(first_lib), str(second_lib)])
    assert graph.edges[str(second), str(first_lib)]["via"] is Via.LOADED
    assert predicted(graph) <= mapped(host, [first, second])
    assert os.path.realpath(second_lib) in mapped(host, [second, first])  # the real loader agrees


def test_two_byte_identical_copies_are_not_order_dependent(tmp_path: Path) -> None:
    # auditwheel vendors the same libgfortran into numpy.libs and scipy.libs: either copy is the same
    first_lib = build_lib(tmp_path / "x" / "libfoo.so.1")
    second_lib = tmp_path / "y" / "libfoo.so.1"
    second_lib.parent.mkdir()
    second_lib.write_bytes(first_lib.read_bytes())
    first = build_lib(tmp_path / "e1" / "first.so", needed=[first_lib], runpath=[str(tmp_path / "x")])
    second = build_lib(tmp_path / "e2" / "second.so", needed=[second_lib], runpath=[str(tmp_path / "y")])
    graph = simulate(target(build_host(tmp_path / "host"), [first, second]), env={})
    assert graph.graph["order_dependent"] == []


def test_extensions_sharing_one_copy_are_not_order_dependent(tmp_path: Path) -> None:
    lib = build_lib(tmp_path / "x" / "libfoo.so.1")
    first = build_lib(tmp_path / "e1" / "first.so", needed=[lib], runpath=[str(tmp_path / "x")])
    second = build_lib(tmp_path / "e2" / "second.so", needed=[lib], runpath=[str(tmp_path / "x")])
    graph = simulate(target(build_host(tmp_path / "host"), [first, second]), env={})
    assert graph.graph["order_dependent"] == []


# --- the synthetic corpus (fake glibcs, never executed) --------------------------------------------


def test_a_nix_style_app_gets_its_pt_interp_loader_and_rpath_libc(synthetic: Synthetic) -> None:
    graph = simulate(Target("generic", str(synthetic.app), str(synthetic.app)), env={})
    assert graph.graph["loader"] == str(synthetic.old_loader)
    assert graph.has_edge(str(synthetic.app), str(synthetic.old_libc))
    assert graph.edges[str(synthetic.app), str(synthetic.old_libc)]["via"] is Via.RPATH


def test_an_app_with_rpath_and_runpath_uses_only_the_runpath(synthetic: Synthetic) -> None:
    graph = simulate(Target("generic", str(synthetic.app_both), str(synthetic.app_both)), env={})
    assert graph.edges[str(synthetic.app_both), str(synthetic.old_libc)]["via"] is Via.RUNPATH
    assert str(synthetic.new_libc) not in graph


def test_an_extension_built_for_the_new_glibc_gets_the_old_libc_already_loaded(synthetic: Synthetic) -> None:
    ext = Extension(str(synthetic.ext_needs_234), "ext_needs_234")
    graph = simulate(Target("generic", str(synthetic.app), str(synthetic.app), (ext,)), env={})
    assert graph.edges[str(synthetic.ext_needs_234), str(synthetic.old_libc)]["via"] is Via.LOADED


def test_hostile_extensions_and_programs_never_break_a_simulation(synthetic: Synthetic) -> None:
    extensions = tuple(Extension(str(path), path.name) for path in synthetic.hostile)
    graph = simulate(Target("generic", str(synthetic.app), str(synthetic.app), extensions), env={})
    for path in synthetic.hostile:
        assert str(path) in graph or MISSING_PREFIX + str(path) in graph
    for path in synthetic.hostile:
        lone = simulate(Target("generic", str(path), str(path)), strict=True, env={})
        assert lone.graph["root"] == str(path)


# --- speed ----------------------------------------------------------------------------------------


def test_a_python_with_hundreds_of_extensions_simulates_quickly() -> None:
    base = Path(os.path.realpath(os.path.join(os.path.dirname(os.__file__), "lib-dynload")))
    site = Path(__file__).resolve().parents[2] / ".venv" / "lib"
    extensions = sorted(base.glob("*.so")) + sorted(site.glob("python3*/site-packages/**/*.so"))
    import sys

    graph_target = Target(
        "python", sys.executable, sys.executable, tuple(Extension(str(p), p.name) for p in extensions)
    )
    simulate(graph_target, env={})  # warm the ELF cache: reading is not what is measured
    with cpu_budget(0.5, f"simulating {len(extensions)} extensions"):
        graph = simulate(graph_target, env={})
    assert graph.number_of_nodes() > len(extensions)


# --- a failed dlopen() leaves nothing loaded --------------------------------------------------------

FORGIVING_HOST = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!dlopen(argv[i], RTLD_NOW)) printf("FAILED %s\n", argv[i]);
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    while (fgets(line, sizeof line, maps)) fputs(line, stdout);
    return 0;
}
"""


@pytest.fixture(scope="module")
def after_a_failed_dlopen(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    """Two extensions needing ``libshared.so``: the first finds (RUNPATH) a copy needing strlcpy@GLIBC_2.38,
    which this machine's libc lacks, the second a plain copy. Then the host program that dlopen()s them."""
    root = tmp_path_factory.mktemp("failed_dlopen")
    source = 'extern int strlcpy(); int shared(void) { char d[2]; return strlcpy(d, "x", 2); }\n'
    bad = compile_elf(root / "bad" / "libshared.so", source, soname="libshared.so", nostdlib=True,
                      libs=[synthetic.new_libc])  # fmt: skip
    good = compile_elf(
        root / "good" / "libshared.so", "int shared(void) { return 1; }\n", soname="libshared.so"
    )
    call = "int shared(void); int f(void) { return shared(); }\n"
    first = compile_elf(root / "first.so", call, libs=[bad], runpath=[str(bad.parent)])
    second = compile_elf(root / "second.so", call, libs=[good], runpath=[str(good.parent)])
    host = compile_elf(root / "host", FORGIVING_HOST, shared=False, extra=["-ldl"])
    return host, first, second, bad, good


def test_a_failed_dlopen_is_forgotten_so_the_next_extension_finds_its_own_copy(
    after_a_failed_dlopen: tuple[Path, ...],
) -> None:
    host, first, second, bad, good = after_a_failed_dlopen
    real = subprocess.run([str(host), str(first), str(second)], capture_output=True, text=True, check=True)
    assert f"FAILED {first}" in real.stdout
    maps = real.stdout.split(f"FAILED {first}")[1]
    assert str(good) in maps
    assert str(bad) not in maps
    extensions = (Extension(str(first), "first"), Extension(str(second), "second"))
    graph = simulate(Target("generic", str(host), str(host), extensions), env=clean_env())
    assert graph.edges[str(second), str(good)]["via"] is Via.RUNPATH
    assert graph.graph["order_dependent"] == []  # the failing copy never stays: no order to depend on


def test_each_extension_has_the_errors_of_what_its_own_dlopen_touched(
    after_a_failed_dlopen: tuple[Path, ...],
) -> None:
    host, first, second, bad, _ = after_a_failed_dlopen
    again = Extension(str(first), "first"), Extension(str(second), "second"), Extension(str(bad), "bad")
    graph = simulate(Target("generic", str(host), str(host), again), env=clean_env())
    blocking = extension_errors(graph, analyze(graph))
    assert set(blocking) == {str(first), str(bad)}  # loading bad alone fails the same way
    assert {(c.object, c.version) for c in blocking[str(first)]} == {(str(bad), "GLIBC_2.38")}
