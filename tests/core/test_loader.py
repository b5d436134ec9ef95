"""The loader model, rule by rule, on gcc-built ELF trees; each answer is checked against the real ld.so.

The real loader is asked in trace mode (``LD_TRACE_LOADED_OBJECTS=1``: it maps the closure and prints
``name => path`` without running ``main``) or by running the program; that is allowed here because
these are tests, never scans.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.loader import (
    Loader,
    LoaderConfig,
    _legacy_subdirs,
    cpu_flags,
    loader_config,
    x86_isa_levels,
)
from glibc_doctor.core.model import EM_X86_64, ElfFacts, Via
from glibc_doctor.lab.build import Lab

from tests.gcc import I386_LOADER, builds_i386_programs, compile_elf
from tests.synthetic import Synthetic

SYSTEM_LOADER = "/lib64/ld-linux-x86-64.so.2"
DT_DEBUG = 21
DT_RUNPATH = 29
DT_RPATH = 15

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_LOADER), reason="needs an x86-64 glibc system")


# --- building trees -----------------------------------------------------------------------------


def build_lib(
    path: Path,
    *,
    needed: Sequence[Path] = (),
    rpath: Sequence[str] = (),
    runpath: Sequence[str] = (),
    extra: Sequence[str] = (),
    soname: str | None = None,
) -> Path:
    """A shared library named (and with the soname) ``path.name``, needing ``needed`` by soname.

    Each library defines a function named after its file and calls those of ``needed``, so the
    linker keeps every DT_NEEDED (Debian's gcc links ``--as-needed``).
    """
    return compile_elf(
        path,
        calling(needed) + f"int {symbol_of(path)}(void) {{ return {calls(needed)}; }}\n",
        soname=soname or path.name,
        libs=list(needed),
        rpath=rpath,
        runpath=runpath,
        extra=["-Wl,--allow-shlib-undefined", *extra],
    )


def symbol_of(path: Path) -> str:
    return re.sub(r"\W", "_", path.name)


def calling(needed: Sequence[Path]) -> str:
    return "".join(f"int {symbol_of(lib)}(void);\n" for lib in needed)


def calls(needed: Sequence[Path]) -> str:
    return " + ".join([f"{symbol_of(lib)}()" for lib in needed] or ["1"])


def build_prog(
    path: Path,
    *,
    needed: Sequence[Path] = (),
    rpath: Sequence[str] = (),
    runpath: Sequence[str] = (),
    extra: Sequence[str] = (),
    source: str | None = None,
) -> Path:
    return compile_elf(
        path,
        source or calling(needed) + f"int main(void) {{ return {calls(needed)} == 0; }}\n",
        shared=False,
        libs=list(needed),
        rpath=rpath,
        runpath=runpath,
        extra=["-Wl,--allow-shlib-undefined", *extra],
    )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra or {})
    return env


def real_closure(
    prog: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str | None]:
    """``name -> path`` (None: not found) of the real loader in trace mode."""
    run = subprocess.run(
        [str(prog)],
        env=clean_env({**(env or {}), "LD_TRACE_LOADED_OBJECTS": "1"}),
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    result: dict[str, str | None] = {}
    for line in run.stdout.splitlines():
        match = re.match(r"^\s+(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", line)
        if match:
            result[match[1]] = None if match[2] == "not found" else match[2]
    return result


def predicted_closure(
    prog: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[dict[str, str | None], dict[str, Via], Loader]:
    """``name -> path`` the model predicts for the breadth-first closure of ``prog`` (and how found)."""
    config = loader_config(str(prog), env or {})
    loader = Loader(config, cwd=str(cwd) if cwd else None)
    main = read_elf(str(prog))
    loader.mark_loaded(str(prog), main)
    if main.interpreter:
        loader.mark_loaded(main.interpreter, read_elf(main.interpreter), main.interpreter)
    paths: dict[str, str | None] = {}
    vias: dict[str, Via] = {}
    queue: list[tuple[ElfFacts, tuple[ElfFacts, ...]]] = [(main, (main,))]
    while queue:
        facts, chain = queue.pop(0)
        for name in facts.needed:
            resolution = loader.resolve(name, facts, chain)
            paths.setdefault(name, resolution.path)
            vias.setdefault(name, resolution.via)
            if resolution.path and resolution.via is not Via.LOADED:
                found = loader.reader_facts(resolution.path)
                loader.mark_loaded(resolution.path, found, name)
                queue.append((found, (found, *chain)))
    return paths, vias, loader


def assert_same_as_real(
    prog: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str | None]:
    predicted, _vias, _loader = predicted_closure(prog, env, cwd)
    real = real_closure(prog, env, cwd)
    assert real, "the real loader printed nothing"
    assert {name: predicted.get(name) for name in real} == real
    return predicted


def add_runpath_beside_rpath(binary: Path) -> None:
    """Give a DT_RPATH object a DT_RUNPATH too (same string), by turning its DT_DEBUG into one.

    GNU ld writes one kind of tag per object; glibc's rule "RPATH is ignored when RUNPATH is present"
    needs an object with both, so the DT_DEBUG slot of the executable is rewritten in place.
    """
    with binary.open("r+b") as handle:
        elf = ELFFile(handle)
        dynamic = elf.get_section_by_name(".dynamic")
        entry_size = dynamic["sh_entsize"]
        offset = dynamic["sh_offset"]
        tags = [(i, tag.entry.d_tag, tag.entry.d_val) for i, tag in enumerate(dynamic.iter_tags())]
        rpath_value = next(value for _, tag, value in tags if tag == "DT_RPATH")
        debug_index = next(i for i, tag, _ in tags if tag == "DT_DEBUG")
        handle.seek(offset + debug_index * entry_size)
        handle.write(DT_RUNPATH.to_bytes(8, "little") + rpath_value.to_bytes(8, "little"))


# --- loader_config -------------------------------------------------------------------------------


def ld_so_help(loader: str) -> str:
    return subprocess.run([loader, "--help"], capture_output=True, text=True, check=True).stdout


def test_default_dirs_are_the_ones_ld_so_help_lists() -> None:
    config = loader_config(SYSTEM_LOADER, {})
    listed = re.findall(r"^\s+(\S+) \(system search path\)$", ld_so_help(SYSTEM_LOADER), re.MULTILINE)
    assert config.default_dirs == tuple(listed)


def test_glibc_hwcaps_subdirs_are_the_supported_ones_ld_so_help_lists() -> None:
    config = loader_config(SYSTEM_LOADER, {})
    help_text = ld_so_help(SYSTEM_LOADER)
    if "glibc-hwcaps" not in help_text:
        pytest.skip("this glibc has no glibc-hwcaps")
    listed = re.findall(r"^\s+(x86-64-v\d) \(supported, searched\)$", help_text, re.MULTILINE)
    assert config.glibc_hwcaps == tuple(listed)


def test_the_system_loader_reads_etc_ld_so_cache() -> None:
    assert loader_config(SYSTEM_LOADER, {}).cache_path == "/etc/ld.so.cache"


def test_a_program_is_configured_by_its_pt_interp(tmp_path: Path) -> None:
    prog = build_prog(tmp_path / "prog")
    config = loader_config(str(prog), {})
    assert config.path == read_elf(str(prog)).interpreter
    assert config.notes == ()


def test_a_library_without_pt_interp_falls_back_to_the_system_loader_and_says_so(tmp_path: Path) -> None:
    lib = build_lib(tmp_path / "libq.so.1")
    config = loader_config(str(lib), {})
    assert config.path == SYSTEM_LOADER
    assert any("no PT_INTERP" in note for note in config.notes)


def test_a_missing_file_falls_back_to_the_system_loader(tmp_path: Path) -> None:
    config = loader_config(str(tmp_path / "absent"), {})
    assert config.path == SYSTEM_LOADER
    assert config.notes


def test_a_missing_pt_interp_falls_back_and_says_which(tmp_path: Path) -> None:
    prog = build_prog(tmp_path / "prog", extra=["-Wl,--dynamic-linker=/nonexistent/ld.so.2"])
    config = loader_config(str(prog), {})
    assert config.path == SYSTEM_LOADER
    assert any("/nonexistent/ld.so.2" in note for note in config.notes)


def test_ld_library_path_splits_on_colons_and_semicolons_keeping_empty_entries() -> None:
    config = loader_config(SYSTEM_LOADER, {"LD_LIBRARY_PATH": "/a:;/b"})
    assert config.ld_library_path == ("/a", "", "/b")


def test_ld_preload_splits_on_spaces_and_colons() -> None:
    config = loader_config(SYSTEM_LOADER, {"LD_PRELOAD": "liba.so /x/libb.so:libc2.so"})
    assert config.preload[:3] == ("liba.so", "/x/libb.so", "libc2.so")


def test_isa_levels_need_every_lower_level() -> None:
    v2 = {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}
    v4_only = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    assert x86_isa_levels(frozenset(v2)) == ("x86-64-v2",)
    assert x86_isa_levels(frozenset(v2 | v4_only)) == ("x86-64-v2",)


def test_legacy_subdirs_follow_glibc_important_hwcaps_order() -> None:
    assert _legacy_subdirs(["tls", "haswell", "x86_64"]) == [
        "tls/haswell/x86_64", "tls/haswell", "tls/x86_64", "tls", "haswell/x86_64", "haswell", "x86_64",
    ]  # fmt: skip


def search_path_reported(loader: str, directory: Path, program: str = "/bin/true") -> list[str]:
    """The LD_LIBRARY_PATH search path the real ``loader`` prints, duplicates removed."""
    run = subprocess.run(
        [loader, "--library-path", str(directory), program],
        env=clean_env({"LD_DEBUG": "libs"}),
        capture_output=True,
        text=True,
    )
    searched = re.search(r"search path=(\S+)\s+\((?:LD_LIBRARY_PATH|--library-path)\)", run.stderr)
    assert searched is not None, run.stderr
    return list(dict.fromkeys(searched[1].split(":")))


def test_the_system_loader_searches_subdirs_exactly_as_it_reports(tmp_path: Path) -> None:
    config = loader_config(SYSTEM_LOADER, {})
    model = [f"{tmp_path}/{sub}" for sub in config.hwcaps] + [str(tmp_path)]
    assert model == search_path_reported(SYSTEM_LOADER, tmp_path)


@pytest.mark.skipif(not builds_i386_programs(), reason="needs gcc-multilib (gcc -m32 and /lib/ld-linux.so.2)")
def test_the_i386_loader_searches_its_legacy_subdirs_exactly_as_it_reports(tmp_path: Path) -> None:
    program = build_prog(tmp_path / "prog32", extra=["-m32"])
    config = loader_config(I386_LOADER, {})
    assert config.platform == ("i686" if "cmov" in cpu_flags() else "i586")
    model = [f"{tmp_path}/{sub}" for sub in config.hwcaps] + [str(tmp_path)]
    assert model == search_path_reported(I386_LOADER, tmp_path, str(program))


@pytest.mark.skipif(not os.path.exists(I386_LOADER), reason="needs the i386 loader (gcc-multilib)")
def test_the_i386_loaders_legacy_subdirs_are_the_ones_its_help_lists() -> None:
    listed = re.findall(
        r"^\s+(\w+) \((?:AT_PLATFORM; )?supported, searched\)$", ld_so_help(I386_LOADER), re.M
    )
    config = loader_config(I386_LOADER, {})
    assert set(listed) == {part for sub in config.hwcaps for part in sub.split("/")}
    assert config.default_dirs == tuple(
        re.findall(r"^\s+(\S+) \(system search path\)$", ld_so_help(I386_LOADER), re.MULTILINE)
    )


@pytest.mark.lab
@pytest.mark.parametrize(("glibc", "release", "legacy"), [("old", "2.31", True), ("new", "2.41", False)])
def test_other_glibc_loaders_search_subdirs_exactly_as_they_report(
    lab: Lab, tmp_path: Path, glibc: str, release: str, legacy: bool
) -> None:
    lib_dir = lab.glibc_old_lib if glibc == "old" else lab.glibc_new_lib
    loader = str(lib_dir / "ld-linux-x86-64.so.2")
    config = loader_config(loader, {})
    assert config.release == release
    assert any(sub.startswith("tls") for sub in config.hwcaps) is legacy
    model = [f"{tmp_path}/{sub}" for sub in config.hwcaps] + [str(tmp_path)]
    assert model == search_path_reported(loader, tmp_path)


@pytest.mark.lab
def test_a_newer_loaders_default_dirs_are_the_ones_its_help_lists(lab: Lab) -> None:
    loader = str(lab.glibc_new_lib / "ld-linux-x86-64.so.2")
    listed = re.findall(r"^\s+(\S+) \(system search path\)$", ld_so_help(loader), re.MULTILINE)
    assert loader_config(loader, {}).default_dirs == tuple(listed)


# --- the search, rule by rule, against the real loader ------------------------------------------


def test_rpath_of_a_loader_further_up_the_chain_is_inherited(tmp_path: Path) -> None:
    deep = build_lib(tmp_path / "c" / "libdeep.so.1")
    mid = build_lib(tmp_path / "b" / "libmid.so.1", needed=[deep])
    top = build_lib(
        tmp_path / "a" / "libtop.so.1", needed=[mid], rpath=[str(tmp_path / "b"), str(tmp_path / "c")]
    )
    prog = build_prog(tmp_path / "prog", needed=[top], rpath=[str(tmp_path / "a")])
    predicted = assert_same_as_real(prog)
    assert predicted["libdeep.so.1"] == f"{tmp_path}/c/libdeep.so.1"
    _, vias, _ = predicted_closure(prog)
    assert vias["libdeep.so.1"] is Via.RPATH


def test_rpath_detail_names_whose_tag_found_it(tmp_path: Path) -> None:
    deep = build_lib(tmp_path / "c" / "libdeep.so.1")
    mid = build_lib(tmp_path / "b" / "libmid.so.1", needed=[deep], rpath=[str(tmp_path / "c")])
    prog = build_prog(tmp_path / "prog", needed=[mid], rpath=[str(tmp_path / "b")])
    _, _, loader = predicted_closure(prog)
    mid_facts = read_elf(str(mid))
    resolution = loader.resolve("libdeep.so.1", mid_facts, (mid_facts, read_elf(str(prog))), reuse=False)
    assert resolution.detail == f"RPATH of {mid}: {tmp_path}/c"
    assert resolution.searched[-1] == f"{tmp_path}/c"


def test_runpath_is_not_inherited_by_dependencies(tmp_path: Path) -> None:
    deep = build_lib(tmp_path / "a" / "libdeep.so.1")
    mid = build_lib(tmp_path / "a" / "libmid.so.1", needed=[deep])
    prog = build_prog(tmp_path / "prog", needed=[mid], runpath=[str(tmp_path / "a")])
    predicted = assert_same_as_real(prog)
    assert predicted["libmid.so.1"] == f"{tmp_path}/a/libmid.so.1"
    assert predicted["libdeep.so.1"] is None


def test_rpath_of_an_ancestor_that_also_has_runpath_is_ignored(tmp_path: Path) -> None:
    deep = build_lib(tmp_path / "a" / "libdeep.so.1")
    mid = build_lib(tmp_path / "a" / "libmid.so.1", needed=[deep])
    prog = build_prog(tmp_path / "prog", needed=[mid], rpath=[str(tmp_path / "a")])
    assert assert_same_as_real(prog)["libdeep.so.1"] is not None  # RPATH alone reaches it
    add_runpath_beside_rpath(prog)
    facts = read_elf(str(prog))
    assert facts.rpath == facts.runpath == str(tmp_path / "a")
    predicted = assert_same_as_real(prog)
    assert predicted["libmid.so.1"] == f"{tmp_path}/a/libmid.so.1"  # through the RUNPATH
    assert predicted["libdeep.so.1"] is None


def test_rpath_comes_before_ld_library_path(tmp_path: Path) -> None:
    for where in ("r", "env"):
        build_lib(tmp_path / where / "libx.so.1")
    prog = build_prog(tmp_path / "prog", needed=[tmp_path / "r" / "libx.so.1"], rpath=[str(tmp_path / "r")])
    predicted = assert_same_as_real(prog, {"LD_LIBRARY_PATH": str(tmp_path / "env")})
    assert predicted["libx.so.1"] == f"{tmp_path}/r/libx.so.1"


def test_ld_library_path_comes_before_runpath(tmp_path: Path) -> None:
    for where in ("r", "env"):
        build_lib(tmp_path / where / "libx.so.1")
    prog = build_prog(tmp_path / "prog", needed=[tmp_path / "r" / "libx.so.1"], runpath=[str(tmp_path / "r")])
    predicted = assert_same_as_real(prog, {"LD_LIBRARY_PATH": f"/nonexistent:{tmp_path}/env"})
    assert predicted["libx.so.1"] == f"{tmp_path}/env/libx.so.1"


def test_an_empty_ld_library_path_entry_means_the_current_directory(tmp_path: Path) -> None:
    build_lib(tmp_path / "here" / "libx.so.1")
    prog = build_prog(tmp_path / "prog", needed=[tmp_path / "here" / "libx.so.1"])
    predicted = assert_same_as_real(prog, {"LD_LIBRARY_PATH": "/nonexistent:"}, cwd=tmp_path / "here")
    assert predicted["libx.so.1"] == "libx.so.1"


def test_nodeflib_skips_the_cache_and_the_default_dirs(tmp_path: Path) -> None:
    zlib = "/lib/x86_64-linux-gnu/libz.so.1"
    if not os.path.exists(zlib):
        pytest.skip("no system zlib")
    mine = build_lib(tmp_path / "r" / "libmine.so.1")
    source = calling([mine]) + "const char *zlibVersion(void);\n"
    source += f"int libstrict_so_1(void) {{ return {symbol_of(mine)}() + (zlibVersion() != 0); }}\n"
    strict = compile_elf(
        tmp_path / "s" / "libstrict.so.1",
        source,
        soname="libstrict.so.1",
        libs=[mine, zlib],
        rpath=[str(tmp_path / "r")],
        extra=["-Wl,-z,nodefaultlib"],
    )
    assert read_elf(str(strict)).flags_1 & 0x800
    prog = build_prog(tmp_path / "prog", needed=[strict], rpath=[str(tmp_path / "s")])
    predicted = assert_same_as_real(prog)
    assert predicted["libmine.so.1"] == f"{tmp_path}/r/libmine.so.1"
    assert predicted["libz.so.1"] is None


def test_origin_is_the_directory_the_object_was_found_in_not_its_realpath(tmp_path: Path) -> None:
    dep = build_lib(tmp_path / "view" / "deps" / "libdep.so.1")
    real = build_lib(tmp_path / "store" / "libreal.so.1", needed=[dep], rpath=["$ORIGIN/deps"])
    (tmp_path / "view" / "libreal.so.1").symlink_to(real)
    prog = build_prog(tmp_path / "prog", needed=[real], rpath=[str(tmp_path / "view")])
    predicted = assert_same_as_real(prog)
    assert predicted["libdep.so.1"] == f"{tmp_path}/view/deps/libdep.so.1"


def test_origin_of_the_main_program_is_its_real_directory(tmp_path: Path) -> None:
    lib = build_lib(tmp_path / "real" / "lib" / "libx.so.1")
    prog = build_prog(tmp_path / "real" / "prog", needed=[lib], rpath=["${ORIGIN}/lib"])
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").symlink_to(prog)
    predicted = assert_same_as_real(tmp_path / "bin" / "prog")
    assert predicted["libx.so.1"] == f"{tmp_path}/real/lib/libx.so.1"


def test_lib_and_platform_tokens_expand_like_the_real_loader(tmp_path: Path) -> None:
    config = loader_config(SYSTEM_LOADER, {})
    lib = build_lib(tmp_path / config.lib / config.platform / "libx.so.1")
    prog = build_prog(tmp_path / "prog", needed=[lib], rpath=["$ORIGIN/$LIB/$PLATFORM"])
    predicted = assert_same_as_real(prog)
    assert predicted["libx.so.1"] == f"{tmp_path}/{config.lib}/{config.platform}/libx.so.1"


def test_a_name_with_a_slash_is_opened_as_a_path(tmp_path: Path) -> None:
    lib = compile_elf(tmp_path / "lib" / "libnoname.so", "int f(void) { return 1; }\n")
    prog = build_prog(
        tmp_path / "prog", extra=[str(lib)], source="int f(void);\nint main(void) { return f(); }\n"
    )
    predicted, vias, _ = predicted_closure(prog)
    assert set(predicted) == {str(lib), "libc.so.6", "ld-linux-x86-64.so.2"}
    assert predicted[str(lib)] == str(lib)
    assert vias[str(lib)] is Via.PATH
    assert real_closure(prog).get(str(lib), str(lib)) == str(lib)


def test_a_glibc_hwcaps_subdir_is_preferred_over_the_directory(tmp_path: Path) -> None:
    levels = x86_isa_levels(cpu_flags())
    if not levels:
        pytest.skip("this CPU supports no x86-64 level above the baseline")
    plain = build_lib(tmp_path / "r" / "libx.so.1")
    build_lib(tmp_path / "r" / "glibc-hwcaps" / levels[-1] / "libx.so.1")
    prog = build_prog(tmp_path / "prog", needed=[plain], rpath=[str(tmp_path / "r")])
    predicted = assert_same_as_real(prog)
    assert predicted["libx.so.1"] == f"{tmp_path}/r/glibc-hwcaps/{levels[-1]}/libx.so.1"


def test_a_wrong_class_candidate_is_skipped_and_the_next_directory_used(tmp_path: Path) -> None:
    compile_elf(
        tmp_path / "first" / "libx.so.1", "int x(void) { return 1; }\n", nostdlib=True, extra=["-m32"]
    )
    good = build_lib(tmp_path / "second" / "libx.so.1")
    prog = build_prog(
        tmp_path / "prog", needed=[good], rpath=[str(tmp_path / "first"), str(tmp_path / "second")]
    )
    predicted = assert_same_as_real(prog)
    assert predicted["libx.so.1"] == f"{tmp_path}/second/libx.so.1"
    _, _, loader = predicted_closure(prog)
    facts = read_elf(str(prog))
    resolution = loader.resolve("libx.so.1", facts, (facts,), reuse=False)
    assert [item.path for item in resolution.rejected] == [f"{tmp_path}/first/libx.so.1"]
    assert "ELFCLASS32" in resolution.rejected[0].reason


def test_a_wrong_machine_candidate_is_skipped(tmp_path: Path) -> None:
    other = build_lib(tmp_path / "first" / "libx.so.1")
    data = bytearray(other.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    other.write_bytes(bytes(data))
    good = build_lib(tmp_path / "second" / "libx.so.1")
    prog = build_prog(
        tmp_path / "prog", needed=[good], rpath=[str(tmp_path / "first"), str(tmp_path / "second")]
    )
    predicted = assert_same_as_real(prog)
    assert predicted["libx.so.1"] == f"{tmp_path}/second/libx.so.1"


def test_a_candidate_that_is_not_elf_stops_the_search_like_ld_so(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "libx.so.1").write_text("INPUT(libx.so.2)\n" * 8)
    good = build_lib(tmp_path / "second" / "libx.so.1")
    prog = build_prog(
        tmp_path / "prog", needed=[good], rpath=[str(tmp_path / "first"), str(tmp_path / "second")]
    )
    run = subprocess.run([str(prog)], env=clean_env(), capture_output=True, text=True)
    assert run.returncode != 0
    assert "invalid ELF header" in run.stderr
    facts = read_elf(str(prog))
    resolution = Loader(loader_config(str(prog), {})).resolve("libx.so.1", facts, (facts,))
    assert resolution.path is None
    assert resolution.rejected[-1].path == f"{tmp_path}/first/libx.so.1"
    assert "invalid ELF header" in resolution.detail


def test_an_already_loaded_soname_is_reused_whatever_the_search_path(tmp_path: Path) -> None:
    first = build_lib(tmp_path / "one" / "libx.so.1")
    build_lib(tmp_path / "two" / "libx.so.1")
    config = loader_config(SYSTEM_LOADER, {})
    loader = Loader(config)
    other = build_lib(tmp_path / "libasker.so", runpath=[str(tmp_path / "two")])
    loader.mark_loaded(str(first), read_elf(str(first)))
    asker = read_elf(str(other))
    resolution = loader.resolve("libx.so.1", asker, (asker,))
    assert resolution.path == str(first)
    assert resolution.via is Via.LOADED
    assert loader.resolve("libx.so.1", asker, (asker,), reuse=False).path == f"{tmp_path}/two/libx.so.1"


def test_the_same_file_by_another_path_is_the_loaded_object(tmp_path: Path) -> None:
    lib = build_lib(tmp_path / "one" / "libx.so.1")
    (tmp_path / "alias").mkdir()
    (tmp_path / "alias" / "libx.so.1").symlink_to(lib)
    asker_lib = build_lib(tmp_path / "libasker.so", runpath=[str(tmp_path / "alias")])
    loader = Loader(loader_config(SYSTEM_LOADER, {}))
    loader.mark_loaded("/some/main", ElfFacts(path="/some/main"))
    loader.mark_loaded(str(lib), read_elf(str(lib)), "other-name.so")
    asker = read_elf(str(asker_lib))
    resolution = loader.resolve("libx.so.1", asker, (asker,))
    assert resolution.path == str(lib)


def test_config_hwcaps_drive_the_search_order(tmp_path: Path) -> None:
    build_lib(tmp_path / "r" / "libx.so.1")
    build_lib(tmp_path / "r" / "special" / "libx.so.1")
    base = loader_config(SYSTEM_LOADER, {})
    config = LoaderConfig(
        path=base.path, default_dirs=(), cache_path=None, lib=base.lib, platform=base.platform,
        hwcaps=("special",), elf_class=64, machine=EM_X86_64,
    )  # fmt: skip
    asker_lib = build_lib(tmp_path / "libasker.so", runpath=[str(tmp_path / "r")])
    asker = read_elf(str(asker_lib))
    resolution = Loader(config).resolve("libx.so.1", asker, (asker,))
    assert resolution.path == f"{tmp_path}/r/special/libx.so.1"
    assert resolution.searched == (f"{tmp_path}/r/special",)


def test_not_found_lists_every_directory_tried(tmp_path: Path) -> None:
    asker_lib = build_lib(tmp_path / "libasker.so", runpath=[str(tmp_path / "nowhere")])
    asker = read_elf(str(asker_lib))
    config = loader_config(SYSTEM_LOADER, {})
    resolution = Loader(config).resolve("libdoesnotexist.so.9", asker, (asker,))
    assert resolution.path is None
    assert resolution.via is Via.NOT_FOUND
    assert f"{tmp_path}/nowhere" in resolution.searched
    assert set(config.default_dirs) <= set(resolution.searched)
    assert "cannot open shared object file" in resolution.detail


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_the_cache_answers_after_the_tags_and_before_the_default_dirs(tmp_path: Path) -> None:
    prog = build_prog(tmp_path / "prog")
    predicted, vias, _ = predicted_closure(prog)
    assert vias["libc.so.6"] is Via.CACHE
    assert os.path.samefile(str(predicted["libc.so.6"]), str(real_closure(prog)["libc.so.6"]))


def test_hostile_files_never_break_loader_config(synthetic: Synthetic) -> None:
    for path in synthetic.hostile:
        config = loader_config(str(path), {})
        assert config.default_dirs
        assert config.notes


def test_hostile_candidates_never_break_a_search(synthetic: Synthetic, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    for path in synthetic.hostile:
        os.symlink(path, folder / path.name)
    asker_lib = build_lib(tmp_path / "libasker.so", runpath=[str(folder)])
    asker = read_elf(str(asker_lib))
    loader = Loader(loader_config(SYSTEM_LOADER, {}))
    for path in synthetic.hostile:
        resolution = loader.resolve(path.name, asker, (asker,), reuse=False)
        assert resolution.path is None or resolution.path.startswith(str(folder))


def test_a_32_bit_program_without_its_loader_is_configured_for_32_bit(synthetic: Synthetic) -> None:
    config = loader_config(str(synthetic.ext32_needs_234), {})
    assert config.elf_class == 32


def test_a_bare_loader_takes_the_end_of_the_chain_as_the_main_program(tmp_path: Path) -> None:
    lib = build_lib(tmp_path / "real" / "lib" / "libx.so.1")
    prog = build_prog(tmp_path / "real" / "prog", needed=[lib], rpath=["$ORIGIN/lib"])
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").symlink_to(prog)
    facts = read_elf(str(tmp_path / "bin" / "prog"))
    resolution = Loader(loader_config(str(prog), {})).resolve("libx.so.1", facts, (facts,))
    assert resolution.path == f"{tmp_path}/real/lib/libx.so.1"


def test_a_fifo_as_pt_interp_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "ld.so.fifo"
    os.mkfifo(fifo)
    prog = build_prog(tmp_path / "prog", extra=[f"-Wl,--dynamic-linker={fifo}"])
    config = loader_config(str(prog), {})
    assert config.default_dirs
    assert config.notes
