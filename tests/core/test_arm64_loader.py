"""The loader model of aarch64's ld.so, against the real arm64 loaders (2.31, 2.36, 2.41) under qemu.

Each loader prints the directories it searches (``LD_DEBUG=libs``): for a ``--library-path`` directory
and for its system search path they must be exactly the model's ``hwcaps`` subdirectories (``tls``,
``aarch64``, ``atomics`` before 2.37; no glibc-hwcaps subdirectory at all) and ``default_dirs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from glibc_doctor.core.ldcache import FLAG_AARCH64_LIB64, FLAG_ELF_LIBC6, default_cache_id, read_ld_cache
from glibc_doctor.core.loader import loader_config
from glibc_doctor.core.model import EM_AARCH64, EM_X86_64, Effect, Kind, Severity, Target
from glibc_doctor.core.process import simulate
from glibc_doctor.core.refusals import Setting, refusals, release_of
from glibc_doctor.lab.arm64 import CROSS_GCC, Arm64Lab, qemu_path

pytestmark = pytest.mark.lab

CROSS_LOADER = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1"


def _loaders(lab: Arm64Lab) -> dict[str, str]:
    found = {"2.31": str(lab.glibc_old_lib / "ld-linux-aarch64.so.1")}
    found["2.41"] = str(lab.glibc_new_lib / "ld-linux-aarch64.so.1")
    if os.path.exists(CROSS_LOADER):
        found["2.36"] = CROSS_LOADER
    return found


@pytest.fixture(scope="module")
def needs_missing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An aarch64 program that needs ``libabsent.so``, which no directory holds: every path is searched."""
    work = tmp_path_factory.mktemp("arm64-prog")
    (work / "absent.c").write_text("int absent(void) { return 0; }\n")
    (work / "main.c").write_text("int absent(void);\nint main(void) { return absent(); }\n")
    compiler = shutil.which(CROSS_GCC)
    if compiler is None:
        pytest.skip(f"{CROSS_GCC} is not installed")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", work / "libabsent.so", work / "absent.c"], check=True)
    subprocess.run([compiler, "-o", work / "main", work / "main.c", f"-L{work}", "-labsent"], check=True)
    (work / "libabsent.so").unlink()
    return work / "main"


def _searched(loader: str, program: Path, library_dir: Path) -> dict[str, list[str]]:
    """The loader's own words: ``search path=…  (origin)`` lines, by origin, first of each."""
    argv = [
        qemu_path(),
        loader,
        "--inhibit-cache",
        "--library-path",
        str(library_dir),
        "--list",
        str(program),
    ]
    run = subprocess.run(argv, env={"LD_DEBUG": "libs"}, capture_output=True, text=True, check=False)
    found: dict[str, list[str]] = {}
    for line in (run.stdout + run.stderr).splitlines():
        if "search path=" not in line:
            continue
        paths, _, origin = line.split("search path=", 1)[1].partition("\t\t(")
        found.setdefault(origin.rstrip(")"), paths.strip().split(":"))
    return found


@pytest.mark.parametrize("release", ["2.31", "2.36", "2.41"])
def test_the_model_searches_the_directories_each_arm64_loader_prints(
    arm64_lab: Arm64Lab, needs_missing: Path, tmp_path: Path, release: str
) -> None:
    loader = _loaders(arm64_lab).get(release)
    if loader is None:
        pytest.skip(f"no arm64 loader {release} here (gcc-aarch64-linux-gnu brings 2.36)")
    config = loader_config(loader, {})
    assert (config.release, config.machine, config.platform) == (release, EM_AARCH64, "aarch64")
    searched = _searched(loader, needs_missing, tmp_path)
    library_path = searched.get("LD_LIBRARY_PATH") or searched["--library-path"]
    assert library_path == [f"{tmp_path}/{sub}" for sub in config.hwcaps] + [str(tmp_path)]
    expected_system = []
    for directory in config.default_dirs:
        expected_system += [f"{directory}/{sub}" for sub in config.hwcaps] + [directory]
    assert searched["system search path"] == expected_system


def test_aarch64_loaders_have_no_glibc_hwcaps_subdirectories_and_drop_the_legacy_ones_in_2_37(
    arm64_lab: Arm64Lab,
) -> None:
    old = loader_config(str(arm64_lab.glibc_old_lib / "ld-linux-aarch64.so.1"), {})
    new = loader_config(str(arm64_lab.glibc_new_lib / "ld-linux-aarch64.so.1"), {})
    assert old.hwcaps == (
        "tls/aarch64/atomics",
        "tls/aarch64",
        "tls/atomics",
        "tls",
        "aarch64/atomics",
        "aarch64",
        "atomics",
    )
    assert (new.hwcaps, new.glibc_hwcaps) == ((), ())
    assert old.default_dirs == new.default_dirs == (
        "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib",
    )  # fmt: skip
    assert old.lib == "lib/aarch64-linux-gnu"


def test_an_arm64_ld_so_cache_is_read_with_its_aarch64_flags(arm64_lab: Arm64Lab) -> None:
    cache = read_ld_cache(str(arm64_lab.rootfs / "etc/ld.so.cache"))
    if cache is None:
        pytest.skip("the arm64 root file system has no ld.so.cache (ldconfig -r needs root)")
    libc = cache.entries_for("libc.so.6")
    assert [entry.flags for entry in libc] == [FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64]
    aarch64 = default_cache_id(64, EM_AARCH64)
    assert cache.lookup("libc.so.6", cache_id=aarch64)[0].endswith("/aarch64-linux-gnu/libc.so.6")
    assert cache.lookup("libc.so.6", cache_id=default_cache_id(64, EM_X86_64)) == ()


@pytest.fixture(scope="module")
def page_programs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A program needing ``libpaged.so``, and two copies of that library: aligned to 4 KiB and to
    64 KiB (GNU ld's aarch64 default). The program runs with the cross toolchain's loader."""
    if not os.path.exists(CROSS_LOADER) or shutil.which(CROSS_GCC) is None:
        pytest.skip("no aarch64 cross toolchain")
    work = tmp_path_factory.mktemp("pages")
    (work / "paged.c").write_text("int paged(void) { return 7; }\n")
    (work / "main.c").write_text("int paged(void);\nint main(void) { return paged() == 7 ? 0 : 1; }\n")
    small, large = work / "small", work / "large"
    for where, flags in ((small, ["-Wl,-z,max-page-size=4096", "-Wl,-z,common-page-size=4096"]), (large, [])):
        where.mkdir()
        subprocess.run(
            [CROSS_GCC, "-shared", "-fPIC", *flags, "-o", where / "libpaged.so", work / "paged.c"], check=True
        )
    program = work / "main"
    argv = [
        CROSS_GCC,
        "-o",
        program,
        work / "main.c",
        f"-L{large}",
        "-lpaged",
        f"-Wl,--dynamic-linker={CROSS_LOADER}",
    ]
    subprocess.run(argv, check=True)
    return program, small, large


def _path(library_dir: Path) -> str:
    """The library's directory, then the cross toolchain's glibc (its loader's own dirs are not here)."""
    return f"{library_dir}:{os.path.dirname(CROSS_LOADER)}"


def _loads(program: Path, library_dir: Path, page_size: int) -> bool:
    run = subprocess.run(
        [qemu_path(), "-p", str(page_size), str(program)],
        env={"LD_LIBRARY_PATH": _path(library_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 or "error while loading shared libraries" in run.stderr, run.stderr
    return run.returncode == 0


@pytest.mark.parametrize("page_size", [4096, 65536])
def test_a_library_aligned_below_the_kernels_page_size_is_refused_as_the_real_loader_does(
    page_programs: tuple[Path, Path, Path], page_size: int
) -> None:
    program, small, large = page_programs
    for directory in (small, large):
        graph = simulate(
            Target("generic", str(program), str(program)), env={"LD_LIBRARY_PATH": str(directory)}
        )
        setting = Setting(release_of("2.36"), page_size=page_size)
        records = [c for c in refusals(graph, setting) if c.kind == Kind.PAGE_SIZE]
        assert (not records) == _loads(program, directory, page_size), (directory.name, page_size)
        if records:
            assert (
                records[0].message == f"{directory}/libpaged.so: ELF load command alignment not page-aligned"
            )


def test_an_aarch64_program_scanned_elsewhere_warns_of_64_kib_kernels(
    page_programs: tuple[Path, Path, Path],
) -> None:
    program, small, large = page_programs
    for directory, warned in ((small, True), (large, False)):
        graph = simulate(
            Target("generic", str(program), str(program)), env={"LD_LIBRARY_PATH": str(directory)}
        )
        records = [c for c in refusals(graph, Setting(release_of("2.36"))) if c.kind == Kind.PAGE_SIZE]
        assert [(c.severity, c.effect) for c in records] == (
            [(Severity.WARNING, Effect.LOADS)] if warned else []
        )
