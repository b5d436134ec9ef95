"""Conflicts on the process graph: what ld.so would refuse, and what only works by luck.

``core/process.py`` decides which file each name maps to; this module checks what the loader checks
after mapping (every ``.gnu.version_r`` entry against the ``.gnu.version_d`` of the object loaded under
that name) and a few things ld.so does not check but that break processes all the same (two glibc
builds in one process, a PT_INTERP loader of another glibc than the libc that loads). Unlike ld.so,
which stops at the first missing version, every missing version becomes its own record: a user who
fixes ``GLIBC_2.34`` should not discover ``GLIBC_2.38`` on the next run.

The records are plain ``Conflict`` values in a deterministic order, so the CLI, the JSON output, the
exports and the TUI all show the same list.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import networkx as nx
from glibc_doctor.core.elf import glibc_build_release, glibc_release
from glibc_doctor.core.model import (
    Conflict,
    Effect,
    ElfFacts,
    GlibcInfo,
    Kind,
    Problem,
    Rejected,
    Resolution,
    Role,
    Severity,
    StdenvInfo,
    Target,
    VersionNeed,
    Via,
    edge_names,
    edge_requests,
)
from glibc_doctor.core.patch.view import (
    RUNTIME_SONAMES,
    kept_runtime_words,
    patched_provides,
    patched_provision,
    unmet_versions,
)
from glibc_doctor.core.refusals import (
    RELR_MARKER,
    Setting,
    refusals,
    relink_without_relr,
    setting_for,
    would_break,
)
from glibc_doctor.core.sysroot import Sysroot, host_path
from glibc_doctor.core.versions import ABI_MARKERS, VersionName, glibc_release_of, min_glibc_for

LIBC = "libc.so.6"
# The libraries of one glibc build: they call each other through GLIBC_PRIVATE and must come together.
GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libanl.so.1",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libc_malloc_debug.so.0",
        "libthread_db.so.1",
        "libnss_files.so.2",
        "libnss_dns.so.2",
        "libnss_compat.so.2",
        "libnss_db.so.2",
        "libnss_hesiod.so.2",
    }
)
CXX_FAMILIES = frozenset({"GLIBCXX", "CXXABI"})
_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1}
_KIND_RANK = {kind: rank for rank, kind in enumerate(Kind)}


@dataclass(frozen=True, slots=True)
class _Context:
    """What every check needs to word its records: the graph, the process's glibc, the stdenv.

    ``missing`` maps each object to the non-weak versions it needs that its providers lack (the whole
    object decides whether the stdenv can help: one version it cannot provide keeps the object broken);
    ``provided`` maps a library name to the versions a patched interpreter would provide for it
    (``core/patch/view.py``'s ``patched_provides``; None: none), the rule the fix plan follows too.
    """

    graph: nx.DiGraph[str]
    root: str
    glibc: GlibcInfo
    stdenv: StdenvInfo | None
    missing: Mapping[str, tuple[VersionNeed, ...]]
    provided: Mapping[str, tuple[str, ...] | None]
    runtime_shortfall: Mapping[str, tuple[str, ...]]  # non-empty: the package keeps its C++ runtime


def analyze(
    graph: nx.DiGraph[str], strict_graph: nx.DiGraph[str] | None = None, *, stdenv: StdenvInfo | None = None
) -> tuple[Conflict, ...]:
    """Every conflict of the process ``graph``, errors first; ``strict_graph`` adds LATENT warnings.

    ``stdenv`` (when known) decides the fixes: the repatch is offered first only when the stdenv's
    libraries define every version an object misses; otherwise the record says the stdenv is too old.
    """
    context = _make_context(graph, stdenv)
    conflicts = list(_exact_conflicts(context))
    if strict_graph is not None:
        conflicts += _latent(conflicts, strict_graph, stdenv)
    return tuple(sorted(set(conflicts), key=_order))


def _make_context(graph: nx.DiGraph[str], stdenv: StdenvInfo | None) -> _Context:
    missing: dict[str, list[VersionNeed]] = {}
    any_missing = False
    for requester, _provider, need in _missing_needs(graph):
        any_missing = True
        if not need.weak:
            missing.setdefault(requester, []).append(need)
    libraries = {need.library for needs in missing.values() for need in needs}
    # Only missing-version records read what a repatch would provide: without one, the stdenv's
    # glibc directory is not even listed (an audit analyses hundreds of clean processes).
    provided, shortfall = patched_provision(stdenv, libraries, graph) if stdenv and any_missing else ({}, {})
    return _Context(
        graph,
        _root(graph),
        glibc_info(graph),
        stdenv,
        {node: tuple(needs) for node, needs in missing.items()},
        provided,
        shortfall,
    )


def _exact_conflicts(context: _Context, *, latent_only: bool = False) -> Iterator[Conflict]:
    """Every check; ``latent_only``: only those whose kinds strict mode reports (``_LATENT_KINDS``)."""
    yield from _version_conflicts(context)
    yield from _missing_objects(context)
    yield from _unreadable_objects(context)
    yield from _wrong_elf_extensions(context)
    if latent_only:
        return
    yield from _mixed_glibc(context)
    yield from _loader_mismatch(context)
    yield from _order_dependent(context)
    yield from _loader_checks(context)


def loader_setting(
    graph: nx.DiGraph[str], glibc: GlibcInfo | None = None, stdenv: StdenvInfo | None = None
) -> Setting:
    """The loader the refusal checks (core/refusals.py) run against: its release (from the ld.so file,
    else the libc), this CPU's ISA level, the process's GLIBC_TUNABLES, and the stdenv's release."""
    command = fix_command(_target_spec(graph), graph.graph.get("target"), stdenv) if stdenv else None
    version = (glibc or glibc_info(graph)).version
    return setting_for(graph, version, stdenv.version if stdenv is not None else None, command)


def _loader_checks(context: _Context) -> Iterator[Conflict]:
    """What the loader refuses or crashes on beyond versions, and what the stdenv's loader would."""
    setting = loader_setting(context.graph, context.glibc, context.stdenv)
    yield from refusals(context.graph, setting)
    if setting.stdenv is not None and setting.release is not None and setting.stdenv > setting.release:
        yield from would_break(context.graph, setting)


def _order(conflict: Conflict) -> tuple[object, ...]:
    version = VersionName.parse(conflict.version or "")
    return (
        _SEVERITY_RANK[conflict.severity],
        conflict.mode,
        conflict.object,
        _KIND_RANK[conflict.kind],
        conflict.library or "",
        version.family,
        version.number,
        version.text,
    )


# --- the process's glibc ---------------------------------------------------------------------------


def glibc_info(graph: nx.DiGraph[str]) -> GlibcInfo:
    """Which libc.so.6 and ld.so the process loads, its release, and the reasons in plain words."""
    libc = _libc_node(graph)
    loader = graph.graph.get("loader")
    why: list[str] = []
    root = _root(graph)
    interp = _facts(graph, root).interpreter if root in graph else None
    if interp:
        why.append(f"PT_INTERP of {root} is {interp}")
    if libc is not None:
        why.extend(_found_reason(graph, libc))
    version = glibc_release(_host(graph, libc)) if libc is not None else None
    if version is None and loader:
        version = glibc_release(_host(graph, loader))
    return GlibcInfo(version=version, libc=libc, loader=loader, why=tuple(why))


def _libc_node(graph: nx.DiGraph[str]) -> str | None:
    candidates = [
        node
        for node, data in graph.nodes(data=True)
        if data.get("role") != Role.MISSING and _soname(node, data["facts"]) == LIBC
    ]
    return min(candidates, key=lambda node: graph.nodes[node].get("order", 0), default=None)


def _found_reason(graph: nx.DiGraph[str], node: str) -> list[str]:
    found: Resolution | None = graph.nodes[node].get("found")
    if found is None:
        return []
    where = f" ({found.detail})" if found.detail else ""
    return [f"{found.name} requested first by {found.requester}, found via {found.via}{where}"]


# --- missing symbol versions -------------------------------------------------------------------------


def _missing_needs(graph: nx.DiGraph[str]) -> Iterator[tuple[str, str, VersionNeed]]:
    """(requester, provider, need) for every version ld.so would not find, weak ones included."""
    for requester, provider, edge in graph.edges(data=True):
        provider_data = graph.nodes[provider]
        provider_facts: ElfFacts = provider_data["facts"]
        if provider_data.get("role") == Role.MISSING or not provider_facts.ok:
            continue
        if not provider_facts.defines:
            continue  # ld.so skips the check for an unversioned provider ("no version information")
        for name in edge_names(edge):
            for need in _facts(graph, requester).requires_from(name):
                if need.version not in provider_facts.defines:
                    yield requester, provider, need


def _version_conflicts(context: _Context) -> Iterator[Conflict]:
    for requester, provider, need in _missing_needs(context.graph):
        yield _missing_version(context, requester, provider, need)


def _missing_version(context: _Context, requester: str, provider: str, need: VersionNeed) -> Conflict:
    facts = _facts(context.graph, requester)
    severity = Severity.WARNING if need.weak else Severity.ERROR
    weak = "weak " if need.weak else ""
    min_glibc = min_glibc_for([n.version for n in facts.requires])
    chain = _chain(context.graph, context.root, requester)
    subject = _Subject.of(context, requester, provider, need, chain)
    return Conflict(
        kind=Kind.MISSING_VERSION,
        object=requester,
        message=f"{provider}: {weak}version `{need.version}' not found (required by {requester})",
        library=need.library,
        provider=provider,
        version=need.version,
        symbols=_symbols(_host(context.graph, requester), need),
        chain=chain,
        cause=_version_cause(context, subject),
        fixes=_version_fixes(context, subject),
        severity=severity,
        min_glibc=str(min_glibc) if min_glibc is not None else None,
    )


def _symbols(path: str, need: VersionNeed) -> tuple[str, ...]:
    """The symbols bound to the missing version; pyelftools is slow to import and to run, so only here."""
    from glibc_doctor.core.symbols import symbols_for_version

    try:
        return symbols_for_version(path, need.library, need.version)
    except (OSError, ValueError):
        return ()


# Where a distribution's runtime libraries live: a library found here is "the system one".
SYSTEM_LIB_DIRS = ("/lib/", "/lib64/", "/lib32/", "/usr/lib/", "/usr/lib64/", "/usr/lib32/")


@dataclass(frozen=True, slots=True)
class _Subject:
    """One missing version seen from the user's side: the object, the extension that pulls it in, and
    what the stdenv can do about the object as a whole."""

    requester: str
    provider: str
    need: VersionNeed
    family: str
    extension: str | None  # the extension on the chain (the object itself when it is one)
    unmet: tuple[str, ...]  # the object's missing versions the stdenv does not define either
    object_glibc: str | None  # the oldest glibc that satisfies the object's GLIBC needs

    @classmethod
    def of(
        cls, context: _Context, requester: str, provider: str, need: VersionNeed, chain: tuple[str, ...]
    ) -> _Subject:
        needs = context.missing.get(requester, ()) or (need,)
        unmet = _unmet_of(context.provided, [(n.library, n.version) for n in needs])
        top = min_glibc_for([n.version for n in _facts(context.graph, requester).requires])
        return cls(
            requester=requester,
            provider=provider,
            need=need,
            family=VersionName.parse(need.version).family,
            extension=_chain_extension(context.graph, chain),
            unmet=unmet,
            object_glibc=str(top) if top is not None else None,
        )

    @property
    def through(self) -> bool:
        """The object is a library some extension pulls in, not the extension itself."""
        return self.extension is not None and self.extension != self.requester


def _chain_extension(graph: nx.DiGraph[str], chain: tuple[str, ...]) -> str | None:
    """The extension node of a load chain (the first one after the root), or None."""
    return next((node for node in chain[1:] if graph.nodes[node].get("role") == Role.EXTENSION), None)


def _version_cause(context: _Context, subject: _Subject) -> str:
    """One or two sentences about this object; which glibc the process loads, and why, is the report's
    header (``GlibcInfo.why``), not repeated in every record."""
    if subject.family in CXX_FAMILIES:
        return _cxx_cause(context, subject)
    need, name = subject.need, os.path.basename(subject.requester)
    if need.version in ABI_MARKERS:
        return _marker_cause(context, subject)
    if subject.family != "GLIBC":
        return (
            f"{_built(context, subject)} a newer {need.library} than the one this process loads "
            f"({subject.provider}, {_how_found(context.graph, subject.provider)}): it needs {need.version}, "
            "which that one does not define."
        ) + _stdenv_sentence(context, subject)
    loaded = f"the glibc {context.glibc.version}" if context.glibc.version else "the glibc"
    release = _release_of(need.version)
    wants = f"{need.version} (glibc {release} or later)" if release else need.version
    if subject.through:
        built = f", built for glibc {subject.object_glibc}" if subject.object_glibc else ""
        who = _who(context, subject)
        cause = f"{who}{built}: it needs {wants}, which {loaded} this process loads does not define."
    else:
        cause = (
            f"{name} was built against a newer glibc: it needs {wants}, "
            f"which {loaded} this process loads does not define."
        )
    return cause + _stdenv_sentence(context, subject)


def _marker_cause(context: _Context, subject: _Subject) -> str:
    """``GLIBC_ABI_DT_RELR``: a loader feature, not symbols; say which one and since when."""
    need = subject.need
    loaded = f"the glibc {context.glibc.version}" if context.glibc.version else "the glibc"
    release = glibc_release_of(need.version)
    feature = (
        "was linked with -z pack-relative-relocs: its relocations are in the DT_RELR format, and the "
        "linker marked it"
        if need.version == RELR_MARKER
        else "uses a loader feature that the linker marked"
    )
    return (
        f"{_who(context, subject)} {feature} with {need.version} (glibc {release} or later), which "
        f"{loaded} this process loads does not define: ld.so refuses it rather than mis-run it."
    ) + _stdenv_sentence(context, subject)


def _is_glibc_version(version: str) -> bool:
    """``GLIBC_2.38`` or a ``GLIBC_ABI_*`` marker: something only a newer glibc provides."""
    return VersionName.parse(version).family == "GLIBC" or version in ABI_MARKERS


def _who(context: _Context, subject: _Subject) -> str:
    """``ext_cxx's libstdc++.so.6 is the system one, found through /etc/ld.so.cache`` for a library
    pulled in by an extension; the object's own name otherwise."""
    name = os.path.basename(subject.requester)
    if not subject.through or subject.extension is None:
        return name
    extension = _display_name(context.graph, subject.extension)
    where = (
        "the system one"
        if subject.requester.startswith(SYSTEM_LIB_DIRS)
        else f"the one in {os.path.dirname(subject.requester)}"
    )
    return f"{extension}'s {name} is {where}, {_how_found(context.graph, subject.requester)}"


def _how_found(graph: nx.DiGraph[str], node: str) -> str:
    found: Resolution | None = graph.nodes[node].get("found")
    if found is None:
        edge = next((graph.edges[p, node] for p in graph.predecessors(node)), None)
        found = edge.get("resolution") if edge is not None else None
    if found is None:
        return "found by the loader"
    requester = os.path.basename(found.requester)
    if found.via == Via.CACHE:
        config = graph.graph.get("config")
        cache = getattr(config, "cache_path", None) or found.detail.split(":")[0] or "the ld.so.cache"
        return f"found through {cache}"
    words = {
        Via.DEFAULT: "found in the loader's default directories",
        Via.RUNPATH: f"found through the RUNPATH of {requester}",
        Via.RPATH: "found through an RPATH" + (f" ({found.detail})" if found.detail else ""),
        Via.LD_LIBRARY_PATH: "found through LD_LIBRARY_PATH",
        Via.LOADED: "already loaded by another object",
        Via.PATH: "opened by its path",
        Via.PRELOAD: "preloaded",
    }
    return words.get(found.via, f"found via {found.via}")


def _stdenv_sentence(context: _Context, subject: _Subject) -> str:
    stdenv = context.stdenv
    if stdenv is None or not subject.unmet:
        return ""
    glibc_unmet = [v for v in subject.unmet if _is_glibc_version(v)]
    top = min_glibc_for(glibc_unmet)
    if top is not None and stdenv.version:
        return f" The stdenv glibc {stdenv.version} is too old for it too (it needs {top})."
    return f" The stdenv does not define {', '.join(subject.unmet)} either."


def _built(context: _Context, subject: _Subject) -> str:
    """The start of "X was built against …", for an extension or a library pulled in through one."""
    if subject.through:
        return f"{_who(context, subject)}, and was built against"
    return f"{os.path.basename(subject.requester)} was built against"


def _cxx_cause(context: _Context, subject: _Subject) -> str:
    need = subject.need
    cause = (
        f"{_built(context, subject)} a newer libstdc++ (a newer g++) than the one this process loads "
        f"({subject.provider}, {_how_found(context.graph, subject.provider)}): it needs {need.version}, "
        "which that libstdc++ does not define."
    )
    stdenv = context.stdenv
    if stdenv is not None and _kept_for_others(context.runtime_shortfall, need):
        return (
            cause + f" A repatch would not use the stdenv's: {kept_runtime_words(context.runtime_shortfall)}."
        )
    if stdenv is not None and stdenv.libstdcxx:
        has = "does not define it either" if need.version in subject.unmet else "defines it"
        cause += f" The stdenv's libstdc++ ({stdenv.libstdcxx}) {has}."
    return cause


def _kept_for_others(shortfall: Mapping[str, tuple[str, ...]], need: VersionNeed) -> bool:
    """The package keeps its own C++ runtime although the stdenv's may define ``need``: some other
    version the process needs is what the stdenv's copy lacks."""
    return (
        bool(shortfall)
        and need.library in RUNTIME_SONAMES
        and need.version not in shortfall.get(need.library, ())
    )


def _release_of(version: str) -> str | None:
    release = glibc_release_of(version)
    return str(release) if release is not None else None


def _version_fixes(context: _Context, subject: _Subject) -> tuple[str, ...]:
    """The repatch first when the stdenv's libraries define all the object misses; when they do not,
    say so, and offer what does work: a rebuild for the old glibc, or a newer stdenv."""
    command = fix_command(_target_spec(context.graph), context.graph.graph.get("target"), context.stdenv)
    rebuild = _rebuild_fix(context, subject)
    requester_soname = _soname(subject.requester, _facts(context.graph, subject.requester))
    if subject.need.version == RELR_MARKER and requester_soname not in GLIBC_SONAMES:
        rebuild = relink_without_relr(_display_name(context.graph, subject.requester), context.glibc.version)
    stdenv = context.stdenv
    if stdenv is None:
        wanted = f"a glibc ≥ {subject.object_glibc}" if subject.object_glibc else "a newer glibc"
        return (
            f"{command} --glibc DIR: repatch a copy of the interpreter against {wanted} "
            "(no stdenv compiler was found; the original is not touched)",
            rebuild,
        )
    if not subject.unmet:
        return (f"{command}: {_repatch_words(stdenv, subject)} (the original is not touched)", rebuild)
    return (rebuild, _newer_stdenv_fix(command, subject))


def _repatch_words(stdenv: StdenvInfo, subject: _Subject) -> str:
    if subject.family in CXX_FAMILIES:
        against = f" ({stdenv.libstdcxx})" if stdenv.libstdcxx else ""
        return f"repatch a copy of the interpreter so the stdenv's libstdc++{against} loads"
    release = f" {stdenv.version}" if stdenv.version else ""
    return f"repatch a copy of the interpreter against the stdenv glibc{release}"


def _newer_stdenv_fix(command: str, subject: _Subject) -> str:
    glibc_unmet = [v for v in subject.unmet if _is_glibc_version(v)]
    top = min_glibc_for(glibc_unmet)
    if top is not None:
        return f"move the stdenv to glibc ≥ {top}, then run {command}"
    versions = ", ".join(subject.unmet)
    return f"move the stdenv to a toolchain whose libraries define {versions}, then run {command}"


def _rebuild_fix(context: _Context, subject: _Subject) -> str:
    """Rebuild what the user installed (the extension), never the system library it pulls in."""
    graph = context.graph
    node = subject.extension or subject.requester
    name = _display_name(graph, node)
    loaded = context.glibc.version
    toolchain = f"whose glibc is ≤ {loaded} (the interpreter's)" if loaded else "of the interpreter"
    if subject.family in CXX_FAMILIES:
        toolchain = f"whose libstdc++ is no newer than the one that loads ({subject.provider})"
    kind = getattr(graph.graph.get("target"), "kind", "")
    if kind == "python" and subject.extension is not None and _site_packages_of(node) is not None:
        dist = _distribution_of(_host(graph, node)) or name.split(".")[0]
        wheel = f"manylinux_2_{loaded.split('.')[1]} or older" if loaded and "." in loaded else "manylinux"
        return (
            f"rebuild {name} with a toolchain {toolchain}: `pip install --no-binary :all: --force-reinstall "
            f"{dist}` under the interpreter's own compiler, or install a {wheel} wheel of {dist}"
        )
    if kind == "ruby" and subject.extension is not None:
        return (
            f"rebuild {name} with a toolchain {toolchain}: `gem pristine --extensions <gem>` for the gem "
            "that ships it, under the interpreter's own compiler"
        )
    return f"rebuild {name} with a toolchain {toolchain}"


def _display_name(graph: nx.DiGraph[str], node: str) -> str:
    """What the user knows an extension by (``ext_cxx``, ``psycopg2._psycopg``), else its file name."""
    target = graph.graph.get("target")
    for extension in getattr(target, "extensions", ()):
        if extension.path == node:
            return str(extension.name)
    return os.path.basename(node)


def _site_packages_of(path: str) -> tuple[str, str] | None:
    """(the site-packages dir holding ``path``, ``path`` relative to it); None for the stdlib's own."""
    parts = path.split(os.sep)
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] in ("site-packages", "dist-packages"):
            return os.sep.join(parts[: index + 1]), os.sep.join(parts[index + 1 :])
    return None


def _distribution_of(path: str) -> str | None:
    """The installed distribution that owns ``path`` (from the ``RECORD`` of its ``.dist-info``)."""
    site = _site_packages_of(path)
    return _record_owner(*site) if site is not None else None


def _record_owner(site: str, relpath: str) -> str | None:
    try:
        entries = sorted(entry for entry in os.listdir(site) if entry.endswith(".dist-info"))
    except OSError:
        return None
    for entry in entries:
        try:
            with open(os.path.join(site, entry, "RECORD"), encoding="utf-8", errors="replace") as record:
                if any(line.split(",", 1)[0] == relpath for line in record):
                    return entry.removesuffix(".dist-info").rsplit("-", 1)[0]
        except OSError:
            continue
    return None


def stdenv_provides(stdenv: StdenvInfo, library: str, graph: nx.DiGraph[str] | None = None) -> bool:
    """Would the interpreter patched against ``stdenv`` provide ``library`` at all (a NOT_FOUND need)?"""
    return unmet_versions(patched_provides(stdenv, (library,), graph), library, ()) is not None


def stdenv_unmet(
    stdenv: StdenvInfo | None, needs: Iterable[tuple[str, str]], graph: nx.DiGraph[str] | None = None
) -> tuple[str, ...] | None:
    """Of the (library, version) pairs, the versions a repatch against ``stdenv`` would still not
    provide (sorted, unique), by the fix plan's own rule (``unmet_versions`` of the glibc view).

    Empty: a repatch satisfies them all; None: no stdenv is known. ``graph``: the scanned process, whose
    C++ runtime needs decide whether the stdenv's libstdc++/libgcc_s would be used at all.
    """
    if stdenv is None:
        return None
    pairs = list(needs)
    return _unmet_of(patched_provides(stdenv, {library for library, _ in pairs}, graph), pairs)


def _unmet_of(
    provided: Mapping[str, tuple[str, ...] | None], pairs: Iterable[tuple[str, str]]
) -> tuple[str, ...]:
    unmet: set[str] = set()
    for library, version in pairs:
        missing = unmet_versions(provided, library, (version,))
        unmet.update((version,) if missing is None else missing)
    return tuple(sorted(unmet, key=VersionName.parse))


# --- objects that are missing, unreadable or of the wrong kind ---------------------------------------


def _missing_objects(context: _Context) -> Iterator[Conflict]:
    graph = context.graph
    for node, data in graph.nodes(data=True):
        if data.get("role") != Role.MISSING:
            continue
        for requester in sorted(graph.predecessors(node)):
            for request in edge_requests(graph.edges[requester, node]):
                if request.via == Via.PRELOAD:
                    yield _preload_ignored(context, requester, request.needed, request.resolution)
                else:
                    yield _not_found(context, requester, request.needed, request.resolution)


def _not_found(context: _Context, requester: str, name: str, resolution: Resolution | None) -> Conflict:
    rejected = resolution.rejected if resolution is not None else ()
    if "/" in name and (rejected or _is_extension(context.graph, name)):
        reason = rejected[0].reason if rejected else None
        return _unloadable_path(context, requester, name, reason, _not_found_words(name, resolution))
    stop = next((item for item in rejected if item.stops), None)
    if stop is not None:
        return _search_stopped(context, requester, name, stop, _not_found_words(name, resolution))
    searched = resolution.searched if resolution is not None else ()
    where = f" in {', '.join(searched)}" if searched else ""
    kind, cause = Kind.NOT_FOUND, f"The loader searched for {name}{where} and found no such file."
    fixes: tuple[str, ...] = ()
    if rejected:
        reasons = "; ".join(f"{item.path} ({item.reason})" for item in rejected)
        wrong = any(item.reason.startswith("wrong") for item in rejected)
        kind = Kind.WRONG_ELF if wrong else Kind.NOT_FOUND
        cause = f"The loader found only unusable candidates for {name}: {reasons}."
        fixes = tuple(
            f"remove or repair {item.path} ({item.reason.split(' (', 1)[0]}): it ends that search"
            for item in rejected
            if item.ends_path
        )
    return Conflict(
        kind=kind,
        object=requester,
        message=_not_found_words(name, resolution),
        library=name,
        chain=_chain(context.graph, context.root, requester),
        cause=cause,
        fixes=(
            *fixes,
            f"install the package that provides {name}",
            f"add its directory to the RUNPATH of {os.path.basename(requester)} (patchelf --add-rpath)",
        ),
    )


def _search_stopped(context: _Context, requester: str, name: str, stop: Rejected, message: str) -> Conflict:
    """A file named like the library that ld.so cannot use stopped the whole search: nothing is missing,
    that file is in the way. Removing it (or moving it out of the search path) is the fix."""
    return Conflict(
        kind=Kind.UNREADABLE,
        object=requester,
        message=message,
        library=name,
        provider=stop.path,
        chain=_chain(context.graph, context.root, requester),
        cause=(
            f"The loader's search for {name} stopped at {stop.path} ({stop.reason}): ld.so gives up at the "
            f"first file of that name it cannot read as a library, even when a later directory of the "
            f"search path has a good copy."
        ),
        fixes=(
            f"remove or rename {stop.path} (or move it out of the search path): it is not a usable "
            f"library, and it hides every {name} after it",
            f"if a package owns {stop.path}, reinstall that package",
        ),
    )


def _preload_ignored(context: _Context, requester: str, name: str, resolution: Resolution | None) -> Conflict:
    """A preload ld.so cannot load is reported and skipped (``rtld.c: do_preload``): the process runs."""
    config = context.graph.graph.get("config")
    sources = dict(zip(getattr(config, "preload", ()), getattr(config, "preload_from", ()), strict=False))
    source = sources.get(name, "LD_PRELOAD")
    reason = _preload_reason(resolution)
    return Conflict(
        kind=Kind.NOT_FOUND,
        object=requester,
        message=f"ERROR: ld.so: object '{name}' from {source} cannot be preloaded ({reason}): ignored.",
        library=name,
        chain=(context.root,),
        cause=f"{source} names {name}, which the loader cannot load ({reason}); it says so and goes on.",
        fixes=(f"remove {name} from {source}, or give the path of the library you meant",),
        severity=Severity.WARNING,
    )


def _preload_reason(resolution: Resolution | None) -> str:
    """The ``errstring`` ld.so puts in brackets: the refusal without the file name or errno words."""
    stop = next((item for item in resolution.rejected if item.stops), None) if resolution else None
    if stop is not None:
        return "cannot read file data" if stop.reason.startswith("cannot read file data") else stop.reason
    detail = resolution.detail if resolution is not None else ""
    if "wrong ELF class: " in detail:
        return detail[detail.index("wrong ELF class: ") :]
    return "cannot open shared object file"


def _not_found_words(name: str, resolution: Resolution | None) -> str:
    """ld.so's own words: the loader model already wrote them (``libx.so: wrong ELF class: ELFCLASS32``
    when only the other class was found, the refused candidate when a non-ELF file stopped the search)."""
    if resolution is not None and resolution.via == Via.NOT_FOUND and resolution.detail:
        return resolution.detail
    return f"{name}: {_NO_SUCH_FILE}"


_NO_SUCH_FILE = "cannot open shared object file: No such file or directory"


def _is_extension(graph: nx.DiGraph[str], path: str) -> bool:
    """Is ``path`` one of the target's extensions (dlopen()ed by its path)?"""
    return any(extension.path == path for extension in getattr(graph.graph.get("target"), "extensions", ()))


def _unloadable_path(
    context: _Context, requester: str, path: str, reason: str | None, message: str
) -> Conflict:
    """A name with a slash is opened as is: ld.so reports why that one file was refused, or that there
    is no such file (a dangling link). The record is the file's, not its opener's: the interpreter
    starts fine, only this extension cannot load."""
    wrong = reason is not None and reason.startswith("wrong")
    if reason is None:
        kind, cause = Kind.NOT_FOUND, f"{requester} opens {path} by its path, and there is no such file."
        fix = f"reinstall the package that owns {path} (a link that leads nowhere, or a file removed)"
    else:
        kind = Kind.WRONG_ELF if wrong else Kind.UNREADABLE
        cause = f"{requester} opens {path} by its path, and the loader refuses that file: {reason}."
        fix = (
            f"reinstall {os.path.basename(path)} built for this interpreter's platform"
            if wrong
            else f"reinstall the package that owns {path} (the file is damaged or not a library)"
        )
    return Conflict(
        kind=kind,
        object=path,
        message=message,
        library=path,
        chain=_chain(context.graph, context.root, requester) + (path,),
        cause=cause,
        fixes=(fix,),
    )


_PROBLEM_WORDS = {
    Problem.MISSING: "cannot open shared object file: No such file or directory",
    Problem.UNREADABLE: "cannot open shared object file",
    Problem.NOT_ELF: "invalid ELF header",
    Problem.TRUNCATED: "file too short",
}  # MALFORMED has no single ld.so message: the reader's own detail says what is wrong


def _unreadable_objects(context: _Context) -> Iterator[Conflict]:
    graph = context.graph
    for node, data in graph.nodes(data=True):
        facts: ElfFacts = data["facts"]
        if data.get("role") == Role.MISSING or facts.problem is None:
            continue
        detail = f" ({facts.detail})" if facts.detail else ""
        words = _PROBLEM_WORDS.get(facts.problem) or facts.detail or str(facts.problem)
        yield Conflict(
            kind=Kind.UNREADABLE,
            object=node,
            message=f"{node}: {words}",
            chain=_chain(graph, context.root, node),
            cause=f"{node} cannot be loaded: it is {facts.problem}{detail}.",
            fixes=(f"reinstall the package that owns {node}",),
        )


def _wrong_elf_extensions(context: _Context) -> Iterator[Conflict]:
    graph = context.graph
    if context.root not in graph:
        return
    root = _facts(graph, context.root)
    if not root.ok:
        return
    for node, data in graph.nodes(data=True):
        facts: ElfFacts = data["facts"]
        if node == context.root or data.get("role") == Role.MISSING or not facts.ok:
            continue
        mismatch = _elf_mismatch(root, facts)
        if mismatch:
            yield Conflict(
                kind=Kind.WRONG_ELF,
                object=node,
                message=f"{node}: {mismatch}",
                chain=_chain(graph, context.root, node),
                cause=f"{node} is not loadable into {context.root}: {mismatch}.",
                fixes=(f"reinstall {os.path.basename(node)} built for this interpreter's platform",),
            )


def _elf_mismatch(root: ElfFacts, facts: ElfFacts) -> str:
    if facts.elf_class != root.elf_class:
        return f"wrong ELF class: ELFCLASS{facts.elf_class}"
    if facts.machine != root.machine:
        return f"wrong ELF machine: {facts.machine} (the process is {root.machine})"
    if facts.little_endian != root.little_endian:
        return "ELF file data encoding not " + ("little-endian" if root.little_endian else "big-endian")
    return ""


# --- several glibc builds in one process -------------------------------------------------------------


def _glibc_members(graph: nx.DiGraph[str]) -> dict[str, str]:
    """The glibc libraries of the process (not the loader) -> the real directory they come from."""
    loader = graph.graph.get("loader")
    members: dict[str, str] = {}
    for node, data in graph.nodes(data=True):
        facts: ElfFacts = data["facts"]
        if data.get("role") == Role.MISSING or not facts.ok or node == loader:
            continue
        if _soname(node, facts) in GLIBC_SONAMES:
            members[node] = _build_of(graph, node)
    return members


def _build_of(graph: nx.DiGraph[str], path: str) -> str:
    """The real directory of ``path`` (inside the scan's root, when it has one)."""
    root: Sysroot | None = graph.graph.get("sysroot")
    return os.path.dirname(root.realpath(path) if root is not None else os.path.realpath(path))


def _host(graph: nx.DiGraph[str], path: str) -> str:
    """The file on this machine for a node of ``graph`` (``scan --root``: a path inside the root)."""
    return host_path(graph.graph.get("sysroot"), path)


def _mixed_glibc(context: _Context) -> Iterator[Conflict]:
    """A glibc library (libm, libpthread, libresolv …) of another build than the process's libc.

    What happens depends on what it needs of the loaded libc.so.6 and ld.so: versions they lack (a
    newer build's ``GLIBC_2.36``, ``GLIBC_ABI_DT_RELR``) and ``GLIBC_PRIVATE`` symbols they lack make
    ld.so refuse it; private symbols that exist in both builds let it load, into internals that may
    have changed; no private calls at all usually works.
    """
    graph = context.graph
    members = _glibc_members(graph)
    libc = context.glibc.libc
    if libc is None or libc not in members:
        return
    libc_build = members[libc]
    for node in sorted(members):
        if members[node] == libc_build:
            continue
        yield _mixed_record(context, node, members, libc)


def _mixed_record(context: _Context, node: str, members: dict[str, str], libc: str) -> Conflict:
    graph = context.graph
    crossing = _private_crossing(graph, node, members)
    lacking = _missing_private_symbols(context, node, members[libc]) if crossing else {}
    versions = [need.version for need in context.missing.get(node, ())]
    theirs, ours = glibc_build_release(_host(graph, node)), context.glibc.version
    headline = f"a library of glibc {theirs or '(another build)'} in a glibc {ours or '(unknown)'} process"
    cause = (
        f"{node} comes from {members[node]}, but the process's libc.so.6 comes from {members[libc]}. "
        "glibc's libraries call each other through GLIBC_PRIVATE, which changes between builds"
    )
    symbols = tuple(sorted({name for names in lacking.values() for name in names}))
    if versions:
        cause += (
            f"; it needs {', '.join(versions)}, which the loaded glibc does not define: ld.so refuses it."
        )
        effect, severity = Effect.REFUSED, Severity.ERROR
    elif symbols:
        libraries = " and ".join(sorted(lacking))
        cause += (
            f"; it needs private symbols the loaded {libraries} {'lack' if len(lacking) > 1 else 'lacks'} "
            f"({', '.join(symbols[:5])}"
            f'{", …" if len(symbols) > 5 else ""}): ld.so refuses it with "undefined symbol: …, '
            'version GLIBC_PRIVATE" for the first one it binds (at load under RTLD_NOW, as Python loads '
            "extensions; a lazy binder such as Ruby's fails at the first call of one instead)."
        )
        effect, severity = Effect.REFUSED, Severity.ERROR
    elif crossing:
        cause += (
            ", and this one uses it: every private symbol it needs exists in the loaded build, so it loads, "
            "into internals that may have changed (crashes, corrupted state)."
        )
        effect, severity = Effect.LOADS, Severity.ERROR
    else:
        cause += "; this one happens to work today."
        effect, severity = Effect.LOADS, Severity.WARNING
    return Conflict(
        kind=Kind.MIXED_GLIBC,
        object=node,
        message=f"{node}: {headline}",
        library=_soname(node, _facts(graph, node)),
        provider=libc,
        version="GLIBC_PRIVATE" if crossing else None,
        symbols=symbols,
        chain=_chain(graph, context.root, node),
        cause=cause,
        fixes=(f"remove the directory {members[node]} from the search path of the objects that need it",),
        severity=severity,
        effect=effect,
    )


def _missing_private_symbols(context: _Context, node: str, libc_build: str) -> dict[str, tuple[str, ...]]:
    """library -> the GLIBC_PRIVATE symbols ``node`` needs from it that the loaded copy (of the
    process's build, or the loader) does not define. pyelftools: only for the rare mixed object."""
    from glibc_doctor.core.symbols import defined_symbols, symbols_for_version

    graph, loader = context.graph, context.glibc.loader
    lacking: dict[str, tuple[str, ...]] = {}
    for _, provider, edge in graph.out_edges(node, data=True):
        if provider != loader and _build_of(graph, provider) != libc_build:
            continue
        needed = symbols_for_version(_host(graph, node), edge["needed"], "GLIBC_PRIVATE")
        if needed:
            defined = set(defined_symbols(_host(graph, provider), "GLIBC_PRIVATE"))
            missing = tuple(name for name in needed if name not in defined)
            if missing:
                lacking[edge["needed"]] = missing
    return lacking


def _private_crossing(graph: nx.DiGraph[str], node: str, members: dict[str, str]) -> bool:
    """Does ``node`` need GLIBC_PRIVATE from (or give it to) a glibc library of another build?"""
    for neighbour in list(graph.successors(node)) + list(graph.predecessors(node)):
        if neighbour not in members or members[neighbour] == members[node]:
            continue
        user, provider = (node, neighbour) if graph.has_edge(node, neighbour) else (neighbour, node)
        for needed in edge_names(graph.edges[user, provider]):
            if any(need.version == "GLIBC_PRIVATE" for need in _facts(graph, user).requires_from(needed)):
                return True
    return False


def _loader_mismatch(context: _Context) -> Iterator[Conflict]:
    loader, libc = context.glibc.loader, context.glibc.libc
    graph = context.graph
    if not loader or not libc or not os.path.exists(_host(graph, loader)):
        return
    if _build_of(graph, loader) == _build_of(graph, libc):
        return
    yield Conflict(
        kind=Kind.LOADER_MISMATCH,
        object=libc,
        message=f"{libc} is not from the glibc of the loader {loader}",
        library=LIBC,
        provider=libc,
        chain=_chain(context.graph, context.root, libc),
        cause=(
            f"The PT_INTERP loader {loader} comes from {_build_of(graph, loader)}, but libc.so.6 is found in "
            f"{_build_of(graph, libc)}. ld.so and libc.so.6 share GLIBC_PRIVATE internals and must come from "
            "the same build: expect symbol lookup errors or crashes at start-up."
        ),
        fixes=(
            f"{fix_command(_target_spec(context.graph), context.graph.graph.get('target'), context.stdenv)}: "
            "repatch the interpreter so loader and libc match",
        ),
    )


def _order_dependent(context: _Context) -> Iterator[Conflict]:
    graph = context.graph
    for soname in sorted(set(graph.graph.get("order_dependent", ()))):
        copies = sorted(
            node
            for node, data in graph.nodes(data=True)
            if data.get("role") != Role.MISSING and _soname(node, data["facts"]) == soname
        )
        first = copies[0] if copies else soname
        yield Conflict(
            kind=Kind.ORDER_DEPENDENT,
            object=first,
            message=f"{soname}: which copy loads depends on import order",
            library=soname,
            chain=_chain(graph, context.root, first),
            cause=(
                f"Extensions find different files for {soname} through their own RPATH/RUNPATH; the "
                "first one imported loads its copy, and every later extension gets that one. "
                f"In this import order: {', '.join(copies) or 'none of them loads'}."
            ),
            fixes=(f"make every extension find the same {soname} (one RPATH/RUNPATH directory)",),
            severity=Severity.WARNING,
        )


# --- strict mode: conflicts hidden today by the load order -------------------------------------------


# Strict mode resolves each edge on its own, so several copies of one glibc library are expected there:
# only what would fail a load is a latent conflict.
_LATENT_KINDS = frozenset({Kind.MISSING_VERSION, Kind.NOT_FOUND, Kind.WRONG_ELF})


def _latent(
    exact: list[Conflict], strict_graph: nx.DiGraph[str], stdenv: StdenvInfo | None
) -> list[Conflict]:
    seen = {_identity(conflict) for conflict in exact}
    strict_context = _make_context(strict_graph, stdenv)
    latent: list[Conflict] = []
    for conflict in _exact_conflicts(strict_context, latent_only=True):
        if conflict.kind not in _LATENT_KINDS or _identity(conflict) in seen:
            continue
        latent.append(
            replace(
                conflict,
                kind=Kind.LATENT,
                severity=Severity.WARNING,
                effect=Effect.LOADS,
                mode="strict",
                cause="Hidden today by the load order (an already-loaded library answers first); "
                "it breaks if that order changes. " + conflict.cause,
            )
        )
    return latent


def _identity(conflict: Conflict) -> tuple[str, str, str | None, str | None]:
    return (str(conflict.kind), conflict.object, conflict.library, conflict.version)


# --- small helpers -----------------------------------------------------------------------------------


def _root(graph: nx.DiGraph[str]) -> str:
    root = graph.graph.get("root")
    return str(root) if root is not None else ""


def _facts(graph: nx.DiGraph[str], node: str) -> ElfFacts:
    facts: ElfFacts = graph.nodes[node]["facts"]
    return facts


def _soname(node: str, facts: ElfFacts) -> str:
    return facts.soname or os.path.basename(node)


def fix_command(spec: str, target: Target | None, stdenv: StdenvInfo | None) -> str:
    """The ``glibc-doctor fix`` command line for this scan: the same target, its ``--ext`` dirs (a generic
    program's plugins are not found without them) and the ``--glibc DIR`` the scan was given."""
    words = ["glibc-doctor", "fix", spec]
    if target is not None and target.kind == "generic":
        words += [part for ext in _ext_arguments(target) for part in ("--ext", ext)]
    if stdenv is not None and stdenv.source.startswith("--glibc "):
        words += ["--glibc", stdenv.source.removeprefix("--glibc ")]
    return " ".join(words)


def _ext_arguments(target: Target) -> list[str]:
    """The extension files, or their directory where it holds more than two (it was given as a dir)."""
    by_dir: dict[str, list[str]] = {}
    for extension in target.extensions:
        by_dir.setdefault(os.path.dirname(extension.path), []).append(extension.path)
    return [
        item for directory, files in by_dir.items() for item in (files if len(files) <= 2 else [directory])
    ]


def _target_spec(graph: nx.DiGraph[str]) -> str:
    target = graph.graph.get("target")
    spec = getattr(target, "spec", None)
    return str(spec) if spec else _root(graph)


def _chain(graph: nx.DiGraph[str], root: str, node: str) -> tuple[str, ...]:
    """The shortest load path from the root to ``node`` (what pulled it into the process)."""
    if root in graph and node in graph:
        try:
            return tuple(nx.shortest_path(graph, root, node))
        except nx.NetworkXNoPath:
            pass
    return (node,)


def extension_errors(
    graph: nx.DiGraph[str], conflicts: Iterable[Conflict]
) -> dict[str, tuple[Conflict, ...]]:
    """Each extension's error records: those on the objects its dlopen() mapped or linked to.

    dlopen() is all or nothing, and a failed one leaves nothing loaded: every extension whose closure
    holds a refused object fails the same way (all of numpy's and scipy's modules when their vendored
    libgfortran needs a libgcc_s the process's glibc cannot satisfy), not only the first one imported,
    which the record's chain names. ``graph.graph["dlopened"]`` (``core/process.py``) says what each
    dlopen() touched. Extensions that load have no entry.
    """
    errors = [c for c in conflicts if c.severity == Severity.ERROR]
    dlopened = graph.graph.get("dlopened")
    if dlopened is None:  # a graph core/process.py did not build (by hand, in tests): what each reaches
        extensions = [node for node, data in graph.nodes(data=True) if data.get("role") == Role.EXTENSION]
        dlopened = {node: (node, *nx.descendants(graph, node)) for node in extensions}
    blocking: dict[str, tuple[Conflict, ...]] = {}
    for extension, nodes in dlopened.items():
        touched = set(nodes)
        records = tuple(c for c in errors if c.object in touched)
        if records:
            blocking[extension] = records
    return blocking


def conflicting_nodes(conflicts: Iterable[Conflict]) -> frozenset[str]:
    """The objects that carry an error record (for red marks in exports and the tree)."""
    return frozenset(c.object for c in conflicts if c.severity == Severity.ERROR)
