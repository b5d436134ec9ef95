"""core/symbols.py: the symbols behind each version need, checked on gcc-built and system objects."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.symbols import defined_symbols, symbols_for_version

from tests.budget import cpu_budget
from tests.synthetic import Synthetic

SYSTEM_LIB = Path("/usr/lib/x86_64-linux-gnu")


def without_section_headers(source: Path, out: Path) -> Path:
    """A copy with e_shoff, e_shentsize, e_shnum, e_shstrndx zeroed: only the loader's view is left."""
    data = bytearray(source.read_bytes())
    struct.pack_into("<Q", data, 0x28, 0)
    struct.pack_into("<HHH", data, 0x3A, 0, 0, 0)
    out.write_bytes(bytes(data))
    return out


def readelf_undefined(path: Path, version: str, index: int) -> set[str]:
    """Undefined dynamic symbols readelf shows as ``name@VERSION (index)`` (binutils, independent of us)."""
    table = subprocess.run(
        ["readelf", "-W", "--dyn-syms", str(path)], check=True, capture_output=True, text=True
    ).stdout
    suffix = f"@{version} ({index})"
    names = set()
    for line in table.splitlines():
        fields = line.split(maxsplit=7)
        if len(fields) == 8 and fields[6] == "UND" and fields[7].endswith(suffix):
            names.add(fields[7].removesuffix(suffix))
    return names


def test_glibc_2_38_need_comes_from_strlcpy(synthetic: Synthetic) -> None:
    assert symbols_for_version(str(synthetic.ext_needs_238), "libc.so.6", "GLIBC_2.38") == ("strlcpy",)


def test_glibc_2_34_need_comes_from_pthread_create(synthetic: Synthetic) -> None:
    assert symbols_for_version(str(synthetic.ext_needs_238), "libc.so.6", "GLIBC_2.34") == ("pthread_create",)


def test_symbols_are_sorted_and_unique(synthetic: Synthetic) -> None:
    names = symbols_for_version(str(synthetic.app), "libc.so.6", "GLIBC_2.2.5")
    assert names == tuple(sorted(set(names)))
    assert {"__libc_start_main", "printf", "strlen"} <= set(names)


def test_version_of_another_library_is_not_mixed_in(synthetic: Synthetic) -> None:
    assert symbols_for_version(str(synthetic.ext_libm), "libm.so.6", "GLIBC_2.2.5") == ("sin",)
    assert symbols_for_version(str(synthetic.ext_libm), "libc.so.6", "GLIBC_2.2.5") == ("strlen",)


def test_32_bit_object_gives_its_symbols(synthetic: Synthetic) -> None:
    assert symbols_for_version(str(synthetic.ext32_needs_234), "libc.so.6", "GLIBC_2.34") == (
        "pthread_create",
    )


def test_object_without_section_headers_is_read_through_its_dynamic_segment(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    stripped = without_section_headers(synthetic.ext_needs_238, tmp_path / "nosections.so")
    assert symbols_for_version(str(stripped), "libc.so.6", "GLIBC_2.38") == ("strlcpy",)


def test_version_not_needed_gives_nothing(synthetic: Synthetic) -> None:
    assert symbols_for_version(str(synthetic.ext_clean), "libc.so.6", "GLIBC_2.38") == ()


@pytest.mark.parametrize(
    "field",
    ["empty", "linker_script", "truncated_dynamic", "vn_aux_wild", "vn_next_loop", "dangling", "directory"],
)
def test_bad_file_gives_an_empty_tuple(synthetic: Synthetic, field: str) -> None:
    assert symbols_for_version(str(getattr(synthetic, field)), "libc.so.6", "GLIBC_2.2.5") == ()


def test_rewritten_file_is_not_answered_from_a_stale_cache(synthetic: Synthetic, tmp_path: Path) -> None:
    target = tmp_path / "libchanging.so"
    shutil.copy(synthetic.ext_needs_238, target)
    assert symbols_for_version(str(target), "libc.so.6", "GLIBC_2.38") == ("strlcpy",)
    shutil.copy(synthetic.ext_needs_234, target)
    assert symbols_for_version(str(target), "libc.so.6", "GLIBC_2.38") == ()


def test_system_library_symbols_match_readelf() -> None:
    """Every version libstdc++ needs from libc.so.6: our symbols are the ones readelf prints."""
    library = SYSTEM_LIB / "libstdc++.so.6"
    if not library.exists():
        pytest.skip("no system libstdc++")
    needs = read_elf(str(library)).requires_from("libc.so.6")
    assert needs
    compared = 0
    for need in needs:
        ours = set(symbols_for_version(str(library), "libc.so.6", need.version))
        assert ours == readelf_undefined(library, need.version, need.index), need.version
        compared += len(ours)
    assert compared > 50


def test_fake_libc_defines_strlcpy_at_glibc_2_38(synthetic: Synthetic) -> None:
    assert defined_symbols(str(synthetic.new_libc), "GLIBC_2.38") == ("__isoc23_strtol", "strlcat", "strlcpy")


def test_compat_definitions_count_as_defined(synthetic: Synthetic) -> None:
    assert "__libc_start_main" in defined_symbols(str(synthetic.new_libc), "GLIBC_2.2.5")
    assert "__libc_start_main" in defined_symbols(str(synthetic.new_libc), "GLIBC_2.34")


def test_real_libc_defines_arc4random_at_glibc_2_36() -> None:
    libc = SYSTEM_LIB / "libc.so.6"
    if "GLIBC_2.36" not in read_elf(str(libc)).defines:
        pytest.skip("system libc is older than 2.36")
    assert "arc4random" in defined_symbols(str(libc), "GLIBC_2.36")


def test_defined_symbols_of_a_bad_file_are_empty(synthetic: Synthetic) -> None:
    assert defined_symbols(str(synthetic.truncated_dynamic), "GLIBC_2.2.5") == ()


def with_bogus_symbol_tables(source: Path, out: Path, padding: int) -> Path:
    """``source`` padded with ``padding`` bytes of 0x02 that its ``.dynsym`` and ``.gnu.version`` section
    headers claim: hundreds of thousands of "symbols" whose version index (0x0202) no Vernaux has."""
    data = bytearray(source.read_bytes()) + b"\x02" * padding
    with open(source, "rb") as handle:
        elf = ELFFile(handle)
        for number, section in enumerate(elf.iter_sections()):
            if section.name in (".dynsym", ".gnu.version"):
                size = len(data) - section["sh_offset"]
                size -= size % section["sh_entsize"]
                struct.pack_into("<Q", data, elf.header.e_shoff + number * elf.header.e_shentsize + 32, size)
    out.write_bytes(bytes(data))
    return out


def test_bogus_symbol_tables_with_no_real_version_index_are_skipped_quickly(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    big = with_bogus_symbol_tables(synthetic.ext_needs_238, tmp_path / "big.so", 8 << 20)
    with cpu_budget(2.0, "the symbols"):  # every bogus entry parsed by pyelftools took ~10 s
        assert symbols_for_version(str(big), "libc.so.6", "GLIBC_2.38") == ("strlcpy",)
