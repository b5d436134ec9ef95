"""Which files CPython's import system loads by a module name: the interpreter's extension modules.

A shared object in site-packages is not necessarily an extension. auditwheel vendors the libraries an
extension links against into ``numpy.libs/`` (found through the extension's ``$ORIGIN/../../numpy.libs``
RPATH), torch keeps ``libtorch.so`` in ``torch/lib/``: nothing imports those files, the loader maps them
as dependencies. Listing them as extensions would simulate a dlopen() that never happens (a libpython
caller, a search path they never see, order warnings built on that phantom load).

So this module asks what ``importlib`` asks (``FileFinder`` and ``PathFinder``): for each name, the first
``sys.path`` entry that holds a regular package (``name/__init__`` + a loader suffix), or a module file
``name`` + a suffix in the order of the interpreter's own ``EXTENSION_SUFFIXES`` (then ``.py``, ``.pyc``)
wins; directories without ``__init__`` are namespace portions, merged across entries when nothing wins.
An extension is a winner whose suffix is an extension suffix, under a name whose package parts are
identifiers (``numpy.libs``, ``lib-dynload``, ``foo-1.0.dist-info`` are no packages) and whose last part
makes ``PyInit_<part>`` a C identifier (mypyc's ``<hash>__mypyc`` modules are imported by name). A file
with the bare ``.so`` suffix is what every library is called: it is an extension only if it exports that
``PyInit_`` function (read as dlsym does, ``core/elf.py``); a tagged name (``.cpython-39-….so``,
``.abi3.so``) is given only to extensions, by the build backend.

``EXTENSION_SUFFIXES`` are read from the interpreter itself, without running it: CPython compiles them
into ``_PyImport_DynLoadFiletab`` (``"." SOABI ".so"``, ``".abi3.so"`` unless free-threaded, ``".so"``),
which lies in the executable or in its libpython.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from glibc_doctor.core.elf import constant_ranges, defines_symbol, read_elf
from glibc_doctor.core.loader import Loader, loader_config
from glibc_doctor.core.targets.files import os_reason
from glibc_doctor.core.targets.walk import SKIPPED_DIR_NAMES, Walk

SOURCE_SUFFIXES = (".py", ".pyc")  # SourceFileLoader, then SourcelessFileLoader, after the extensions
_LOADABLE = (".so", *SOURCE_SUFFIXES)  # every extension suffix ends in .so
_FILETAB_SOABI = re.compile(rb"\.cpython-\d+[a-z]*-[0-9A-Za-z_]+-[0-9A-Za-z_-]+\.so(?=\0)")
_FILETAB_ABI3 = b".abi3.so\0"
_OTHER_TAG = re.compile(r"\.cpython-(?P<tag>\d+)[a-z]*-[^.]*\.so$")
_WINDOW, _OVERLAP = 1 << 18, 256  # read in windows: a few MB of constants need not be held at once
_MAX_BINARY_SEARCHES = 64  # each a C-level find; a few real hits, bounded on a file full of the mark


@dataclass(frozen=True, slots=True)
class ExtensionSuffixes:
    """The interpreter's ``importlib.machinery.EXTENSION_SUFFIXES`` in its order, and where they came from."""

    suffixes: tuple[str, ...]  # (".cpython-39-x86_64-linux-gnu.so", ".abi3.so", ".so")
    source: str  # the binary they were read from, or why they were assumed

    def split(self, filename: str) -> tuple[str, str] | None:
        """``(stem, suffix)`` for the first suffix ``filename`` ends with, or None."""
        for suffix in self.suffixes:
            if filename.endswith(suffix) and len(filename) > len(suffix):
                return filename[: -len(suffix)], suffix
        return None

    def tagged(self, suffix: str) -> bool:
        """A suffix only build backends give, and only to extension modules (not the bare ``.so``)."""
        return suffix != ".so"


def assumed_suffixes(version: str | None) -> ExtensionSuffixes:
    """The Linux x86-64 suffixes of CPython ``version`` (before 3.8 its SOABI carried the ``m`` flag)."""
    if version is None:
        return ExtensionSuffixes((".abi3.so", ".so"), "assumed: the interpreter's version is unknown")
    major, minor = (int(part) for part in version.split(".")[:2])
    flags = "m" if (major, minor) < (3, 8) else ""
    soabi = f".cpython-{major}{minor}{flags}-x86_64-linux-gnu.so"
    return ExtensionSuffixes((soabi, ".abi3.so", ".so"), f"assumed for Python {version}")


def read_suffixes(executable: str, caller: str | None, version: str | None) -> ExtensionSuffixes:
    """The suffixes compiled into ``executable``, else into the libpython it links (``caller``)."""
    for binary in (executable, _libpython(executable, caller)):
        if binary is None:
            continue
        found = _filetab_suffixes(binary)
        if found:
            return ExtensionSuffixes((*found, ".so"), binary)
    return assumed_suffixes(version)


def _libpython(executable: str, caller: str | None) -> str | None:
    """Where ld.so finds the executable's libpython (the target's own loader model, never run)."""
    if caller is None:
        return None
    facts = read_elf(executable)
    found = Loader(loader_config(executable)).resolve(caller, facts, (facts,))
    return found.path


def _filetab_suffixes(binary: str) -> tuple[str, ...]:
    """``"." SOABI ".so"`` (and an ALT_SOABI) then ``".abi3.so"``, as the strings lie in ``binary``."""
    try:
        info = os.stat(binary)
    except OSError:
        return ()
    return _cached_filetab(binary, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _cached_filetab(binary: str, *_key: int) -> tuple[str, ...]:
    """Read once per file version (``_key``): only the segments that hold constants are searched."""
    soabi: dict[str, None] = {}
    abi3 = False
    try:
        fd = os.open(binary, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ()
        for start, size in constant_ranges(binary):
            for offset in range(start, start + size, _WINDOW):  # windows overlap by one string
                data = os.pread(fd, min(_WINDOW + _OVERLAP, start + size - offset), offset)
                soabi.update(dict.fromkeys(_soabi_strings(data)))
                abi3 = abi3 or data.find(_FILETAB_ABI3) >= 0
    except OSError:
        return ()
    finally:
        os.close(fd)
    if not soabi:
        return ()
    return (*soabi, ".abi3.so") if abi3 else tuple(soabi)


def _soabi_strings(data: bytes) -> tuple[str, ...]:
    found: dict[str, None] = {}
    position = data.find(b".cpython-")
    for _ in range(_MAX_BINARY_SEARCHES):
        if position < 0:
            break
        match = _FILETAB_SOABI.match(data, position)
        if match is not None:
            found.setdefault(match.group().decode("ascii"), None)
        position = data.find(b".cpython-", position + 1)
    return tuple(found)


def init_symbol(name: str, prefix: str = "PyInit") -> str:
    """``PyInit_<last part>``; a non-ASCII part is ``PyInitU_`` + its punycode (PEP 489)."""
    last = name.rsplit(".", 1)[-1]
    if last.isascii():
        return f"{prefix}_{last}"
    return f"{prefix}U_{last.encode('punycode').decode('ascii').replace('-', '_')}"


def _module_stem(stem: str) -> bool:
    """A last name part whose ``PyInit_<part>`` is an identifier: ``_multiarray_umath``, ``81d2…__mypyc``."""
    return f"_{stem}".isidentifier()


Inode = tuple[int, int]  # (st_dev, st_ino)


@dataclass(slots=True)
class _Listing:
    """One directory as ``FileFinder`` caches it: the package-named subdirectories (with their inode)
    and the names of every other entry."""

    path: str
    dirs: dict[str, Inode] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ModuleFile:
    """An extension module: its file, the name ``import`` knows it by, the sys.path entry it lies under."""

    path: str
    name: str
    entry: str


class ModuleFinder:
    """Resolves every name below some sys.path entries as ``importlib`` would; yields the extensions.

    Shares ``walk``'s state with the rest of the target: each directory is listed once (by inode, so a
    symlink loop or a doubly reachable tree ends), ``walk.dirs`` keeps the listed directories for the
    scan cache, and ``walk.notes`` says which could not be read.
    """

    def __init__(self, suffixes: ExtensionSuffixes, walk: Walk) -> None:
        self.suffixes = suffixes
        self.walk = walk
        self.other_python: list[str] = []  # files tagged for another CPython (``.cpython-27-….so``)
        self.examined: list[str] = []  # bare ``.so`` files whose exports decided
        self._listings: dict[str, _Listing | None] = {}
        self._loaders = (*suffixes.suffixes, *SOURCE_SUFFIXES)
        self._shallow: set[str] = set()

    def find(self, entries: Sequence[str], shallow: Sequence[str] = ()) -> list[ModuleFile]:
        """The extension modules importable below ``entries`` (sys.path order: the first entry wins),
        those of each entry together, in the order of ``entries``.

        The packages of a ``shallow`` entry shadow later entries but are not descended: CPython installs
        its own extension modules in lib-dynload, so the standard library's packages (a few hundred
        directories, ``test`` among them) hold none.
        """
        self._shallow = set(shallow)
        unique = list(dict.fromkeys(entries))
        order = {entry: index for index, entry in enumerate(unique)}
        found = self._resolve([(entry, entry) for entry in unique], "")
        return sorted(found, key=lambda module: order[module.entry])

    def _resolve(self, portions: Sequence[tuple[str, str]], prefix: str) -> Iterator[ModuleFile]:
        """``portions``: (directory, the sys.path entry it descends from), in search order."""
        listings = [(listing, entry) for path, entry in portions if (listing := self._list(path)) is not None]
        names: set[str] = set()
        for listing, _ in listings:
            names.update(listing.dirs)
            names.update(self._module_names(listing))
        for name in sorted(names):
            yield from self._resolve_name(name, listings, prefix)

    def _module_names(self, listing: _Listing) -> Iterator[str]:
        for filename in listing.files:
            if not filename.endswith(".so"):  # every extension suffix (most files are .py, .pyc)
                continue
            split = self.suffixes.split(filename)
            if split is None:
                continue
            stem, suffix = split
            if not self.suffixes.tagged(suffix) and _OTHER_TAG.search(filename):
                self.other_python.append(os.path.join(listing.path, filename))  # another CPython's tag
            elif _module_stem(stem) and stem != "__init__":  # a package's __init__ is the package
                yield stem

    def _resolve_name(
        self, name: str, listings: Sequence[tuple[_Listing, str]], prefix: str
    ) -> Iterator[ModuleFile]:
        namespace: list[tuple[str, str]] = []
        for listing, entry in listings:
            if name in listing.dirs:
                package = os.path.join(listing.path, name)
                init = self._package_init(package, listing.dirs[name])
                if init is not None:
                    yield from self._extension(init, prefix + name, entry)
                    if entry not in self._shallow:
                        yield from self._resolve([(package, entry)], f"{prefix}{name}.")
                    return
                namespace.append((package, entry))
            module = next((name + s for s in self._loaders if name + s in listing.files), None)
            if module is not None and _module_stem(name):
                yield from self._extension(os.path.join(listing.path, module), prefix + name, entry)
                return
        if namespace:
            yield from self._resolve(namespace, f"{prefix}{name}.")

    def _package_init(self, package: str, inode: Inode) -> str | None:
        listing = self._list(package, inode)
        if listing is None:
            return None
        init = next((f"__init__{s}" for s in self._loaders if f"__init__{s}" in listing.files), None)
        return None if init is None else os.path.join(package, init)

    def _extension(self, path: str, name: str, entry: str) -> Iterator[ModuleFile]:
        """The winning file, when it is an extension module (not ``.py`` source)."""
        split = self.suffixes.split(os.path.basename(path))
        if split is None:
            return
        if not self.suffixes.tagged(split[1]):
            self.examined.append(path)
            if defines_symbol(path, init_symbol(name)) is False:
                return  # a library that only sits where a module could be: nothing imports it
        yield ModuleFile(path, name, entry)

    def _list(self, directory: str, inode: Inode | None = None) -> _Listing | None:
        """The directory's entries; None when unreadable or already listed under another path."""
        if directory not in self._listings:
            self._listings[directory] = self._read_listing(directory, inode)
        return self._listings[directory]

    def _read_listing(self, directory: str, inode: Inode | None) -> _Listing | None:
        """One ``scandir``: d_type and d_ino tell directories and their inode without a stat, except
        for symlinks (followed, as ``_path_isdir`` does)."""
        if inode is None:
            try:
                info = os.stat(directory)
            except OSError as error:
                self.walk.notes.append(f"skipped {directory}: {os_reason(error)}")
                return None
            inode = (info.st_dev, info.st_ino)
        if inode in self.walk.seen:
            return None
        self.walk.seen.add(inode)
        self.walk.dirs.append(directory)
        listing = _Listing(directory)
        try:
            with os.scandir(directory) as entries:
                files, dirs = listing.files, listing.dirs
                for entry in entries:  # one loop, no call per entry: site-packages hold 10^4-10^5 files
                    try:
                        if not entry.is_dir():
                            if entry.name.endswith(_LOADABLE):  # data files decide nothing
                                files.add(entry.name)
                        elif entry.name.isidentifier() and entry.name not in SKIPPED_DIR_NAMES:
                            dirs[entry.name] = self._inode(entry, inode[0])
                    except OSError as error:
                        self._unreadable(listing, entry, error)
        except OSError as error:
            self.walk.notes.append(f"skipped {directory}: {os_reason(error)}")
        return listing

    @staticmethod
    def _inode(entry: os.DirEntry[str], device: int) -> Inode:
        if entry.is_symlink():
            info = entry.stat()
            return info.st_dev, info.st_ino
        return device, entry.inode()

    def _unreadable(self, listing: _Listing, entry: os.DirEntry[str], error: OSError) -> None:
        """A looping or vanished link: kept as a file name, so that one named like an extension shows
        in the scan as a file that cannot load; noted otherwise."""
        if not entry.name.endswith(".so") or self.suffixes.split(entry.name) is None:
            self.walk.notes.append(f"skipped {entry.path}: {os_reason(error)}")
        listing.files.add(entry.name)
