"""Simulate what one process maps: the interpreter's closure, then each extension it dlopen()s.

ld.so maps the main program's dependencies breadth-first, so the first object to need a soname
decides which file the whole process gets; every later request for that soname reuses it, whatever
the later requester's RPATH/RUNPATH says. Extensions come afterwards, each dlopen()ed by its caller
(libpython, libruby or the executable). The caller's RPATH/RUNPATH serve the dlopen name only: glibc
maps the new object with ``l_loader`` = NULL (``__RTLD_CALLMAP``), so its dependencies search its own
tags, then the main program's DT_RPATH, never the caller's (checked against the real loader in
tests). The result is one ``networkx.DiGraph`` that the analysis, the exports and the TUI all read
(``docs/CONTRACTS.md``).

A dlopen() that fails (a dependency not found, a file ld.so cannot map, a version its provider lacks)
leaves the namespace as it was: ld.so unmaps what that call mapped (``_dl_close_worker``), so the next
import searches again instead of reusing a library that never stayed loaded. The graph keeps the failed
chain (the conflicts are read from it); only the namespace forgets it.

Exact mode follows that order. Strict mode resolves every edge on its own, as if nothing were loaded
yet, so a requirement that today's load order happens to satisfy (or hide) still shows.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import networkx as nx
from glibc_doctor.core.loader import Loader, LoaderConfig, loader_config
from glibc_doctor.core.model import (
    EdgeRequest,
    ElfFacts,
    Extension,
    Problem,
    Resolution,
    Role,
    Target,
    Via,
)
from glibc_doctor.core.sysroot import Sysroot, host_path

if TYPE_CHECKING:
    from glibc_doctor.core.lookups import SharedLookups

MISSING_PREFIX = "not-found:"


def simulate(
    target: Target,
    *,
    strict: bool = False,
    env: Mapping[str, str] | None = None,
    shared: SharedLookups | None = None,
    root: Sysroot | None = None,
) -> nx.DiGraph[str]:
    """The process ``target`` would be, as a graph (node and edge attributes in CONTRACTS.md).

    ``shared`` lets many simulations of one unchanged file system read, list and search once
    (``core/lookups.py``); the graph is the same with or without it. Under ``root`` the target's paths
    and every node are paths inside that directory (``scan --root``).
    """
    environ = os.environ if env is None else env
    if shared is not None and root is None:
        config = shared.loader_config(target.executable, environ)
    else:
        config = loader_config(target.executable, environ, root)
    process = _Process(target, config, strict, shared if root is None else None)
    process.graph.graph["tunables"] = environ.get("GLIBC_TUNABLES", "")  # static TLS surplus, exec stack
    process.start()
    for extension in target.extensions:
        process.dlopen(extension)
    process.graph.graph["order_dependent"], process.graph.graph["order_alternatives"] = (
        process.order_dependence()
    )
    return process.graph


class _Process:
    """The namespace being built: graph, loader state, and who loaded whom (the RPATH chain)."""

    def __init__(
        self, target: Target, config: LoaderConfig, strict: bool, shared: SharedLookups | None = None
    ) -> None:
        self.target = target
        self.config = config
        self.strict = strict
        self.loader = Loader(config, shared=shared)
        self.base: Loader | None = None  # the namespace before any extension (order dependence)
        self.parent: dict[str, str | None] = {}
        self.chains: dict[str, tuple[ElfFacts, ...]] = {}
        self.mapped: list[str] = []  # the objects the dlopen() being simulated mapped so far
        self.requests: list[tuple[str, str, str]] = []  # its (requester, provider, name) requests
        self.loaded_real = {os.path.realpath(path) for path in target.loaded}
        self.graph: nx.DiGraph[str] = nx.DiGraph(
            target=target,
            root=target.executable,
            sysroot=config.root,
            loader=None,
            config=config,
            strict=strict,
            order_dependent=[],
            notes=list(config.notes),
            dlopened={},
        )

    # -- the start of the process --

    def start(self) -> None:
        """The main program, its PT_INTERP loader, the preloads, then the breadth-first closure."""
        main_path = self.target.executable
        main = self.loader.reader_facts(main_path)
        root = Resolution(main_path, "", main_path, Via.ROOT, "the program the process execs")
        self._add_node(main_path, main, Role.INTERPRETER, root, parent=None)
        self.loader.mark_loaded(main_path, main)
        if not main.ok:
            return
        self._add_loader(main_path, main)
        queue = deque([main_path])
        for name in self.config.preload:
            resolution = self.loader.resolve(name, main, (main,), reuse=not self.strict)
            node = self._link(main_path, name, resolution, Role.PRELOAD, via=Via.PRELOAD)
            if node is not None:
                queue.append(node)
        self._closure(queue)
        self.loader.startup = False  # what follows is dlopen(): its errors go through dlerror()
        self.base = self.loader.fork()

    def _add_loader(self, main_path: str, main: ElfFacts) -> None:
        """The running ld.so, registered under its PT_INTERP path and its soname."""
        interp = main.interpreter
        if not interp:
            self.graph.graph["notes"].append(f"{main_path} has no PT_INTERP (static or a library)")
            return
        path = interp if os.path.exists(self.config.host(interp)) else self.config.path
        facts = self.loader.reader_facts(path)
        if not facts.ok:
            self.graph.graph["notes"].append(f"the loader {interp} cannot be read: {facts.detail}")
            return
        found = Resolution(interp, main_path, path, Via.PATH, f"PT_INTERP of {main_path}")
        self._add_node(path, facts, Role.LOADER, found, parent=main_path)
        self._add_edge(main_path, path, interp, Via.PATH, found)
        self.loader.mark_loaded(path, facts, interp)
        self.graph.graph["loader"] = path

    # -- dlopen --

    def dlopen(self, extension: Extension) -> None:
        """``dlopen(extension.path)`` called from the caller's object, then its dependencies; when the
        call fails, what it mapped is unmapped again (the namespace is the one before the call)."""
        self.mapped, self.requests = [], []
        caller = self._caller(extension)
        caller_facts = self._facts(caller)
        resolution = self.loader.resolve(
            extension.path, caller_facts, self._chain(caller), reuse=not self.strict
        )
        node = self._link(caller, extension.path, resolution, Role.EXTENSION)
        if node is not None:
            self._closure(deque([node]))
        touched = [extension.path, *self.mapped, *(provider for _, provider, _ in self.requests)]
        self.graph.graph["dlopened"][extension.path] = tuple(dict.fromkeys(touched))
        if self._fails():
            self.loader.forget(self.mapped)

    def _fails(self) -> bool:
        """Whether ld.so refuses what this dlopen() mapped: an object it cannot map, a DT_NEEDED not
        found, or a non-weak version its provider does not define (``dl-version.c``). Only this call's
        own requests count: the graph also keeps the edges of earlier, failed attempts."""
        mapped = set(self.mapped)
        if any(not self._facts(node).ok for node in mapped):
            return True
        for requester, provider, name in self.requests:
            if requester not in mapped:
                continue
            if self.graph.nodes[provider]["role"] is Role.MISSING:
                return True
            if not version_met(self._facts(requester), name, self._facts(provider)):
                return True
        return False

    def _caller(self, extension: Extension, loader: Loader | None = None) -> str:
        """Who calls dlopen(): the loaded object with the caller's soname, else the main program."""
        if extension.caller is not None:
            found = (loader or self.loader).loaded(extension.caller)
            if found is not None and self.graph.has_node(found):
                return str(found)
            note = (
                f"caller {extension.caller} of {extension.path} is not loaded; the main program dlopen()s it"
            )
            if note not in self.graph.graph["notes"]:
                self.graph.graph["notes"].append(note)
        main: str = self.target.executable
        return main

    # -- breadth-first DT_NEEDED --

    def _closure(self, queue: deque[str]) -> None:
        while queue:
            requester = queue.popleft()
            facts = self._facts(requester)
            chain = self._chain(requester)
            for name in facts.needed:
                resolution = self.loader.resolve(
                    name, facts, chain, reuse=not self.strict or self._is_rtld(name)
                )
                node = self._link(requester, name, resolution, Role.LIBRARY)
                if node is not None:
                    queue.append(node)

    def _is_rtld(self, name: str) -> bool:
        """A request for the running loader's soname is always the running loader, even in strict mode."""
        loader = self.graph.graph["loader"]
        return loader is not None and self.loader.loaded(name) == loader

    def _link(
        self, requester: str, name: str, resolution: Resolution, role: Role, via: Via | None = None
    ) -> str | None:
        """Add the edge for one request; returns the node when it is newly loaded (to visit its needs)."""
        edge_via = via if via is not None and resolution.via is not Via.LOADED else resolution.via
        if resolution.path is None:
            node = MISSING_PREFIX + name
            if node not in self.graph:
                facts = ElfFacts(path=name, problem=Problem.MISSING, detail=resolution.detail)
                self._add_node(node, facts, Role.MISSING, resolution, parent=requester)
            self._add_edge(requester, node, name, edge_via, resolution)
            self.requests.append((requester, node, name))
            return None
        node = resolution.path
        is_new = node not in self.graph
        facts = self.loader.reader_facts(node) if is_new else self._facts(node)
        # dlopen() maps with __RTLD_CALLMAP: the caller's search path serves the dlopen name only, and
        # the new object's l_loader is NULL, so its own needs do not inherit the caller's RPATH (the
        # main program's RPATH still applies; the Loader adds it at the end of the chain).
        parent = None if role is Role.EXTENSION else requester
        if is_new:
            self._add_node(node, facts, role, resolution, parent=parent)
        mapping = self.loader.mapped_facts(node) is None
        if mapping and not is_new:  # unmapped by a failed dlopen(): mapped again, by this requester
            self.parent[node] = parent
            self.chains.pop(node, None)
        self.loader.mark_loaded(node, facts, name)
        self._add_edge(requester, node, name, edge_via, resolution)
        self.requests.append((requester, node, name))
        if mapping:
            self.mapped.append(node)
        return node if mapping and facts.ok else None

    # -- graph bookkeeping --

    def _add_node(
        self, node: str, facts: ElfFacts, role: Role, found: Resolution, parent: str | None
    ) -> None:
        self.parent[node] = parent
        loaded = bool(self.loaded_real) and (
            node in self.target.loaded or os.path.realpath(node) in self.loaded_real
        )
        self.graph.add_node(
            node, facts=facts, role=role, order=self.graph.number_of_nodes(), found=found, loaded=loaded
        )

    def _add_edge(self, requester: str, provider: str, name: str, via: Via, resolution: Resolution) -> None:
        """One edge per (requester, provider); a second name for the same file is a second request on it
        (``requests``: its versions are checked too, and ``scan --json`` lists one edge per request)."""
        request = EdgeRequest(name, via, resolution.detail, resolution)
        if self.graph.has_edge(requester, provider):
            requests: list[EdgeRequest] = self.graph.edges[requester, provider]["requests"]
            if all(known.needed != name for known in requests):
                requests.append(request)
            return
        self.graph.add_edge(
            requester,
            provider,
            needed=name,
            via=via,
            detail=resolution.detail,
            resolution=resolution,
            requests=[request],
        )

    def _facts(self, node: str) -> ElfFacts:
        facts: ElfFacts = self.graph.nodes[node]["facts"]
        return facts

    def _chain(self, node: str) -> tuple[ElfFacts, ...]:
        """The object and the objects that loaded it, up to the main program (ld.so's ``l_loader``)."""
        known = self.chains.get(node)
        if known is not None:
            return known
        parent = self.parent.get(node)
        above = self._chain(parent) if parent is not None and parent != node else ()
        chain = (self._facts(node), *above)
        self.chains[node] = chain
        return chain

    # -- import-order dependence --

    def order_dependence(self) -> tuple[list[str], dict[str, list[str]]]:
        """Names that resolve to different files depending on which extension is imported first.

        Each extension is loaded alone on top of the interpreter's closure; a DT_NEEDED name that two
        of them would map to different files (by real path) is order-dependent, unless those files are
        byte for byte the same (auditwheel vendors one libgfortran into both numpy.libs and scipy.libs):
        whichever loads, the process is the same (their own dependencies are names checked in turn).
        """
        if self.base is None or len(self.target.extensions) < 2:
            return [], {}
        seen: dict[str, set[str]] = {}
        for extension in self.target.extensions:
            for name, path in self._alone(extension):
                seen.setdefault(name, set()).add(path)
        alternatives: dict[str, list[str]] = {}
        for name, paths in sorted(seen.items()):
            by_file = {self._realpath(path): path for path in sorted(paths)} if len(paths) > 1 else {}
            if len(by_file) > 1 and not _one_content([host_path(self.config.root, p) for p in by_file]):
                alternatives[name] = sorted(by_file.values())
        return list(alternatives), alternatives

    def _realpath(self, path: str) -> str:
        root = self.config.root
        return root.realpath(path) if root is not None else os.path.realpath(path)

    def _alone(self, extension: Extension) -> list[tuple[str, str]]:
        """(name, path) of every object newly found when ``extension`` is the first one imported;
        none when that dlopen() fails (nothing it found stays loaded)."""
        assert self.base is not None
        loader = self.base.fork()
        caller = self._caller(extension, loader)
        caller_facts = self._facts(caller)
        first = loader.resolve(extension.path, caller_facts, self._chain(caller))
        if first.path is None or first.via is Via.LOADED:
            return []
        facts = loader.reader_facts(first.path)
        loader.mark_loaded(first.path, facts, extension.path)
        found: list[tuple[str, str]] = []
        queue: deque[tuple[str, ElfFacts, tuple[ElfFacts, ...]]] = deque([(first.path, facts, (facts,))])
        while queue:
            _path, facts, chain = queue.popleft()
            if not facts.ok:
                return []
            for name in facts.needed:
                resolution = loader.resolve(name, facts, chain)
                if resolution.path is None:
                    return []
                mapped = loader.mapped_facts(resolution.path) if resolution.via is Via.LOADED else None
                provider = mapped or loader.reader_facts(resolution.path)
                if not version_met(facts, name, provider):
                    return []
                if mapped is not None:
                    continue
                loader.mark_loaded(resolution.path, provider, name)
                found.append((name, resolution.path))
                queue.append((resolution.path, provider, (provider, *chain)))
        return found


def _one_content(paths: list[str]) -> bool:
    """Whether the files are byte for byte one: one inode (hard links), else one size and, only then,
    one SHA-256 per distinct inode (a vendored library is large: libtorch is hundreds of MB, and a 10x
    environment names it through thousands of links). An unreadable file is its own content."""
    inodes: dict[tuple[int, int], str] = {}
    sizes = set()
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            return False
        inodes.setdefault((info.st_dev, info.st_ino), path)
        sizes.add(info.st_size)
    if len(inodes) == 1:
        return True
    return len(sizes) == 1 and len({_content(path) for path in inodes.values()}) == 1


def _content(path: str) -> tuple[int, str] | str:
    """What makes two files the same object: size and SHA-256 (the path itself when unreadable)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return path
    return size, digest.hexdigest()


def version_met(requester: ElfFacts, name: str, provider: ElfFacts) -> bool:
    """ld.so's version check of one DT_NEEDED: every non-weak version ``requester`` needs from ``name``
    is defined by ``provider`` (an unversioned or unreadable provider is not checked)."""
    if not provider.ok or not provider.defines:
        return True
    return all(need.weak or need.version in provider.defines for need in requester.requires_from(name))
