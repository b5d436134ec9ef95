"""The synthetic corpus says what its fields promise, checked with binutils' readelf (not our reader)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.synthetic import Synthetic


def readelf(*args: str | Path) -> str:
    return subprocess.run(
        ["readelf", "-W", *map(str, args)], check=False, capture_output=True, text=True
    ).stdout


def defined_versions(path: Path) -> set[str]:
    section = readelf("-V", path).split("Version definition section")[1].split("Version needs")[0]
    return set(re.findall(r"Name: (\S+)", section))


def needed_versions(path: Path) -> set[str]:
    section = readelf("-V", path).split("Version needs section")[1]
    return set(re.findall(r"Name: (\S+)", section))


def test_old_libc_defines_up_to_glibc_2_31_and_nothing_newer(synthetic: Synthetic) -> None:
    versions = defined_versions(synthetic.old_libc)
    assert {"GLIBC_2.2.5", "GLIBC_2.3", "GLIBC_2.30", "GLIBC_2.31", "GLIBC_PRIVATE"} <= versions
    assert "GLIBC_2.32" not in versions


def test_new_libc_defines_everything_old_libc_does_and_up_to_2_38(synthetic: Synthetic) -> None:
    old, new = defined_versions(synthetic.old_libc), defined_versions(synthetic.new_libc)
    assert old - {"libc.so.6"} <= new
    assert {"GLIBC_2.34", "GLIBC_2.38"} <= new


def test_new_libc_keeps_the_old_libc_start_main_as_a_compat_symbol(synthetic: Synthetic) -> None:
    symbols = readelf("--dyn-syms", synthetic.new_libc)
    assert "__libc_start_main@@GLIBC_2.34" in symbols
    assert "__libc_start_main@GLIBC_2.2.5" in symbols


def test_old_libc_lacks_pthread_create(synthetic: Synthetic) -> None:
    assert "pthread_create" not in readelf("--dyn-syms", synthetic.old_libc)


def test_libc_carries_its_release_string(synthetic: Synthetic) -> None:
    assert b"stable release version 2.31." in synthetic.old_libc.read_bytes()
    assert b"stable release version 2.38." in synthetic.new_libc.read_bytes()


def test_ext_needs_238_needs_two_newer_versions(synthetic: Synthetic) -> None:
    assert needed_versions(synthetic.ext_needs_238) == {"GLIBC_2.38", "GLIBC_2.34", "GLIBC_2.2.5"}


def test_ext_clean_needs_only_the_baseline(synthetic: Synthetic) -> None:
    assert needed_versions(synthetic.ext_clean) == {"GLIBC_2.2.5"}


def test_ext_weak_has_a_weak_glibc_2_34_need(synthetic: Synthetic) -> None:
    assert re.search(r"Name: GLIBC_2\.34\s+Flags: WEAK", readelf("-V", synthetic.ext_weak))


def test_ext_transitive_needs_libdep_which_needs_glibc_2_33(synthetic: Synthetic) -> None:
    assert "Shared library: [libdep.so]" in readelf("-d", synthetic.ext_transitive)
    assert "GLIBC_2.33" in needed_versions(synthetic.libdep)


def test_ext32_is_a_32_bit_object_with_version_needs(synthetic: Synthetic) -> None:
    assert "ELF32" in readelf("-h", synthetic.ext32_needs_234)
    assert "GLIBC_2.34" in needed_versions(synthetic.ext32_needs_234)


def test_app_is_hard_wired_to_the_old_loader(synthetic: Synthetic) -> None:
    assert f"[Requesting program interpreter: {synthetic.old_loader}]" in readelf("-l", synthetic.app)


def test_app_both_has_rpath_and_runpath(synthetic: Synthetic) -> None:
    dynamic = readelf("-d", synthetic.app_both)
    assert f"Library rpath: [{synthetic.new_glibc}]" in dynamic
    assert f"Library runpath: [{synthetic.old_glibc}]" in dynamic


def test_app_nodeflib_has_df_1_nodeflib(synthetic: Synthetic) -> None:
    assert "NODEFLIB" in readelf("-d", synthetic.app_nodeflib)


def test_app_origin_keeps_the_origin_token(synthetic: Synthetic) -> None:
    assert "Library rpath: [$ORIGIN/../old_glibc]" in readelf("-d", synthetic.app_origin)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("elf32", "ELF32"),
        ("big_endian", "big endian"),
        ("big_endian32", "big endian"),
        ("foreign_machine", "AArch64"),
    ],
)
def test_foreign_files_are_well_formed_elf(synthetic: Synthetic, field: str, words: str) -> None:
    header = readelf("-h", getattr(synthetic, field))
    assert words in header
    assert "Shared library: [libc.so.6]" in readelf("-d", getattr(synthetic, field))
