"""The facts every layer shares: what an ELF file says, how a name was resolved, what conflicts.

These are plain frozen records: parsed facts in, decisions out. Nothing here reads files or knows about
terminals; the CLI, the JSON output, the exports and the TUI all render these same records.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import networkx as nx


class Problem(StrEnum):
    """Why a file could not be read as a loadable ELF object (``ElfFacts.problem``)."""

    MISSING = "missing"  # no such file (or a dangling link)
    UNREADABLE = "unreadable"  # permission denied, a directory, a symlink loop, an I/O error
    NOT_ELF = "not-elf"  # no ELF magic (a linker script, a text file, empty)
    TRUNCATED = "truncated"  # a header or table points past the end of the file
    MALFORMED = "malformed"  # inconsistent headers (bad sizes, counts, offsets, loops)


@dataclass(frozen=True, slots=True)
class VersionNeed:
    """One ``Vernaux`` of ``.gnu.version_r``: this object needs ``version`` from file ``library``.

    ``index`` is the version index (``vna_other``) that ``.gnu.version`` uses for the symbols bound to
    this version; ``weak`` is VER_FLG_WEAK (a missing weak version only warns).
    """

    library: str
    version: str
    weak: bool = False
    index: int = 0
    hash: int = 0


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """What the dynamic loader reads of one file, or why it could not be read.

    ``path`` is the path the file was opened by (as found, not its realpath: ``$ORIGIN`` uses it).
    ``rpath``/``runpath`` are the raw DT_RPATH/DT_RUNPATH strings (``:``-separated, tokens unexpanded).
    ``defines`` lists the names of ``.gnu.version_d`` without the base (file name) entry.
    When ``problem`` is set, the other fields hold whatever could be read before the problem.
    """

    path: str
    problem: Problem | None = None
    detail: str = ""  # the one-line explanation of ``problem``
    elf_class: int = 0  # 32 or 64
    little_endian: bool = True
    machine: int = 0  # e_machine (62 = x86-64)
    osabi: int = 0
    elf_type: int = 0  # e_type (2 = EXEC, 3 = DYN)
    interpreter: str | None = None  # PT_INTERP
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    flags: int = 0  # DT_FLAGS
    flags_1: int = 0  # DT_FLAGS_1 (DF_1_NODEFLIB = 0x800)
    build_id: str | None = None  # hex of NT_GNU_BUILD_ID
    requires: tuple[VersionNeed, ...] = ()
    defines: tuple[str, ...] = ()
    # What ld.so checks beyond names and versions (core/refusals.py, core/static_tls.py):
    relr: bool = False  # DT_RELR: relative relocations in the packed format (applied by glibc 2.36+)
    relr_init: bool = False  # …and they include a DT_INIT_ARRAY slot (run at load: a crash there)
    stack_flags: int | None = None  # p_flags of PT_GNU_STACK (PF_X = 1); None: no PT_GNU_STACK
    tls_size: int = 0  # PT_TLS p_memsz (the TLS block); 0: no thread-local storage
    tls_align: int = 0  # PT_TLS p_align
    tls_firstbyte: int = 0  # p_vaddr & (p_align - 1): ld.so's l_tls_firstbyte_offset
    x86_isa_needed: int = 0  # GNU_PROPERTY_X86_ISA_1_NEEDED bits (1 baseline, 2 v2, 4 v3, 8 v4)
    page_limit: int = 0  # the largest page size its PT_LOADs allow (aarch64 kernels: up to 64 KiB)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def is_dynamic(self) -> bool:
        """A file with a dynamic segment is something ld.so can map; a static binary is not."""
        return self.ok and (bool(self.needed) or self.soname is not None or self.interpreter is not None)

    def requires_from(self, library: str) -> tuple[VersionNeed, ...]:
        return tuple(need for need in self.requires if need.library == library)

    @property
    def needs_exec_stack(self) -> bool:
        """Does ld.so make the stack executable for this object? PF_X in PT_GNU_STACK, or no
        PT_GNU_STACK on a machine whose default stack is executable (glibc's DEFAULT_STACK_PERMS)."""
        if self.stack_flags is None:
            return self.machine in EXEC_STACK_BY_DEFAULT
        return bool(self.stack_flags & PF_X)

    @property
    def static_tls(self) -> bool:
        """DF_STATIC_TLS: its code reaches its TLS block in the initial-exec model (a fixed offset)."""
        return bool(self.flags & DF_STATIC_TLS) and self.tls_size > 0


DF_1_NODEFLIB = 0x800
DF_STATIC_TLS = 0x10
PF_X = 0x1
EM_X86_64 = 62
EM_386 = 3
EM_AARCH64 = 183
# Machines whose DEFAULT_STACK_PERMS include PF_X (glibc's sysdeps/*/stackinfo.h): an object without
# PT_GNU_STACK asks for an executable stack there. aarch64, riscv, loongarch and powerpc64 use the generic
# default (no PF_X). By e_machine: sparc 2/18/43, m68k 4, mips 8, parisc 15, ppc 20, s390 22, arm 40,
# sh 42, or1k 92, microblaze 189, alpha 0x9026.
EXEC_STACK_BY_DEFAULT = frozenset({EM_X86_64, EM_386, 2, 18, 43, 4, 8, 15, 20, 22, 40, 42, 92, 189, 0x9026})


class Via(StrEnum):
    """How the loader found (or reused) an object for a DT_NEEDED name or a dlopen() name."""

    PRELOAD = "preload"
    LOADED = "already-loaded"  # an object with this soname/name is already in the namespace
    PATH = "path"  # the name contains a slash
    RPATH = "rpath"  # DT_RPATH of the requester or of an object up its loader chain
    LD_LIBRARY_PATH = "ld_library_path"
    RUNPATH = "runpath"  # DT_RUNPATH of the requester
    CACHE = "ld.so.cache"
    DEFAULT = "default-dirs"  # the loader's compiled-in directories
    NOT_FOUND = "not-found"
    ROOT = "root"  # the main program, or an extension given as a root


@dataclass(frozen=True, slots=True)
class Rejected:
    """A candidate the loader did not use: skipped (wrong class or machine, no permission), or the file
    that ended one search path (``ends_path``: a symlink loop) or stopped the whole load (``stops``: a
    directory, an empty or non-ELF file named like the library)."""

    path: str
    reason: str
    stops: bool = False
    ends_path: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to "which file does ``name`` requested by ``requester`` map to".

    ``detail`` says where exactly: for RPATH the entry and whose tag it came from, for the cache the
    cache file, for LOADED the object that already had the soname.
    """

    name: str
    requester: str
    path: str | None
    via: Via
    detail: str = ""
    searched: tuple[str, ...] = ()  # directories tried, in order
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True, slots=True)
class EdgeRequest:
    """One request an edge of the process graph answers: a DT_NEEDED, preload or dlopen name.

    An object can ask for one file under two names (``libx.so`` and a ``libalias.so`` link to it, or
    a DT_NEEDED name that a preloaded object's soname serves): ld.so answers two requests with one
    object, the graph has one edge carrying both (``requests``, in the order they were made).
    """

    needed: str
    via: Via
    detail: str
    resolution: Resolution | None = None


def edge_requests(data: Mapping[str, object]) -> tuple[EdgeRequest, ...]:
    """Every request of one edge's attributes, first one first (a graph built without ``requests``
    has the single one its ``needed``/``via``/``detail``/``resolution`` describe)."""
    requests = data.get("requests")
    if isinstance(requests, (list, tuple)) and requests:
        return tuple(request for request in requests if isinstance(request, EdgeRequest))
    resolution = data.get("resolution")
    return (
        EdgeRequest(
            needed=str(data.get("needed", "")),
            via=Via(str(data.get("via") or Via.NOT_FOUND)),
            detail=str(data.get("detail", "")),
            resolution=resolution if isinstance(resolution, Resolution) else None,
        ),
    )


def edge_names(data: Mapping[str, object]) -> tuple[str, ...]:
    """The names one edge answers (usually one DT_NEEDED name)."""
    return tuple(request.needed for request in edge_requests(data))


class Role(StrEnum):
    """The part a node plays in the process graph."""

    INTERPRETER = "interpreter"  # the main program
    LOADER = "loader"  # the PT_INTERP ld.so
    LIBRARY = "library"  # reached through DT_NEEDED
    EXTENSION = "extension"  # dlopen()ed by the interpreter (a Python/Ruby extension, a plugin)
    PRELOAD = "preload"
    MISSING = "missing"  # a DT_NEEDED name that resolved to nothing


class Kind(StrEnum):
    """Conflict kinds: the ``kind`` key of the JSON records."""

    MISSING_VERSION = "missing-version"  # version `GLIBC_2.38' not found
    NOT_FOUND = "not-found"  # cannot open shared object file
    WRONG_ELF = "wrong-elf"  # wrong ELF class or machine for this process
    UNREADABLE = "unreadable"  # an object that exists but cannot be parsed
    MIXED_GLIBC = "mixed-glibc"  # ld.so, libc, libm … from different glibc builds (GLIBC_PRIVATE)
    LOADER_MISMATCH = "loader-mismatch"  # PT_INTERP loader is not the one of the libc that loads
    ORDER_DEPENDENT = "order-dependent"  # the result depends on which extension is imported first
    LATENT = "latent"  # strict mode only: hidden today by load order, breaks if the order changes
    DT_RELR = "dt-relr"  # packed relocations a loader older than 2.36 skips (a crash), or no marker (2.36+)
    EXEC_STACK = "exec-stack"  # an executable stack for a dlopen()ed object: glibc 2.41+ refuses
    ISA_LEVEL = "isa-level"  # built for an x86-64 level above this CPU's: glibc 2.33+ refuses
    STATIC_TLS = "static-tls"  # initial-exec TLS beyond what is left of the loader's static TLS surplus
    PAGE_SIZE = "page-size"  # PT_LOADs aligned below the kernel's page size (64 KiB aarch64 kernels)


class Severity(StrEnum):
    ERROR = "error"  # the load fails (ld.so refuses) or the process is likely to crash
    WARNING = "warning"  # works today but is fragile or depends on order


class Effect(StrEnum):
    """What happens when the process loads the object: the outcome a test can watch for real."""

    REFUSED = "refused"  # ld.so or dlopen() fails with ``message``
    CRASH = "crash"  # it loads, and the process dies (a signal) before the load returns
    LOADS = "loads"  # the load succeeds (a warning, or harm that shows only later)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One problem in the process, with its evidence and what would fix it.

    ``object`` requires ``version`` from ``library``; ``provider`` is the file that is (or would be)
    loaded for ``library``; ``chain`` leads from the root (interpreter) to ``object``.
    ``message`` is in ld.so's own words; ``cause`` and ``fixes`` are plain words for people.
    """

    kind: Kind
    object: str
    message: str
    library: str | None = None
    provider: str | None = None
    version: str | None = None
    symbols: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    cause: str = ""
    fixes: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR
    mode: str = "exact"  # "exact" (what ld.so does now) or "strict" (each edge on its own)
    min_glibc: str | None = None  # the oldest glibc release that satisfies ``object``'s GLIBC needs
    effect: Effect | None = None  # None: REFUSED for an error, LOADS for a warning

    def __post_init__(self) -> None:
        if self.effect is None:
            default = Effect.REFUSED if self.severity == Severity.ERROR else Effect.LOADS
            object.__setattr__(self, "effect", default)

    def as_json(self) -> dict[str, builtins.object]:
        return {
            "kind": str(self.kind),
            "object": self.object,
            "library": self.library,
            "provider": self.provider,
            "version": self.version,
            "symbols": list(self.symbols),
            "chain": list(self.chain),
            "message": self.message,
            "cause": self.cause,
            "fixes": list(self.fixes),
            "severity": str(self.severity),
            "mode": self.mode,
            "min_glibc": self.min_glibc,
            "effect": str(self.effect),
        }


@dataclass(frozen=True, slots=True)
class GlibcInfo:
    """The glibc a process loads: its release, the libc.so.6 and ld.so files, and why those."""

    version: str | None  # the release, e.g. "2.31" (not the highest symbol version)
    libc: str | None
    loader: str | None
    why: tuple[str, ...] = field(default=())  # e.g. ("PT_INTERP /nix/…/ld-linux-x86-64.so.2", "RUNPATH …")

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "libc": self.libc, "loader": self.loader, "why": list(self.why)}


@dataclass(frozen=True, slots=True)
class Extension:
    """A file the process dlopen()s: a Python/Ruby extension module or a plugin.

    ``caller`` is the soname of the library that calls dlopen() (``libpython3.9.so.1.0``,
    ``libruby-2.7.so.2.7``), or None when the main executable does (a python built without
    ``--enable-shared``). ``name`` is what the user knows it by (``psycopg2._psycopg``).
    """

    path: str
    name: str
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """What a process will be: the program it execs and the extensions it will dlopen().

    ``kind`` is ``python``, ``ruby``, ``generic`` or ``pid``. ``spec`` is what the user typed;
    ``environment`` a venv or gem home when there is one. For a running process, ``loaded`` holds the
    paths ``/proc/PID/maps`` shows and ``pid`` its id.
    """

    kind: str
    spec: str
    executable: str
    extensions: tuple[Extension, ...] = ()
    environment: str | None = None
    searched_dirs: tuple[str, ...] = ()  # directories walked to find extensions (cache validation)
    examined: tuple[str, ...] = ()  # files read to tell extensions (.pth files, init symbols): cache too
    loaded: frozenset[str] = frozenset()
    pid: int | None = None
    notes: tuple[str, ...] = ()  # things found while reading the target worth telling the user


@dataclass(frozen=True, slots=True)
class StdenvInfo:
    """The glibc (and libstdc++) that the user's compiler links new extensions against.

    ``source`` says how it was found (``--glibc DIR``, ``$NIX_CC``, ``probe: cc``); ``fingerprint`` is
    what "the stdenv changed" means: build-ids and real paths of loader, libc and libstdc++.
    """

    version: str | None
    loader: str
    libc: str
    lib_dirs: tuple[str, ...]
    source: str
    fingerprint: str
    libstdcxx: str | None = None
    elf_class: int = 64  # 32: the i386 glibc (``cc -m32``), the stdenv of a 32-bit x86 target
    machine: int = EM_X86_64  # e_machine of its loader: EM_AARCH64 for an aarch64 glibc

    def as_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "loader": self.loader,
            "libc": self.libc,
            "lib_dirs": list(self.lib_dirs),
            "source": self.source,
            "fingerprint": self.fingerprint,
            "libstdcxx": self.libstdcxx,
            "elf_class": self.elf_class,
            "machine": self.machine,
        }


class ScanLike(Protocol):
    """What the fix plan and the TUI read of a scan: ``core.scan.ScanResult`` has these, and so do a
    rebuild's rescan and the tests' small records. ``graph`` is ``core.process.simulate``'s graph."""

    @property
    def target(self) -> Target: ...
    @property
    def graph(self) -> nx.DiGraph[str]: ...
    @property
    def conflicts(self) -> tuple[Conflict, ...]: ...
    @property
    def glibc(self) -> GlibcInfo: ...
