"""The search of one target's own ld.so, modelled from the ld.so file without running it.

Which file a DT_NEEDED name maps to depends on the loader that runs the process, not on the host: a
Nix glibc has its own default directories and cache, a Debian one puts ``$LIB`` at
``lib/x86_64-linux-gnu``, glibc 2.33 added ``glibc-hwcaps`` subdirectories and 2.37 dropped the legacy
``tls``/``haswell`` ones. :func:`loader_config` reads those facts from the ld.so binary (its compiled-in
strings) and the CPU flags; :class:`Loader` then follows glibc's ``_dl_map_object`` step by step
(``../shared/LOADER.md``, ``elf/dl-load.c``) and says how each answer was reached.
"""

from __future__ import annotations

import copy
import errno
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from stat import S_ISREG
from typing import TYPE_CHECKING, Final

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.ldcache import LdCache, default_cache_id, read_ld_cache
from glibc_doctor.core.model import (
    DF_1_NODEFLIB,
    EM_386,
    EM_AARCH64,
    EM_X86_64,
    ElfFacts,
    Rejected,
    Resolution,
    Via,
)
from glibc_doctor.core.open_verify import Verdict, errno_words, verify_candidate
from glibc_doctor.core.sysroot import Sysroot, host_path

if TYPE_CHECKING:
    from glibc_doctor.core.lookups import SharedLookups

ElfReader = Callable[[str], ElfFacts]

SYSTEM_LOADERS = {
    (64, EM_X86_64): "/lib64/ld-linux-x86-64.so.2",
    (32, EM_386): "/lib/ld-linux.so.2",
    (64, EM_AARCH64): "/lib/ld-linux-aarch64.so.1",
}
# A real ld.so is 0.2-2 MB (unstripped); its strings sit in .rodata, near the start. The cap bounds the
# work on a hostile PT_INTERP file (a run of millions of fake directories took 17 s at 64 MB).
_MAX_LOADER_BYTES = 8 * 1024 * 1024
_SYSTEM_DIRS_RUN = re.compile(rb"(?<=\0)(?:/[\x21-\x7e]{0,4095}?/\0){1,64}")
_LOADER_NAME = re.compile(r"^ld(-linux[-\w.]*)?\.so(\.\d+)*$|^ld-\d+\.\d+\.so$")

# x86-64 ISA levels as glibc's sysdeps/x86/get-isa-level.h defines them, in /proc/cpuinfo words
# ("pni" is SSE3, "abm" is LZCNT). Each level also needs the one below it.
_ISA_LEVELS = (
    ("x86-64-v2", ("cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3")),
    ("x86-64-v3", ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    ("x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
)


@dataclass(frozen=True, slots=True)
class LoaderConfig:
    """What one ld.so does when it searches, as far as the file and the environment tell.

    ``default_dirs`` are its compiled-in system directories in order (no trailing slash);
    ``hwcaps`` the subdirectories it tries first inside every directory, best first
    (``glibc-hwcaps/x86-64-v3`` …, then legacy ``tls/x86_64`` … before glibc 2.37);
    ``ld_library_path``/``preload`` the environment's entries as ld.so splits them.
    ``notes`` says what was assumed (no PT_INTERP, loader missing, release unknown).
    ``root`` is the directory the process sees as ``/`` (``scan --root``): every path here is a path
    inside it, and the Loader opens files through it.
    """

    path: str
    default_dirs: tuple[str, ...]
    cache_path: str | None
    lib: str
    platform: str
    hwcaps: tuple[str, ...] = ()
    ld_library_path: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    preload_from: tuple[str, ...] = ()  # per preload: "LD_PRELOAD" or the ld.so.preload file
    release: str | None = None
    elf_class: int = 64
    machine: int = EM_X86_64
    notes: tuple[str, ...] = ()
    root: Sysroot | None = None

    def host(self, path: str) -> str:
        """The file on this machine for a path of this loader's process (itself outside a root)."""
        return host_path(self.root, path)

    @property
    def glibc_hwcaps(self) -> tuple[str, ...]:
        """The ``glibc-hwcaps`` subdirectory names alone (``x86-64-v3``), best first: the cache's key."""
        prefix = "glibc-hwcaps/"
        return tuple(sub[len(prefix) :] for sub in self.hwcaps if sub.startswith(prefix))


# --- reading the ld.so file -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LoaderFile:
    """What the ld.so binary says about itself (compiled-in strings and ELF header)."""

    system_dirs: tuple[str, ...]
    cache_path: str | None
    lib: str | None
    release: str | None
    elf_class: int
    machine: int
    glibc_hwcaps: bool  # knows glibc-hwcaps subdirectories (2.33+)
    legacy_hwcaps: bool  # still searches tls/ and platform subdirectories (before 2.37)
    intel_platforms: bool  # overrides $PLATFORM with haswell/xeon_phi on Intel CPUs
    preload_file: str | None


def loader_config(
    interpreter: str, env: Mapping[str, str] | None = None, root: Sysroot | None = None
) -> LoaderConfig:
    """The search configuration of the ld.so that runs ``interpreter`` (its PT_INTERP).

    ``interpreter`` may also be an ld.so itself. Without a PT_INTERP, or when that file is missing,
    the system loader of the interpreter's class and machine stands in, and ``notes`` says so. Under
    ``root`` every path (``interpreter``, PT_INTERP, the cache and preload files) is inside it.
    """
    environ = os.environ if env is None else env
    loader, notes, program = _pick_loader(interpreter, root)
    info = _read_loader(host_path(root, loader))
    if info is None:
        notes.append(f"cannot read the loader {loader}; assuming a Debian-style ld.so")
        info = _assumed_loader(program)
    if info.release is None:
        notes.append(f"glibc release of {loader} unknown; hwcaps support read from its strings")
    platform, hwcap_names = _platform(info)
    if info.machine == EM_AARCH64 and info.legacy_hwcaps and not aarch64_features()[1]:
        notes.append(
            "the aarch64 CPU is assumed to have LSE atomics (ARMv8.1+): the legacy 'atomics' hwcap "
            f"subdirectories are searched, as {loader} does on such a CPU"
        )
    preload, preload_from = _preloads(environ.get("LD_PRELOAD", ""), info.preload_file, root)
    return LoaderConfig(
        path=loader,
        default_dirs=info.system_dirs,
        cache_path=info.cache_path,
        lib=info.lib or (info.system_dirs[0].strip("/") if info.system_dirs else "lib"),
        platform=platform,
        hwcaps=_hwcaps_subdirs(info, platform, hwcap_names),
        ld_library_path=_split_path_list(environ.get("LD_LIBRARY_PATH", "")),
        preload=preload,
        preload_from=preload_from,
        release=info.release,
        elf_class=info.elf_class,
        machine=info.machine,
        notes=tuple(notes),
        root=root,
    )


def _pick_loader(interpreter: str, root: Sysroot | None = None) -> tuple[str, list[str], ElfFacts]:
    facts = read_elf(host_path(root, interpreter))
    if facts.interpreter:
        if os.path.exists(host_path(root, facts.interpreter)):
            return facts.interpreter, [], facts
        fallback = _system_loader(facts)
        return (
            fallback,
            [f"PT_INTERP {facts.interpreter} of {interpreter} is missing; using {fallback}"],
            facts,
        )
    if facts.ok and _LOADER_NAME.match(os.path.basename(facts.soname or interpreter)):
        return interpreter, [], facts
    fallback = _system_loader(facts)
    return fallback, [f"{interpreter} has no PT_INTERP; using the system loader {fallback}"], facts


def _assumed_loader(program: ElfFacts) -> _LoaderFile:
    """A Debian-style loader of the program's class and machine, when no ld.so file can be read."""
    elf_class = program.elf_class or 64
    machine = program.machine or EM_X86_64
    triplet = {EM_X86_64: "x86_64-linux-gnu", EM_386: "i386-linux-gnu", EM_AARCH64: "aarch64-linux-gnu"}
    lib = f"lib/{triplet.get(machine, 'x86_64-linux-gnu')}"
    dirs = (f"/{lib}", f"/usr/{lib}", "/lib", "/usr/lib")
    return _LoaderFile(dirs, "/etc/ld.so.cache", lib, None, elf_class, machine, True, False, False, None)


def _system_loader(facts: ElfFacts) -> str:
    return SYSTEM_LOADERS.get((facts.elf_class, facts.machine), SYSTEM_LOADERS[(64, EM_X86_64)])


def _read_loader(path: str) -> _LoaderFile | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    return _read_loader_cached(os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _read_loader_cached(real: str, _ino: int, _size: int, _mtime: int) -> _LoaderFile | None:
    try:
        with open(real, "rb") as handle:
            data = handle.read(_MAX_LOADER_BYTES)
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or len(data) < 20:
        return None
    elf_class = 64 if data[4] == 2 else 32
    machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
    release = _release(data, real)
    new_enough = _at_least(release, (2, 33))
    return _LoaderFile(
        system_dirs=_system_dirs(data),
        cache_path=_string_ending(data, b"ld.so.cache"),
        lib=_dst_lib(data),
        release=release,
        elf_class=elf_class,
        machine=machine,
        glibc_hwcaps=new_enough if release else b"x86-64-v2" in data or b"glibc-hwcaps" in data,
        legacy_hwcaps=not _at_least(release, (2, 37)) if release else b"\0tls\0" in data,
        intel_platforms=b"\0haswell\0" in data,
        preload_file=_string_ending(data, b"ld.so.preload"),
    )


def _release(data: bytes, real: str) -> str | None:
    """The glibc release: ld.so's own version line, its file name (ld-2.31.so), or a glibc-X.Y dir."""
    match = re.search(rb"release version (\d+\.\d+)", data)
    if match:
        return match.group(1).decode()
    for pattern in (r"^ld-(\d+\.\d+)\.so$", r"glibc-(\d+\.\d+)"):
        for part in reversed(real.split("/")):
            found = re.search(pattern, part)
            if found:
                return found.group(1)
    libc = os.path.join(os.path.dirname(real), "libc.so.6")
    try:
        if not S_ISREG(os.stat(libc).st_mode):
            return None
        with open(libc, "rb") as handle:
            found_bytes = re.search(rb"release version (\d+\.\d+)", handle.read(8 * 1024 * 1024))
    except OSError:
        return None
    return found_bytes.group(1).decode() if found_bytes else None


def _at_least(release: str | None, wanted: tuple[int, int]) -> bool:
    if release is None:
        return False
    major, minor = (int(part) for part in release.split(".")[:2])
    return (major, minor) >= wanted


def _system_dirs(data: bytes) -> tuple[str, ...]:
    """glibc's SYSTEM_DIRS: one run of NUL-separated absolute directories ending in ``/``.

    gen-trusted-dirs.awk writes them as a single string (``"/lib/x86_64-linux-gnu/\\0/usr/lib/…"``);
    the longest such run whose entries name a lib directory is taken.
    """
    best: tuple[str, ...] = ()
    for match in _SYSTEM_DIRS_RUN.finditer(data):
        dirs = tuple(part.decode() for part in match.group().split(b"\0") if part)
        if all("lib" in entry for entry in dirs) and len(dirs) > len(best):
            best = dirs
    return tuple(_strip_slashes(entry) for entry in best)


def _strip_slashes(directory: str) -> str:
    stripped = directory.rstrip("/")
    return stripped or "/"


def _string_ending(data: bytes, suffix: bytes) -> str | None:
    match = re.search(rb"(?<=\0)/[\x21-\x7e]*" + re.escape(suffix) + rb"(?=\0)", data)
    return match.group().decode() if match else None


def _dst_lib(data: bytes) -> str | None:
    """DL_DST_LIB, stored right after the DST names ``ORIGIN``, ``PLATFORM``, ``LIB`` in .rodata."""
    match = re.search(rb"ORIGIN\0PLATFORM\0LIB\0([\x21-\x7e]+)\0", data)
    return match.group(1).decode() if match else None


# --- CPU: $PLATFORM and hwcaps subdirectories --------------------------------------------------------


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in /proc/cpuinfo, and its vendor as ``vendor:<id>``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return frozenset()
    flags = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    words = set(flags.group(1).split()) if flags else set()
    if vendor:
        words.add("vendor:" + vendor.group(1))
    return frozenset(words)


def x86_isa_levels(flags: frozenset[str]) -> tuple[str, ...]:
    """The x86-64 levels this CPU supports, best first (each level needs the lower ones)."""
    supported: list[str] = []
    for level, needed in _ISA_LEVELS:
        if not all(flag in flags for flag in needed):
            break
        supported.insert(0, level)
    return tuple(supported)


def aarch64_features() -> tuple[frozenset[str], bool]:
    """The aarch64 CPU's hwcap words (``Features`` of /proc/cpuinfo) and whether they were read.

    On another architecture (an arm64 image or store scanned from an x86-64 machine) the CPU that will
    run the program is unknown: an ARMv8.1+ one with LSE ``atomics`` is assumed, as every current arm64
    server and qemu's default CPU have (the caller notes the assumption).
    """
    if os.uname().machine != "aarch64":
        return frozenset({"atomics"}), False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return frozenset({"atomics"}), False
    features = re.search(r"^Features\s*:(.*)$", text, re.MULTILINE)
    return (frozenset(features.group(1).split()), True) if features else (frozenset({"atomics"}), False)


def _platform(info: _LoaderFile) -> tuple[str, tuple[str, ...]]:
    """$PLATFORM (AT_PLATFORM, or glibc's Intel override) and the legacy hwcap names, as ld.so sets them.

    glibc's x86 cpu_features sets ``haswell``/``xeon_phi`` and the ``avx512_1`` hwcap on Intel only;
    an i386 ld.so sets ``i686`` (``i586`` on a CPU without CMOV) and the ``sse2`` hwcap, whatever the
    kernel's AT_PLATFORM. An aarch64 kernel's AT_PLATFORM is ``aarch64``, and the one hwcap its loader
    counts (``HWCAP_IMPORTANT``) is ``atomics``.
    """
    if info.machine == EM_AARCH64:
        return "aarch64", ("atomics",) if "atomics" in aarch64_features()[0] else ()
    if info.machine == EM_386:
        flags = cpu_flags()
        platform = "i686" if "cmov" in flags or not flags else "i586" if "cx8" in flags else "i386"
        return platform, ("sse2",) if "sse2" in flags or not flags else ()
    if info.machine != EM_X86_64:
        return os.uname().machine, ()
    flags = cpu_flags()
    names = ["x86_64"]
    platform = "x86_64"
    if info.intel_platforms and "vendor:GenuineIntel" in flags:
        if {"avx512f", "avx512cd"} <= flags:
            if {"avx512er", "avx512pf"} <= flags:
                platform = "xeon_phi"
            elif {"avx512bw", "avx512dq", "avx512vl"} <= flags:
                names.append("avx512_1")
        haswell = {"avx2", "bmi1", "bmi2", "abm", "movbe", "popcnt"}
        if platform == "x86_64" and haswell <= flags:
            platform = "haswell"
    return platform, tuple(names)


def _hwcaps_subdirs(info: _LoaderFile, platform: str, hwcap_names: tuple[str, ...]) -> tuple[str, ...]:
    """Subdirectories tried before each directory itself, in ld.so's order.

    glibc-hwcaps subdirectories exist for x86-64 only among the machines modelled (an aarch64 ld.so
    2.33+ prints "No subdirectories of glibc-hwcaps directories are searched"); the legacy ``tls``,
    platform and hwcap subdirectories are searched by every loader before 2.37.
    """
    subdirs: list[str] = []
    if info.glibc_hwcaps and info.machine == EM_X86_64:
        subdirs += [f"glibc-hwcaps/{level}" for level in x86_isa_levels(cpu_flags())]
    if info.legacy_hwcaps:
        subdirs += _legacy_subdirs(["tls", platform, *reversed(hwcap_names)])
    return tuple(dict.fromkeys(subdirs))


def _legacy_subdirs(parts: list[str]) -> list[str]:
    """Every non-empty combination of ``parts`` in glibc's ``_dl_important_hwcaps`` order.

    The first part is the most significant bit of a counter that runs down from all-set, so the
    order is ``tls/P/H``, ``tls/P``, ``tls/H``, ``tls``, ``P/H``, ``P``, ``H``.
    """
    count = len(parts)
    combos = []
    for mask in range((1 << count) - 1, 0, -1):
        chosen = [parts[i] for i in range(count) if mask & (1 << (count - 1 - i))]
        combos.append("/".join(chosen))
    return combos


# --- the environment ---------------------------------------------------------------------------------


def _split_path_list(value: str) -> tuple[str, ...]:
    """LD_LIBRARY_PATH as ld.so splits it: on ``:`` and ``;``, empty entries kept (they mean cwd)."""
    if not value:
        return ()
    return tuple(re.split(r"[:;]", value))


def _preloads(
    value: str, preload_file: str | None, root: Sysroot | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """LD_PRELOAD (split on spaces and colons), then the loader's ld.so.preload file; and where each
    name came from (``LD_PRELOAD`` or the file), the words ld.so uses when it cannot preload one."""
    names = [name for name in re.split(r"[ :]", value) if name]
    sources = ["LD_PRELOAD"] * len(names)
    if preload_file:
        try:
            if not S_ISREG(os.stat(host_path(root, preload_file)).st_mode):
                raise OSError("not a regular file")
            with open(host_path(root, preload_file), encoding="utf-8", errors="replace") as handle:
                listed = [name for name in re.split(r"[\s:]", handle.read()) if name]
        except OSError:
            listed = []
        names += listed
        sources += [preload_file] * len(listed)
    return tuple(names), tuple(sources)


# --- the search ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PathList:
    """Directories of one search step, expanded, with where they came from for ``detail``."""

    via: Via
    owner: str  # "RPATH of /x/python3.9", "LD_LIBRARY_PATH", …
    dirs: tuple[tuple[str, str], ...]  # (expanded directory, entry as written)


# What decides where a search ends and in which words it fails: the name, DF_1_NODEFLIB of the requester,
# the search path's steps, and whether the process is starting (ld.so's errno words differ from dlopen's).
_SearchKey = tuple[str, bool, tuple[_PathList, ...], bool]


def _hit(
    name: str,
    requester: ElfFacts,
    path: str,
    via: Via,
    detail: str,
    searched: Sequence[str],
    rejected: Sequence[Rejected],
) -> Resolution:
    return Resolution(name, requester.path, path, via, detail, tuple(searched), tuple(rejected))


class _Stop(Exception):
    """ld.so gave up the search on a candidate it could not read (``invalid ELF header``)."""

    def __init__(self, candidate: str, reason: str) -> None:
        super().__init__(reason)
        self.candidate = candidate
        self.reason = reason


class _EndPath(_Stop):
    """A candidate's open failed oddly (a symlink loop): ld.so drops the rest of that search path."""


class Loader:
    """One process namespace of the modelled ld.so: the objects loaded so far and the search.

    ``mark_loaded`` records an object (its load name and DT_SONAME then satisfy later requests, as
    the file's dev/inode does); ``resolve`` answers one request. ``reader`` reads ELF facts
    (``core.elf.read_elf``, cached); directory listings are cached per Loader so a large closure costs
    one ``scandir`` per directory instead of one ``open`` per candidate.
    """

    def __init__(
        self,
        config: LoaderConfig,
        reader: ElfReader = read_elf,
        cwd: str | None = None,
        shared: SharedLookups | None = None,
    ) -> None:
        self.config = config
        self.startup = True  # requests at process start (ld.so's own errno words), not from dlopen()
        self._reader = shared.read_elf if shared is not None else reader
        self._root = config.root
        self._cwd = (
            shared.cwd if shared is not None else cwd or ("/" if config.root is not None else os.getcwd())
        )
        self._cache: LdCache | None = _ld_cache(config.host(config.cache_path)) if config.cache_path else None
        self._cache_id = default_cache_id(config.elf_class, config.machine)
        self._hwcaps = config.glibc_hwcaps
        self._listings: dict[str, frozenset[str] | None] = shared.listings if shared is not None else {}
        # Where a name is found depends only on the name, the search path and the files, not on what
        # is loaded: answers are kept per search path (and shared by simulations of one snapshot).
        self._searches: dict[object, Resolution] = shared.searches(config) if shared is not None else {}
        self._inode = shared.inode if shared is not None else _inode
        self._names: dict[str, str] = {}
        self._inodes: dict[tuple[int, int], str] = {}
        self._loaded: dict[str, ElfFacts] = {}
        self.main: ElfFacts | None = None
        self._main_path: str | None = None  # the main program of the request being answered

    # -- the namespace --

    def mark_loaded(self, path: str, facts: ElfFacts, name: str | None = None) -> None:
        """Record ``facts`` as loaded from ``path`` (the first call records the main program)."""
        if self.main is None:
            self.main = facts
        self._loaded[path] = facts
        for key in (path, facts.soname, name):
            if key:
                self._names.setdefault(key, path)
        inode = self._inode(self._absolute(path))
        if inode is not None:
            self._inodes.setdefault(inode, path)

    def mapped_facts(self, path: str) -> ElfFacts | None:
        """The facts of the object at ``path`` (as found) when it is in the namespace."""
        return self._loaded.get(path)

    def forget(self, paths: Iterable[str]) -> None:
        """Take objects out of the namespace again (a failed dlopen() unmaps what it mapped)."""
        gone = set(paths)
        for path in gone:
            self._loaded.pop(path, None)
        self._names = {key: path for key, path in self._names.items() if path not in gone}
        self._inodes = {key: path for key, path in self._inodes.items() if path not in gone}

    def fork(self) -> Loader:
        """A copy of this namespace to load into without changing this one (shares the dir cache)."""
        twin = copy.copy(self)
        twin._names = dict(self._names)
        twin._inodes = dict(self._inodes)
        twin._loaded = dict(self._loaded)
        return twin

    def loaded(self, name: str) -> str | None:
        """The path of the loaded object a request for ``name`` would reuse, if any."""
        return self._names.get(name)

    @property
    def cache(self) -> LdCache | None:
        return self._cache

    # -- one request --

    def resolve(
        self, name: str, requester: ElfFacts, chain: Sequence[ElfFacts] = (), *, reuse: bool = True
    ) -> Resolution:
        """Where ld.so finds ``name`` requested by ``requester`` (a DT_NEEDED entry or a dlopen name).

        ``chain`` runs from the requester up its loaders to the main program (``requester`` first or
        not, either is fine). ``reuse=False`` ignores the namespace: what this request would find on
        its own (strict mode).
        """
        if reuse and name in self._names:
            return self._reused(name, requester, self._names[name], f"{name} is already loaded")
        objects = self._chain(requester, chain)
        self._main_path = (self.main or objects[-1]).path
        expanded = self._expand(name, requester) if "$" in name else name
        if expanded is None:
            return Resolution(name, requester.path, None, Via.NOT_FOUND, f"cannot expand {name}")
        if "/" in expanded:
            return self._open_path(name, expanded, requester, reuse)
        return self._search(name, requester, objects, reuse)

    def _reused(self, name: str, requester: ElfFacts, path: str, why: str) -> Resolution:
        return Resolution(name, requester.path, path, Via.LOADED, f"{why} as {path}")

    def _chain(self, requester: ElfFacts, chain: Sequence[ElfFacts]) -> tuple[ElfFacts, ...]:
        objects = list(chain)
        if not objects or objects[0].path != requester.path:
            objects.insert(0, requester)
        return tuple(objects)

    def _open_path(self, name: str, path: str, requester: ElfFacts, reuse: bool) -> Resolution:
        """A name with a slash: opened as it is (relative to the current directory when relative)."""
        if reuse and path in self._names:
            return self._reused(name, requester, self._names[path], f"{path} is already loaded")
        try:
            facts = self._check(path, self._candidate_facts(path))
        except _EndPath as failed:
            rejected = (Rejected(failed.candidate, failed.reason),)
            detail = f"{name}: cannot open shared object file: {failed.reason}"
            return Resolution(name, requester.path, None, Via.NOT_FOUND, detail, (), rejected)
        except _Stop as stop:
            rejected = (Rejected(stop.candidate, stop.reason, stops=True),)
            detail = f"{stop.candidate}: {stop.reason}"
            return Resolution(name, requester.path, None, Via.NOT_FOUND, detail, (), rejected)
        if facts is None or isinstance(facts, Rejected):
            rejected_path = (facts,) if facts else ()
            return Resolution(
                name,
                requester.path,
                None,
                Via.NOT_FOUND,
                self._unopened_detail(name, facts),
                (),
                rejected_path,
            )
        return self._found(name, requester, path, Via.PATH, f"opened as a path: {path}", (), (), reuse)

    def _unopened_detail(self, name: str, rejected: Rejected | None) -> str:
        """ld.so's words for a name with a slash it did not open: the other class, the errno of the open
        (no access), or "no such file" (nothing there, another machine)."""
        reason = rejected.reason if rejected is not None else ""
        if reason.startswith("wrong ELF class"):
            return f"{name}: wrong ELF class: {self._other_class}"
        if reason.startswith("not a regular file"):
            return f"{name}: {reason}"  # ld.so would wait on a FIFO forever: no words of its own
        if not reason or reason.startswith("wrong machine"):
            reason = errno_words(errno.ENOENT, startup=self.startup)
        return f"{name}: cannot open shared object file: {reason}"

    @property
    def _other_class(self) -> str:
        """How ld.so names a skipped file of the other class: always the class it is not."""
        return "ELFCLASS32" if self.config.elf_class == 64 else "ELFCLASS64"

    def _search(self, name: str, requester: ElfFacts, chain: tuple[ElfFacts, ...], reuse: bool) -> Resolution:
        """The file the search path finds (kept per search path), then ld.so's dev/inode reuse."""
        steps = tuple(self._path_lists(requester, chain))
        key: _SearchKey = (name, bool(requester.flags_1 & DF_1_NODEFLIB), steps, self.startup)
        located = self._searches.get(key)
        if located is None:
            located = self._searches[key] = self._locate(name, requester, steps)
        if located.path is None:
            return (
                located if located.requester == requester.path else replace(located, requester=requester.path)
            )
        return self._found(
            name,
            requester,
            located.path,
            located.via,
            located.detail,
            located.searched,
            located.rejected,
            reuse,
        )

    def _locate(self, name: str, requester: ElfFacts, steps: Sequence[_PathList]) -> Resolution:
        """Search ``steps``, the cache and the default directories; the first usable candidate wins."""
        searched: list[str] = []
        rejected: list[Rejected] = []
        try:
            for step in steps:
                found = self._try_path(step.dirs, step.owner, name, searched, rejected)
                if found is not None:
                    detail = f"{step.owner}: {found[1]}"
                    return _hit(name, requester, found[0], step.via, detail, searched, rejected)
            hit = self._try_cache(name, requester, rejected)
            if hit is not None:
                detail = f"{self.config.cache_path}: {name} => {hit}"
                return _hit(name, requester, hit, Via.CACHE, detail, searched, rejected)
            if not requester.flags_1 & DF_1_NODEFLIB:
                defaults = tuple((directory, directory) for directory in self.config.default_dirs)
                owner = f"the default directories of {self.config.path}"
                found = self._try_path(defaults, owner, name, searched, rejected)
                if found is not None:
                    detail = f"default directory of {self.config.path}: {found[1]}"
                    return _hit(name, requester, found[0], Via.DEFAULT, detail, searched, rejected)
        except _Stop as stop:
            rejected.append(Rejected(stop.candidate, stop.reason, stops=True))
            detail = f"{stop.candidate}: {stop.reason}"
            return Resolution(
                name, requester.path, None, Via.NOT_FOUND, detail, tuple(searched), tuple(rejected)
            )
        return Resolution(
            name, requester.path, None, Via.NOT_FOUND, self._not_found_detail(name, rejected),
            tuple(searched), tuple(rejected),
        )  # fmt: skip

    def _not_found_detail(self, name: str, rejected: list[Rejected]) -> str:
        if any(item.reason.startswith("wrong ELF class") for item in rejected):
            return f"{name}: wrong ELF class: {self._other_class}"
        return f"{name}: cannot open shared object file: No such file or directory"

    def _found(
        self,
        name: str,
        requester: ElfFacts,
        path: str,
        via: Via,
        detail: str,
        searched: Sequence[str],
        rejected: Sequence[Rejected],
        reuse: bool,
    ) -> Resolution:
        """A file was opened; ld.so still reuses a loaded object with the same dev/inode.

        Without ``reuse`` (strict mode) the answer keeps how it was found but names the loaded object
        when it is the very same file, so one file never becomes two nodes.
        """
        inode = self._inode(self._absolute(path))
        same = self._inodes.get(inode) if inode is not None else None
        if same is not None:
            if same != path:
                detail = f"{path} is the same file as the loaded {same} ({detail})"
            via = Via.LOADED if reuse else via
            path = same
        return Resolution(name, requester.path, path, via, detail, tuple(searched), tuple(rejected))

    # -- the search path --

    def _path_lists(self, requester: ElfFacts, chain: tuple[ElfFacts, ...]) -> list[_PathList]:
        """RPATH chain (unless the requester has RUNPATH), LD_LIBRARY_PATH, the requester's RUNPATH."""
        lists: list[_PathList] = []
        main = self.main or chain[-1]
        if requester.runpath is None:
            did_main = False
            for obj in chain:
                step = self._tag_list(obj, obj.rpath, Via.RPATH, "RPATH")
                if step is not None:
                    lists.append(step)
                    did_main |= obj.path == main.path
            if not did_main:
                step = self._tag_list(main, main.rpath, Via.RPATH, "RPATH")
                if step is not None:
                    lists.append(step)
        if self.config.ld_library_path:
            dirs = self._dirs(self.config.ld_library_path, main)
            if dirs:
                lists.append(_PathList(Via.LD_LIBRARY_PATH, "LD_LIBRARY_PATH", dirs))
        step = self._tag_list(requester, requester.runpath, Via.RUNPATH, "RUNPATH")
        if step is not None:
            lists.append(step)
        return lists

    def _tag_list(self, obj: ElfFacts, value: str | None, via: Via, tag: str) -> _PathList | None:
        """An object's DT_RPATH or DT_RUNPATH; an RPATH beside a RUNPATH is ignored, as ld.so drops it."""
        if not value or (via is Via.RPATH and obj.runpath is not None):
            return None
        dirs = self._dirs(tuple(value.split(":")), obj)
        return _PathList(via, f"{tag} of {obj.path}", dirs) if dirs else None

    def _dirs(self, entries: Sequence[str], owner: ElfFacts) -> tuple[tuple[str, str], ...]:
        """Entries expanded like ld.so's ``fillin_rpath``: DSTs, trailing slashes, duplicates, cwd."""
        result: dict[str, str] = {}
        for entry in entries:
            if entry == "":
                result.setdefault("", entry)  # the current directory: names are opened relative
                continue
            expanded = self._expand(entry, owner) if "$" in entry else entry
            if not expanded:
                continue
            result.setdefault(_strip_slashes(expanded), entry)
        return tuple(result.items())

    def _expand(self, text: str, owner: ElfFacts) -> str | None:
        """Replace $ORIGIN, $LIB, $PLATFORM (and the ``${…}`` forms); None when one has no value."""
        out: list[str] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char != "$":
                out.append(char)
                index += 1
                continue
            token, length = _dst_at(text, index + 1)
            if token is None:
                out.append("$")
                index += 1
                continue
            value = self._dst_value(token, owner)
            if value is None:
                return None
            out.append(value)
            index += 1 + length
        return "".join(out)

    def _dst_value(self, token: str, owner: ElfFacts) -> str | None:
        if token == "PLATFORM":
            return self.config.platform
        if token == "LIB":
            return self.config.lib
        return self._origin(owner)

    def _origin(self, obj: ElfFacts) -> str | None:
        """$ORIGIN: the directory of the object as found; for the main program /proc/self/exe's."""
        path = obj.path
        if not path:
            return None
        if path == self._main_path:
            path = self._root.realpath(path) if self._root is not None else os.path.realpath(path)
        elif not path.startswith("/"):
            path = os.path.join(self._cwd, path)
        directory = path.rsplit("/", 1)[0]
        return directory or "/"

    # -- trying candidates --

    def _try_path(
        self,
        dirs: Sequence[tuple[str, str]],
        owner: str,
        name: str,
        searched: list[str],
        rejected: list[Rejected],
    ) -> tuple[str, str] | None:
        """One search path (an RPATH, LD_LIBRARY_PATH, a RUNPATH, the default dirs): (hit, where) or None.

        A candidate whose open fails with anything but "no such file" or "permission denied" (a
        symlink loop) ends this search path, as ld.so's ``open_path`` returns on such an errno.
        """
        for directory, entry in dirs:
            try:
                hit = self._try_dir(directory, name, searched, rejected)
            except _EndPath as failed:
                reason = f"{failed.reason} (ends the search in {owner})"
                rejected.append(Rejected(failed.candidate, reason, ends_path=True))
                return None
            if hit is not None:
                return hit, directory if entry == directory else f"{directory} (from {entry})"
        return None

    def _try_dir(
        self, directory: str, name: str, searched: list[str], rejected: list[Rejected]
    ) -> str | None:
        """Try ``directory``'s hwcaps subdirectories, then the directory itself.

        Only the directory's own candidate can end the search path: ld.so looks at the errno of the
        last open it tried there, and an odd failure in a subdirectory is followed by that one.
        """
        base = directory if directory.endswith("/") or not directory else directory + "/"
        for sub in (*self.config.hwcaps, ""):
            folder = base + sub + "/" if sub else base
            searched.append(folder.rstrip("/") or ("/" if folder else "."))
            if name not in self._listing(folder or "."):
                continue
            candidate = folder + name
            try:
                outcome = self._check(candidate, self._candidate_facts(candidate))
            except _EndPath as failed:
                if not sub:
                    raise
                outcome = Rejected(candidate, failed.reason)
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            elif outcome is not None:
                return candidate
        return None

    def _try_cache(self, name: str, requester: ElfFacts, rejected: list[Rejected]) -> str | None:
        """The cache's first answer, unless NODEFLIB rules out its directory; ld.so opens only that one."""
        if self._cache is None:
            return None
        found = self._cache.lookup(name, hwcaps=self._hwcaps, cache_id=self._cache_id)
        if not found:
            return None
        path = found[0]
        if requester.flags_1 & DF_1_NODEFLIB and any(
            path.startswith(directory.rstrip("/") + "/") for directory in self.config.default_dirs
        ):
            return None
        try:
            outcome = self._check(path, self._candidate_facts(path))
        except _EndPath as failed:
            outcome = Rejected(path, failed.reason)
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
            return None
        return path if outcome is not None else None

    def reader_facts(self, path: str) -> ElfFacts:
        """The ELF facts of ``path`` with ``path`` as their path (the name it was found by)."""
        return self._candidate_facts(path)

    def _candidate_facts(self, path: str) -> ElfFacts:
        facts = self._reader(self._absolute(path))
        return facts if facts.path == path else replace(facts, path=path)

    def _check(self, path: str, facts: ElfFacts) -> ElfFacts | Rejected | None:
        """ld.so's ``open_verify`` (``core/open_verify.py``): a usable object, a skipped candidate,
        nothing there, the end of this search path (``_EndPath``) or a stop (``_Stop``).

        ld.so checks only the ELF header here; a readable header with a broken body is mapped (the
        graph node keeps its ``problem``). An executable or a PIE is refused after the open.
        """
        check = verify_candidate(
            self._absolute(path),
            facts,
            elf_class=self.config.elf_class,
            machine=self.config.machine,
            startup=self.startup,
        )
        if check.verdict is Verdict.MISSING:
            return None
        if check.verdict is Verdict.SKIP:
            return Rejected(path, check.reason)
        if check.verdict is Verdict.END_PATH:
            raise _EndPath(path, check.reason)
        if check.verdict is Verdict.STOP:
            raise _Stop(path, check.reason)
        unloadable = _unloadable_type(facts) if facts.ok else ""
        if unloadable:
            raise _Stop(path, unloadable)
        return facts

    def _absolute(self, path: str) -> str:
        """The file on this machine that ld.so opens for ``path``: a relative name (an empty or relative
        search entry) from its cwd, and under a root the file inside it (``core/sysroot.py``)."""
        absolute = path if path.startswith("/") else os.path.join(self._cwd, path)
        return self._root.host(absolute) if self._root is not None else absolute

    def _listing(self, folder: str) -> frozenset[str]:
        listing = self._listings.get(folder)
        if listing is None and folder not in self._listings:
            try:
                listing = frozenset(os.listdir(self._absolute(folder)))
            except OSError:
                listing = None
            self._listings[folder] = listing
        return listing or frozenset()


def _ld_cache(path: str) -> LdCache | None:
    """The parsed cache, reused while the file is unchanged (scans run many simulations)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _ld_cache_cached(path, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _ld_cache_cached(path: str, _ino: int, _size: int, _mtime: int) -> LdCache | None:
    return read_ld_cache(path)


def _dst_at(text: str, index: int) -> tuple[str | None, int]:
    """The DST name starting at ``text[index]`` (after the ``$``) and its length, as glibc's is_dst."""
    curly = text.startswith("{", index)
    start = index + 1 if curly else index
    for token in ("ORIGIN", "PLATFORM", "LIB"):
        if not text.startswith(token, start):
            continue
        after = start + len(token)
        if curly:
            if text.startswith("}", after):
                return token, len(token) + 2
            continue
        if after < len(text) and (text[after].isalnum() or text[after] == "_"):
            continue
        return token, len(token)
    return None, 0


ET_EXEC: Final = 2
ET_DYN: Final = 3
DF_1_PIE: Final = 0x08000000


def _unloadable_type(facts: ElfFacts) -> str:
    """ld.so's refusal of a well-formed ELF that is not a library, in its words ('' when loadable).

    After ``open_verify`` (which refuses anything but ET_DYN and ET_EXEC), ``_dl_map_object_from_fd``
    refuses an executable (fixed address) and a PIE (DF_1_PIE) for anything but the main program. Each
    stops the search: a program named like a library is an error, not a skipped candidate.
    """
    if facts.elf_type == ET_EXEC:
        return "cannot dynamically load executable"
    if facts.flags_1 & DF_1_PIE:
        return "cannot dynamically load position-independent executable"
    return ""


def _inode(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
