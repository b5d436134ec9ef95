"""The stdenv glibc, found the way the compiler finds it: real cc, real probe links, real wrappers."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from glibc_doctor.core.errors import StdenvError
from glibc_doctor.core.scan import scan
from glibc_doctor.core.stdenv import find_stdenv

from tests.gcc import I386_LOADER, builds_i386_programs, compile_elf

SYSTEM_LIBC_DIR = Path("/lib/x86_64-linux-gnu")
LOADER = "ld-linux-x86-64.so.2"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("CC", "NIX_CC")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def _copy_of_system_glibc(directory: Path) -> Path:
    """A second glibc: the machine's loader and libc copied elsewhere (new real paths, same build)."""
    directory.mkdir(parents=True)
    for name in (LOADER, "libc.so.6"):
        shutil.copy2(os.path.realpath(SYSTEM_LIBC_DIR / name), directory / name)
    return directory


def _nix_style_wrapper(bin_dir: Path, glibc_lib: Path, log: Path | None = None) -> Path:
    """A ``cc`` first on PATH that adds what a Nix cc-wrapper adds: -dynamic-linker and -rpath."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "cc"
    logging = f'echo "$@" >> {log}\n' if log is not None else ""
    wrapper.write_text(
        "#!/bin/sh\n"
        f"{logging}"
        f'exec {shutil.which("gcc")} "$@" -Wl,--dynamic-linker={glibc_lib}/{LOADER} -Wl,-rpath,{glibc_lib}\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def test_the_machines_cc_gives_the_machines_glibc(tmp_path: Path) -> None:
    info = find_stdenv(env=_env(tmp_path))
    assert info.version == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert os.path.realpath(info.libc) == os.path.realpath(SYSTEM_LIBC_DIR / "libc.so.6")
    assert os.path.basename(info.loader) == LOADER
    assert info.source == "probe: cc"


def test_the_stdenv_libstdcxx_is_what_the_compiler_links(tmp_path: Path) -> None:
    info = find_stdenv(env=_env(tmp_path))
    assert info.libstdcxx is not None
    assert os.path.basename(info.libstdcxx) == "libstdc++.so.6"
    assert os.path.dirname(info.libstdcxx) in info.lib_dirs


def test_a_nix_style_wrapper_first_on_path_moves_the_stdenv(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "glibc" / "lib")
    _nix_style_wrapper(tmp_path / "bin", glibc)
    before = find_stdenv(env=_env(tmp_path))
    after = find_stdenv(env=_env(tmp_path, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"))
    assert after.loader == str(glibc / LOADER)
    assert after.libc == str(glibc / "libc.so.6")
    assert after.lib_dirs[0] == str(glibc)
    assert after.fingerprint != before.fingerprint


def test_the_probe_runs_once_and_its_answer_is_cached(tmp_path: Path) -> None:
    log = tmp_path / "cc.log"
    _nix_style_wrapper(tmp_path / "bin", _copy_of_system_glibc(tmp_path / "glibc"), log)
    env = _env(tmp_path, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    first = find_stdenv(env=env)
    calls = len(log.read_text().splitlines())
    second = find_stdenv(env=env)
    assert second == first
    assert len(log.read_text().splitlines()) == calls


def test_a_libc_replaced_by_another_build_changes_the_fingerprint_despite_the_cache(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "glibc")
    _nix_style_wrapper(tmp_path / "bin", glibc)
    env = _env(tmp_path, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    first = find_stdenv(env=env)
    # Another ELF with another build-id stands in for an upgraded libc (the cache checks the stat).
    shutil.copy(os.path.realpath(SYSTEM_LIBC_DIR / "libm.so.6"), glibc / "libc.so.6")
    second = find_stdenv(env=env)
    assert second.fingerprint != first.fingerprint


def test_cc_from_the_environment_wins_over_cc_on_path(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "glibc")
    wrapper = _nix_style_wrapper(tmp_path / "tools", glibc)
    info = find_stdenv(env=_env(tmp_path, CC=str(wrapper)))
    assert info.libc == str(glibc / "libc.so.6")


def test_glibc_dir_given_as_a_prefix_finds_its_lib_directory(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "prefix" / "lib")
    info = find_stdenv(str(tmp_path / "prefix"), env=_env(tmp_path))
    assert info.libc == str(glibc / "libc.so.6")
    assert info.loader == str(glibc / LOADER)
    assert info.source == f"--glibc {tmp_path / 'prefix'}"


def test_glibc_dir_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StdenvError, match="not a directory"):
        find_stdenv(str(tmp_path / "nowhere"), env=_env(tmp_path))


def test_glibc_dir_without_a_libc_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StdenvError, match="no libc.so.6"):
        find_stdenv(str(tmp_path / "empty"), env=_env(tmp_path))


def test_no_compiler_at_all_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty-bin").mkdir()
    with pytest.raises(StdenvError, match="no C compiler"):
        find_stdenv(env=_env(tmp_path, PATH=str(tmp_path / "empty-bin")))


def test_a_compiler_that_cannot_link_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "bin" / "cc"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cc: fatal error: no linker here' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(StdenvError, match="no linker here"):
        find_stdenv(env=_env(tmp_path, PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin"))


def test_nix_cc_names_the_loader_when_no_compiler_runs(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "glibc" / "lib")
    support = tmp_path / "nix-cc" / "nix-support"
    support.mkdir(parents=True)
    (support / "dynamic-linker").write_text(f"{glibc / LOADER}\n")
    (tmp_path / "empty-bin").mkdir()
    env = _env(tmp_path, PATH=str(tmp_path / "empty-bin"), NIX_CC=str(tmp_path / "nix-cc"))
    info = find_stdenv(env=env)
    assert info.loader == str(glibc / LOADER)
    assert info.source.startswith("$NIX_CC")


@pytest.mark.lab
def test_a_wrapper_pointing_at_the_labs_trixie_glibc_gives_glibc_2_41(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _nix_style_wrapper(tmp_path / "bin", lab.glibc_new_lib)
    info = find_stdenv(env=_env(tmp_path, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"))
    assert info.version == "2.41"
    assert info.libc == str(lab.glibc_new_lib / "libc.so.6")


def test_the_stdenv_command_prints_the_record_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "stdenv", "--json"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout)
    assert set(data) >= {"version", "loader", "libc", "lib_dirs", "source", "fingerprint", "libstdcxx"}
    assert data["version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]


# --- the i386 stdenv of a 32-bit target ----------------------------------------------------------------

needs_multilib = pytest.mark.skipif(
    not builds_i386_programs(), reason="needs gcc-multilib (gcc -m32 and /lib/ld-linux.so.2)"
)


def _libc_the_real_loader_maps(loader: str, program: Path) -> str:
    listed = subprocess.run([loader, "--list", str(program)], capture_output=True, text=True, check=True)
    line = next(line for line in listed.stdout.splitlines() if "libc.so.6 => " in line)
    return line.split(" => ")[1].split(" (0x")[0]


@needs_multilib
def test_the_i386_stdenv_is_what_cc_m32_links_against(tmp_path: Path) -> None:
    info = find_stdenv(env=_env(tmp_path), elf_class=32)
    program = compile_elf(tmp_path / "prog32", "int main(void) { return 0; }\n", shared=False, extra=["-m32"])
    assert (info.loader, info.elf_class, info.source) == (I386_LOADER, 32, "probe: cc -m32")
    assert info.libc == _libc_the_real_loader_maps(I386_LOADER, program)
    assert info.version == find_stdenv(env=_env(tmp_path)).version  # one glibc build, two ABIs


@needs_multilib
def test_the_i386_and_the_native_stdenv_are_cached_apart(tmp_path: Path) -> None:
    env = _env(tmp_path)
    native, i386 = find_stdenv(env=env), find_stdenv(env=env, elf_class=32)
    assert (find_stdenv(env=env), find_stdenv(env=env, elf_class=32)) == (native, i386)
    assert native.fingerprint != i386.fingerprint
    assert native.elf_class == 64


@needs_multilib
def test_a_scan_of_a_32_bit_program_compares_it_with_the_i386_stdenv(tmp_path: Path) -> None:
    program = compile_elf(tmp_path / "prog32", "int main(void) { return 0; }\n", shared=False, extra=["-m32"])
    result = scan(str(program), env=_env(tmp_path), use_cache=False)
    assert result.stdenv is not None
    assert (result.stdenv.loader, result.stdenv.elf_class) == (I386_LOADER, 32)
    assert result.stdenv.libc == result.glibc.libc


def test_glibc_dir_of_an_i386_glibc_needs_its_own_loader_name(tmp_path: Path) -> None:
    glibc = _copy_of_system_glibc(tmp_path / "glibc64")
    with pytest.raises(StdenvError, match="no ld-linux.so.2 next to its libc.so.6"):
        find_stdenv(str(glibc), env=_env(tmp_path), elf_class=32)
