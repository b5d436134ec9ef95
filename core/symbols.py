"""Which symbols tie an object to a symbol version: the evidence behind a missing-version conflict.

``version `GLIBC_2.38' not found`` says nothing of why; the answer is the undefined dynamic symbols
whose ``.gnu.version`` entry points at that version's ``Vernaux`` (``strlcpy``), which tells the user
what to rebuild or avoid. This is detail for the few objects in conflict, off the scan's hot path, so it
uses pyelftools (symbol tables are large and varied; its parser is the well-tested one). Files without
section headers are read through the dynamic segment (DT_SYMTAB, DT_VERSYM), as the loader does.
"""

from __future__ import annotations

import array
import os
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, Final

from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection
from glibc_doctor.core.elf import read_elf

VERSYM_HIDDEN: Final = 0x8000  # bit 15 of a .gnu.version entry: a non-default (hidden) version
VER_FLG_BASE: Final = 0x1
# A handful of files are asked about per scan (the ones in conflict), each for a few versions.
_CACHE_SIZE: Final = 128


def symbols_for_version(path: str, library: str, version: str) -> tuple[str, ...]:
    """The undefined dynamic symbols of ``path`` bound to ``version`` of ``library``, sorted, unique.

    The Vernaux index comes from ``core/elf.py`` (the loader's view), then every ``.dynsym`` entry whose
    ``.gnu.version`` index (without the hidden bit) equals it is collected. Empty for a version ``path``
    does not need, and for a file with a ``Problem`` (its partial version table is not evidence).
    """
    facts = read_elf(path)
    indexes = {
        need.index & ~VERSYM_HIDDEN
        for need in facts.requires
        if need.library == library and need.version == version
    }
    if facts.problem is not None or not indexes:
        return ()
    key = _file_key(path)
    if key is None:
        return ()
    by_index = _undefined_by_index(path, key)
    return tuple(sorted({name for index in indexes for name in by_index.get(index, ())}))


def defined_symbols(path: str, version: str) -> tuple[str, ...]:
    """The symbols ``path`` defines at ``version`` (``strlcpy`` for ``GLIBC_2.38`` of libc.so.6).

    Both default (``@@``) and compat (``@``) definitions count. Empty for a bad file or an unknown
    version.
    """
    key = _file_key(path)
    if key is None:
        return ()
    return _defined_by_version(path, key).get(version, ())


# ---------------------------------------------------------------------------------------------------


def _file_key(path: str) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=_CACHE_SIZE)
def _undefined_by_index(path: str, key: tuple[int, int, int, int]) -> dict[int, tuple[str, ...]]:
    """Undefined dynamic symbols grouped by their version index (``key`` invalidates on change).

    Only the file's own ``Vernaux`` indexes are looked at: an index no ``Vernaux`` carries binds to
    nothing the loader checks, and a file whose section headers claim megabytes of such entries would
    otherwise have every one parsed."""
    wanted = frozenset(need.index & ~VERSYM_HIDDEN for need in read_elf(path).requires)
    return _grouped(path, lambda symbol: symbol["st_shndx"] == "SHN_UNDEF", wanted)


@lru_cache(maxsize=_CACHE_SIZE)
def _defined_by_version(path: str, key: tuple[int, int, int, int]) -> dict[str, tuple[str, ...]]:
    names = _version_definitions(path)
    by_index = _grouped(
        path, lambda symbol: symbol["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS"), frozenset(names)
    )
    grouped: dict[str, set[str]] = {}
    for index, symbols in by_index.items():
        if index in names:
            grouped.setdefault(names[index], set()).update(symbols)
    # ld also emits each version name as an absolute symbol (GLIBC_2.38 = 0); those are skipped above.
    return {version: tuple(sorted(symbols)) for version, symbols in grouped.items()}


def _grouped(path: str, keep: Callable[[Any], bool], wanted: frozenset[int]) -> dict[int, tuple[str, ...]]:
    """Symbol names by version index (one of ``wanted``) for the symbols ``keep`` accepts; empty on any
    parse failure."""
    grouped: dict[int, set[str]] = {}
    if not wanted:
        return {}
    try:
        with open(path, "rb") as handle:
            for index, symbol in _versioned_symbols(ELFFile(handle), wanted):
                if symbol.name and keep(symbol):
                    grouped.setdefault(index, set()).add(symbol.name)
    except Exception:  # noqa: BLE001 - pyelftools raises many kinds (construct, struct, key) on bad input
        return {}
    return {index: tuple(sorted(names)) for index, names in grouped.items()}


def _versioned_symbols(elf: ELFFile, wanted: frozenset[int]) -> Iterator[tuple[int, Any]]:
    """(version index without the hidden bit, symbol) for every dynamic symbol whose index is ``wanted``.

    The raw index array is filtered first, in C (``array``): pyelftools (about a second per MB) parses
    only the symbols bound to one of the file's real versions, however many entries the tables claim.
    """
    symbols, versym = _symbol_tables(elf)
    if symbols is None or versym is None:
        return
    count = min(symbols.num_symbols(), len(versym) // 2)
    indexes = array.array("H", versym[: count * 2])
    if (sys.byteorder == "little") != elf.little_endian:
        indexes.byteswap()
    keys = {raw for raw in set(indexes) if raw & ~VERSYM_HIDDEN in wanted}
    for number, raw in enumerate(indexes):
        if raw in keys:
            yield raw & ~VERSYM_HIDDEN, symbols.get_symbol(number)


def _symbol_tables(elf: ELFFile) -> tuple[Any, bytes | None]:
    """``.dynsym`` and the raw ``.gnu.version`` array; through the dynamic segment without sections."""
    dynsym = elf.get_section_by_name(".dynsym")
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    if isinstance(dynsym, SymbolTableSection) and versym is not None:
        return dynsym, versym.data()
    for segment in elf.iter_segments():
        if isinstance(segment, DynamicSegment):
            offset = segment.get_table_offset("DT_VERSYM")[1]  # (vaddr, file offset)
            if offset is None:
                return segment, None
            size = 2 * segment.num_symbols()  # reads the hash table: before the seek below
            elf.stream.seek(offset)
            return segment, elf.stream.read(size)
    return None, None


def _version_definitions(path: str) -> dict[int, str]:
    """``vd_ndx`` -> version name from ``.gnu.version_d`` (the base entry excluded)."""
    names: dict[int, str] = {}
    try:
        with open(path, "rb") as handle:
            for section in ELFFile(handle).iter_sections():
                if isinstance(section, GNUVerDefSection):
                    for verdef, auxes in section.iter_versions():
                        if not verdef["vd_flags"] & VER_FLG_BASE:
                            names[verdef["vd_ndx"]] = next(iter(auxes)).name
    except Exception:  # noqa: BLE001 - see _grouped
        return {}
    return names
