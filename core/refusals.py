"""What the target's ld.so refuses, or lets crash, for a reason other than a symbol version.

Symbol versions (``core/analysis.py``) are the common failure, not the only one. Each release of ld.so
also checks, or silently mishandles, properties of the object itself:

- **DT_RELR** (``-z pack-relative-relocs``): glibc 2.36 applies the packed relative relocations; an older
  loader skips the tag, leaves the pointers unrelocated, and the process crashes (in dlopen() when an
  init-array slot is among them). The linker adds a ``GLIBC_ABI_DT_RELR`` version need to objects that
  need libc.so.6 versions, so that an old loader refuses them by name instead; glibc 2.36+ in turn
  refuses DT_RELR *without* that marker in such an object (``elf/dl-version.c``).
- **Executable stack**: an object whose PT_GNU_STACK has PF_X (or that has none, on x86) asks for an
  executable stack. glibc 2.41+ refuses to make the stack executable for dlopen() (``elf/dl-load.c``);
  older releases did it. Objects loaded at start-up still may.
- **x86 ISA level**: ``GNU_PROPERTY_X86_ISA_1_NEEDED`` above what this CPU supports; glibc 2.33+ refuses
  the object (``sysdeps/x86/dl-prop.h``), older releases load it and it dies of SIGILL when it runs.
  The CPU's levels come from ``core.loader.x86_isa_levels``, the rule the glibc-hwcaps search uses too.
- **Static TLS**: the arithmetic is ``core/static_tls.py``.

Each finding is a ``Conflict`` with its own ``Kind``, ld.so's words as ``message`` (or the crash, where
ld.so says nothing), the cause and fixes in plain words, and its ``effect``: refused, crash or loads.
``refusals(graph, setting)`` checks one process against one loader release; ``would_break`` compares two
releases (what a repatch against a newer stdenv would start refusing).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import networkx as nx
from glibc_doctor.core.loader import cpu_flags, x86_isa_levels
from glibc_doctor.core.model import (
    EM_386,
    EM_AARCH64,
    EM_X86_64,
    Conflict,
    Effect,
    ElfFacts,
    Kind,
    Role,
    Severity,
)
from glibc_doctor.core.static_tls import (
    TUNABLES_SINCE,
    Placement,
    StaticArea,
    TlsBlock,
    optional_for,
    parse_tunables,
    place_all,
    startup_area,
    surplus_for,
)
from glibc_doctor.core.versions import GlibcVersion

RELR_SINCE = GlibcVersion(2, 36)
ISA_CHECK_SINCE = GlibcVersion(2, 33)
# The largest page an aarch64 kernel may have (RHEL, Oracle Linux and some cloud images run 64 KiB).
AARCH64_LARGEST_PAGE = 65536
PAGE_ALIGN_WORDS = "ELF load command alignment not page-aligned"  # _dl_map_object_from_fd's words
EXEC_STACK_REFUSED_SINCE = GlibcVersion(2, 41)
EXECSTACK_TUNABLE_2_SINCE = GlibcVersion(2, 42)  # glibc.rtld.execstack=2: executable from the start
RELR_MARKER = "GLIBC_ABI_DT_RELR"
X86_LEVELS = ((8, "x86-64-v4"), (4, "x86-64-v3"), (2, "x86-64-v2"), (1, "x86-64 baseline"))
_LEVEL_BITS = {"x86-64-v2": 2, "x86-64-v3": 4, "x86-64-v4": 8}


@dataclass(frozen=True, slots=True)
class Setting:
    """The loader and machine the checks run against.

    ``release`` is the loader's glibc release (None: unknown, the release-bound checks are skipped);
    ``cpu_isa`` this CPU's x86 ISA bits (None: unknown); ``tunables`` the process's GLIBC_TUNABLES;
    ``stdenv`` the stdenv's release and ``repatch`` the fix command line, when a stdenv is known.
    """

    release: GlibcVersion | None
    cpu_isa: int | None = None
    tunables: str = ""
    stdenv: GlibcVersion | None = None
    repatch: str | None = None
    page_size: int | None = None  # the kernel's page size, when the process runs on this machine


def cpu_isa_bits(flags: frozenset[str] | None = None) -> int | None:
    """This CPU's GNU_PROPERTY_X86_ISA_1 bits (baseline 1, v2 2, v3 4, v4 8), as glibc's
    ``get-isa-level.h`` sets ``isa_1``; None when /proc/cpuinfo says nothing."""
    words = cpu_flags() if flags is None else flags
    if not words:
        return None
    return 1 | sum(_LEVEL_BITS[level] for level in x86_isa_levels(words))


def isa_words(bits: int) -> str:
    """``x86-64-v4`` for the highest level in ``bits`` (an unknown bit is named by its value)."""
    for bit, name in X86_LEVELS:
        if bits & bit and not bits & ~((bit << 1) - 1):
            return name
    return f"ISA bits {bits:#x}"


def release_of(text: str | None) -> GlibcVersion | None:
    try:
        return GlibcVersion.parse(text) if text else None
    except ValueError:
        return None


def setting_for(
    graph: nx.DiGraph[str], glibc_version: str | None, stdenv: str | None = None, repatch: str | None = None
) -> Setting:
    """The setting of a scanned process: its loader's release (read from the ld.so file, else the
    libc's ``glibc_version``), this CPU, its GLIBC_TUNABLES, and the stdenv's release when known."""
    config = graph.graph.get("config")
    release = getattr(config, "release", None) or glibc_version
    tunables = str(graph.graph.get("tunables") or "")
    page = page_size_here(getattr(config, "machine", 0))
    return Setting(release_of(release), cpu_isa_bits(), tunables, release_of(stdenv), repatch, page)


def page_size_here(machine: int) -> int | None:
    """This kernel's page size when a program of ``machine`` runs on this machine, else None (an aarch64
    program scanned elsewhere may meet 4, 16 or 64 KiB pages)."""
    here = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64, "i686": EM_386}.get(os.uname().machine)
    native = machine == here or (machine == EM_386 and here == EM_X86_64)
    return os.sysconf("SC_PAGE_SIZE") if native else None


def refused_under(
    graph: nx.DiGraph[str], setting: Setting, release: GlibcVersion
) -> frozenset[tuple[str, str]]:
    """(kind, object) of every refusal under a loader of ``release``: what a repatch does not fix."""
    return frozenset(_identity(conflict) for conflict in refusals(graph, replace(setting, release=release)))


# --- the checks ----------------------------------------------------------------------------------------


def refusals(graph: nx.DiGraph[str], setting: Setting) -> list[Conflict]:
    """Every refusal or crash of this process under ``setting``'s loader, in load order."""
    process = _Process.of(graph)
    found: list[Conflict] = []
    for node in process.order:
        facts = process.facts(node)
        found += _relr(process, node, facts, setting)
        found += _isa(process, node, facts, setting)
        found += _page_size(process, node, facts, setting)
        if node not in process.startup:
            found += _exec_stack(process, node, facts, setting)
    found += _static_tls(process, setting)
    return found


def would_break(graph: nx.DiGraph[str], setting: Setting) -> list[Conflict]:
    """What a loader of the stdenv's release would refuse or crash on that this one does not: warnings
    that say so before a repatch against the stdenv breaks a working extension."""
    if setting.stdenv is None or setting.release is None or setting.stdenv == setting.release:
        return []
    now = {_identity(conflict) for conflict in refusals(graph, setting)}
    later = refusals(graph, replace(setting, release=setting.stdenv))
    return [_warning(conflict, setting) for conflict in later if _identity(conflict) not in now]


def _identity(conflict: Conflict) -> tuple[str, str]:
    """One object's trouble of one kind (an ISA-level crash today that becomes a refusal is not new)."""
    return (str(conflict.kind), conflict.object)


def _warning(conflict: Conflict, setting: Setting) -> Conflict:
    now = f"glibc {setting.release}" if setting.release else "the current glibc"
    return replace(
        conflict,
        severity=Severity.WARNING,
        effect=Effect.LOADS,
        message=f"{conflict.object}: loads with {now}; after a repatch against the stdenv glibc "
        f"{setting.stdenv}: {conflict.message.removeprefix(conflict.object + ': ')}",
        cause=f"It loads today; the stdenv's loader (glibc {setting.stdenv}) would not: " + conflict.cause,
        fixes=tuple(fix for fix in conflict.fixes if not fix.startswith("glibc-doctor fix")),
    )


@dataclass(frozen=True, slots=True)
class _Process:
    """The graph seen as ld.so sees it: load order, and which objects were there at start-up."""

    graph: nx.DiGraph[str]
    root: str
    order: tuple[str, ...]  # loadable objects in load order (without ld.so itself)
    startup: frozenset[str]  # the main program, preloads and their closure: mapped before main()
    names: dict[str, str]  # extension path -> the name the user knows it by

    @classmethod
    def of(cls, graph: nx.DiGraph[str]) -> _Process:
        root = str(graph.graph.get("root") or "")
        loader = graph.graph.get("loader")
        nodes = [
            node
            for node, data in graph.nodes(data=True)
            if data.get("role") not in (Role.MISSING, Role.LOADER) and node != loader and data["facts"].ok
        ]
        nodes.sort(key=lambda node: graph.nodes[node].get("order", 0))
        target = graph.graph.get("target")
        names = {ext.path: ext.name for ext in getattr(target, "extensions", ())}
        return cls(graph, root, tuple(nodes), _startup(graph, root), names)

    def facts(self, node: str) -> ElfFacts:
        facts: ElfFacts = self.graph.nodes[node]["facts"]
        return facts

    def name(self, node: str) -> str:
        return self.names.get(node) or os.path.basename(node)

    def chain(self, node: str) -> tuple[str, ...]:
        if self.root in self.graph and node in self.graph:
            try:
                return tuple(nx.shortest_path(self.graph, self.root, node))
            except nx.NetworkXNoPath:
                pass
        return (node,)


def _startup(graph: nx.DiGraph[str], root: str) -> frozenset[str]:
    """Objects reached from the main program without passing through a dlopen()ed extension."""
    if root not in graph:
        return frozenset()
    seen = {root}
    stack = [root]
    while stack:
        for successor in graph.successors(stack.pop()):
            if successor not in seen and graph.nodes[successor].get("role") != Role.EXTENSION:
                seen.add(successor)
                stack.append(successor)
    return frozenset(seen)


def _conflict(
    process: _Process,
    node: str,
    kind: Kind,
    message: str,
    *,
    cause: str,
    fixes: tuple[str, ...],
    min_glibc: str | None = None,
    effect: Effect = Effect.REFUSED,
) -> Conflict:
    """A record on ``node`` with ld.so's ``message`` after the path, as ld.so prints it."""
    return Conflict(
        kind=kind,
        object=node,
        message=f"{node}: {message}",
        chain=process.chain(node),
        cause=cause,
        fixes=fixes,
        min_glibc=min_glibc,
        effect=effect,
    )


# --- DT_RELR -------------------------------------------------------------------------------------------


def _relr(process: _Process, node: str, facts: ElfFacts, setting: Setting) -> list[Conflict]:
    release = setting.release
    if not facts.relr or release is None:
        return []
    marked = any(need.version == RELR_MARKER for need in facts.requires)
    if release < RELR_SINCE:
        # With the marker, the version check refuses it first (a missing-version record says so).
        return [] if marked else [_relr_skipped(process, node, facts, setting)]
    needs_libc = any(name.startswith("libc.so.") for name in facts.needed)
    if facts.requires and needs_libc and not marked:
        return [_relr_unmarked(process, node)]
    return []


def _relr_skipped(process: _Process, node: str, facts: ElfFacts, setting: Setting) -> Conflict:
    name = process.name(node)
    if facts.relr_init:
        outcome = (
            "its initializers are called through one of them, so the process dies (SIGSEGV) while it loads"
        )
        message = (
            f"DT_RELR relocations not applied by the glibc {setting.release} loader: crashes as it loads"
        )
    else:
        outcome = "it loads, then crashes or misbehaves when it uses one of the pointers they should fix"
        message = (
            f"DT_RELR relocations not applied by the glibc {setting.release} loader: unrelocated pointers"
        )
    cause = (
        f"{name} was linked with -z pack-relative-relocs: its relative relocations are packed in DT_RELR, "
        f"which ld.so applies from glibc 2.36. This process's loader (glibc {setting.release}) skips "
        f"them: {outcome}."
    )
    if not facts.requires:
        cause += (
            " It needs no versioned libc symbol, so the linker did not add the GLIBC_ABI_DT_RELR need "
            "that would have made the loader refuse it by name."
        )
    return _conflict(
        process,
        node,
        Kind.DT_RELR,
        message,
        cause=cause,
        fixes=_relr_fixes(process, node, setting),
        min_glibc=str(RELR_SINCE),
        effect=Effect.CRASH if facts.relr_init else Effect.LOADS,
    )


def relink_without_relr(name: str, release: GlibcVersion | str | None) -> str:
    """The relink advice shared with the missing-version record of ``GLIBC_ABI_DT_RELR``."""
    older = f" (or build it with a toolchain whose glibc is ≤ {release})" if release else ""
    return (
        f"relink {name} without -z pack-relative-relocs (drop -Wl,-z,pack-relative-relocs from its "
        f"LDFLAGS){older}"
    )


def _relr_fixes(process: _Process, node: str, setting: Setting) -> tuple[str, ...]:
    relink = relink_without_relr(process.name(node), setting.release)
    if setting.repatch is not None and setting.stdenv is not None and setting.stdenv >= RELR_SINCE:
        repatch = (
            f"{setting.repatch}: repatch a copy of the interpreter against the stdenv glibc {setting.stdenv} "
            "(2.36+ applies DT_RELR; the original is not touched)"
        )
        return (repatch, relink)
    if setting.repatch is not None:
        return (relink, f"move the stdenv to glibc ≥ {RELR_SINCE}, then run {setting.repatch}")
    return (relink,)


def _relr_unmarked(process: _Process, node: str) -> Conflict:
    name = process.name(node)
    return _conflict(
        process,
        node,
        Kind.DT_RELR,
        "DT_RELR without GLIBC_ABI_DT_RELR dependency",
        cause=(
            f"{name} has DT_RELR relocations and needs libc.so.6 with symbol versions, but not the "
            "GLIBC_ABI_DT_RELR version that linkers add along with DT_RELR: glibc 2.36+ refuses it "
            "(an older loader would skip the relocations and crash). It was linked by a tool that does "
            "not add the marker, or the marker was removed."
        ),
        fixes=(
            f"relink {name} with GNU ld ≥ 2.38 or lld ≥ 15, which add the GLIBC_ABI_DT_RELR need, "
            "or without -z pack-relative-relocs",
        ),
    )


# --- executable stack ----------------------------------------------------------------------------------


def _exec_stack(process: _Process, node: str, facts: ElfFacts, setting: Setting) -> list[Conflict]:
    release = setting.release
    if release is None or release < EXEC_STACK_REFUSED_SINCE or not facts.needs_exec_stack:
        return []
    if any(process.facts(other).needs_exec_stack for other in process.startup if other in process.order):
        return []  # the stack is executable from the start: dlopen() has nothing to change
    why = "its PT_GNU_STACK has PF_X" if facts.stack_flags is not None else "it has no PT_GNU_STACK header"
    name = process.name(node)
    fixes = [
        f"clear the flag on it: patchelf --clear-execstack {node} (few objects really run code on the stack)",
        f"rebuild {name} with -Wl,-z,noexecstack (an assembly file without a .note.GNU-stack section "
        "is the usual cause)",
    ]
    if release >= EXECSTACK_TUNABLE_2_SINCE:
        fixes.append(
            "run the program with GLIBC_TUNABLES=glibc.rtld.execstack=2 (an executable stack from the start)"
        )
    return [
        _conflict(
            process,
            node,
            Kind.EXEC_STACK,
            "cannot enable executable stack as shared object requires: Invalid argument",
            cause=(
                f"{name} asks for an executable stack ({why}, which means executable on this "
                f"architecture). glibc 2.41+ does not make the stack executable for an object loaded by "
                f"dlopen() and refuses it (older loaders did); this process's loader is glibc {release}."
            ),
            fixes=tuple(fixes),
            min_glibc=None,
        )
    ]


# --- x86 ISA level --------------------------------------------------------------------------------------


def _isa(process: _Process, node: str, facts: ElfFacts, setting: Setting) -> list[Conflict]:
    cpu, release = setting.cpu_isa, setting.release
    if cpu is None or release is None or facts.machine not in (EM_X86_64, EM_386):
        return []
    lacking = facts.x86_isa_needed & ~cpu
    if not lacking:
        return []
    name = process.name(node)
    needed, have = isa_words(facts.x86_isa_needed), isa_words(cpu)
    fixes = (
        f"install a build of {name} for {have} or the x86-64 baseline (it was built with "
        f"-march={needed} or -Wl,-z,{needed})" if needed.startswith("x86-64-v") else
        f"install a build of {name} for this CPU",
        f"run it on a CPU that supports {needed}",
    )  # fmt: skip
    built = f"{name} is marked as needing {needed} (GNU_PROPERTY_X86_ISA_1_NEEDED); this CPU supports {have}"
    if release < ISA_CHECK_SINCE:
        return [
            _conflict(
                process,
                node,
                Kind.ISA_LEVEL,
                f"built for {needed}, above this CPU's {have}: SIGILL when it runs that code",
                cause=f"{built}. The glibc {release} loader does not check ISA levels (2.33+ refuse such "
                "an object): it loads, and the process dies of SIGILL (illegal instruction) when it "
                "runs an instruction this CPU lacks.",
                fixes=fixes,
                effect=Effect.LOADS,
            )
        ]
    return [
        _conflict(
            process,
            node,
            Kind.ISA_LEVEL,
            "CPU ISA level is lower than required",
            cause=f"{built}; glibc 2.33+ refuses to load it (this process's loader is glibc {release}).",
            fixes=fixes,
        )
    ]


# --- page size ------------------------------------------------------------------------------------------


def _page_size(process: _Process, node: str, facts: ElfFacts, setting: Setting) -> list[Conflict]:
    """An aarch64 object whose PT_LOADs are aligned below the kernel's page size: ld.so refuses to map
    it. On this machine the page size is known (an error); for an aarch64 program scanned elsewhere it
    is not, and an object that a 64 KiB-page kernel would refuse is a warning (it loads on 4 KiB)."""
    limit = facts.page_limit
    loader_machine = getattr(process.graph.graph.get("config"), "machine", 0)
    if loader_machine != EM_AARCH64 or facts.machine != EM_AARCH64 or not limit or node == process.root:
        return []
    page = setting.page_size or AARCH64_LARGEST_PAGE
    if limit >= page:
        return []
    name = process.name(node)
    cause = (
        f"{name}'s PT_LOAD segments are aligned to {limit} bytes (it was linked with -z max-page-size="
        f"{limit}, or patched by a tool that aligned a new segment so); ld.so maps segments in whole pages "
        f"and refuses one whose alignment is not a multiple of the kernel's page size"
    )
    fixes = (
        f"install a build of {name} linked with -Wl,-z,max-page-size=65536 (GNU ld's aarch64 default)",
        "run it on a kernel with 4 KiB pages",
    )
    if setting.page_size is not None:
        return [
            _conflict(
                process, node, Kind.PAGE_SIZE, PAGE_ALIGN_WORDS, cause=f"{cause} ({page}).", fixes=fixes
            )
        ]
    record = _conflict(
        process,
        node,
        Kind.PAGE_SIZE,
        f"{PAGE_ALIGN_WORDS} on a kernel with {page // 1024} KiB pages",
        cause=f"{cause}: it loads with 4 KiB pages, and a kernel with {page // 1024} KiB pages (RHEL, Oracle "
        "Linux and some cloud images on arm64) refuses it.",
        fixes=fixes,
        effect=Effect.LOADS,
    )
    return [replace(record, severity=Severity.WARNING)]


# --- static TLS -----------------------------------------------------------------------------------------


def _static_tls(process: _Process, setting: Setting) -> list[Conflict]:
    """Place the start-up blocks, then each dlopen()ed DF_STATIC_TLS block in load order."""
    late = [node for node in process.order if node not in process.startup and process.facts(node).static_tls]
    if not late:
        return []
    area = _area(process, setting, surplus_for(setting.release, setting.tunables))
    placements = place_all(area, [TlsBlock.of(node, process.facts(node)) for node in late])
    failed = [placement for placement in placements if not placement.fits]
    if not failed:
        return []
    tunable = _tunable_fix(process, setting, late) if _has_tunables(setting) else None
    return [_tls_conflict(process, setting, area, placements, placement, tunable) for placement in failed]


def _area(process: _Process, setting: Setting, surplus: int) -> StaticArea:
    startup = [node for node in process.order if node in process.startup]
    blocks = [TlsBlock.of(node, process.facts(node)) for node in startup if process.facts(node).tls_size]
    return startup_area(blocks, setting.release, surplus)


def _has_tunables(setting: Setting) -> bool:
    return setting.release is not None and setting.release >= TUNABLES_SINCE


def _tunable_fix(process: _Process, setting: Setting, late: Sequence[str]) -> str | None:
    """The smallest ``glibc.rtld.optional_static_tls`` (in 64-byte steps) with which every block fits."""
    blocks = [TlsBlock.of(node, process.facts(node)) for node in late]
    if any((block.align or 1) > _area(process, setting, 1 << 30).align for block in blocks):
        return None  # too aligned: no surplus helps
    low, high = 0, sum(block.size + block.firstbyte + (block.align or 1) for block in blocks) + 64
    base = surplus_for(setting.release, setting.tunables)
    while low < high:
        middle = (low + high) // 2 // 64 * 64
        area = _area(process, setting, base + middle)
        if all(placement.fits for placement in place_all(area, blocks)):
            high = middle
        else:
            low = middle + 64
    value = optional_for(low, parse_tunables(setting.tunables))
    return (
        f"GLIBC_TUNABLES=glibc.rtld.optional_static_tls={value} in the environment raises the surplus enough"
    )


def _tls_conflict(
    process: _Process,
    setting: Setting,
    area: StaticArea,
    placements: Sequence[Placement],
    placement: Placement,
    tunable: str | None,
) -> Conflict:
    node = placement.block.path
    name = process.name(node)
    earlier = [p.block.path for p in placements[: placements.index(placement)] if p.fits]
    took = f", after {', '.join(process.name(path) for path in earlier)} took their part" if earlier else ""
    release = f"the glibc {setting.release} loader" if setting.release else "ld.so"
    if placement.too_aligned:
        shortfall = (
            f"its TLS block is aligned to {placement.block.align} bytes, more than the static area's "
            f"{area.align}, so it cannot go there at any size"
        )
    else:
        shortfall = (
            f"it needs {placement.needed} bytes there, and {placement.free} are left of the "
            f"{area.surplus}-byte surplus {release} reserved at start-up{took}"
        )
    cause = (
        f"{name} uses the initial-exec TLS model (DF_STATIC_TLS): its thread-local block must sit in the "
        f"static TLS area, and for an object loaded by dlopen() only the surplus is left: {shortfall}."
    )
    fixes = [
        f"preload it: LD_PRELOAD={node} (an object loaded at start-up gets its TLS in the initial area, "
        "whatever the size)",
    ]
    if tunable is not None:
        fixes.append(tunable)
    fixes.append(f"rebuild {name} with -ftls-model=global-dynamic (the -fPIC default; a little slower TLS)")
    return _conflict(
        process,
        node,
        Kind.STATIC_TLS,
        "cannot allocate memory in static TLS block",
        cause=cause,
        fixes=tuple(fixes),
    )


def static_area(graph: nx.DiGraph[str], setting: Setting) -> StaticArea:
    """The static TLS area of this process after start-up, under ``setting``'s loader: what is left
    (``free``) is the largest initial-exec block a dlopen()ed object may bring."""
    process = _Process.of(graph)
    return _area(process, setting, surplus_for(setting.release, setting.tunables))
