"""What the dynamic loader reads of one file: a small, bounds-checked ELF reader.

ld.so never looks at section headers: it reads the ELF header, the program headers, PT_INTERP and
PT_DYNAMIC, and finds the string table and the version tables through dynamic tags whose addresses it
maps through the PT_LOAD segments. This module reads exactly that, in the same way, so that what it
reports is what the loader would see (a stripped or section-less object reads the same as a normal one).

It is on the hot path: a scan reads every object of a venv (hundreds of files), so it avoids pyelftools
(about 3 ms per file against 30 µs here; see ``benchmarks/bench_elf.py``) and parses with precompiled
``struct`` formats over one buffer: a single ``os.read`` for small files, an ``mmap`` for large ones
(whose ``.dynamic`` lies megabytes in; reading them whole is ten times slower). Every offset is
bounds-checked and every loop capped, so a hostile file yields an ``ElfFacts`` with a ``Problem``
instead of an exception or a hang. One risk is left to the kernel: a large file truncated in place
during the microseconds it is mapped raises SIGBUS, as it does in every process that has the library
loaded; package managers (dpkg, pip) unlink or rename instead of truncating for that reason.
Results are cached by ``(st_dev, st_ino, st_size, st_mtime_ns)``; pyelftools stays the reference in
the tests and does symbol detail in ``symbols.py``.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple, TypeVar

from glibc_doctor.core.model import ElfFacts, Problem, VersionNeed

PT_LOAD: Final = 1
PT_DYNAMIC: Final = 2
PT_INTERP: Final = 3
PT_NOTE: Final = 4
PT_TLS: Final = 7
PT_GNU_STACK: Final = 0x6474E551
PT_GNU_PROPERTY: Final = 0x6474E553
PF_W: Final = 2

_SEGMENTS_READ: Final = {
    PT_LOAD: "PT_LOAD",
    PT_DYNAMIC: "PT_DYNAMIC",
    PT_INTERP: "PT_INTERP",
    PT_NOTE: "PT_NOTE",
}
# Read for their header fields only (ld.so maps their bytes through PT_LOAD, so a file offset past the
# end is not what refuses such a file); PT_GNU_PROPERTY's bytes are read, each access bounds-checked.
_SEGMENTS_NOTED: Final = frozenset({PT_TLS, PT_GNU_STACK, PT_GNU_PROPERTY})

DT_NULL: Final = 0
DT_NEEDED: Final = 1
DT_HASH: Final = 4
DT_STRTAB: Final = 5
DT_SYMTAB: Final = 6
DT_STRSZ: Final = 10
DT_INIT_ARRAY: Final = 25
DT_INIT_ARRAYSZ: Final = 27
DT_RELRSZ: Final = 35
DT_RELR: Final = 36
DT_SONAME: Final = 14
DT_RPATH: Final = 15
DT_FLAGS: Final = 30
DT_RUNPATH: Final = 29
DT_FLAGS_1: Final = 0x6FFFFFFB
DT_GNU_HASH: Final = 0x6FFFFEF5
DT_VERDEF: Final = 0x6FFFFFFC
DT_VERDEFNUM: Final = 0x6FFFFFFD
DT_VERNEED: Final = 0x6FFFFFFE
DT_VERNEEDNUM: Final = 0x6FFFFFFF

NT_GNU_BUILD_ID: Final = 3
NT_GNU_PROPERTY_TYPE_0: Final = 5
GNU_PROPERTY_X86_ISA_1_NEEDED: Final = 0xC0008002
VER_FLG_BASE: Final = 0x1
VER_FLG_WEAK: Final = 0x2

# Above this size the file is mapped instead of read: .dynamic sits near the end of the code, and
# reading a 100 MB library to look at 4 KB of it would dominate a scan.
READ_WHOLE_LIMIT: Final = 64 * 1024
# Far above any real table (libc.so.6 defines about 45 versions); bounds the work on hostile input.
MAX_TABLE_ENTRIES: Final = 4096
MAX_NOTES: Final = 256
MAX_PROPERTIES: Final = 256
MAX_RELR_ENTRIES: Final = 1 << 20  # 8 MB of packed relocations: far above any real library
MAX_CACHE_ENTRIES: Final = 65536

_IDENT_SIZE: Final = 16
_HEADER_SIZE: Final = {1: 52, 2: 64}
_PHDR_SIZE: Final = {1: 32, 2: 56}
_LIBRARY_NAME = re.compile(r"\.so(\.[0-9][0-9A-Za-z_+-]*)*$")
_RELEASE_MARK: Final = b"release version "
_RELEASE = re.compile(rb"release version (\d+\.\d+)")
_GLIBC_DIR = re.compile(r"(?:^|[/-])glibc-(\d+\.\d+)")


@dataclass(frozen=True, slots=True)
class _Layout:
    """The struct formats of one ELF class and byte order."""

    header: struct.Struct  # e_type … e_shstrndx, after e_ident
    phdr: struct.Struct
    verneed: struct.Struct
    vernaux: struct.Struct
    verdef: struct.Struct
    verdaux: struct.Struct
    note: struct.Struct
    order: str  # "<" or ">"
    word: str  # "Q" or "I": an address or a d_val


def _layout(elf_class: int, order: str) -> _Layout:
    is64 = elf_class == 2
    return _Layout(
        header=struct.Struct(order + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")),
        # Reordered by _program_headers so both classes give (type, offset, vaddr, filesz, align).
        phdr=struct.Struct(order + ("IIQQQQQQ" if is64 else "IIIIIIII")),
        verneed=struct.Struct(order + "HHIII"),
        vernaux=struct.Struct(order + "IHHII"),
        verdef=struct.Struct(order + "HHHHIII"),
        verdaux=struct.Struct(order + "II"),
        note=struct.Struct(order + "III"),
        order=order,
        word="Q" if is64 else "I",
    )


_LAYOUTS: Final = {(cls, data): _layout(cls, "<" if data == 1 else ">") for cls in (1, 2) for data in (1, 2)}


class _Stop(Exception):
    """Internal: parsing stops here with this problem; the draft keeps what was read so far."""

    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


@dataclass(slots=True)
class _Draft:
    """The mutable facts while parsing; frozen into ``ElfFacts`` at the end (partial on a problem)."""

    path: str
    elf_class: int = 0
    little_endian: bool = True
    machine: int = 0
    osabi: int = 0
    elf_type: int = 0
    interpreter: str | None = None
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    flags: int = 0
    flags_1: int = 0
    build_id: str | None = None
    requires: list[VersionNeed] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)
    relr: bool = False
    relr_init: bool = False
    stack_flags: int | None = None
    tls_size: int = 0
    tls_align: int = 0
    tls_firstbyte: int = 0
    x86_isa_needed: int = 0
    page_limit: int = 0

    def freeze(self, problem: Problem | None = None, detail: str = "") -> ElfFacts:
        return ElfFacts(
            path=self.path,
            problem=problem,
            detail=detail,
            elf_class=self.elf_class,
            little_endian=self.little_endian,
            machine=self.machine,
            osabi=self.osabi,
            elf_type=self.elf_type,
            interpreter=self.interpreter,
            needed=tuple(self.needed),
            soname=self.soname,
            rpath=self.rpath,
            runpath=self.runpath,
            flags=self.flags,
            flags_1=self.flags_1,
            build_id=self.build_id,
            requires=tuple(self.requires),
            defines=tuple(self.defines),
            relr=self.relr,
            relr_init=self.relr_init,
            stack_flags=self.stack_flags,
            tls_size=self.tls_size,
            tls_align=self.tls_align,
            tls_firstbyte=self.tls_firstbyte,
            x86_isa_needed=self.x86_isa_needed,
            page_limit=self.page_limit,
        )


Buffer = bytes | mmap.mmap
_T = TypeVar("_T")


class _Segment(NamedTuple):
    """One program header, as far as the reader needs it (a tuple: cheaper to make than a dataclass)."""

    kind: int
    offset: int
    vaddr: int
    filesz: int
    align: int
    flags: int = 0  # PF_R, PF_W, PF_X
    memsz: int = 0


# ---------------------------------------------------------------------------------------------------
# The public functions

_cache: dict[tuple[int, int, int, int], ElfFacts] = {}


def clear_cache() -> None:
    """Forget every cached result (benchmarks measure cold reads; tests rewrite files in place)."""
    _cache.clear()
    _needs.clear()
    _releases.clear()


def read_elf(path: str) -> ElfFacts:
    """The loader's view of ``path``; never raises: a bad file gives ``ElfFacts.problem``.

    ``path`` is kept as given (not resolved), since ``$ORIGIN`` is the directory the object was found in.
    """
    try:
        info = os.stat(path)
    except OSError as error:
        return _os_problem(path, error)
    except ValueError as error:  # an embedded NUL in the path
        return ElfFacts(path=path, problem=Problem.UNREADABLE, detail=str(error))
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return ElfFacts(path=path, problem=Problem.UNREADABLE, detail=kind)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _cache.get(key)
    if cached is not None:
        return cached if cached.path == path else replace(cached, path=path)
    facts = _read_regular_file(path, info.st_size)
    if len(_cache) >= MAX_CACHE_ENTRIES:
        _cache.clear()
    _cache[key] = facts
    return facts


def glibc_release(libc_path: str) -> str | None:
    """The glibc release (``"2.36"``) of a libc.so.6, not its newest symbol version.

    glibc embeds ``GNU C Library (…) stable release version 2.36.`` in libc.so.6 (it is what running
    the library prints); a Nix store path (``…-glibc-2.31/lib/libc.so.6``) is the fallback for a
    stripped or unreadable file. None when neither says.
    """
    try:
        release = _cached_release(libc_path)
    except (OSError, ValueError):
        release = None
    if release is not None:
        return release
    for candidate in (libc_path, _realpath(libc_path)):
        found = _GLIBC_DIR.search(candidate)
        if found is not None:
            return found.group(1)
    return None


def glibc_build_release(path: str) -> str | None:
    """The release of the glibc build a glibc library (libm, libpthread, ld.so …) belongs to: that of
    the libc.so.6 beside it (a libm has no release string of its own), else a ``glibc-2.31`` path."""
    sibling = os.path.join(os.path.dirname(_realpath(path)), "libc.so.6")
    release = glibc_release(sibling) if os.path.exists(sibling) else None
    return release or glibc_release(path)


_releases: dict[tuple[int, int, int, int], str | None] = {}


def _cached_release(path: str) -> str | None:
    """``_release_of_file`` cached like ``read_elf``: explain asks once per message, and a pasted log
    can name the same libc.so.6 in tens of thousands of messages (0.4 ms per search of a real libc)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _releases:
        if len(_releases) >= MAX_CACHE_ENTRIES:
            _releases.clear()
        _releases[key] = _release_of_file(path)
    return _releases[key]


def _release_of_file(path: str) -> str | None:
    """The release string of a regular file; a FIFO or device named in a message is never opened
    for a blocking read (O_NONBLOCK makes the open of a FIFO return at once, then fstat refuses it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return None
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            return _release_string(mapped)
    finally:
        os.close(fd)


def _release_string(data: mmap.mmap) -> str | None:
    """The first ``release version X.Y`` (found with mmap.find, far faster than a regex scan).

    When the first mark is not followed by a number, the regex takes over from there: one C-level
    pass, where a loop of finds costs a Python iteration per mark (seconds on a file of nothing else).
    """
    position = data.find(_RELEASE_MARK)
    if position < 0:
        return None
    match = _RELEASE.match(data[position : position + 64])
    if match is None:
        match = _RELEASE.search(data, position + 1)
    return match.group(1).decode("ascii") if match is not None else None


def is_library_name(name: str) -> bool:
    """Whether a file name looks like a shared library: ``*.so`` or ``*.so.N…`` (``libc.so.6``).

    Only the base name counts; a suffix after ``.so.`` must start with a digit, so ``foo.so.bak``
    and ``foo.so.debug`` are not libraries.
    """
    base = name.rsplit("/", 1)[-1]
    return _LIBRARY_NAME.search(base) is not None and not base.startswith(".so")


_exports: dict[tuple[int, int, int, int, str], bool | None] = {}


def defines_symbol(path: str, name: str) -> bool | None:
    """Whether ``dlsym(handle, name)`` finds ``name`` defined in the object ``path`` itself.

    The question Python's import asks of a ``foo.so`` (``PyInit_foo``) and Ruby's ``require`` of a
    feature (``Init_foo``): a library that only sits where a module could be exports neither. Looked
    up as ld.so's ``dl-lookup.c`` does: DT_GNU_HASH (Bloom filter, bucket, chain), else DT_HASH, into
    DT_SYMTAB and DT_STRTAB; a match must be defined, global, weak or unique, and of a type dlsym
    returns. An object with neither table defines nothing. None when the file cannot be read as ELF.
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, name)
    if key not in _exports:
        if len(_exports) >= MAX_CACHE_ENTRIES:
            _exports.clear()
        _exports[key] = _defines_symbol(path, info.st_size, name)
    return _exports[key]


def _defines_symbol(path: str, size: int, name: str) -> bool | None:
    try:
        return _with_contents(path, size, lambda data: _lookup_symbol(data, name.encode()))
    except (OSError, ValueError, _Stop, struct.error, IndexError, OverflowError):
        return None


def constant_ranges(path: str) -> tuple[tuple[int, int], ...]:
    """``(file offset, size)`` of the loaded segments the program cannot write (PT_LOAD without PF_W):
    where its string constants lie, without the debug sections and symbol tables that make up most of
    an unstripped libpython. Empty when the file cannot be read as ELF."""
    try:
        size = os.stat(path).st_size
        found = _with_contents(path, size, _constant_ranges)
    except (OSError, ValueError, _Stop, struct.error, IndexError, OverflowError):
        return ()
    return found or ()


def _constant_ranges(data: Buffer) -> tuple[tuple[int, int], ...]:
    _, segments = _headers(_Draft(""), data)
    return tuple((s.offset, s.filesz) for s in segments if s.kind == PT_LOAD and not s.flags & PF_W)


# ---------------------------------------------------------------------------------------------------
# Reading


def _realpath(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _os_problem(path: str, error: OSError) -> ElfFacts:
    """MISSING for a name that leads nowhere (ENOENT, a file used as a directory), else UNREADABLE."""
    missing = error.errno in (errno.ENOENT, errno.ENOTDIR)
    reason = error.strerror or type(error).__name__
    return ElfFacts(
        path=path,
        problem=Problem.MISSING if missing else Problem.UNREADABLE,
        detail=reason,
    )


def _read_regular_file(path: str, size: int) -> ElfFacts:
    if size < 4:
        detail = "empty file" if size == 0 else f"{size} bytes, too short for an ELF header"
        return ElfFacts(path=path, problem=Problem.NOT_ELF, detail=detail)
    try:
        facts = _with_contents(path, size, lambda data: parse_elf(path, data))
    except OSError as error:
        return _os_problem(path, error)
    except ValueError as error:  # mmap of a file that shrank to nothing
        return ElfFacts(path=path, problem=Problem.UNREADABLE, detail=str(error))
    if facts is None:
        return ElfFacts(path=path, problem=Problem.UNREADABLE, detail="not a regular file")
    return facts


def _with_contents(path: str, size: int, parse: Callable[[Buffer], _T]) -> _T | None:
    """``parse`` over the bytes of the regular file ``path`` (read whole when small, else mapped).

    None when ``path`` is not a regular file; raises OSError, or ValueError for an mmap of a file that
    shrank to nothing.
    """
    # O_NONBLOCK: a path swapped for a FIFO after the stat must not block the open (fstat below).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if size <= READ_WHOLE_LIMIT:
            return parse(os.read(fd, size))
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            return parse(mapped)
    finally:
        os.close(fd)


def parse_elf(path: str, data: Buffer) -> ElfFacts:
    """Parse the bytes of a file (``path`` is only recorded); never raises."""
    draft = _Draft(path)
    try:
        _parse(draft, data)
    except _Stop as stop:
        return draft.freeze(stop.problem, stop.detail)
    except (struct.error, IndexError, ValueError, OverflowError) as error:  # a bounds check we missed
        return draft.freeze(Problem.MALFORMED, f"unreadable structure: {error}")
    return draft.freeze()


def _headers(draft: _Draft, data: Buffer) -> tuple[_Layout, list[_Segment]]:
    """The identification, ELF header and program headers (the draft records class, type, machine)."""
    size = len(data)
    if data[:4] != b"\x7fELF":
        raise _Stop(Problem.NOT_ELF, "no ELF magic (a text file, a linker script or another format)")
    if size < _IDENT_SIZE:
        raise _Stop(Problem.TRUNCATED, f"file ends at byte {size}, inside the ELF identification")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2):
        raise _Stop(Problem.MALFORMED, f"unknown ELF class {elf_class}")
    if encoding not in (1, 2):
        raise _Stop(Problem.MALFORMED, f"unknown ELF data encoding {encoding}")
    draft.elf_class = 32 if elf_class == 1 else 64
    draft.little_endian = encoding == 1
    draft.osabi = data[7]
    # ld.so refuses a wrong version before it looks at the machine, so the machine is left unread.
    if data[6] != 1:
        raise _Stop(Problem.MALFORMED, f"ELF file version ident does not match current one ({data[6]})")
    layout = _LAYOUTS[(elf_class, encoding)]
    if size < _HEADER_SIZE[elf_class]:
        raise _Stop(Problem.TRUNCATED, f"file ends at byte {size}, inside the ELF header")
    header = layout.header.unpack_from(data, _IDENT_SIZE)
    if header[2] != 1:
        raise _Stop(Problem.MALFORMED, f"ELF file version does not match current one ({header[2]})")
    draft.elf_type, draft.machine = header[0], header[1]
    segments = _program_headers(data, layout, elf_class, header[4], header[8], header[9])
    return layout, segments


def _parse(draft: _Draft, data: Buffer) -> None:
    layout, segments = _headers(draft, data)
    _read_interp(draft, data, segments)
    _read_notes(draft, data, layout, segments)
    _read_stack_and_tls(draft, segments)
    draft.page_limit = page_limit(segments)
    if draft.machine in _X86_MACHINES:
        draft.x86_isa_needed = _x86_isa_needed(data, layout, segments)
    _read_dynamic(draft, data, layout, segments)


def _program_headers(
    data: Buffer, layout: _Layout, elf_class: int, phoff: int, phentsize: int, phnum: int
) -> list[_Segment]:
    """The program headers, each checked to lie inside the file (ld.so maps them all)."""
    if phnum == 0:
        return []
    if phentsize != _PHDR_SIZE[elf_class]:
        raise _Stop(Problem.MALFORMED, f"e_phentsize is {phentsize}, not {_PHDR_SIZE[elf_class]}")
    size = len(data)
    end = phoff + phnum * phentsize
    if end > size:
        raise _Stop(
            Problem.TRUNCATED,
            f"{phnum} program headers at offset {phoff} end past the end of the file ({size} bytes)",
        )
    segments = []
    is64 = elf_class == 2
    for fields in layout.phdr.iter_unpack(data[phoff:end]):
        if is64:
            kind, flags, p_offset, vaddr, _, filesz, memsz, align = fields
        else:
            kind, p_offset, vaddr, _, filesz, memsz, flags, align = fields
        if kind in _SEGMENTS_READ:
            if p_offset + filesz > size:
                name = _SEGMENTS_READ[kind]
                raise _Stop(
                    Problem.TRUNCATED,
                    f"{name} at offset {p_offset} (+{filesz} bytes) ends past the end of the file"
                    f" ({size} bytes)",
                )
            segments.append(_Segment(kind, p_offset, vaddr, filesz, align, flags, memsz))
        elif kind in _SEGMENTS_NOTED:
            segments.append(_Segment(kind, p_offset, vaddr, filesz, align, flags, memsz))
    return segments


def _read_interp(draft: _Draft, data: Buffer, segments: list[_Segment]) -> None:
    for segment in segments:
        if segment.kind == PT_INTERP:
            raw = data[segment.offset : segment.offset + segment.filesz]
            draft.interpreter = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            return


def _read_notes(draft: _Draft, data: Buffer, layout: _Layout, segments: list[_Segment]) -> None:
    """The NT_GNU_BUILD_ID note; notes are 4-byte aligned, or 8 in a PT_NOTE aligned to 8."""
    for segment in segments:
        if segment.kind != PT_NOTE:
            continue
        step = 8 if segment.align == 8 else 4
        offset, end = segment.offset, segment.offset + segment.filesz
        for _ in range(MAX_NOTES):
            if offset + 12 > end:
                break
            namesz, descsz, kind = layout.note.unpack_from(data, offset)
            name_at = offset + 12
            desc_at = name_at + _align(namesz, step)
            next_at = desc_at + _align(descsz, step)
            if next_at > end:
                break  # a torn note: ld.so ignores notes it does not need, so do we
            if kind == NT_GNU_BUILD_ID and data[name_at : name_at + namesz] == b"GNU\0":
                draft.build_id = bytes(data[desc_at : desc_at + descsz]).hex()
                return
            offset = next_at


def _align(value: int, step: int) -> int:
    return (value + step - 1) & ~(step - 1)


def _read_stack_and_tls(draft: _Draft, segments: list[_Segment]) -> None:
    """PT_GNU_STACK's flags and the PT_TLS block, as dl-load.c takes them: the last of each wins (it
    assigns in a loop over the headers), and a PT_TLS of size 0 is skipped."""
    for segment in segments:
        if segment.kind == PT_GNU_STACK:
            draft.stack_flags = segment.flags
        elif segment.kind == PT_TLS and segment.memsz:
            draft.tls_size = segment.memsz
            draft.tls_align = segment.align
            draft.tls_firstbyte = segment.vaddr & (segment.align - 1) if segment.align else 0


def page_limit(segments: list[_Segment]) -> int:
    """The largest page size the PT_LOADs can be mapped with (0: no PT_LOAD). ld.so refuses a segment
    whose p_align is not a multiple of the kernel's page size ("ELF load command alignment not
    page-aligned") or whose p_vaddr - p_offset is not ("address/offset not page-aligned"): the lowest
    set bit of either bounds it. An aarch64 kernel may have 64 KiB pages."""
    limit = 0
    for segment in segments:
        if segment.kind != PT_LOAD:
            continue
        for value in (segment.align, (segment.vaddr - segment.offset) & ((1 << 64) - 1)):
            if value:
                low = value & -value
                limit = low if not limit else min(limit, low)
    return limit


_X86_MACHINES: Final = frozenset({3, 62})  # EM_386, EM_X86_64: the ISA-level property is theirs


def _x86_isa_needed(data: Buffer, layout: _Layout, segments: list[_Segment]) -> int:
    """GNU_PROPERTY_X86_ISA_1_NEEDED as glibc's x86 ``dl-prop.h`` finds it: the program headers are
    scanned backwards and the first PT_GNU_PROPERTY or PT_NOTE aligned to the word size that holds a
    NT_GNU_PROPERTY_TYPE_0 note decides (binutils puts the same note in both)."""
    word = 8 if layout.word == "Q" else 4
    size = len(data)
    for segment in reversed(segments):
        if segment.kind not in (PT_NOTE, PT_GNU_PROPERTY) or segment.align != word:
            continue
        end = segment.offset + segment.filesz
        if end > size:
            continue  # a PT_GNU_PROPERTY past the end of the file: nothing ld.so could map either
        found = _property_note(data, layout, segment.offset, end, word)
        if found is not None:
            return found
    return 0


def _property_note(data: Buffer, layout: _Layout, offset: int, end: int, word: int) -> int | None:
    """The ISA bits of the segment's GNU property note (0 when it is ill-formed or has none), or None
    when the segment holds no such note. A second property note (an old linker's) voids both."""
    found: int | None = None
    for _ in range(MAX_NOTES):
        if offset + 12 > end:
            break
        namesz, descsz, kind = layout.note.unpack_from(data, offset)
        name_at = offset + 12
        desc_at = name_at + _align(namesz, 4)
        next_at = desc_at + _align(descsz, word)
        if desc_at + descsz > end:
            break
        if namesz == 4 and kind == NT_GNU_PROPERTY_TYPE_0 and data[name_at : name_at + 4] == b"GNU\0":
            if found is not None:
                return 0
            found = _isa_property(data, layout, desc_at, descsz, word)
        offset = next_at
    return found


def _isa_property(data: Buffer, layout: _Layout, start: int, descsz: int, word: int) -> int:
    """The property array of one note: types ascending, 4-byte data for the ISA bits, else nothing."""
    if descsz < 8 or descsz % word:
        return 0
    end = start + descsz
    pair = struct.Struct(layout.order + "II")
    offset, last = start, 0
    for _ in range(MAX_PROPERTIES):
        if end - offset < 8:
            break
        kind, datasz = pair.unpack_from(data, offset)
        if kind < last or offset + 8 + datasz > end:
            return 0
        last = kind
        if kind == GNU_PROPERTY_X86_ISA_1_NEEDED:
            return int(struct.unpack_from(layout.order + "I", data, offset + 8)[0]) if datasz == 4 else 0
        if kind > GNU_PROPERTY_X86_ISA_1_NEEDED:
            break
        offset += 8 + _align(datasz, word)
    return 0


def _read_dynamic(draft: _Draft, data: Buffer, layout: _Layout, segments: list[_Segment]) -> None:
    dynamic = next((segment for segment in segments if segment.kind == PT_DYNAMIC), None)
    if dynamic is None:
        return
    first, needed = _dynamic_tags(data, layout, dynamic)
    loads = [segment for segment in segments if segment.kind == PT_LOAD]
    draft.flags = first.get(DT_FLAGS, 0)
    draft.flags_1 = first.get(DT_FLAGS_1, 0)
    if DT_RELR in first:
        draft.relr = True
        draft.relr_init = _relr_covers_init(data, layout, loads, first)
    strtab_addr = first.get(DT_STRTAB)
    if strtab_addr is None:
        if needed or any(tag in first for tag in (DT_SONAME, DT_RPATH, DT_RUNPATH, DT_VERNEED, DT_VERDEF)):
            raise _Stop(Problem.MALFORMED, "dynamic section has names but no DT_STRTAB")
        return
    strings = _StringTable(data, loads, strtab_addr, first.get(DT_STRSZ))
    draft.needed = [strings.get(value, "DT_NEEDED") for value in needed]
    if DT_SONAME in first:
        draft.soname = strings.get(first[DT_SONAME], "DT_SONAME")
    if DT_RPATH in first:
        draft.rpath = strings.get(first[DT_RPATH], "DT_RPATH")
    if DT_RUNPATH in first:
        draft.runpath = strings.get(first[DT_RUNPATH], "DT_RUNPATH")
    if DT_VERNEED in first:
        _read_verneed(draft, data, layout, loads, strings, first[DT_VERNEED], first.get(DT_VERNEEDNUM))
    if DT_VERDEF in first:
        _read_verdef(draft, data, layout, loads, strings, first[DT_VERDEF], first.get(DT_VERDEFNUM))


def _dynamic_tags(data: Buffer, layout: _Layout, dynamic: _Segment) -> tuple[dict[int, int], list[int]]:
    """The first value of each tag we read and the DT_NEEDED string offsets, up to DT_NULL.

    A segment without DT_NULL is malformed: ld.so would read past it.
    """
    count = dynamic.filesz // (16 if layout.word == "Q" else 8)
    # One unpack of the whole array (tags as unsigned: every real tag is positive), then C-level scans.
    words = struct.unpack_from(f"{layout.order}{2 * count}{layout.word}", data, dynamic.offset)
    tags, values = words[0::2], words[1::2]
    try:
        end = tags.index(DT_NULL)
    except ValueError:
        raise _Stop(Problem.MALFORMED, f"dynamic segment at offset {dynamic.offset} has no DT_NULL") from None
    needed = [value for tag, value in zip(tags[:end], values[:end], strict=True) if tag == DT_NEEDED]
    # Reversed, so that the first occurrence of a tag is the one that stays in the dict.
    first = dict(zip(reversed(tags[:end]), reversed(values[:end]), strict=True))
    return first, needed


def _relr_covers_init(data: Buffer, layout: _Layout, loads: list[_Segment], tags: dict[int, int]) -> bool:
    """Do the DT_RELR relocations include a DT_INIT_ARRAY slot? A loader that skips DT_RELR (glibc
    before 2.36) then calls an unrelocated address while loading the object: a crash in dlopen().

    Decoded as glibc's ``elf_dynamic_do_Relr``: an even word relocates that address, an odd word is a
    bitmap of the next word-size - 1 words. The entries ascend, so the walk stops past the array.
    """
    start, size = tags.get(DT_INIT_ARRAY), tags.get(DT_INIT_ARRAYSZ, 0)
    relr_size = tags.get(DT_RELRSZ, 0)
    if start is None or not size or not relr_size:
        return False
    try:
        offset, segment_end = _file_offset(loads, tags[DT_RELR], "DT_RELR")
    except _Stop:
        return False  # not in the file: nothing to decide from (the reader does not refuse for it)
    word = 8 if layout.word == "Q" else 4
    count = min(relr_size, segment_end - offset) // word
    entries = struct.unpack_from(f"{layout.order}{min(count, MAX_RELR_ENTRIES)}{layout.word}", data, offset)
    stop, bits = start + size, word * 8 - 1
    where = 0
    for entry in entries:
        if not entry & 1:
            if start <= entry < stop:
                return True
            where = entry + word
        else:
            if where + bits * word > start and where < stop:
                for index in range(bits):
                    if entry >> (index + 1) & 1 and start <= where + index * word < stop:
                        return True
            where += bits * word
        if where >= stop:
            return False
    return False


def _file_offset(loads: list[_Segment], vaddr: int, what: str) -> tuple[int, int]:
    """Map a vaddr to (file offset, end of that PT_LOAD's file bytes), as ld.so's mapping does."""
    for segment in loads:
        delta = vaddr - segment.vaddr
        if 0 <= delta < segment.filesz:
            return segment.offset + delta, segment.offset + segment.filesz
    raise _Stop(Problem.MALFORMED, f"{what} address {vaddr:#x} is not in the file part of any PT_LOAD")


class _StringTable:
    """DT_STRTAB, bounded by DT_STRSZ and by the PT_LOAD that holds it."""

    __slots__ = ("_data", "_start", "_end")

    def __init__(self, data: Buffer, loads: list[_Segment], vaddr: int, strsz: int | None) -> None:
        start, segment_end = _file_offset(loads, vaddr, "DT_STRTAB")
        end = segment_end if strsz is None else min(segment_end, start + strsz)
        self._data, self._start, self._end = data, start, end

    def get(self, offset: int, what: str) -> str:
        position = self._start + offset
        if position >= self._end:
            raise _Stop(Problem.MALFORMED, f"{what} string offset {offset} is outside the string table")
        stop = self._data.find(b"\0", position, self._end)
        if stop < 0:
            raise _Stop(Problem.MALFORMED, f"{what} string at offset {offset} has no terminating NUL")
        return self._data[position:stop].decode("utf-8", "surrogateescape")


def _table_bounds(loads: list[_Segment], vaddr: int, count: int | None, what: str) -> tuple[int, int, int]:
    """(file offset, end of its segment, entry limit) of a version table."""
    offset, end = _file_offset(loads, vaddr, what)
    limit = MAX_TABLE_ENTRIES if not count else min(count, MAX_TABLE_ENTRIES)
    return offset, end, limit


def _past(offset: int, size: int, end: int, what: str) -> _Stop:
    return _Stop(Problem.MALFORMED, f"{what} at offset {offset:#x} runs past the end of its segment")


_needs: dict[tuple[str, str, bool, int, int], VersionNeed] = {}


def _version_need(library: str, version: str, weak: bool, index: int, hash_value: int) -> VersionNeed:
    """Shared records: most objects need the same few (libc.so.6, GLIBC_2.2.5, 2) entries."""
    key = (library, version, weak, index, hash_value)
    need = _needs.get(key)
    if need is None:
        if len(_needs) >= MAX_CACHE_ENTRIES:
            _needs.clear()
        need = _needs[key] = VersionNeed(library, version, weak, index, hash_value)
    return need


def _read_verneed(
    draft: _Draft,
    data: Buffer,
    layout: _Layout,
    loads: list[_Segment],
    strings: _StringTable,
    vaddr: int,
    count: int | None,
) -> None:
    """Walk .gnu.version_r as ld.so's dl-version.c does: vn_next/vna_next, stopping at 0."""
    offset, end, limit = _table_bounds(loads, vaddr, count, "DT_VERNEED")
    unpack_need, unpack_aux = layout.verneed.unpack_from, layout.vernaux.unpack_from
    get, requires = strings.get, draft.requires
    # Links are unsigned, so offsets only grow: with the bounds checks every walk ends, and the
    # entry cap bounds the work (a vn_next that "loops back" in 32-bit arithmetic runs past the end).
    for _ in range(limit):
        if offset + 16 > end:
            raise _past(offset, 16, end, "Verneed")
        version, aux_count, file_name, aux, next_need = unpack_need(data, offset)
        if version != 1:
            raise _Stop(Problem.MALFORMED, f"Verneed at offset {offset:#x} has version {version}, not 1")
        library = get(file_name, "vn_file")
        aux_offset = offset + aux
        for _ in range(aux_count):
            if aux_offset + 16 > end:
                raise _past(aux_offset, 16, end, "Vernaux")
            hash_value, flags, other, name, next_aux = unpack_aux(data, aux_offset)
            weak = bool(flags & VER_FLG_WEAK)
            requires.append(_version_need(library, get(name, "vna_name"), weak, other, hash_value))
            if next_aux == 0:
                break
            aux_offset += next_aux
        if next_need == 0:
            return
        offset += next_need


def _read_verdef(
    draft: _Draft,
    data: Buffer,
    layout: _Layout,
    loads: list[_Segment],
    strings: _StringTable,
    vaddr: int,
    count: int | None,
) -> None:
    """Walk .gnu.version_d: each Verdef's first Verdaux names the version (the base entry is skipped)."""
    offset, end, limit = _table_bounds(loads, vaddr, count, "DT_VERDEF")
    for _ in range(limit):
        if offset + 20 > end:
            raise _past(offset, 20, end, "Verdef")
        version, flags, _, aux_count, _, aux, next_def = layout.verdef.unpack_from(data, offset)
        if version != 1:
            raise _Stop(Problem.MALFORMED, f"Verdef at offset {offset:#x} has version {version}, not 1")
        if aux_count and not flags & VER_FLG_BASE:
            aux_offset = offset + aux
            if aux_offset + 8 > end:
                raise _past(aux_offset, 8, end, "Verdaux")
            name = layout.verdaux.unpack_from(data, aux_offset)[0]
            draft.defines.append(strings.get(name, "vda_name"))
        if next_def == 0:
            return
        offset += next_def


# ---------------------------------------------------------------------------------------------------
# dlsym: one name looked up through the object's own hash table, as dl-lookup.c does

STB_GLOBAL: Final = 1
STB_WEAK: Final = 2
STB_GNU_UNIQUE: Final = 10
STT_TLS: Final = 6
SHN_UNDEF: Final = 0
SHN_ABS: Final = 0xFFF1
# dl-lookup.c's ALLOWED_STT: NOTYPE, OBJECT, FUNC, COMMON, TLS, GNU_IFUNC.
_ALLOWED_TYPES: Final = frozenset({0, 1, 2, 5, 6, 10})
_SYMBOL_SIZE: Final = {"Q": 24, "I": 16}
MAX_CHAIN: Final = 1 << 20  # far above any real bucket's chain; bounds the walk on hostile input


def _lookup_symbol(data: Buffer, name: bytes) -> bool:
    """Raises _Stop (or a struct/index error) when the file is not an ELF object we can read."""
    layout, segments = _headers(_Draft(""), data)
    dynamic = next((segment for segment in segments if segment.kind == PT_DYNAMIC), None)
    if dynamic is None:
        return False
    tags, _ = _dynamic_tags(data, layout, dynamic)
    if DT_SYMTAB not in tags or DT_STRTAB not in tags:
        return False
    loads = [segment for segment in segments if segment.kind == PT_LOAD]
    table = _Symbols(data, layout, loads, tags)
    if DT_GNU_HASH in tags:
        candidates = _gnu_hash_candidates(data, layout, loads, tags[DT_GNU_HASH], name)
    elif DT_HASH in tags:
        candidates = _sysv_hash_candidates(data, layout, loads, tags[DT_HASH], name)
    else:
        return False
    return any(table.matches(index, name) for index in candidates)


class _Symbols:
    """DT_SYMTAB entries and their names (DT_STRTAB), bounded by the PT_LOAD that holds each."""

    def __init__(self, data: Buffer, layout: _Layout, loads: list[_Segment], tags: dict[int, int]) -> None:
        self._data, self._layout = data, layout
        self._start, self._end = _file_offset(loads, tags[DT_SYMTAB], "DT_SYMTAB")
        self._size = _SYMBOL_SIZE[layout.word]
        strings_start, strings_end = _file_offset(loads, tags[DT_STRTAB], "DT_STRTAB")
        self._strings, self._strings_end = strings_start, strings_end

    def matches(self, index: int, name: bytes) -> bool:
        offset = self._start + index * self._size
        if offset + self._size > self._end:
            raise _Stop(Problem.MALFORMED, f"symbol {index} lies past the end of its segment")
        if self._layout.word == "Q":
            st_name, info, _, shndx, value = struct.unpack_from(
                self._layout.order + "IBBHQ", self._data, offset
            )
        else:
            st_name, value, _, info, _, shndx = struct.unpack_from(
                self._layout.order + "IIIBBH", self._data, offset
            )
        kind, bind = info & 0xF, info >> 4
        if shndx == SHN_UNDEF or (value == 0 and shndx != SHN_ABS and kind != STT_TLS):
            return False
        if kind not in _ALLOWED_TYPES:
            return False
        if bind not in (STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE):
            return False
        position = self._strings + st_name
        end = position + len(name)
        return end < self._strings_end and self._data[position:end] == name and self._data[end] == 0


def _u32(data: Buffer, layout: _Layout, offset: int, end: int, count: int = 1) -> tuple[int, ...]:
    if offset + 4 * count > end:
        raise _Stop(Problem.MALFORMED, f"hash table at offset {offset:#x} runs past the end of its segment")
    return struct.unpack_from(f"{layout.order}{count}I", data, offset)


def _gnu_hash_candidates(
    data: Buffer, layout: _Layout, loads: list[_Segment], vaddr: int, name: bytes
) -> Iterator[int]:
    """Symbol indexes whose DT_GNU_HASH entry matches ``name``'s hash (the Bloom filter first)."""
    offset, end = _file_offset(loads, vaddr, "DT_GNU_HASH")
    buckets, symoffset, bloom_size, bloom_shift = _u32(data, layout, offset, end, 4)
    if buckets == 0 or bloom_size == 0:
        return
    word_bits = 64 if layout.word == "Q" else 32
    value = 5381
    for byte in name:
        value = (value * 33 + byte) & 0xFFFFFFFF
    bloom_at = offset + 16
    word_at = bloom_at + ((value // word_bits) & (bloom_size - 1)) * (word_bits // 8)
    if word_at + word_bits // 8 > end:
        raise _Stop(Problem.MALFORMED, "DT_GNU_HASH Bloom filter runs past the end of its segment")
    (word,) = struct.unpack_from(layout.order + layout.word, data, word_at)
    if not (word >> (value % word_bits)) & (word >> ((value >> bloom_shift) % word_bits)) & 1:
        return
    buckets_at = bloom_at + bloom_size * (word_bits // 8)
    (index,) = _u32(data, layout, buckets_at + 4 * (value % buckets), end)
    if index < symoffset:
        return
    chain_at = buckets_at + 4 * buckets
    for _ in range(MAX_CHAIN):
        (entry,) = _u32(data, layout, chain_at + 4 * (index - symoffset), end)
        if (entry | 1) == (value | 1):
            yield index
        if entry & 1:
            return
        index += 1


def _sysv_hash_candidates(
    data: Buffer, layout: _Layout, loads: list[_Segment], vaddr: int, name: bytes
) -> Iterator[int]:
    """Symbol indexes on ``name``'s DT_HASH bucket chain."""
    offset, end = _file_offset(loads, vaddr, "DT_HASH")
    buckets, chains = _u32(data, layout, offset, end, 2)
    if buckets == 0:
        return
    value = 0
    for byte in name:
        value = (value << 4) + byte
        high = value & 0xF0000000
        value ^= high >> 24
        value &= ~high & 0xFFFFFFFF
    (index,) = _u32(data, layout, offset + 8 + 4 * (value % buckets), end)
    for _ in range(min(chains, MAX_CHAIN)):
        if index == 0:
            return
        yield index
        (index,) = _u32(data, layout, offset + 8 + 4 * (buckets + index), end)
