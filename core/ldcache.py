"""Read ``ld.so.cache`` the way glibc's ld.so does, without running ``ldconfig -p``.

The cache decides where a library is found once RPATH, LD_LIBRARY_PATH and RUNPATH have failed. A
target's loader reads its *own* cache file (``/etc/ld.so.cache`` for a distribution glibc, a path in
the Nix store or none for a Nix glibc), so the file is parsed here rather than asked of the host's
``ldconfig``. Three layouts exist (glibc ``sysdeps/generic/dl-cache.h``):

- old: ``ld.so-1.7.0``, ``nlibs``, 12-byte entries, then strings (offsets from the end of the entries);
- compat: the old layout with a ``glibc-ld.so.cache1.1`` header embedded, 8-aligned, after its entries;
- new: ``glibc-ld.so.cache1.1`` alone (the default since glibc 2.32).

Where the new header is present ld.so uses only the new entries; their string offsets count from the
new header. glibc >= 2.33 adds an extension directory whose ``glibc-hwcaps`` section names the
``glibc-hwcaps/<subdir>`` an entry lives in. Garbage never raises: :func:`read_ld_cache` returns None.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from glibc_doctor.core.model import EM_386, EM_AARCH64, EM_X86_64

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_HEADER = 16  # 11 magic bytes, padding, uint32 nlibs
_OLD_ENTRY = 12  # int32 flags, uint32 key, uint32 value
_NEW_HEADER = 48
_NEW_ENTRY = 24  # flags, key, value, osversion, uint64 hwcap
_EXTENSION_MAGIC = 0xEAA42174
_TAG_GENERATOR = 0
_TAG_GLIBC_HWCAPS = 1
_HWCAP_EXTENSION = 1 << 62
_ISA_LEVEL_MASK = (1 << 10) - 1
_MAX_CACHE_BYTES = 256 * 1024 * 1024

FLAG_ELF = 0x0001
FLAG_ELF_LIBC6 = 0x0003
FLAG_X8664_LIB64 = 0x0300
FLAG_AARCH64_LIB64 = 0x0A00
X86_64_LIBC6 = FLAG_ELF_LIBC6 | FLAG_X8664_LIB64  # 0x0303, _DL_CACHE_DEFAULT_ID on x86-64


def default_cache_id(elf_class: int = 64, machine: int = EM_X86_64) -> int:
    """The ``_DL_CACHE_DEFAULT_ID`` an ld.so of this class/machine accepts (besides plain ELF, 1)."""
    if machine == EM_X86_64 and elf_class == 64:
        return X86_64_LIBC6
    if machine == EM_AARCH64:
        return FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
    if machine == EM_386 or elf_class == 32:
        return FLAG_ELF_LIBC6
    return FLAG_ELF_LIBC6


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One library of the cache: ``key`` (the soname ldconfig saw) maps to ``value`` (its path).

    ``hwcaps`` is the ``glibc-hwcaps`` subdirectory name (``x86-64-v3``) for entries that live in one,
    ``isa_level`` the x86 ISA level bits ldconfig recorded for them; ``hwcap`` is the raw field.
    """

    key: str
    value: str
    flags: int
    hwcap: int = 0
    hwcaps: str | None = None
    isa_level: int = 0


def _numeric_key(name: str) -> str:
    """A key equal for two names exactly when glibc's ``_dl_cache_libcmp`` calls them equal.

    libcmp compares runs of digits by value, so ``libfoo.so.01`` and ``libfoo.so.1`` are one name.
    """
    return re.sub(r"\d+", lambda match: str(int(match.group())), name)


@dataclass(frozen=True, slots=True)
class LdCache:
    """A parsed cache file: its entries in file order (ldconfig sorts them) and a name index."""

    path: str
    format: str  # "old", "new" or "compat"
    entries: tuple[CacheEntry, ...]
    generator: str | None = None  # "ldconfig (GNU libc) stable release version 2.36", when recorded
    hwcaps_names: tuple[str, ...] = ()
    _by_name: dict[str, tuple[CacheEntry, ...]] = field(default_factory=dict, repr=False, compare=False)

    def entries_for(self, name: str) -> tuple[CacheEntry, ...]:
        """Every entry whose key equals ``name`` (in libcmp's sense), in file order."""
        return self._by_name.get(_numeric_key(name), ())

    def lookup(
        self,
        name: str,
        *,
        hwcaps: Sequence[str] = (),
        cache_id: int = X86_64_LIBC6,
    ) -> tuple[str, ...]:
        """Paths for ``name``, best first, as ld.so's ``search_cache`` ranks them.

        ``hwcaps`` are the ``glibc-hwcaps`` subdirectory names the CPU supports, best first
        (``("x86-64-v3", "x86-64-v2")``): entries in one of them come first in that order, entries in
        an unsupported one are dropped. Then the plain entries with an accepted flag (``1`` or
        ``cache_id``). ld.so opens only the first; the rest say what else the cache holds.
        """
        priority = {subdir: rank for rank, subdir in enumerate(hwcaps)}
        named: list[tuple[int, str]] = []
        plain: list[str] = []
        for entry in self.entries_for(name):
            if entry.flags not in (FLAG_ELF, cache_id):
                continue
            if entry.hwcaps is not None:
                if entry.hwcaps in priority:
                    named.append((priority[entry.hwcaps], entry.value))
            elif entry.hwcap & ~(1 << 63) == 0:  # legacy hwcap entries (tls/, haswell/) are not modelled
                plain.append(entry.value)
        named.sort(key=lambda ranked: ranked[0])
        return tuple(dict.fromkeys([path for _, path in named] + plain))


def read_ld_cache(path: str) -> LdCache | None:
    """Parse the cache at ``path``; None when it is absent, unreadable or not a cache."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a FIFO or device would block or never end
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CACHE_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_CACHE_BYTES:
        return None
    return parse_ld_cache(data, path)


def parse_ld_cache(data: bytes, path: str = "") -> LdCache | None:
    """Parse cache bytes in any of the three layouts; None for anything ld.so would reject."""
    try:
        if data.startswith(NEW_MAGIC):
            return _parse_new(data, 0, path, "new")
        if data.startswith(OLD_MAGIC):
            return _parse_old(data, path)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _parse_old(data: bytes, path: str) -> LdCache | None:
    if len(data) <= _OLD_HEADER:
        return None
    (nlibs,) = struct.unpack_from("<I", data, 12)
    if (len(data) - _OLD_HEADER) // _OLD_ENTRY < nlibs:
        return None
    new_offset = (_OLD_HEADER + nlibs * _OLD_ENTRY + 7) & ~7
    if data[new_offset : new_offset + len(NEW_MAGIC)] == NEW_MAGIC and len(data) >= new_offset + _NEW_HEADER:
        return _parse_new(data, new_offset, path, "compat")
    strings = _OLD_HEADER + nlibs * _OLD_ENTRY
    entries = []
    for index in range(nlibs):
        flags, key, value = struct.unpack_from("<iII", data, _OLD_HEADER + index * _OLD_ENTRY)
        entry = _entry(data, strings, flags, key, value)
        if entry is not None:
            entries.append(entry)
    return _cache(path, "old", tuple(entries))


def _parse_new(data: bytes, base: int, path: str, layout: str) -> LdCache | None:
    """Parse a ``glibc-ld.so.cache1.1`` header at ``base`` (0, or after the old entries in compat)."""
    if len(data) < base + _NEW_HEADER:
        return None
    endian_flag = data[base + 28] & 3
    if endian_flag == 1:
        return None  # ldconfig marked the cache invalid
    order = ">" if endian_flag == 3 else "<"
    nlibs, _len_strings = struct.unpack_from(order + "II", data, base + 20)
    (extension_offset,) = struct.unpack_from(order + "I", data, base + 32)
    if (len(data) - base - _NEW_HEADER) // _NEW_ENTRY < nlibs:
        return None
    hwcaps_names, generator = _extensions(data, order, extension_offset)
    entries = []
    for index in range(nlibs):
        offset = base + _NEW_HEADER + index * _NEW_ENTRY
        flags, key, value, _os, hwcap = struct.unpack_from(order + "iIIIQ", data, offset)
        entry = _entry(data, base, flags, key, value)
        if entry is None:
            continue
        if (hwcap >> 32) & ~_ISA_LEVEL_MASK == _HWCAP_EXTENSION >> 32:
            subdir_index = hwcap & 0xFFFFFFFF
            subdir = hwcaps_names[subdir_index] if subdir_index < len(hwcaps_names) else "?"
            isa_level = (hwcap >> 32) & _ISA_LEVEL_MASK
            entry = CacheEntry(entry.key, entry.value, flags, hwcap, subdir, isa_level)
        else:
            entry = CacheEntry(entry.key, entry.value, flags, hwcap)
        entries.append(entry)
    return _cache(path, layout, tuple(entries), generator, hwcaps_names)


def _entry(data: bytes, strings: int, flags: int, key: int, value: int) -> CacheEntry | None:
    """An entry whose key and value offsets point into the file, else None (ld.so skips those)."""
    key_text = _string_at(data, strings + key)
    value_text = _string_at(data, strings + value)
    if key_text is None or value_text is None:
        return None
    return CacheEntry(key_text, value_text, flags)


def _string_at(data: bytes, offset: int) -> str | None:
    if offset < 0 or offset >= len(data):
        return None
    end = data.find(b"\0", offset)
    if end < 0:
        return None
    return data[offset:end].decode("utf-8", "surrogateescape")


def _extensions(data: bytes, order: str, offset: int) -> tuple[tuple[str, ...], str | None]:
    """The ``glibc-hwcaps`` subdirectory names and the generator string of the extension directory.

    Section offsets count from the file start, and so do the hwcaps string offsets (ld.so reads them
    relative to the mapped file, ``(const char *) cache + index``).
    """
    if offset == 0 or offset % 4 or offset + 8 > len(data):
        return (), None
    magic, count = struct.unpack_from(order + "II", data, offset)
    if magic != _EXTENSION_MAGIC or offset + 8 + count * 16 > len(data):
        return (), None
    names: tuple[str, ...] = ()
    generator = None
    for index in range(count):
        tag, _flags, section, size = struct.unpack_from(order + "IIII", data, offset + 8 + index * 16)
        if section + size > len(data):
            return (), None
        if tag == _TAG_GENERATOR:
            generator = data[section : section + size].decode("utf-8", "replace").rstrip("\0")
        elif tag == _TAG_GLIBC_HWCAPS and size % 4 == 0 and section % 4 == 0:
            indices = struct.unpack_from(f"{order}{size // 4}I", data, section)
            names = tuple(_string_at(data, string) or "?" for string in indices)
    return names, generator


def _cache(
    path: str,
    layout: str,
    entries: tuple[CacheEntry, ...],
    generator: str | None = None,
    hwcaps_names: tuple[str, ...] = (),
) -> LdCache:
    by_name: dict[str, list[CacheEntry]] = {}
    for entry in entries:
        by_name.setdefault(_numeric_key(entry.key), []).append(entry)
    index = {name: tuple(found) for name, found in by_name.items()}
    return LdCache(path, layout, entries, generator, hwcaps_names, index)
