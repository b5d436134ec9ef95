"""The static TLS block: is there room for the initial-exec TLS of an object loaded after start-up?

Code compiled with the initial-exec TLS model (``-ftls-model=initial-exec``, or ``__thread`` variables
in a library built without ``-fPIC``) reaches its thread-local variables at a fixed offset from the
thread pointer, so its TLS block must sit in the static TLS area that every thread gets when it is
created; the linker marks such an object ``DF_STATIC_TLS``. ld.so sizes that area at start-up: the
blocks of the objects loaded then, plus a fixed *surplus* for objects that dlopen() brings later. When a
dlopen()ed object's block does not fit in what is left of the surplus, the load fails with
``cannot allocate memory in static TLS block`` (libgomp, jemalloc, libGL and friends, classically in
Python processes). An object loaded at start-up (a DT_NEEDED of the program, or an ``LD_PRELOAD``)
gets its block in the initial area, whatever its size.

The arithmetic is glibc's (``elf/dl-tls.c``: ``_dl_determine_tlsoffset``, ``elf/dl-reloc.c``:
``_dl_try_allocate_static_tls``), for the TLS_TCB_AT_TP layout of x86-64 and i386, checked against the
real loaders 2.31, 2.36 and 2.41:

- The surplus is 1664 bytes in every release by default: 2.31's ``TLS_STATIC_SURPLUS`` (64 + 16 * 100);
  from 2.32 ``(nns - 1) * 144 + nns * 144 + optional_static_tls + 144`` with the tunables
  ``glibc.rtld.nns`` = 4 and ``glibc.rtld.optional_static_tls`` = 512, so raising the latter grows it.
- The start-up blocks are placed in load order, each at an offset aligned for its ``p_align`` and
  ``p_vaddr``; from 2.41 the rseq area (the "extra TLS" block) follows them. The area ends at
  ``roundup(used + surplus, max_align)``, ``max_align`` being the largest alignment seen (at least 64).
- A later block fits when its size plus its first-byte offset is at most what is left, and its
  alignment is at most ``max_align``; it then uses its size rounded so that it stays aligned.

Not modelled: TLS descriptors (``-mtls-dialect=gnu2``) that glibc 2.32+ may place in up to 512 bytes of
the surplus on its own, and objects reaching *another* object's TLS in the initial-exec model.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from glibc_doctor.core.model import ElfFacts
from glibc_doctor.core.versions import GlibcVersion

LEGACY_SURPLUS = 1664  # the default surplus of every release (2.31's TLS_STATIC_SURPLUS)
IE_TLS = 144  # glibc 2.32+'s LIBC_IE_TLS and OTHER_IE_TLS
DEFAULT_NNS = 4
DEFAULT_OPTIONAL = 512
TCB_ALIGN = 64  # x86-64 and i386: TLS_TCB_ALIGN / TCB_ALIGNMENT
TUNABLES_SINCE = GlibcVersion(2, 32)  # glibc.rtld.nns and glibc.rtld.optional_static_tls
EXTRA_TLS_SINCE = GlibcVersion(2, 41)  # the rseq area moved into the static TLS block
AT_RSEQ_FEATURE_SIZE = 27
AT_RSEQ_ALIGN = 28
RSEQ_AREA_SIZE_INITIAL = 32
RSEQ_AREA_SIZE_INITIAL_USED = 20
RSEQ_MIN_ALIGN = 32


@dataclass(frozen=True, slots=True)
class TlsBlock:
    """One object's PT_TLS as ld.so keeps it: ``l_tls_blocksize``, ``l_tls_align``,
    ``l_tls_firstbyte_offset``."""

    path: str
    size: int
    align: int
    firstbyte: int

    @classmethod
    def of(cls, path: str, facts: ElfFacts) -> TlsBlock:
        return cls(path, facts.tls_size, facts.tls_align, facts.tls_firstbyte)


@dataclass(frozen=True, slots=True)
class StaticArea:
    """The static TLS area after start-up: bytes used, where the usable part ends, its alignment."""

    used: int
    end: int  # roundup(used at start-up + surplus, align); the TCB lies beyond and is left out
    align: int  # dl_tls_static_align: the largest alignment a later block may have
    surplus: int

    @property
    def free(self) -> int:
        return self.end - self.used


@dataclass(frozen=True, slots=True)
class Placement:
    """What happened to one dlopen()ed object's block: placed, or why not."""

    block: TlsBlock
    fits: bool
    free: int  # bytes left in the area when the object loads
    needed: int  # its size plus its first-byte offset (what must fit)
    too_aligned: bool = False  # refused for its alignment, whatever its size


def surplus_for(release: GlibcVersion | None, tunables: str = "") -> int:
    """The surplus ld.so reserves: 1664 bytes unless ``GLIBC_TUNABLES`` (2.32+) changes it."""
    if release is None or release < TUNABLES_SINCE:
        return LEGACY_SURPLUS
    values = parse_tunables(tunables)
    nns = min(_int(values.get("glibc.rtld.nns"), DEFAULT_NNS), 16)
    optional = _int(values.get("glibc.rtld.optional_static_tls"), DEFAULT_OPTIONAL)
    legacy = LEGACY_SURPLUS - ((DEFAULT_NNS - 1) * IE_TLS + DEFAULT_NNS * IE_TLS + DEFAULT_OPTIONAL)
    return (nns - 1) * IE_TLS + nns * IE_TLS + optional + legacy


def parse_tunables(text: str) -> dict[str, str]:
    """``GLIBC_TUNABLES``' ``name=value:name=value`` pairs."""
    pairs = (item.split("=", 1) for item in text.split(":") if "=" in item)
    return {name.strip(): value.strip() for name, value in pairs}


def _int(text: str | None, default: int) -> int:
    try:
        return int(text, 0) if text else default
    except ValueError:
        return default


def startup_area(
    blocks: Iterable[TlsBlock],
    release: GlibcVersion | None,
    surplus: int,
    extra: tuple[int, int] | None = None,
) -> StaticArea:
    """``_dl_determine_tlsoffset`` for TLS_TCB_AT_TP: the start-up ``blocks`` in load order (each
    placed below the thread pointer, reusing alignment gaps), then the extra (rseq) block from 2.41."""
    offset = freetop = freebottom = 0
    max_align = TCB_ALIGN
    for block in blocks:
        if not block.size:
            continue
        align = block.align or 1
        firstbyte = -block.firstbyte & (align - 1)
        max_align = max(max_align, align)
        if freebottom - freetop >= block.size:
            off = _roundup(freetop + block.size - firstbyte, align) + firstbyte
            if off <= freebottom:
                freetop = off
                continue
        off = _roundup(offset + block.size - firstbyte, align) + firstbyte
        if off > offset + block.size + (freebottom - freetop):
            freetop, freebottom = offset, off - block.size
        offset = off
    if release is not None and release >= EXTRA_TLS_SINCE:
        size, align = extra if extra is not None else rseq_area()
        max_align = max(max_align, align)
        offset = _roundup(offset, align or 1) + size
    return StaticArea(offset, _roundup(offset + surplus, max_align), max_align, surplus)


def place(area: StaticArea, block: TlsBlock) -> tuple[StaticArea, Placement]:
    """``_dl_try_allocate_static_tls`` (not optional) for one block loaded after start-up."""
    align = block.align or 1
    needed = block.size + block.firstbyte
    free = area.free
    if align > area.align:
        return area, Placement(block, False, free, needed, too_aligned=True)
    if free < needed:
        return area, Placement(block, False, free, needed)
    slack = (free - needed) // align
    use = free - slack * align - block.firstbyte
    placed = StaticArea(area.used + use, area.end, area.align, area.surplus)
    return placed, Placement(block, True, free, needed)


def place_all(area: StaticArea, blocks: Sequence[TlsBlock]) -> list[Placement]:
    """Each block in load order, each one taking its room when it fits."""
    placements = []
    for block in blocks:
        area, placement = place(area, block)
        placements.append(placement)
    return placements


def optional_for(shortfall: int, tunables: Mapping[str, str] | None = None) -> int:
    """The ``glibc.rtld.optional_static_tls`` value that adds ``shortfall`` bytes to the surplus
    (rounded up to 64, the start-up alignment, so the rounding of the area cannot undo it)."""
    current = _int((tunables or {}).get("glibc.rtld.optional_static_tls"), DEFAULT_OPTIONAL)
    return current + _roundup(shortfall, TCB_ALIGN)


@functools.lru_cache(maxsize=1)
def rseq_area() -> tuple[int, int]:
    """(size, alignment) of the rseq area glibc 2.41+ puts in the static TLS block, from the kernel's
    AT_RSEQ_FEATURE_SIZE and AT_RSEQ_ALIGN (this process's auxiliary vector: the same kernel)."""
    values = _auxv()
    feature = max(values.get(AT_RSEQ_FEATURE_SIZE, 0), RSEQ_AREA_SIZE_INITIAL_USED)
    align = max(values.get(AT_RSEQ_ALIGN, 0), RSEQ_MIN_ALIGN)
    return _roundup(max(feature, RSEQ_AREA_SIZE_INITIAL), align), align


def _auxv() -> dict[int, int]:
    try:
        with open("/proc/self/auxv", "rb") as handle:
            data = handle.read(4096)
    except OSError:
        return {}
    words = struct.unpack_from(f"<{len(data) // 8}Q", data)
    return dict(zip(words[0::2], words[1::2], strict=False))


def _roundup(value: int, step: int) -> int:
    return -(-value // step) * step
