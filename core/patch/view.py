"""The glibc view: a directory of symlinks to exactly the stdenv glibc's own libraries.

A patched interpreter's RPATH must put the stdenv glibc first, but on a distribution the stdenv libc's
directory (``/lib/x86_64-linux-gnu``) holds every library of the system: putting it first would also
swap the package's own libexpat, libz, libsqlite3 … for the system's. The view holds links to the
glibc libraries only (loader, libc, libm, libpthread, NSS modules …) and, in a directory of its own,
the stdenv's libstdc++/libgcc_s; the RPATH names the view, so only those are swapped. With a Nix
stdenv the glibc dir already holds only glibc, and the view is the same set: one rule everywhere.

Layout, in the store: ``glibc/<short fingerprint>/{lib,cxx}/`` and ``view.json`` (what it links to).
A view appears only by one ``os.rename`` of a complete staging dir, is reused while its record
matches, and is kept by ``gc`` while a manifest's build references it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import StdenvInfo, edge_names

VIEWS_DIR = "glibc"
VIEW_RECORD = "view.json"
VIEW_FORMAT = 1
SHORT = 16
LIBSTDCXX = "libstdc++.so.6"
LIBGCC_S = "libgcc_s.so.1"
RUNTIME_SONAMES = (LIBSTDCXX, LIBGCC_S)

# glibc's own shared objects, by file name: the names ld.so looks up (sonames), never the linker's
# ``.so`` development links or static archives. The loader's name differs per architecture.
GLIBC_FILE = re.compile(
    r"^(?:"
    r"ld-linux[-\w]*\.so\.\d+|ld64\.so\.\d+|ld\.so\.1"
    r"|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1"
    r"|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libBrokenLocale\.so\.1|libnsl\.so\.1"
    r"|libnss_\w+\.so\.2|libthread_db\.so\.1|libc_malloc_debug\.so\.0"
    r")$"
)


@dataclass(frozen=True, slots=True)
class ViewLink:
    """One link of the view: ``name`` in the view points at ``target`` (a path in the stdenv)."""

    name: str
    target: str


@dataclass(frozen=True, slots=True)
class GlibcView:
    """The view of one stdenv: where it lives and what each of its links points at.

    ``glibc`` links go to ``lib_dir``; ``runtime`` (libstdc++, libgcc_s) to ``runtime_dir``, a
    directory of its own so that an RPATH can name the glibc without the C++ runtime.
    """

    root: str
    fingerprint: str
    source_dir: str  # the stdenv libc's directory
    glibc: tuple[ViewLink, ...]
    runtime: tuple[ViewLink, ...] = ()

    @property
    def lib_dir(self) -> str:
        return os.path.join(self.root, "lib")

    @property
    def runtime_dir(self) -> str:
        return os.path.join(self.root, "cxx")

    def target_of(self, name: str) -> str | None:
        """The stdenv file the view gives for ``name`` (None: the view has no such library)."""
        return next((link.target for link in (*self.glibc, *self.runtime) if link.name == name), None)

    def record(self) -> dict[str, object]:
        """What ``view.json`` holds: a reused view must link to the same files."""
        return {
            "format": VIEW_FORMAT,
            "fingerprint": self.fingerprint,
            "source_dir": self.source_dir,
            "glibc": {link.name: link.target for link in self.glibc},
            "runtime": {link.name: link.target for link in self.runtime},
        }

    def as_json(self, uses_runtime: bool) -> dict[str, object]:
        return {
            "root": self.root,
            "lib_dir": self.lib_dir,
            "runtime_dir": self.runtime_dir if self.runtime else None,
            "uses_runtime": uses_runtime,
            **self.record(),
        }

    def describe(self, uses_runtime: bool) -> list[str]:
        """The view in lines a person reads: which files the RPATH's first entries stand for."""
        lines = [f"glibc view {self.lib_dir}  ({len(self.glibc)} links into {self.source_dir})"]
        lines += [f"    {link.name} -> {link.target}" for link in self.glibc]
        if self.runtime:
            state = "in RPATH" if uses_runtime else "not needed: not in RPATH"
            lines.append(f"C++ runtime view {self.runtime_dir}  ({state})")
            lines += [f"    {link.name} -> {link.target}" for link in self.runtime]
        return lines


# --- the pure decisions -----------------------------------------------------------------------------


def view_root(store_root: str, fingerprint: str) -> str:
    """``<store>/glibc/<first 16 hex of the stdenv fingerprint>``: one view per stdenv."""
    return os.path.join(store_root, VIEWS_DIR, fingerprint[:SHORT])


def glibc_links(source_dir: str, names: Iterable[str]) -> tuple[ViewLink, ...]:
    """Links for the names (a listing of ``source_dir``) that are glibc's own libraries, sorted.

    The targets are the paths in ``source_dir`` as found, not their real paths: a glibc update in
    place (new versioned file names) keeps the links valid, as it keeps the loader path valid.
    """
    chosen = sorted(name for name in set(names) if GLIBC_FILE.match(name))
    return tuple(ViewLink(name, os.path.join(source_dir, name)) for name in chosen)


def runtime_links(libstdcxx: str | None, libgcc_s: str | None) -> tuple[ViewLink, ...]:
    found = ((LIBSTDCXX, libstdcxx), (LIBGCC_S, libgcc_s))
    return tuple(ViewLink(name, path) for name, path in found if path is not None)


def make_view_record(
    stdenv: StdenvInfo, store_root: str, listing: Iterable[str], libgcc_s: str | None
) -> GlibcView:
    """The view of ``stdenv`` from a listing of its libc's directory (pure)."""
    source_dir = os.path.dirname(stdenv.libc)
    return GlibcView(
        root=view_root(store_root, stdenv.fingerprint),
        fingerprint=stdenv.fingerprint,
        source_dir=source_dir,
        glibc=glibc_links(source_dir, listing),
        runtime=runtime_links(stdenv.libstdcxx, libgcc_s),
    )


# --- reading the stdenv and building the view (the impure part) ------------------------------------


def survey_view(stdenv: StdenvInfo, store_root: str) -> GlibcView:
    """List the stdenv libc's directory and find its libgcc_s, then decide the view."""
    source_dir = os.path.dirname(stdenv.libc)
    try:
        names = [  # named like glibc's first: a distribution's lib dir holds thousands of other files
            name
            for name in os.listdir(source_dir)
            if GLIBC_FILE.match(name) and os.path.isfile(os.path.join(source_dir, name))
        ]
    except OSError as error:
        raise PatchError(f"cannot list the stdenv glibc dir {source_dir}: {error.strerror}") from error
    view = make_view_record(stdenv, store_root, names, find_libgcc_s(stdenv))
    if view.target_of("libc.so.6") is None:
        raise PatchError(f"the stdenv glibc dir {source_dir} has no libc.so.6")
    return view


def find_libgcc_s(stdenv: StdenvInfo) -> str | None:
    """libgcc_s.so.1 next to the stdenv's libstdc++ (as found, then its real dir), else next to libc."""
    dirs: list[str] = []
    if stdenv.libstdcxx is not None:
        dirs += [os.path.dirname(stdenv.libstdcxx), os.path.dirname(os.path.realpath(stdenv.libstdcxx))]
    dirs.append(os.path.dirname(stdenv.libc))
    return next((os.path.join(d, LIBGCC_S) for d in dirs if os.path.isfile(os.path.join(d, LIBGCC_S))), None)


def read_view_record(root: str) -> dict[str, object] | None:
    try:
        data = json.loads(Path(root, VIEW_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def make_view(view: GlibcView) -> bool:
    """Create the view on disk, atomically; False when a complete view with the same links is there.

    A staging dir next to it gets the links and the record, then one rename makes it appear. A dir
    at the same place that links elsewhere (damaged, or a stdenv dir that gained an NSS module) is
    replaced: moved aside, the new one renamed in, the old one removed.
    """
    if read_view_record(view.root) == view.record():
        return False
    parent = os.path.dirname(view.root)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".staging-{os.path.basename(view.root)}-", dir=parent)
    except OSError as error:
        raise PatchError(f"cannot create a staging dir in {parent}: {error.strerror}") from error
    try:
        _fill(view, staging)
        return _rename_into_place(view, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fill(view: GlibcView, staging: str) -> None:
    try:
        os.chmod(staging, 0o755)
        _link_all(os.path.join(staging, "lib"), view.glibc)
        if view.runtime:
            _link_all(os.path.join(staging, "cxx"), view.runtime)
        Path(staging, VIEW_RECORD).write_text(json.dumps(view.record(), indent=1) + "\n")
    except OSError as error:
        raise PatchError(f"cannot build the glibc view in {staging}: {error.strerror}") from error


def _link_all(directory: str, links: Iterable[ViewLink]) -> None:
    os.mkdir(directory, 0o755)
    for link in links:
        os.symlink(link.target, os.path.join(directory, link.name))


def _rename_into_place(view: GlibcView, staging: str) -> bool:
    try:
        os.rename(staging, view.root)
        return True
    except OSError:
        if read_view_record(view.root) == view.record():  # another run made the same view first
            shutil.rmtree(staging, ignore_errors=True)
            return False
    aside = f"{staging}.old"
    try:
        os.rename(view.root, aside)
        os.rename(staging, view.root)
    except OSError as error:
        raise PatchError(f"cannot move the glibc view to {view.root}: {error.strerror}") from error
    shutil.rmtree(aside, ignore_errors=True)
    return True


# --- what a patched interpreter provides: the one rule of "fixable by ``fix``" -----------------------
#
# The scan's advice (core/analysis.py: "repatch" or "the stdenv is too old") and the fix plan's split
# into fixed and REMAINING (core/patch/plan.py) both answer here, so they cannot disagree: a library
# counts only when the view links it (glibc's own libraries, and libstdc++/libgcc_s while the stdenv's
# copies serve every object that loads one), never because it merely sits in a stdenv directory.


def stdenv_view(stdenv: StdenvInfo) -> GlibcView | None:
    """The view of ``stdenv`` as a record (nothing is built): what its patched RPATH would reach.

    None when the stdenv's glibc dir cannot be listed or holds no libc.so.6 (nothing is provided).
    The record's ``root`` is relative (no store is involved): only its links are meant to be read.
    """
    try:
        return survey_view(stdenv, "")
    except PatchError:
        return None


def view_provides(view: GlibcView | None, libraries: Iterable[str]) -> dict[str, tuple[str, ...] | None]:
    """For each library name, the versions the view's copy defines (None when the view has none).

    Only what the view links counts: a library that merely sits in the stdenv's directory (the
    system's libfoo next to a distribution's libc) is not something the patched RPATH reaches.
    """
    from glibc_doctor.core.elf import read_elf

    provided: dict[str, tuple[str, ...] | None] = {}
    for library in set(libraries):
        path = view.target_of(library) if view is not None else None
        facts = read_elf(path) if path is not None else None
        provided[library] = facts.defines if facts is not None and facts.ok else None
    return provided


def runtime_needs(graph: Any) -> dict[str, set[str]]:
    """For libstdc++/libgcc_s: the versions the graph's objects require of it (a key: something loads it)."""
    needs: dict[str, set[str]] = {}
    if graph is None:
        return needs
    for requester, _provider, edge in graph.edges(data=True):
        for name in edge_names(edge):
            if name not in RUNTIME_SONAMES:
                continue
            facts = graph.nodes[requester].get("facts")
            versions = needs.setdefault(name, set())
            if facts is not None:
                versions.update(need.version for need in facts.requires_from(name))
    return needs


def runtime_shortfall(
    needs: Mapping[str, set[str]], provided: Mapping[str, tuple[str, ...] | None]
) -> dict[str, tuple[str, ...]]:
    """Versions the process needs of libstdc++/libgcc_s that the stdenv's copy lacks (by library).

    A library the stdenv has no copy of is short of everything; an empty result means the stdenv's
    C++ runtime serves every object that loads one, so it can come first.
    """
    short: dict[str, tuple[str, ...]] = {}
    for name, versions in needs.items():
        defines = provided.get(name)
        missing = sorted(versions) if defines is None else sorted(versions - set(defines))
        if defines is None or missing:
            short[name] = tuple(missing)
    return short


def without_short_runtime(
    provided: Mapping[str, tuple[str, ...] | None], shortfall: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...] | None]:
    """``provided`` as the patched process sees it: when the stdenv's C++ runtime lacks something an
    object needs, the package keeps its own libstdc++/libgcc_s, so the view provides neither."""
    return {name: None if shortfall and name in RUNTIME_SONAMES else v for name, v in provided.items()}


def patched_provision(
    stdenv: StdenvInfo, libraries: Iterable[str], graph: Any = None
) -> tuple[dict[str, tuple[str, ...] | None], dict[str, tuple[str, ...]]]:
    """``view_provides`` of the stdenv's view for ``libraries``, with the C++ runtime dropped when it
    falls short for the process of ``graph`` (what ``plan_fix`` decides, for one scan); and that
    shortfall (``runtime_shortfall``: empty when the stdenv's runtime serves the process)."""
    provided = view_provides(stdenv_view(stdenv), {*libraries, *RUNTIME_SONAMES})
    shortfall = runtime_shortfall(runtime_needs(graph), provided)
    return without_short_runtime(provided, shortfall), shortfall


def patched_provides(
    stdenv: StdenvInfo, libraries: Iterable[str], graph: Any = None
) -> dict[str, tuple[str, ...] | None]:
    """``patched_provision`` without the shortfall."""
    return patched_provision(stdenv, libraries, graph)[0]


def kept_runtime_words(shortfall: Mapping[str, tuple[str, ...]]) -> str:
    """Why the package keeps its own C++ runtime, in words (``shortfall`` is not empty):
    ``the stdenv's libstdc++.so.6 lacks GLIBCXX_3.4.32, which the process needs``."""
    parts = [
        f"the stdenv's {name} lacks {', '.join(versions)}" if versions else f"the stdenv has no {name}"
        for name, versions in sorted(shortfall.items())
    ]
    return "; ".join(parts) + ", which the process needs"


def unmet_versions(
    provided: Mapping[str, tuple[str, ...] | None], library: str, versions: Iterable[str]
) -> tuple[str, ...] | None:
    """Of ``versions`` of ``library``, those the patched interpreter would still not provide (pure).

    ``provided`` is ``patched_provides``'s answer. None: the patched interpreter provides no
    ``library`` at all; empty: it provides every version, so a repatch fixes this need.
    """
    defines = provided.get(library)
    if defines is None:
        return None
    return tuple(version for version in versions if version not in defines)
