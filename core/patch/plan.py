"""Plan a fix as data before touching anything: which files change, and how.

The plan is what ``fix --dry-run`` prints and what the executor applies. Deciding is pure: the
package survey (ELF facts, text files and symlinks of the package) and the stdenv's facts come in,
a ``FixPlan`` comes out, so every rule here is tested on synthetic records. ``plan_fix`` is the one
function that reads files (to survey the package and the stdenv's libraries) before calling it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import (
    Conflict,
    ElfFacts,
    GlibcInfo,
    Kind,
    Role,
    ScanLike,
    Severity,
    StdenvInfo,
    Target,
    edge_names,
)
from glibc_doctor.core.patch.view import (
    RUNTIME_SONAMES,
    GlibcView,
    kept_runtime_words,
    runtime_needs,
    runtime_shortfall,
    survey_view,
    unmet_versions,
    view_provides,
    without_short_runtime,
)
from glibc_doctor.core.versions import GlibcVersion, VersionName

# Directories whose parent is a whole system, not one package: patching "the package" of
# /usr/bin/python3 would mean copying /usr.
SYSTEM_PREFIXES = frozenset({"/", "/usr", "/usr/local", "/opt", "/bin", "/sbin", "/lib", "/snap", "/home"})
EXECUTABLE_DIRS = ("bin", "sbin", "libexec")
GLIBC_SONAMES = frozenset(
    {
        "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
        "libresolv.so.2", "libanl.so.1", "libnsl.so.1", "libBrokenLocale.so.1", "libmvec.so.1",
        "libthread_db.so.1", "libmemusage.so", "libpcprofile.so", "libc_malloc_debug.so.0",
        "ld-linux-x86-64.so.2", "ld-linux.so.2", "ld-linux-aarch64.so.1",
    }
)  # fmt: skip
_NIX_HASH = re.compile(r"^[0-9a-df-np-sv-z]{32}-")


@dataclass(frozen=True, slots=True)
class TextFile:
    """A non-ELF file of the package that names the package's own path (``relpath`` inside it)."""

    relpath: str
    kind: str  # shebang, sysconfigdata, pkg-config, rbconfig, text


@dataclass(frozen=True, slots=True)
class Symlink:
    """A symlink of the package (``relpath``) and the link text it holds."""

    relpath: str
    target: str


@dataclass(frozen=True, slots=True)
class PackageSurvey:
    """The package as found on disk: its ELF objects, the text files and symlinks naming its path."""

    root: str
    elves: tuple[ElfFacts, ...]  # facts.path is absolute, under root
    texts: tuple[TextFile, ...] = ()
    symlinks: tuple[Symlink, ...] = ()


@dataclass(frozen=True, slots=True)
class ElfPatch:
    """One ELF file of the copy: the header changes patchelf makes to it."""

    relpath: str
    old_interpreter: str | None
    new_interpreter: str | None  # None: PT_INTERP stays as it is
    old_rpath: str | None
    old_runpath: str | None
    new_rpath: str
    add_needed: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        lines = [self.relpath]
        if self.new_interpreter is not None:
            lines.append(f"    interpreter {self.old_interpreter} -> {self.new_interpreter}")
        old = f"RUNPATH {self.old_runpath}" if self.old_runpath else f"RPATH {self.old_rpath or '(none)'}"
        lines.append(f"    {old} -> RPATH {self.new_rpath}")
        lines += [f"    add DT_NEEDED {name}" for name in self.add_needed]
        return lines


@dataclass(frozen=True, slots=True)
class LinkRetarget:
    """A symlink that pointed into the old package and will point into the copy."""

    relpath: str
    old_target: str
    new_target: str


@dataclass(frozen=True, slots=True)
class Remaining:
    """A conflict the stdenv cannot fix, and the reason in plain words."""

    conflict: Conflict
    reason: str

    def as_json(self) -> dict[str, object]:
        return {**self.conflict.as_json(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class FixPlan:
    """Everything a fix will do, decided before anything is done."""

    target: Target
    source_package: str
    interpreter: str  # relative to the package root
    destination: str
    stdenv: StdenvInfo
    old_glibc: GlibcInfo
    elf_patches: tuple[ElfPatch, ...]
    text_rewrites: tuple[TextFile, ...]
    links: tuple[LinkRetarget, ...]
    fixes: tuple[Conflict, ...]
    remaining: tuple[Remaining, ...]
    view: GlibcView
    notes: tuple[str, ...] = field(default=())
    uses_runtime: bool = False  # the view's libstdc++/libgcc_s dir is in the RPATH too
    # What the stdenv's loader would refuse that the current one loads (an executable stack under
    # glibc 2.41+, an ISA level under 2.33+): said before the fix, and verification catches them.
    warnings: tuple[Conflict, ...] = field(default=())

    @property
    def first_dirs(self) -> tuple[str, ...]:
        """The RPATH entries before the package's own: the glibc view, then (when needed) its C++ runtime."""
        return view_dirs(self.view, self.uses_runtime)

    @property
    def patched_interpreter(self) -> str:
        return os.path.join(self.destination, self.interpreter)

    @property
    def name(self) -> str:
        return os.path.basename(self.destination)

    def describe(self) -> list[str]:
        """The plan in lines a person reads (``fix --dry-run``)."""
        lines = [
            f"package   {self.source_package}",
            f"copy to   {self.destination}",
            f"glibc     {self.old_glibc.version or '?'} ({self.old_glibc.libc}) -> "
            f"{self.stdenv.version or '?'} ({self.stdenv.libc})",
            f"stdenv    {self.stdenv.source}",
            f"loader    {self.stdenv.loader} (PT_INTERP: the stdenv's real loader path)",
            *self.view.describe(self.uses_runtime),
            f"ELF files to patch: {len(self.elf_patches)}",
        ]
        for patch in self.elf_patches:
            lines += ["  " + line for line in patch.describe()]
        lines.append(f"text files to rewrite: {len(self.text_rewrites)}")
        lines += [f"  {text.relpath} ({text.kind})" for text in self.text_rewrites]
        lines.append(f"symlinks to retarget: {len(self.links)}")
        lines += [f"  {link.relpath}: {link.old_target} -> {link.new_target}" for link in self.links]
        lines.append(f"conflicts fixed: {len(self.fixes)}")
        lines += [f"  {conflict.message}" for conflict in self.fixes]
        lines.append(f"conflicts remaining: {len(self.remaining)}")
        lines += [f"  {item.conflict.message}: {item.reason}" for item in self.remaining]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"warning: {line}" for conflict in self.warnings for line in warning_lines(conflict)]
        return lines

    def as_json(self) -> dict[str, object]:
        return {
            "package": self.source_package,
            "destination": self.destination,
            "interpreter": self.patched_interpreter,
            "stdenv": self.stdenv.as_json(),
            "old_glibc": self.old_glibc.as_json(),
            "glibc_view": self.view.as_json(self.uses_runtime),
            "elf_patches": [
                {
                    "path": patch.relpath,
                    "old_interpreter": patch.old_interpreter,
                    "new_interpreter": patch.new_interpreter,
                    "old_rpath": patch.old_rpath,
                    "old_runpath": patch.old_runpath,
                    "new_rpath": patch.new_rpath,
                    "add_needed": list(patch.add_needed),
                }
                for patch in self.elf_patches
            ],
            "text_rewrites": [{"path": text.relpath, "kind": text.kind} for text in self.text_rewrites],
            "links": [
                {"path": link.relpath, "old": link.old_target, "new": link.new_target} for link in self.links
            ],
            "fixes": [conflict.as_json() for conflict in self.fixes],
            "remaining": [item.as_json() for item in self.remaining],
            "notes": list(self.notes),
            "warnings": [conflict.as_json() for conflict in self.warnings],
        }


def warning_lines(conflict: Conflict) -> list[str]:
    """A breaking change in two lines: what the new loader does, and the first way out."""
    lines = [conflict.message]
    if conflict.fixes:
        lines.append(f"  fix: {conflict.fixes[0]}")
    return lines


# --- the pure decisions -----------------------------------------------------------------------------


def package_root(executable: str) -> str:
    """The package directory holding ``executable`` (its real path): the parent of its ``bin``.

    /x/store/abc-python3.9/bin/python3.9 -> /x/store/abc-python3.9. A system prefix (/usr) is not
    one package; copying it is refused.
    """
    bin_dir = os.path.dirname(executable)
    if os.path.basename(bin_dir) not in EXECUTABLE_DIRS:
        raise PatchError(f"{executable} is not in a bin directory of a package: cannot tell what to copy")
    root = os.path.dirname(bin_dir)
    if root in SYSTEM_PREFIXES:
        raise PatchError(
            f"{executable} belongs to the system prefix {root}, not to one package: glibc-doctor patches "
            "a copy of a package (a Nix-style store dir or a prefix like /opt/python3.9), not the system"
        )
    return root


def readable_name(root: str) -> str:
    """The package's name without a Nix store hash: ``abc…-python3-3.9`` -> ``python3-3.9``."""
    name = _NIX_HASH.sub("", os.path.basename(root.rstrip("/")))
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", name).strip("._") or "package"
    return cleaned[:60]


def destination_for(store_root: str, source_root: str, stdenv: StdenvInfo) -> str:
    """``<store>/packages/<readable-name>-<short fingerprint>``: one build per package and stdenv."""
    short = hashlib.sha256(f"{source_root}\0{stdenv.fingerprint}".encode()).hexdigest()[:12]
    return os.path.join(store_root, "packages", f"{readable_name(source_root)}-{short}")


def check_stdenv_not_older(old_glibc: GlibcInfo, stdenv: StdenvInfo) -> None:
    """Refuse a stdenv glibc older than the interpreter's: the interpreter itself would break."""
    if old_glibc.version is None or stdenv.version is None:
        return
    try:
        old, new = GlibcVersion.parse(old_glibc.version), GlibcVersion.parse(stdenv.version)
    except ValueError:
        return
    if new < old:
        raise PatchError(
            f"the stdenv glibc {new} ({stdenv.source}) is older than the interpreter's glibc {old}: "
            f"the interpreter was built against {old} and may need symbols {new} lacks; use a newer "
            "stdenv (--glibc DIR) instead"
        )


def view_dirs(view: GlibcView, uses_runtime: bool) -> tuple[str, ...]:
    """The glibc view's lib dir, then its C++ runtime dir when the plan needs the stdenv's libstdc++."""
    return (view.lib_dir, view.runtime_dir) if uses_runtime and view.runtime else (view.lib_dir,)


def check_store_path(store_root: str) -> None:
    """Refuse a store path RPATH cannot hold: ``:`` would split an entry in two, the second relative
    (a library-injection hole), and the loader expands ``$`` tokens."""
    problems = [f"holds {char!r}" for char in ":$" if char in store_root]
    if not store_root.startswith("/"):
        problems.append("is relative")
    if problems:
        raise PatchError(
            f"the store {store_root} cannot be named in an RPATH (it {' and '.join(problems)}): "
            "set XDG_DATA_HOME to an absolute path without ':' or '$'"
        )


def new_rpath(
    facts: ElfFacts,
    first_dirs: Sequence[str],
    old_glibc_dirs: frozenset[str],
    keep_dirs: frozenset[str],
    old_root: str,
    new_root: str,
) -> str:
    """``first_dirs`` (the glibc view, its C++ runtime), then the old entries minus the old glibc's dirs.

    The old entries are the object's RUNPATH (what the loader uses when both are present) else its
    RPATH. Entries into the old package move to the copy; ``$ORIGIN`` entries stay as they are;
    empty and relative entries are dropped (an empty entry means the current directory: a library
    injection hole). An old glibc dir that also held other libraries the graph loaded from it
    (``keep_dirs``) stays, last, so those still resolve while libc comes from the stdenv first.
    """
    old_entries = (facts.runpath if facts.runpath else facts.rpath) or ""
    entries: list[str] = [entry for entry in first_dirs if entry.startswith("/")]
    kept_last: list[str] = []
    for entry in old_entries.split(":"):
        if not entry or not (
            entry.startswith("/") or entry.startswith("$ORIGIN") or entry.startswith("${ORIGIN}")
        ):
            continue
        normal = os.path.normpath(entry) if entry.startswith("/") else entry
        if normal in old_glibc_dirs:
            if normal in keep_dirs:
                kept_last.append(normal)
            continue
        entries.append(_moved(normal, old_root, new_root))
    return ":".join(_unique(entries + kept_last))


def _moved(path: str, old_root: str, new_root: str) -> str:
    if path == old_root or path.startswith(old_root + "/"):
        return new_root + path[len(old_root) :]
    return path


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def needed_preloads(
    graph: Any,
    stdenv: StdenvInfo,
    provided: Mapping[str, tuple[str, ...] | None],
    old_root: str,
    glibc_dirs: frozenset[str],
    runtime_dirs: Iterable[str] = (),
) -> tuple[str, ...]:
    """Sonames the patched interpreter must load first (added DT_NEEDED), from the graph.

    Two cases where the interpreter's RPATH cannot reach a lookup, so only an already-loaded soname
    does: an extension with its own DT_RUNPATH needing libstdc++/libgcc_s that resolves to no file or
    to a copy outside the stdenv's dirs (``runtime_dirs`` count as the stdenv's); and a glibc library
    (libresolv, librt …) that an object outside the package (a dependency with its own RUNPATH) finds
    in the old glibc's dirs, which would mix two glibc builds. Only sonames the stdenv has are added.
    """
    if graph is None:
        return ()
    stdenv_dirs = {*stdenv.lib_dirs, *runtime_dirs}
    wanted: set[str] = set()
    for requester, provider, edge in graph.edges(data=True):
        found_dir = None if str(provider).startswith("not-found:") else os.path.dirname(str(provider))
        data = graph.nodes[requester]
        facts = data.get("facts")
        for name in edge_names(edge):
            if provided.get(name) is None:
                continue
            if (
                name in RUNTIME_SONAMES
                and data.get("role") == Role.EXTENSION
                and facts is not None
                and facts.runpath
            ):
                if found_dir not in stdenv_dirs:
                    wanted.add(name)
            elif name in GLIBC_SONAMES and found_dir in glibc_dirs and not _inside(str(requester), old_root):
                wanted.add(name)
    wanted -= {"libc.so.6", "ld-linux-x86-64.so.2", "ld-linux.so.2", "ld-linux-aarch64.so.1"}
    return tuple(sorted(wanted, key=lambda item: (item not in RUNTIME_SONAMES, item)))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def uses_runtime_view(
    needs: Mapping[str, set[str]], shortfall: Mapping[str, tuple[str, ...]], preloads: Iterable[str]
) -> bool:
    """The C++ runtime view goes in the RPATH when the process loads libstdc++/libgcc_s (or the
    interpreter preloads one) and the stdenv's copies define every version the process needs."""
    loads = bool(needs) or any(name in RUNTIME_SONAMES for name in preloads)
    return loads and not shortfall


def classify(
    conflicts: Sequence[Conflict],
    stdenv: StdenvInfo,
    provided: Mapping[str, tuple[str, ...] | None],
    shortfall: Mapping[str, tuple[str, ...]] | None = None,
    still_refused: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[tuple[Conflict, ...], tuple[Remaining, ...]]:
    """Split the conflicts into those the stdenv fixes and those that REMAIN, with the reason.

    ``provided`` maps a library name to the versions the stdenv's copy defines (None: the stdenv has
    no such file, or, for libstdc++/libgcc_s, its copy falls short by ``shortfall`` and is not used).
    A missing version is fixed when the stdenv's library defines it; a refusal beyond versions (DT_RELR,
    executable stack, ISA level, static TLS) when the stdenv's loader does not refuse it
    (``still_refused``: the (kind, object) pairs it does, from ``core.refusals.refused_under``).
    """
    fixed: list[Conflict] = []
    remaining: list[Remaining] = []
    for conflict in conflicts:
        if conflict.kind in REFUSAL_KINDS and conflict.severity == Severity.WARNING:
            continue  # what the scan's stdenv would refuse: the plan says it for its own (``warnings``)
        if conflict.kind in REFUSAL_KINDS:
            reason = _refusal_reason(conflict, stdenv, still_refused)
        else:
            reason = _remaining_reason(conflict, stdenv, provided, shortfall or {})
        if reason is None:
            fixed.append(conflict)
        else:
            remaining.append(Remaining(conflict, reason))
    return tuple(fixed), tuple(remaining)


def _remaining_reason(
    conflict: Conflict,
    stdenv: StdenvInfo,
    provided: Mapping[str, tuple[str, ...] | None],
    shortfall: Mapping[str, tuple[str, ...]],
) -> str | None:
    """Why the repatch leaves ``conflict`` (None: it fixes it); versions by ``unmet_versions``, the rule
    the scan's advice follows too."""
    library = conflict.library
    if conflict.version is not None and library is not None:
        unmet = unmet_versions(provided, library, (conflict.version,))
        if unmet is None and shortfall and library in RUNTIME_SONAMES:
            return f"{kept_runtime_words(shortfall)}: the package keeps its own {library}"
        if unmet is None:
            return f"the stdenv has no {library} to provide {conflict.version}"
        if not unmet:
            return None
        return _too_new_reason(conflict.version, library, provided.get(library) or (), stdenv)
    if conflict.kind in (Kind.NOT_FOUND,) and library is not None:
        if unmet_versions(provided, library, ()) is not None:
            return None
        return f"the stdenv has no {library} either"
    if conflict.kind in (Kind.WRONG_ELF, Kind.UNREADABLE):
        return "a file problem that relinking the interpreter does not change"
    return None


REFUSAL_KINDS = frozenset({Kind.DT_RELR, Kind.EXEC_STACK, Kind.ISA_LEVEL, Kind.STATIC_TLS, Kind.PAGE_SIZE})
_REFUSAL_HINTS = {
    Kind.DT_RELR: "relink it (see its fixes)",
    Kind.EXEC_STACK: "clear its executable-stack flag or rebuild it",
    Kind.ISA_LEVEL: "it was built for a CPU level this machine lacks",
    Kind.STATIC_TLS: "the static TLS surplus is the same; preload it or rebuild it",
    Kind.PAGE_SIZE: "the kernel's page size is the same; install a build aligned to 64 KiB",
}


def _refusal_reason(
    conflict: Conflict, stdenv: StdenvInfo, still_refused: frozenset[tuple[str, str]]
) -> str | None:
    if (str(conflict.kind), conflict.object) not in still_refused:
        return None
    loader = f"glibc {stdenv.version}" if stdenv.version else "the stdenv's glibc"
    return f"the loader of {loader} refuses it too ({conflict.kind}): {_REFUSAL_HINTS[conflict.kind]}"


def _too_new_reason(version: str, library: str, defines: tuple[str, ...], stdenv: StdenvInfo) -> str:
    family = VersionName.parse(version).family
    numbered = [VersionName.parse(name) for name in defines]
    top = max((name for name in numbered if name.family == family and name.number), default=None)
    has = f"its newest is {top}" if top is not None else f"it defines no {family} versions"
    where = f"glibc {stdenv.version}" if family == "GLIBC" and stdenv.version else "the stdenv"
    return f"needs {version} from {library}, newer than {where} provides ({has}); it needs a newer stdenv"


def old_glibc_dirs(glibc: GlibcInfo, real: Mapping[str, str] | None = None) -> frozenset[str]:
    """The directories of the old libc and loader, as found and (when given) as real paths."""
    dirs: set[str] = set()
    for path in (glibc.libc, glibc.loader):
        if path is None:
            continue
        dirs.add(os.path.normpath(os.path.dirname(path)))
        if real is not None and path in real:
            dirs.add(os.path.dirname(real[path]))
    return frozenset(dirs)


def dirs_with_other_libraries(graph: Any, glibc_dirs: frozenset[str]) -> frozenset[str]:
    """Old glibc dirs from which the graph also loaded non-glibc libraries (they must stay reachable)."""
    if graph is None:
        return frozenset()
    keep = set()
    for node in graph.nodes:
        name = str(node)
        directory = os.path.dirname(name)
        if directory in glibc_dirs and os.path.basename(name) not in GLIBC_SONAMES:
            keep.add(directory)
    return frozenset(keep)


@dataclass(frozen=True, slots=True)
class _Rewrite:
    """What every ELF patch of one plan shares: the new loader and how RPATH entries change."""

    loader: str
    first_dirs: tuple[str, ...]
    old_glibc_dirs: frozenset[str]
    keep_dirs: frozenset[str]
    old_root: str
    new_root: str


def make_plan(
    result: ScanLike,
    stdenv: StdenvInfo,
    survey: PackageSurvey,
    provided: Mapping[str, tuple[str, ...] | None],
    store_root: str,
    interpreter_relpath: str,
    glibc_dirs: frozenset[str] | None = None,
    *,
    view: GlibcView,
) -> FixPlan:
    """The plan, from facts only (pure): what ``fix`` will copy, patch, rewrite and report.

    ``provided`` maps a library name to the versions the view's copy defines (None: not in the view).
    """
    check_stdenv_not_older(result.glibc, stdenv)
    check_store_path(store_root)
    old_root = survey.root
    destination = destination_for(store_root, old_root, stdenv)
    dirs = glibc_dirs if glibc_dirs is not None else old_glibc_dirs(result.glibc)
    keep = dirs_with_other_libraries(result.graph, dirs)
    needs = runtime_needs(result.graph)
    shortfall = runtime_shortfall(needs, provided)
    provided = without_short_runtime(provided, shortfall)  # short: the package keeps its own
    runtime_dirs = (view.runtime_dir,) if view.runtime else ()
    preloads = needed_preloads(result.graph, stdenv, provided, old_root, dirs, runtime_dirs)
    uses_runtime = uses_runtime_view(needs, shortfall, preloads) and bool(view.runtime)
    rewrite = _Rewrite(stdenv.loader, view_dirs(view, uses_runtime), dirs, keep, old_root, destination)
    patches = _elf_patches(survey, rewrite, interpreter_relpath, preloads)
    still_refused, warnings = _loader_change(result, stdenv)
    fixes, remaining = classify(result.conflicts, stdenv, provided, shortfall, still_refused)
    return FixPlan(
        target=result.target,
        source_package=old_root,
        interpreter=interpreter_relpath,
        destination=destination,
        stdenv=stdenv,
        old_glibc=result.glibc,
        elf_patches=patches,
        text_rewrites=survey.texts,
        links=_link_retargets(survey, destination),
        fixes=fixes,
        remaining=remaining,
        view=view,
        notes=_notes(keep, patches, interpreter_relpath, shortfall),
        uses_runtime=uses_runtime,
        warnings=warnings,
    )


def _loader_change(
    result: ScanLike, stdenv: StdenvInfo
) -> tuple[frozenset[tuple[str, str]], tuple[Conflict, ...]]:
    """What the stdenv's loader refuses (so a repatch leaves it), and what it newly refuses (said as
    warnings before the fix: an extension that loads today and would not after it)."""
    from glibc_doctor.core.refusals import refused_under, setting_for, would_break

    if result.graph is None:
        return frozenset(), ()
    setting = setting_for(result.graph, result.glibc.version, stdenv.version)
    if setting.stdenv is None:
        return frozenset(), ()
    still = refused_under(result.graph, setting, setting.stdenv)
    return still, tuple(would_break(result.graph, setting)) if setting.release != setting.stdenv else ()


def _elf_patches(
    survey: PackageSurvey, rewrite: _Rewrite, interpreter_relpath: str, preloads: tuple[str, ...]
) -> tuple[ElfPatch, ...]:
    """One ElfPatch per ELF whose headers change; preloads go on the interpreter only."""
    patches = []
    for facts in survey.elves:
        relpath = os.path.relpath(facts.path, survey.root)
        add = preloads if relpath == interpreter_relpath else ()
        patch = _elf_patch(facts, relpath, rewrite, add)
        if patch is not None:
            patches.append(patch)
    return tuple(patches)


def _link_retargets(survey: PackageSurvey, destination: str) -> tuple[LinkRetarget, ...]:
    """Absolute symlinks into the old package, pointed into the copy (relative ones stay as they are)."""
    moved = [(link, _moved(link.target, survey.root, destination)) for link in survey.symlinks]
    return tuple(
        LinkRetarget(link.relpath, link.target, new)
        for link, new in moved
        if os.path.isabs(link.target) and new != link.target
    )


def _notes(
    keep: frozenset[str],
    patches: tuple[ElfPatch, ...],
    interpreter_relpath: str,
    shortfall: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    notes = [
        f"{d} also holds other libraries the process loads; it stays last in RPATH" for d in sorted(keep)
    ]
    added = [name for patch in patches if patch.relpath == interpreter_relpath for name in patch.add_needed]
    if added:
        notes.append(
            "added DT_NEEDED (RUNPATH lookups cannot see the interpreter's RPATH): " + ", ".join(added)
        )
    for name, versions in sorted(shortfall.items()):
        lacks = ", ".join(versions) if versions else "the library"
        notes.append(f"the stdenv's {name} lacks {lacks} that the process needs: the package keeps its own")
    return tuple(notes)


def _elf_patch(
    facts: ElfFacts, relpath: str, rewrite: _Rewrite, add_needed: tuple[str, ...]
) -> ElfPatch | None:
    rpath = new_rpath(
        facts,
        rewrite.first_dirs,
        rewrite.old_glibc_dirs,
        rewrite.keep_dirs,
        rewrite.old_root,
        rewrite.new_root,
    )
    loader = rewrite.loader
    interpreter = loader if facts.interpreter is not None and facts.interpreter != loader else None
    add = tuple(name for name in add_needed if name not in facts.needed)
    if interpreter is None and not add and facts.rpath == rpath and not facts.runpath:
        return None
    return ElfPatch(relpath, facts.interpreter, interpreter, facts.rpath, facts.runpath, rpath, add)


# --- reading the facts (the only impure part) -----------------------------------------------------

TEXT_LIMIT = 4 * 1024 * 1024


def survey_package(root: str) -> PackageSurvey:
    """Walk the package: every dynamic ELF (libraries by name, and executables), text files naming
    the package path, and absolute symlinks. Symlinked directories are not followed."""
    from glibc_doctor.core.elf import is_library_name, read_elf

    elves: list[ElfFacts] = []
    texts: list[TextFile] = []
    links: list[Symlink] = []
    needle = root.encode()
    for directory, subdirs, files in os.walk(root):
        for name in sorted(files) + sorted(d for d in subdirs if os.path.islink(os.path.join(directory, d))):
            path = os.path.join(directory, name)
            relpath = os.path.relpath(path, root)
            if os.path.islink(path):
                links.append(Symlink(relpath, os.readlink(path)))
                continue
            in_bin = os.path.basename(directory) in EXECUTABLE_DIRS
            if is_library_name(name) or in_bin or os.access(path, os.X_OK):
                facts = read_elf(path)
                if facts.ok:
                    if facts.is_dynamic:
                        elves.append(facts)
                    continue
            kind = _text_kind(path, name, in_bin, needle)
            if kind is not None:
                texts.append(TextFile(relpath, kind))
        subdirs.sort()
    return PackageSurvey(root, tuple(elves), tuple(texts), tuple(links))


def _text_kind(path: str, name: str, in_bin: bool, needle: bytes) -> str | None:
    """The kind of a text file that holds the package path, or None (binary, big, or no mention)."""
    try:
        if os.path.getsize(path) > TEXT_LIMIT:
            return None
        data = Path(path).read_bytes()
    except OSError:
        return None
    if needle not in data or b"\0" in data[:8192] or data.startswith(b"\x7fELF"):
        return None
    if data.startswith(b"#!"):
        return "shebang"
    if name.startswith("_sysconfigdata"):
        return "sysconfigdata"
    if name.endswith(".pc"):
        return "pkg-config"
    if name == "rbconfig.rb":
        return "rbconfig"
    return "text"


def plan_fix(result: ScanLike, stdenv: StdenvInfo, store_root: str | None = None) -> FixPlan:
    """Survey the interpreter's package, the stdenv and its glibc view, then decide (``make_plan``).

    ``store_root`` defaults to the store of ``core/store.py`` ($XDG_DATA_HOME/glibc-doctor).
    """
    if store_root is None:
        from glibc_doctor.core.store import data_dir

        store_root = str(data_dir())
    executable = os.path.realpath(result.target.executable)
    root = package_root(executable)
    check_stdenv_not_older(result.glibc, stdenv)
    survey = survey_package(root)
    view = survey_view(stdenv, store_root)
    libraries = {c.library for c in result.conflicts if c.library} | set(RUNTIME_SONAMES) | GLIBC_SONAMES
    provided = view_provides(view, libraries)
    real = {p: os.path.realpath(p) for p in (result.glibc.libc, result.glibc.loader) if p is not None}
    dirs = old_glibc_dirs(result.glibc, real)
    relpath = os.path.relpath(executable, root)
    return make_plan(result, stdenv, survey, provided, store_root, relpath, dirs, view=view)
