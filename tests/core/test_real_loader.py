"""The scan against the real ld.so, case by case: edges and errors must agree.

Each case is a small tree built with gcc (programs, libraries, odd files in the search path) and is
then both run and scanned:

- the real process: the program is a probe that lists every object the loader mapped
  (``dl_iterate_phdr``) and, for each name given on its command line, which object the loader
  answers it with (``dlopen(name, RTLD_NOLOAD)`` + ``dlinfo``: every name ld.so resolved is a name of
  the object it chose). Run once to learn the closure, once more with the closure's DT_NEEDED names;
  a program that cannot start prints ld.so's error instead.
- the scan: ``core.scan.scan()`` of the same program (and ``--ext`` plugins, dlopen()ed by the probe),
  with the same environment and working directory.

Compared: the set of mapped objects, one edge per (requester, DT_NEEDED name) with the object that
serves it, and the loader's first error, which must be one of the scan's error messages. 64-bit cases
run everywhere; the 32-bit ones need gcc-multilib (``gcc -m32`` and ``/lib/ld-linux.so.2``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.loader import cpu_flags
from glibc_doctor.core.scan import ScanResult, scan

from tests.gcc import builds_i386_programs, compile_elf
from tests.synthetic import Synthetic

LD_ERROR = "error while loading shared libraries: "
CRASHED = "killed by signal"
PRELOAD_IGNORED = "ERROR: ld.so: object "
PLUGIN_ERROR = "dlopen failed: "

PROBE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>

static int each(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    if (info->dlpi_name[0]) printf("loaded\t%s\n", info->dlpi_name);
    return 0;
}

int main(int argc, char **argv) {
    const char *plugin = getenv("PROBE_DLOPEN");
    if (plugin && plugin[0] && !dlopen(plugin, RTLD_NOW)) {
        printf("%s%s\n", "dlopen failed: ", dlerror());
        return 3;
    }
    dl_iterate_phdr(each, 0);
    for (int i = 1; i < argc; i++) {
        struct link_map *map = 0;
        void *handle = dlopen(argv[i], RTLD_LAZY | RTLD_NOLOAD);
        if (handle && dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0)
            printf("name\t%s\t%s\n", argv[i], map->l_name[0] ? map->l_name : "<main>");
        else
            printf("name\t%s\t-\n", argv[i]);
    }
    return 0;
}
"""


# --- building a case -------------------------------------------------------------------------------


@dataclass
class Tree:
    """One case's directory and how its objects are built (64-bit, or i386 with ``m32``)."""

    root: Path
    m32: bool = False
    env: dict[str, str] = field(default_factory=dict)
    plugins: list[Path] = field(default_factory=list)

    @property
    def arch(self) -> list[str]:
        return ["-m32"] if self.m32 else []

    def lib(
        self,
        relative: str,
        *,
        soname: str | None = None,
        needed: Sequence[Path] = (),
        runpath: Sequence[str] = (),
        rpath: Sequence[str] = (),
    ) -> Path:
        """A shared library at ``root/relative`` (soname: its file name), needing ``needed``."""
        path = self.root / relative
        symbol = re.sub(r"\W", "_", relative)
        return compile_elf(
            path,
            f"int f_{symbol}(void) {{ return 1; }}\n",
            soname=soname or path.name,
            runpath=runpath,
            rpath=rpath,
            extra=[*self.arch, *_link(needed)],
        )

    def program(
        self,
        *,
        needed: Sequence[Path] = (),
        runpath: Sequence[str] = (),
        rpath: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> Path:
        """The probe program ``root/bin/prog``, needing ``needed`` (by their sonames, in order)."""
        return compile_elf(
            self.root / "bin" / "prog",
            PROBE,
            shared=False,
            runpath=runpath,
            rpath=rpath,
            extra=[*self.arch, *extra, *_link(needed)],
        )

    def stub(self, soname: str) -> Path:
        """A library to link against for a DT_NEEDED ``soname``; it is not where the loader looks."""
        return self.lib(f"stub/{soname.replace('/', '_')}", soname=soname)

    def file(self, relative: str, content: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    def link(self, relative: str, target: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        return path


def _link(needed: Sequence[Path]) -> list[str]:
    """Link flags that keep every DT_NEEDED in order, whatever the compiler's ``--as-needed`` default."""
    flags = ["-Wl,--no-as-needed"]
    for library in needed:
        flags += [f"-L{library.parent}", f"-l:{library.name}"]
    return flags


# --- the cases -------------------------------------------------------------------------------------


def rpath_is_inherited_by_dependencies(tree: Tree) -> Path:
    libb = tree.lib("a/libb.so")
    liba = tree.lib("a/liba.so", needed=[libb])
    return tree.program(needed=[liba], rpath=[str(tree.root / "a")])


def runpath_is_not_inherited(tree: Tree) -> Path:
    libb = tree.lib("a/libb.so")
    liba = tree.lib("a/liba.so", needed=[libb])
    return tree.program(needed=[liba], runpath=[str(tree.root / "a")])


def ld_library_path_serves_names(tree: Tree) -> Path:
    libx = tree.lib("env/libx.so")
    tree.env["LD_LIBRARY_PATH"] = f"{tree.root}/nowhere:{libx.parent}"
    return tree.program(needed=[tree.stub("libx.so")])


def a_preloaded_soname_serves_a_dt_needed_name(tree: Tree) -> Path:
    tree.lib("pre/libpre.so", soname="libx.so")
    tree.env["LD_PRELOAD"] = "pre/libpre.so"  # relative: opened from the working directory
    return tree.program(needed=[tree.stub("libx.so")])


def a_preload_that_cannot_be_loaded_is_ignored(tree: Tree) -> Path:
    tree.file("pre/libempty.so", b"")
    tree.env["LD_PRELOAD"] = f"libnowhere.so {tree.root}/pre/libempty.so"
    return tree.program()


def two_names_of_one_file_are_two_edges(tree: Tree) -> Path:
    tree.lib("d/libx.so")
    tree.link("d/libalias.so", "libx.so")
    return tree.program(needed=[tree.stub("libx.so"), tree.stub("libalias.so")], runpath=[f"{tree.root}/d"])


def two_names_of_one_file_in_two_requesters(tree: Tree) -> Path:
    libx = tree.lib("d/libx.so")
    tree.link("d/libalias.so", "libx.so")
    user = tree.lib("d/libuser.so", needed=[tree.stub("libalias.so")], runpath=["$ORIGIN"])
    return tree.program(needed=[libx, user], runpath=[f"{tree.root}/d"])


def _bad_first(tree: Tree, make_bad: Callable[[Path], object]) -> Path:
    tree.lib("good/libx.so")
    (tree.root / "bad").mkdir(parents=True, exist_ok=True)
    make_bad(tree.root / "bad" / "libx.so")
    return tree.program(needed=[tree.stub("libx.so")], runpath=[f"{tree.root}/bad", f"{tree.root}/good"])


def an_empty_file_first_is_too_short(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: path.write_bytes(b""))


def a_short_text_file_first_is_too_short(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: path.write_bytes(b"INPUT(libz.so)\n"))


def a_long_text_file_first_is_an_invalid_elf_header(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: path.write_bytes(b"INPUT(libz.so)\n" * 20))


def an_elf_header_alone_first_cannot_be_read(tree: Tree) -> Path:
    header = 52 if tree.m32 else 64
    return _bad_first(tree, lambda path: path.write_bytes(tree.lib("hdr/libx.so").read_bytes()[:header]))


def a_directory_first_stops_the_search(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: path.mkdir())


def a_symlink_loop_first_ends_its_search_path(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: os.symlink("libx.so", path))


def a_dangling_link_first_is_skipped(tree: Tree) -> Path:
    return _bad_first(tree, lambda path: os.symlink("nowhere.so", path))


def a_wrong_class_first_is_skipped(tree: Tree) -> Path:
    other = ["-m64"] if tree.m32 else ["-m32"]
    source = "int x(void) { return 1; }\n"
    return _bad_first(tree, lambda path: compile_elf(path, source, nostdlib=True, extra=other))


def a_missing_name_with_a_slash_is_ld_so_words(tree: Tree) -> Path:
    return tree.program(needed=[tree.stub("sub/libx.so")])


def a_name_with_a_slash_opens_from_the_working_directory(tree: Tree) -> Path:
    tree.lib("sub/libx.so", soname="sub/libx.so")
    return tree.program(needed=[tree.stub("sub/libx.so")])


def platform_token_expands_like_ld_so(tree: Tree) -> Path:
    for platform in ("x86_64", "haswell", "xeon_phi", "i386", "i586", "i686"):
        tree.lib(f"bin/p_{platform}/libx.so", soname="libx.so")
    return tree.program(needed=[tree.stub("libx.so")], runpath=["$ORIGIN/p_$PLATFORM"])


def lib_token_expands_like_ld_so(tree: Tree) -> Path:
    for lib in ("lib", "lib32", "lib64", "lib/x86_64-linux-gnu", "lib/i386-linux-gnu", "libx32"):
        tree.lib(f"l/{lib}/libx.so", soname="libx.so")
    return tree.program(needed=[tree.stub("libx.so")], runpath=[f"{tree.root}/l/$LIB"])


def legacy_hwcap_subdirs_come_in_ld_so_order(tree: Tree) -> Path:
    for sub in ("", "tls/", "sse2/", "i686/", "x86_64/", "haswell/", "i686/sse2/", "tls/x86_64/"):
        tree.lib(f"d/{sub}libx.so", soname="libx.so")
    return tree.program(needed=[tree.stub("libx.so")], runpath=[f"{tree.root}/d"])


def the_system_libraries_come_from_the_cache(tree: Tree) -> Path:
    return tree.program(extra=["-lm"])


def a_plugin_and_its_dependency_are_dlopened(tree: Tree) -> Path:
    dep = tree.lib("plug/libdep.so")
    tree.plugins.append(tree.lib("plug/plugin.so", needed=[dep], runpath=["$ORIGIN"]))
    return tree.program()


def a_plugin_whose_dependency_is_a_directory_fails(tree: Tree) -> Path:
    (tree.root / "plug" / "libdep.so").mkdir(parents=True)
    stub = tree.stub("libdep.so")
    tree.plugins.append(tree.lib("plug/plugin.so", needed=[stub], runpath=["$ORIGIN"]))
    return tree.program()


CASES: list[Callable[[Tree], Path]] = [
    rpath_is_inherited_by_dependencies,
    runpath_is_not_inherited,
    ld_library_path_serves_names,
    a_preloaded_soname_serves_a_dt_needed_name,
    a_preload_that_cannot_be_loaded_is_ignored,
    two_names_of_one_file_are_two_edges,
    two_names_of_one_file_in_two_requesters,
    an_empty_file_first_is_too_short,
    a_short_text_file_first_is_too_short,
    a_long_text_file_first_is_an_invalid_elf_header,
    an_elf_header_alone_first_cannot_be_read,
    a_directory_first_stops_the_search,
    a_symlink_loop_first_ends_its_search_path,
    a_dangling_link_first_is_skipped,
    a_wrong_class_first_is_skipped,
    a_missing_name_with_a_slash_is_ld_so_words,
    a_name_with_a_slash_opens_from_the_working_directory,
    platform_token_expands_like_ld_so,
    lib_token_expands_like_ld_so,
    legacy_hwcap_subdirs_come_in_ld_so_order,
    the_system_libraries_come_from_the_cache,
    a_plugin_and_its_dependency_are_dlopened,
    a_plugin_whose_dependency_is_a_directory_fails,
]


# --- the real loader -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealRun:
    """What the real process mapped (paths as ld.so names them), or the loader's error."""

    loaded: frozenset[str]
    names: dict[str, str]  # DT_NEEDED name -> the object ld.so serves it with
    error: str | None
    ignored: tuple[str, ...] = ()  # ld.so's "cannot be preloaded ... ignored." lines


def run_probe(tree: Tree, program: Path, names: Sequence[str] = ()) -> RealRun:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **tree.env}
    if tree.plugins:
        env["PROBE_DLOPEN"] = str(tree.plugins[0])
    done = subprocess.run(
        [str(program), *names], env=env, cwd=tree.root, capture_output=True, text=True, timeout=20
    )
    for line in (done.stderr + done.stdout).splitlines():
        for marker in (LD_ERROR, PLUGIN_ERROR):
            if marker in line:
                return RealRun(frozenset(), {}, line.split(marker, 1)[1])
    if done.returncode < 0:
        return RealRun(frozenset(), {}, f"{CRASHED} {-done.returncode}")
    assert done.returncode == 0, done.stderr
    ignored = tuple(line for line in done.stderr.splitlines() if line.startswith(PRELOAD_IGNORED))
    loaded = {line.split("\t")[1] for line in done.stdout.splitlines() if line.startswith("loaded\t")}
    answers = [line.split("\t")[1:] for line in done.stdout.splitlines() if line.startswith("name\t")]
    main = str(program)
    names_to = {name: (main if path == "<main>" else path) for name, path in answers}
    return RealRun(frozenset(path for path in loaded if "/" in path), names_to, None, ignored)


def real_process(tree: Tree, program: Path) -> RealRun:
    """Run the probe twice: once for the closure, then asking for every DT_NEEDED name in it."""
    first = run_probe(tree, program)
    if first.error is not None:
        return first
    objects = [str(program), *sorted(first.loaded)]
    names = sorted({name for path in objects for name in _needed(tree, path)})
    return run_probe(tree, program, names)


def _needed(tree: Tree, path: str) -> tuple[str, ...]:
    return read_elf(path if path.startswith("/") else str(tree.root / path)).needed


def real_edges(tree: Tree, program: Path, run: RealRun) -> dict[tuple[str, str], str]:
    """(requester, DT_NEEDED name) -> provider, for the program and every object it mapped."""
    edges = {}
    for requester in [str(program), *run.loaded]:
        for name in _needed(tree, requester):
            edges[requester, name] = run.names[name]
    return edges


# --- the scan ------------------------------------------------------------------------------------


def scanned(tree: Tree, program: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> ScanResult:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_CACHE_HOME": str(cache), **tree.env}
    monkeypatch.chdir(tree.root)
    return scan(str(program), ext=[str(p) for p in tree.plugins], env=env, use_cache=False)


def scanned_edges(result: ScanResult) -> dict[tuple[str, str], str]:
    """The scan's edges for DT_NEEDED names (not PT_INTERP, preload or dlopen requests)."""
    document = result.as_json()
    needed = {o["path"]: o["needed"] for o in document["objects"]}  # type: ignore[index, union-attr]
    edges: dict[tuple[str, str], str] = {}
    for edge in document["edges"]:  # type: ignore[union-attr]
        if edge["needed"] in needed.get(edge["from"], ()):
            assert (edge["from"], edge["needed"]) not in edges, f"two edges for one request: {edge}"
            edges[edge["from"], edge["needed"]] = edge["to"]
    return edges


def scanned_objects(result: ScanResult) -> frozenset[str]:
    root = result.graph.graph["root"]
    return frozenset(
        str(node)
        for node, data in result.graph.nodes(data=True)
        if node != root and str(data.get("role")) != "missing"
    )


# --- the comparison --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def compare(tree: Tree, program: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> RealRun:
    real = real_process(tree, program)
    result = scanned(tree, program, cache, monkeypatch)
    errors = [conflict.message for conflict in result.errors]
    if real.error is not None:
        assert real.error in errors, f"ld.so: {real.error!r}; the scan: {errors}"
        return real
    assert errors == []
    warnings = [c.message for c in result.conflicts if c.message.startswith(PRELOAD_IGNORED)]
    assert sorted(warnings) == sorted(real.ignored)
    assert scanned_objects(result) == real.loaded
    assert scanned_edges(result) == real_edges(tree, program, real)
    return real


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_the_scan_agrees_with_the_real_64_bit_loader(
    case: Callable[[Tree], Path], tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    compare(tree, case(tree), cache, monkeypatch)


needs_multilib = pytest.mark.skipif(
    not builds_i386_programs(), reason="needs gcc-multilib (gcc -m32 and /lib/ld-linux.so.2)"
)


@needs_multilib
@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_the_scan_agrees_with_the_real_i386_loader(
    case: Callable[[Tree], Path], tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path, m32=True)
    compare(tree, case(tree), cache, monkeypatch)


# --- what the cases must show, beyond agreeing ----------------------------------------------------


def test_a_32_bit_program_expands_platform_to_i686_as_ld_so_does(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not builds_i386_programs():
        pytest.skip("needs gcc-multilib")
    tree = Tree(tmp_path, m32=True)
    program = platform_token_expands_like_ld_so(tree)
    real = compare(tree, program, cache, monkeypatch)
    platform = "i686" if "cmov" in cpu_flags() else "i586"
    assert real.names["libx.so"] == f"{tmp_path}/bin/p_{platform}/libx.so"


def test_a_32_bit_program_picks_the_legacy_subdir_ld_so_picks(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not builds_i386_programs():
        pytest.skip("needs gcc-multilib")
    tree = Tree(tmp_path, m32=True)
    real = compare(tree, legacy_hwcap_subdirs_come_in_ld_so_order(tree), cache, monkeypatch)
    assert real.names["libx.so"] == f"{tmp_path}/d/tls/libx.so"


def test_a_preloaded_object_serves_the_program_under_both_names(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    program = a_preloaded_soname_serves_a_dt_needed_name(tree)
    compare(tree, program, cache, monkeypatch)
    edges = scanned(tree, program, cache, monkeypatch).as_json()["edges"]
    assert [(e["needed"], e["via"]) for e in edges if e["to"] == "pre/libpre.so"] == [  # type: ignore[union-attr]
        ("pre/libpre.so", "preload"),
        ("libx.so", "already-loaded"),
    ]


@pytest.mark.parametrize(
    "case",
    [
        an_empty_file_first_is_too_short,
        a_directory_first_stops_the_search,
        a_long_text_file_first_is_an_invalid_elf_header,
    ],
)
def test_a_bad_file_that_stops_the_search_is_what_the_advice_removes(
    case: Callable[[Tree], Path], tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    program = case(tree)
    (conflict,) = scanned(tree, program, cache, monkeypatch).errors
    bad = f"{tmp_path}/bad/libx.so"
    assert (conflict.kind, conflict.library, conflict.provider) == ("unreadable", "libx.so", bad)
    assert conflict.fixes[0].startswith(f"remove or rename {bad}")
    assert "install the package" not in " ".join(conflict.fixes)


def test_a_symlink_loop_that_ends_a_search_path_is_named_in_the_advice(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    program = a_symlink_loop_first_ends_its_search_path(tree)
    (conflict,) = scanned(tree, program, cache, monkeypatch).errors
    assert conflict.fixes[0].startswith(f"remove or repair {tmp_path}/bad/libx.so")
    assert "ends the search in RUNPATH of" in conflict.cause


def test_a_preload_ld_so_cannot_load_is_a_warning_and_the_scan_exits_0(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    result = scanned(tree, a_preload_that_cannot_be_loaded_is_ignored(tree), cache, monkeypatch)
    assert {(c.kind, c.severity, c.library) for c in result.conflicts} == {
        ("not-found", "warning", "libnowhere.so"),
        ("not-found", "warning", f"{tmp_path}/pre/libempty.so"),
    }
    assert result.exit_code == 0


def test_every_case_errs_where_it_should(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cases are worth comparing only if they test both sides: these must fail, the rest load."""
    failing = {
        runpath_is_not_inherited,
        an_empty_file_first_is_too_short,
        a_short_text_file_first_is_too_short,
        a_long_text_file_first_is_an_invalid_elf_header,
        an_elf_header_alone_first_cannot_be_read,
        a_directory_first_stops_the_search,
        a_symlink_loop_first_ends_its_search_path,
        a_missing_name_with_a_slash_is_ld_so_words,
        a_plugin_whose_dependency_is_a_directory_fails,
    }
    for index, case in enumerate(CASES):
        tree = Tree(tmp_path / str(index))
        tree.root.mkdir()
        real = real_process(tree, case(tree))
        assert (real.error is not None) is (case in failing), (case.__name__, real.error)


# --- every hostile file of the corpus, dlopen()ed --------------------------------------------------


def hostile_files(synthetic: Synthetic) -> list[Path]:
    """The corpus's bad and foreign files; not its directory (``--ext DIR`` means the plugins in DIR)."""
    foreign = [synthetic.elf32, synthetic.big_endian, synthetic.big_endian32, synthetic.foreign_machine]
    return [path for path in [*synthetic.hostile, *foreign] if path != synthetic.directory]


def test_every_hostile_file_dlopened_fails_in_the_words_the_scan_predicts(
    synthetic: Synthetic, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path)
    program = tree.program()
    compared = 0
    for path in hostile_files(synthetic):
        tree.plugins[:] = [path]
        try:
            result = scanned(tree, program, cache, monkeypatch)
        except TargetError:
            continue  # refused as bad input (a dangling or looping --ext): tested in test_hostile
        real = run_probe(tree, program)
        messages = [c.message for c in result.errors if str(path) in (c.object, c.library)]
        if path == synthetic.dynamic_no_null:
            # ld.so reads on past the missing DT_NULL into whatever follows (zeros, here) and loads
            # it; the scan does not guess at the bytes after a segment, so it reports the file.
            assert real.error is None
            assert len(messages) == 1
        elif real.error is not None and real.error.startswith(CRASHED):
            assert len(messages) == 1, path  # ld.so reads the broken tables and crashes: an error too
        else:
            assert messages == [real.error], path
            compared += 1
    assert compared >= 10
