"""What a process will be: the program it execs and the extensions it will dlopen().

The user names a target loosely (``python3``, ``.venv``, ``/usr/bin/ruby``, a plugin host with
``--ext DIR``, a PID); the graph needs it exactly. This module answers statically, the way the
interpreter itself would find its files (CPython's ``getpath`` landmarks, ``pyvenv.cfg``, Ruby's archdir
and gem directories), and never runs the target: a broken interpreter is exactly what we are asked to
look at, and running it may be what fails.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .elf import is_library_name, read_elf
from .errors import NotElf, TargetError, UnsupportedElf
from .loader import SYSTEM_LOADERS
from .model import EM_386, EM_AARCH64, EM_X86_64, ElfFacts, Extension, Target

ELF_MAGIC = b"\x7fELF"
SKIPPED_DIR_NAMES = frozenset({"__pycache__"})
_PYTHON_NAME = re.compile(r"^python(?P<version>\d+(?:\.\d+)?)?[a-z]*$")
_PYTHON_VERSION = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)")
_LIBPYTHON = re.compile(r"^libpython(?P<version>\d+\.\d+)[a-z]*\.so")
_CPYTHON_TAG = re.compile(r"\.cpython-(?P<tag>\d+)[a-z]*-[^.]*\.so$")
_RUBY_NAME = re.compile(r"^ruby(?P<version>\d+\.\d+)?$")
_LIBRUBY = re.compile(r"^libruby(?:-(?P<v1>\d+\.\d+)(?:\.\d+)?)?\.so(?:\.(?P<v2>\d+\.\d+))?")


# ---------------------------------------------------------------------------------------------------
# Small checks on paths and files
# ---------------------------------------------------------------------------------------------------


def _stat_or_raise(path: str, what: str) -> os.stat_result:
    """``os.stat`` whose failures become one line that names the path and what to do."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise TargetError(f"{path}: dangling symlink (points to {os.readlink(path)}); {what}") from None
        raise TargetError(f"{path}: no such file or directory; {what}") from None
    except PermissionError:
        raise TargetError(f"{path}: permission denied; run as a user who can read it") from None
    except OSError as error:
        raise TargetError(f"{path}: {_os_reason(error)}; {what}") from None


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if error.errno == errno.ENOTDIR:
        return "a component of the path is a file, not a directory"
    if error.errno == errno.ENAMETOOLONG:
        return "path too long"
    return error.strerror or str(error)


def _check_listable(directory: str) -> None:
    """A directory we may not list would look empty (no pyvenv.cfg); say the real reason instead."""
    try:
        os.listdir(directory)
    except PermissionError:
        raise TargetError(f"{directory}: permission denied; run as a user who can read it") from None
    except OSError as error:
        raise TargetError(f"{directory}: cannot list: {_os_reason(error)}") from None


class _NotRegular(OSError):
    """A path that is a directory, FIFO, socket or device where a file was expected."""

    def __init__(self, path: str, mode: int) -> None:
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        super().__init__(errno.EINVAL, f"not a regular file ({what})", path)


NOT_REGULAR = "not a regular file (a FIFO, socket or device)"
MAX_TEXT_BYTES = 1 << 20  # pyvenv.cfg, version files, wrapper scripts: far larger is not one of those


def _read_regular(path: str, size: int) -> bytes:
    """Up to ``size`` bytes of ``path`` if it is a regular file; raises ``_NotRegular`` otherwise.

    Every file this module reads is named by the user or by another file (a shebang, a wrapper's
    ``exec``, ``pyvenv.cfg``): a FIFO there would block ``open()`` and ``read()`` forever, so the open
    is non-blocking and ``fstat`` decides before anything is read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotRegular(path, mode)
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_text(path: str) -> str:
    return _read_regular(path, MAX_TEXT_BYTES).decode("utf-8", "replace")


def _read_head(path: str, size: int = 256) -> bytes:
    try:
        return _read_regular(path, size)
    except PermissionError:
        raise TargetError(f"{path}: permission denied; run as a user who can read it") from None
    except OSError as error:
        raise TargetError(f"{path}: cannot read: {_os_reason(error)}") from None


def _is_elf_file(path: str) -> bool:
    try:
        return _read_regular(path, 4) == ELF_MAGIC
    except OSError:
        return False


def _dynamic_needed(path: str) -> tuple[str, ...]:
    """DT_NEEDED of ``path``; empty for a static or unreadable file (the caller already checked ELF).

    The bounds-checked reader of ``core/elf.py`` never raises on a hostile file (pyelftools raises
    a different exception for each kind of damage) and is the loader's own view.
    """
    return read_elf(path).needed


def _shebang(head: bytes) -> str | None:
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------------------------------
# Walking extension directories fast
# ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """State of one target's walk: files found (with their root), every directory walked, inodes seen."""

    found: list[tuple[str, str]] = field(default_factory=list)  # (file path, root it was found under)
    dirs: list[str] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def walk(self, root: str, accept: Callable[[str], bool]) -> None:
        """Every file under ``root`` whose name ``accept``s, each directory once, in sorted order.

        ``os.scandir`` reuses the directory's d_type and d_ino, so a plain directory costs no stat;
        only symlinked directories are stat()ed. ``(st_dev, inode)`` keys stop symlink loops and
        doubly reachable trees such as ``lib64 -> lib``.
        """
        try:
            info = os.stat(root)
        except OSError as error:
            self.notes.append(f"skipped {root}: {_os_reason(error)}")
            return
        key = (info.st_dev, info.st_ino)
        if key in self.seen:
            return
        self.seen.add(key)
        start = len(self.found)
        stack = [(root, info.st_dev)]
        while stack:
            directory, device = stack.pop()
            self.dirs.append(directory)
            stack.extend(reversed(self._scan(directory, device, root, accept)))
        self.found[start:] = sorted(self.found[start:])

    def _scan(
        self, directory: str, device: int, root: str, accept: Callable[[str], bool]
    ) -> list[tuple[str, int]]:
        subdirs: list[tuple[str, int]] = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()
                        child = self._enter(entry, device) if is_dir else None
                    except OSError as error:  # a self-looping link, a vanished entry
                        if error.errno == errno.ELOOP and accept(entry.name):
                            # Named like an extension: the scan shows it as a file that cannot load.
                            self.found.append((entry.path, root))
                        else:
                            self.notes.append(f"skipped {entry.path}: {_os_reason(error)}")
                        continue
                    if child is not None:
                        subdirs.append(child)
                    elif not is_dir and accept(entry.name):
                        self.found.append((entry.path, root))
        except OSError as error:
            self.notes.append(f"skipped {directory}: {_os_reason(error)}")
        subdirs.sort()
        return subdirs

    def _enter(self, entry: os.DirEntry[str], device: int) -> tuple[str, int] | None:
        """The directory to walk next, or None when skipped or already seen."""
        if entry.name in SKIPPED_DIR_NAMES:
            return None
        if entry.is_symlink():
            info = entry.stat()
            key = (info.st_dev, info.st_ino)
        else:
            key = (device, entry.inode())
        if key in self.seen:
            return None
        self.seen.add(key)
        return entry.path, key[0]


def _module_name(path: str, root: str, separator: str = ".") -> str:
    """``root/psycopg2/_psycopg.cpython-39-x86_64-linux-gnu.so`` -> ``psycopg2._psycopg``."""
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    parts[-1] = parts[-1].split(".", 1)[0]
    return separator.join(parts)


# ---------------------------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PythonLayout:
    """Where a CPython finds its standard library and extensions, derived as ``getpath`` does."""

    executable: str  # real path
    version: str | None  # "3.11"
    prefix: str | None  # sys.prefix of the base installation
    lib_dynload: tuple[str, ...]
    site_packages: tuple[str, ...]
    caller: str | None  # the libpython DT_NEEDED name, or None when the executable embeds Python


def _python_version_hint(executable: str, needed: Sequence[str]) -> str | None:
    for name in needed:
        match = _LIBPYTHON.match(name)
        if match:
            return match["version"]
    match = _PYTHON_NAME.match(_program_name(executable))
    if match and match["version"] and "." in match["version"]:
        return match["version"]
    return None


def _stdlib_dirs(prefix: str) -> list[tuple[str, str]]:
    """``(version, dir)`` for each ``lib/pythonX.Y`` under ``prefix`` holding the ``os.py`` landmark."""
    found: list[tuple[str, str]] = []
    for libdir in ("lib", "lib64"):
        base = os.path.join(prefix, libdir)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            match = re.fullmatch(r"python(\d+\.\d+)", name)
            if match and os.path.isfile(os.path.join(base, name, "os.py")):
                found.append((match[1], os.path.join(base, name)))
    return found


def _find_prefix(executable: str, version: str | None) -> tuple[str, str] | None:
    """Search up from the executable's directory for ``lib/pythonX.Y/os.py``: ``(prefix, version)``."""
    directory = os.path.dirname(executable)
    while True:
        stdlibs = _stdlib_dirs(directory)
        matching = [item for item in stdlibs if version is None or item[0] == version]
        if matching:
            best = max(matching, key=lambda item: tuple(int(p) for p in item[0].split(".")))
            return directory, best[0]
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _existing_dirs(paths: Iterable[str]) -> tuple[str, ...]:
    unique: list[str] = []
    for path in paths:
        if os.path.isdir(path) and path not in unique:
            unique.append(path)
    return tuple(unique)


def _site_packages(prefix: str, version: str) -> tuple[str, ...]:
    """The base installation's site dirs, Debian's ``dist-packages`` included (its ``site.py`` adds them)."""
    candidates = [
        os.path.join(prefix, libdir, f"python{version}", "site-packages") for libdir in ("lib", "lib64")
    ]
    candidates.append(os.path.join(prefix, "local", "lib", f"python{version}", "dist-packages"))
    candidates.append(os.path.join(prefix, "lib", "python3", "dist-packages"))
    candidates.append(os.path.join(prefix, "lib", f"python{version}", "dist-packages"))
    return _existing_dirs(candidates)


def python_layout(executable: str) -> PythonLayout:
    """The prefix, lib-dynload and site-packages of the CPython at ``executable`` (its real path)."""
    needed = _dynamic_needed(executable)
    caller = next((name for name in needed if _LIBPYTHON.match(name)), None)
    hint = _python_version_hint(executable, needed)
    found = _find_prefix(executable, hint) or (_find_prefix(executable, None) if hint is None else None)
    if found is None:
        return PythonLayout(executable, hint, None, (), (), caller)
    prefix, version = found
    dynload = _existing_dirs(
        os.path.join(prefix, libdir, f"python{version}", "lib-dynload") for libdir in ("lib64", "lib")
    )
    return PythonLayout(executable, version, prefix, dynload, _site_packages(prefix, version), caller)


def _python_extension_filter(version: str | None) -> tuple[Callable[[str], bool], list[str]]:
    """Accept ``*.so`` that this Python would import; collect the names skipped for another version."""
    skipped: list[str] = []
    wanted_tag = version.replace(".", "") if version else None

    def accept(name: str) -> bool:
        if not name.endswith(".so"):
            return False
        match = _CPYTHON_TAG.search(name)
        if match and wanted_tag and match["tag"] != wanted_tag:
            skipped.append(name)
            return False
        return True

    return accept, skipped


def _python_target(
    spec: str,
    layout: PythonLayout,
    roots: Sequence[str],
    ext: Sequence[str],
    *,
    executable: str | None = None,
    environment: str | None = None,
    notes: Sequence[str] = (),
) -> Target:
    walk = _Walk()
    accept, skipped = _python_extension_filter(layout.version)
    for root in roots:
        walk.walk(root, accept)
    extensions = [Extension(path, _module_name(path, root), layout.caller) for path, root in walk.found]
    extensions += _explicit_extensions(ext, walk, layout.caller, _module_name)
    all_notes = list(notes) + walk.notes
    if layout.prefix is None:
        all_notes.append(
            f"no standard library (lib/pythonX.Y/os.py) found above {layout.executable}; "
            "name extension directories with --ext"
        )
    if skipped:
        all_notes.append(f"skipped {len(skipped)} extension(s) built for another Python (e.g. {skipped[0]})")
    return _walked_target(
        "python", spec, executable or layout.executable, walk, extensions, all_notes, environment
    )


def _resolve_python(
    spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = (), extra: WrapperPaths | None = None
) -> Target:
    layout = python_layout(real)
    roots = list(layout.lib_dynload) + list(extra.python_paths if extra else ()) + list(layout.site_packages)
    if layout.version:
        user_site = os.path.expanduser(f"~/.local/lib/python{layout.version}/site-packages")
        roots += list(_existing_dirs([user_site]))
    return _python_target(spec, layout, roots, ext, notes=notes)


# ---------------------------------------------------------------------------------------------------
# Virtual environments
# ---------------------------------------------------------------------------------------------------


def read_pyvenv_cfg(path: str) -> dict[str, str]:
    """``key = value`` lines of ``pyvenv.cfg``, keys lower-cased (as ``site.py`` reads it)."""
    values: dict[str, str] = {}
    try:
        text = _read_text(path)
    except OSError as error:
        raise TargetError(f"{path}: cannot read: {_os_reason(error)}") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def _venv_version(cfg: Mapping[str, str]) -> str | None:
    for key in ("version", "version_info"):
        match = _PYTHON_VERSION.match(cfg.get(key, ""))
        if match:
            return f"{match['major']}.{match['minor']}"
    return None


def _first_elf(paths: Iterable[str]) -> str | None:
    for path in paths:
        real = os.path.realpath(path)
        if os.path.isfile(real) and _is_elf_file(real):
            return real
    return None


def _venv_base(venv: str, cfg: Mapping[str, str], version: str | None) -> str:
    """The base interpreter's real file: ``home``'s ``pythonX.Y``, then ``executable``, then bin links."""
    home = cfg.get("home")
    if not home:
        raise TargetError(f"{venv}/pyvenv.cfg has no 'home =' line; recreate the venv")
    names = ([f"python{version}"] if version else []) + ["python3", "python"]
    candidates = [os.path.join(home, name) for name in names]
    if cfg.get("executable"):
        candidates.append(cfg["executable"])
    candidates += [os.path.join(venv, "bin", name) for name in names]
    base = _first_elf(candidates)
    if base is None:
        raise TargetError(
            f"{venv}: its base interpreter is gone (pyvenv.cfg home = {home} has no python{version or '3'}); "
            "recreate the venv with an existing Python"
        )
    return base


def _venv_executable(venv: str, version: str | None, base: str) -> str:
    """What exec() of the venv's python runs: the link target, or the venv's own copy (``--copies``)."""
    names = ([f"python{version}"] if version else []) + ["python3", "python"]
    return _first_elf(os.path.join(venv, "bin", name) for name in names) or base


def _venv_site_packages(venv: str, version: str | None) -> tuple[str, ...]:
    """``VENV/lib/pythonX.Y/site-packages``; without a version in pyvenv.cfg, every ``pythonX.Y`` there.

    A site-packages this user may not even stat is kept: the walk then notes why it was skipped,
    instead of the venv silently looking empty.
    """
    versions = [version] if version else _lib_versions(os.path.join(venv, "lib"))
    candidates = [
        os.path.join(venv, libdir, f"python{v}", "site-packages")
        for v in versions
        for libdir in ("lib", "lib64")
    ]
    return tuple(path for path in dict.fromkeys(candidates) if os.path.isdir(path) or _denied(path))


def _denied(path: str) -> bool:
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _lib_versions(lib: str) -> list[str]:
    try:
        names = sorted(os.listdir(lib))
    except OSError:
        return []
    return [name[len("python") :] for name in names if re.fullmatch(r"python\d+\.\d+", name)]


def _resolve_venv(spec: str, venv: str, ext: Sequence[str], notes: Sequence[str] = ()) -> Target:
    cfg = read_pyvenv_cfg(os.path.join(venv, "pyvenv.cfg"))
    version = _venv_version(cfg)
    base = _venv_base(venv, cfg, version)
    layout = python_layout(base)
    executable = _venv_executable(venv, version or layout.version, base)
    check_runnable_here(executable, read_elf(executable))
    all_notes = list(notes)
    if executable != base:
        all_notes.append(f"the venv runs its own copy of the interpreter: {executable}")
    roots = list(_venv_site_packages(venv, version or layout.version)) + list(layout.lib_dynload)
    if cfg.get("include-system-site-packages", "false").lower() == "true":
        roots += list(layout.site_packages)
    return _python_target(spec, layout, roots, ext, executable=executable, environment=venv, notes=all_notes)


def _venv_of_executable(path: str) -> str | None:
    """``VENV/bin/python`` (as typed, before symlinks) -> ``VENV`` when ``VENV/pyvenv.cfg`` exists."""
    bin_dir = os.path.dirname(os.path.abspath(path))
    for candidate in (bin_dir, os.path.dirname(bin_dir)):
        if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------------
# Ruby
# ---------------------------------------------------------------------------------------------------


def _ruby_version(executable: str, needed: Sequence[str], prefix: str) -> str | None:
    for name in needed:
        match = _LIBRUBY.match(name)
        if match and (match["v1"] or match["v2"]):
            return match["v1"] or match["v2"]
    match = _RUBY_NAME.match(_program_name(executable))
    if match and match["version"]:
        return match["version"]
    try:
        names = sorted(os.listdir(os.path.join(prefix, "lib", "ruby")))
    except OSError:
        return None
    versions = [name[:-2] for name in names if re.fullmatch(r"\d+\.\d+\.0", name)]
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")), default=None)


def _ruby_roots(prefix: str, abi: str, gem_paths: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(directory, naming)`` pairs: archdirs name by relative path; gem trees strip their own prefix."""
    roots: list[tuple[str, str]] = []
    lib_ruby = os.path.join(prefix, "lib", "ruby")
    for sub in (abi, os.path.join("site_ruby", abi), os.path.join("vendor_ruby", abi)):
        base = os.path.join(lib_ruby, sub)
        if os.path.isdir(base):
            roots += [
                (os.path.join(base, n), "arch")
                for n in sorted(os.listdir(base))
                if n.startswith("x86_64-linux")
            ]
    multiarch = os.path.join(prefix, "lib", "x86_64-linux-gnu")  # Debian's archdir and vendor archdir
    roots.append((os.path.join(multiarch, "ruby", abi), "arch"))
    roots.append((os.path.join(multiarch, "ruby", "vendor_ruby", abi), "arch"))
    local = os.path.join(prefix, "local") if prefix == "/usr" else prefix
    roots.append((os.path.join(local, "lib", "x86_64-linux-gnu", "site_ruby"), "arch"))
    gem_homes = [
        *gem_paths,
        os.path.join(lib_ruby, "gems", abi),
        os.path.join(multiarch, "rubygems-integration", abi),
    ]
    if prefix == "/usr":
        gem_homes.append(os.path.join("/var/lib/gems", abi))
    for home in gem_homes:
        roots += _gem_home_roots(home)
    return [(path, naming) for path, naming in roots if os.path.isdir(path)]


def _gem_home_roots(home: str) -> list[tuple[str, str]]:
    """A gem home's compiled extensions and each installed gem's ``lib``."""
    roots = [(os.path.join(home, "extensions"), "extensions")]
    gems = os.path.join(home, "gems")
    if os.path.isdir(gems):
        roots += [(os.path.join(gems, n, "lib"), "arch") for n in sorted(os.listdir(gems))]
    return roots


def _ruby_feature_name(path: str, root: str, naming: str) -> str:
    """What ``require`` names: ``json/ext/parser``; gem extension trees drop ``ARCH/ABI/GEM-VER/``."""
    name = _module_name(path, root, "/")
    if naming == "extensions":
        parts = name.split("/")
        return "/".join(parts[3:]) if len(parts) > 3 else name
    return name


def _resolve_ruby(
    spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = (), extra: WrapperPaths | None = None
) -> Target:
    needed = _dynamic_needed(real)
    caller = next((name for name in needed if _LIBRUBY.match(name)), None)
    prefix = os.path.dirname(os.path.dirname(real))
    version = _ruby_version(real, needed, prefix)
    walk = _Walk()
    extensions: list[Extension] = []
    all_notes = list(notes)
    if version is None:
        all_notes.append(f"no Ruby library directory found under {prefix}; name extension dirs with --ext")
    else:
        gem_paths = extra.gem_paths if extra else ()
        for root, naming in _ruby_roots(prefix, f"{version}.0", gem_paths):
            start = len(walk.found)
            walk.walk(root, lambda name: name.endswith(".so"))
            for path, _ in walk.found[start:]:
                extensions.append(Extension(path, _ruby_feature_name(path, root, naming), caller))
    extensions += _explicit_extensions(ext, walk, caller, lambda p, r: _module_name(p, r, "/"))
    return _walked_target("ruby", spec, real, walk, extensions, all_notes + walk.notes)


# ---------------------------------------------------------------------------------------------------
# Generic programs and --ext
# ---------------------------------------------------------------------------------------------------


Namer = Callable[[str, str], str]  # (file path, root it was found under) -> the name users know


def _relative_name(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def _explicit_extensions(
    ext: Sequence[str], walk: _Walk, caller: str | None, namer: Namer = _relative_name
) -> list[Extension]:
    """``--ext FILE_OR_DIR``: a file is one extension; a directory gives every library name inside it."""
    extensions: list[Extension] = []
    for entry in ext:
        path = os.path.abspath(os.path.expanduser(entry))
        info = _stat_or_raise(path, "check the --ext path")
        if stat.S_ISDIR(info.st_mode):
            start = len(walk.found)
            walk.walk(path, is_library_name)
            extensions += [Extension(p, namer(p, path), caller) for p, _ in walk.found[start:]]
        elif not stat.S_ISREG(info.st_mode):
            raise TargetError(f"{path}: {NOT_REGULAR}; check the --ext path")
        elif _is_elf_file(path):
            extensions.append(Extension(path, namer(path, os.path.dirname(path)), caller))
        else:
            raise NotElf(f"{path}: --ext file is not an ELF shared object; give a .so file or a directory")
    return extensions


def _walked_target(
    kind: str,
    spec: str,
    executable: str,
    walk: _Walk,
    extensions: Iterable[Extension],
    notes: Sequence[str],
    environment: str | None = None,
) -> Target:
    """A target whose extensions ``walk`` found: one per path, and the walked dirs kept for the cache."""
    return Target(
        kind=kind,
        spec=spec,
        executable=executable,
        extensions=_unique_extensions(extensions),
        environment=environment,
        searched_dirs=tuple(walk.dirs),
        notes=tuple(notes),
    )


def _unique_extensions(extensions: Iterable[Extension]) -> tuple[Extension, ...]:
    """One extension per path, the first kept (a --ext entry may repeat a walked directory's file)."""
    by_path: dict[str, Extension] = {}
    for extension in extensions:
        by_path.setdefault(extension.path, extension)
    return tuple(by_path.values())


def _resolve_generic(spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = ()) -> Target:
    walk = _Walk()
    extensions = _explicit_extensions(ext, walk, None)
    return _walked_target("generic", spec, real, walk, extensions, list(notes) + walk.notes)


# ---------------------------------------------------------------------------------------------------
# resolve_target: the entry point
# ---------------------------------------------------------------------------------------------------

_WHAT = "give an interpreter (python3, ruby), a venv directory, or a program with --ext DIR"


def interpreter_kind(path: str, needed: Sequence[str]) -> str:
    """``python``, ``ruby`` or ``generic``: by file name, DT_NEEDED, or a sibling ``../lib/pythonX.Y``."""
    name = _program_name(path)
    if _PYTHON_NAME.match(name) or any(_LIBPYTHON.match(n) for n in needed):
        return "python"
    if _RUBY_NAME.match(name) or any(_LIBRUBY.match(n) for n in needed):
        return "ruby"
    if _stdlib_dirs(os.path.dirname(os.path.dirname(path))) and _embeds_python(path):
        return "python"
    return "generic"


def _embeds_python(path: str) -> bool:
    """A renamed python has CPython linked in: its dynamic symbols name ``Py_BytesMain``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"\0Py_BytesMain\0") >= 0
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)


def resolve_target(spec: str, ext: Sequence[str] = ()) -> Target:
    """The program ``spec`` names and the extensions it will dlopen(), found without running it.

    Raises ``TargetError`` (``NotElf`` for a file that is not a program) with one line naming the path.
    """
    path = os.path.abspath(os.path.expanduser(spec))
    notes: list[str] = []
    on_path = shutil.which(spec) if "/" not in spec and not os.path.lexists(path) else None
    if on_path:  # a bare name like a shell would take it: ``glibc-doctor scan python3``
        path = os.path.abspath(on_path)
        notes.append(f"{spec} found on PATH: {path}")
    info = _stat_or_raise(path, _WHAT)
    if stat.S_ISDIR(info.st_mode):
        _check_listable(path)
        return _resolve_directory(spec, path, ext)
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block; a device is never a program
        raise TargetError(f"{path}: not a regular file (a FIFO, socket or device); {_WHAT}")
    return _resolve_file(spec, path, ext, notes)


def _resolve_file(
    spec: str, path: str, ext: Sequence[str], notes: Sequence[str], extra: WrapperPaths | None = None
) -> Target:
    real = os.path.realpath(path)
    head = _read_head(real)
    if not head.startswith(ELF_MAGIC):
        return _resolve_script(spec, path, head, ext, notes)
    facts = read_elf(real)
    check_runnable_here(path, facts)
    needed = facts.needed
    kind = interpreter_kind(real, needed)
    if kind == "python" or _PYTHON_NAME.match(_program_name(path)):
        venv = _venv_of_executable(path)
        if venv is not None:
            return _resolve_venv(spec, venv, ext, notes)
        return _resolve_python(spec, real, ext, notes, extra)
    if kind == "ruby":
        return _resolve_ruby(spec, real, ext, notes, extra)
    return _resolve_generic(spec, real, ext, notes)


# ---------------------------------------------------------------------------------------------------
# Programs of another architecture
# ---------------------------------------------------------------------------------------------------

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
_MACHINE_NAMES = {
    EM_X86_64: "x86-64",
    EM_386: "i386",
    EM_AARCH64: "aarch64",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "s390",
    40: "ARM",
    243: "RISC-V",
}
_NOT_PROGRAMS = {
    ET_REL: "an object file (ET_REL), not a program or a shared library; link it first",
    ET_CORE: "a core dump (ET_CORE), not a program; give the program that dumped it",
}


def _architecture(facts: ElfFacts) -> str:
    machine = _MACHINE_NAMES.get(facts.machine, f"machine {facts.machine}")
    order = "little-endian" if facts.little_endian else "big-endian"
    return f"{machine} ({facts.elf_class}-bit {order})"


@functools.lru_cache(maxsize=1)
def _host() -> ElfFacts | None:
    """The ELF kind of programs this machine runs: that of the Python running glibc-doctor."""
    facts = read_elf(os.path.realpath(sys.executable))
    return facts if facts.ok and facts.elf_class else None


def _kind(facts: ElfFacts) -> tuple[int, int, bool]:
    return facts.elf_class, facts.machine, facts.little_endian


def check_runnable_here(path: str, facts: ElfFacts) -> None:
    """Refuse (``UnsupportedElf``) a target whose loader cannot be modelled from this machine's files.

    A program of another architecture searches another machine's directories and ld.so; scanning it
    here would report its whole closure as "not found". i386 programs on an x86-64 machine run when
    a 32-bit loader is installed, so they are scanned then. A file whose header is damaged is left to
    the scan, which says what is wrong with it.
    """
    host = _host()
    if not facts.ok or host is None:
        return
    if facts.elf_type in _NOT_PROGRAMS:
        raise UnsupportedElf(f"{path}: {_NOT_PROGRAMS[facts.elf_type]}")
    if _kind(facts) == _kind(host):
        return
    if host.machine == EM_X86_64 and _kind(facts) == (32, EM_386, True):
        loader = facts.interpreter or SYSTEM_LOADERS[(32, EM_386)]
        if os.path.exists(loader):
            return
        raise UnsupportedElf(
            f"{path}: a 32-bit i386 program, and this machine has no 32-bit loader ({loader}); "
            "install the i386 glibc (libc6-i386) to run or scan it"
        )
    raise UnsupportedElf(
        f"{path}: built for {_architecture(facts)}, but this machine runs {_architecture(host)} "
        "programs; scan it on a machine of its architecture"
    )


_SCRIPT_HOP = " is a script that runs "


def _resolve_script(spec: str, path: str, head: bytes, ext: Sequence[str], notes: Sequence[str]) -> Target:
    """A pyenv shim, a Nix wrapper or a ``#!/abs/python`` script leads to its interpreter; else NotElf."""
    shim = _pyenv_shim_target(path)
    if shim is not None:
        return _resolve_file(spec, shim, ext, [*notes, f"{path} is a pyenv shim for {shim}"])
    line = _shebang(head)
    followed = any(_SCRIPT_HOP in note for note in notes)  # one hop: no script chains
    wrapper = None if followed else read_wrapper(path)
    if wrapper is not None:
        return _resolve_file(
            spec, wrapper.program, ext, [*notes, f"{path}{_SCRIPT_HOP}{wrapper.program}"], wrapper
        )
    interpreter = line.split()[0] if line else ""
    runnable = interpreter.startswith("/") and os.path.exists(interpreter) and interpreter != path
    if runnable and os.path.basename(interpreter) != "env" and not followed:
        return _resolve_file(spec, interpreter, ext, [*notes, f"{path}{_SCRIPT_HOP}{interpreter}"])
    if line is not None:
        raise NotElf(f"{path}: a script (#!{line}), not an ELF program; give the interpreter it runs")
    raise NotElf(f"{path}: not an ELF file (no \\x7fELF header); {_WHAT}")


@dataclass(frozen=True, slots=True)
class WrapperPaths:
    """What a wrapper script (Nix ``makeWrapper``) execs, and the module paths it exports first."""

    program: str
    python_paths: tuple[str, ...] = ()  # NIX_PYTHONPATH / PYTHONPATH entries
    gem_paths: tuple[str, ...] = ()  # GEM_PATH / GEM_HOME entries


_WRAPPER_EXEC = re.compile(r"^\s*exec\s+(?:-a\s+\S+\s+)?[\"']?(?P<program>/[^\"'\s]+)", re.MULTILINE)
_WRAPPER_EXPORT = re.compile(
    r"^\s*export\s+(?P<name>NIX_PYTHONPATH|PYTHONPATH|GEM_PATH|GEM_HOME)=[\"']?(?P<value>[^\"'\n]*)",
    re.MULTILINE,
)


def read_wrapper(path: str) -> WrapperPaths | None:
    """Read a shell wrapper's ``exec /abs/program`` and its exported module paths; None if not one."""
    text = _read_head_quiet(path, 65536).decode("utf-8", "replace")
    found = _WRAPPER_EXEC.search(text)
    if found is None or found["program"] == path or not _is_elf_file(os.path.realpath(found["program"])):
        return None  # not a wrapper, or one that execs another script (pyenv's libexec): not followed
    python: list[str] = []
    gems: list[str] = []
    for export in _WRAPPER_EXPORT.finditer(text):
        dirs = [d for d in export["value"].split(":") if d.startswith("/") and os.path.isdir(d)]
        (gems if export["name"].startswith("GEM_") else python).extend(dirs)
    return WrapperPaths(found["program"], tuple(dict.fromkeys(python)), tuple(dict.fromkeys(gems)))


def _program_name(path: str) -> str:
    """``.python3.11-wrapped`` (what Nix wrappers exec) is ``python3.11``."""
    return os.path.basename(path).lstrip(".").removesuffix("-wrapped")


def _pyenv_shim_target(path: str, env: Mapping[str, str] | None = None) -> str | None:
    """A pyenv shim is a bash script; ``$PYENV_VERSION`` or the version file names the real interpreter."""
    shims = os.path.dirname(path)
    if os.path.basename(shims) != "shims" or b"pyenv" not in _read_head_quiet(path, 4096):
        return None
    root = os.path.dirname(shims)
    environ = os.environ if env is None else env
    chosen = environ.get("PYENV_VERSION") or _read_first_word(os.path.join(root, "version")) or ""
    version = chosen.split(":", 1)[0]
    if not version or version == "system":
        return None
    candidate = os.path.join(root, "versions", version, "bin", os.path.basename(path))
    return candidate if os.path.exists(candidate) else None


def _read_first_word(path: str) -> str | None:
    try:
        words = _read_text(path).split()
    except OSError:
        return None
    return words[0] if words else None


def _resolve_directory(spec: str, path: str, ext: Sequence[str]) -> Target:
    """A venv, a project with ``.venv``/``venv``, or a prefix with ``bin/python3``/``bin/ruby``."""
    if os.path.isfile(os.path.join(path, "pyvenv.cfg")):
        return _resolve_venv(spec, path, ext)
    for name in (".venv", "venv"):
        inner = os.path.join(path, name)
        if os.path.isfile(os.path.join(inner, "pyvenv.cfg")):
            return _resolve_venv(spec, inner, ext, [f"using the venv {inner} inside {path}"])
    interpreter = _prefix_interpreter(path)
    if interpreter is not None:
        return _resolve_file(spec, interpreter, ext, [f"using {interpreter} of the prefix {path}"])
    raise TargetError(f"{path}: a directory without pyvenv.cfg, .venv/, or bin/python3 or bin/ruby; {_WHAT}")


def _prefix_interpreter(prefix: str) -> str | None:
    bin_dir = os.path.join(prefix, "bin")
    try:
        names = sorted(os.listdir(bin_dir))
    except OSError:
        return None
    pythons = [n for n in names if re.fullmatch(r"python3(\.\d+)?", n)]
    pythons.sort(key=lambda n: (n.count("."), n), reverse=True)
    for name in [*pythons, "ruby"]:
        candidate = os.path.join(bin_dir, name)
        if name in names and _is_elf_file(os.path.realpath(candidate)):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------------
# A running process
# ---------------------------------------------------------------------------------------------------


def _proc_error(pid: int, error: OSError, what: str) -> TargetError:
    if isinstance(error, FileNotFoundError | ProcessLookupError):
        return TargetError(f"pid {pid}: no such process (or it has no {what}, like a kernel thread)")
    if isinstance(error, PermissionError):
        return TargetError(
            f"pid {pid}: permission denied reading /proc/{pid}/{what}; run as its user or root"
        )
    return TargetError(f"pid {pid}: cannot read /proc/{pid}/{what}: {_os_reason(error)}")


def mapped_files(pid: int) -> tuple[str, ...]:
    """The files ``/proc/PID/maps`` shows, each once, in address order (pseudo entries dropped)."""
    try:
        text = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise _proc_error(pid, error, "maps") from None
    seen: dict[str, None] = {}
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            seen.setdefault(fields[5].removesuffix(" (deleted)"), None)
    return tuple(seen)


def _looks_like_extension(path: str) -> bool:
    name = os.path.basename(path)
    if ".cpython-" in name or name.endswith(".abi3.so"):
        return True
    markers = ("/site-packages/", "/dist-packages/", "/lib-dynload/", "/lib/ruby/", "/gems/")
    return name.endswith(".so") and any(marker in path for marker in markers)


def _loaded_name(path: str) -> str:
    for marker in ("/site-packages/", "/dist-packages/", "/lib-dynload/"):
        if marker in path:
            return _module_name(path, path.split(marker, 1)[0] + marker)
    return os.path.basename(path).split(".", 1)[0]


def _pid_venv(pid: int, loaded: Sequence[str]) -> str | None:
    """The venv of a Python process: from ``argv[0]`` as run, else from a loaded site-packages path."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, UnicodeDecodeError):
        argv0, cwd = "", "/"
    if "/" in argv0:
        venv = _venv_of_executable(os.path.join(cwd, argv0))
        if venv is not None:
            return venv
    for path in loaded:
        if "/site-packages/" in path:
            root = path.split("/lib/", 1)[0]
            if os.path.isfile(os.path.join(root, "pyvenv.cfg")):
                return root
    return None


def target_from_pid(pid: int) -> Target:
    """The running process ``pid``: what it has mapped, and the extensions it could still import."""
    if pid <= 0:
        raise TargetError(f"pid {pid}: not a process id; give the number ps or pgrep shows")
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError as error:
        raise _proc_error(pid, error, "exe") from None
    loaded = mapped_files(pid)
    static = _static_for_pid(pid, exe, loaded)
    static_paths = {ext.path for ext in static.extensions}
    caller = next((e.caller for e in static.extensions), None)
    loaded_ext = [p for p in loaded if p != exe and (p in static_paths or _looks_like_extension(p))]
    by_path = {e.path: e for e in static.extensions}
    extensions = [by_path.get(p, Extension(p, _loaded_name(p), caller)) for p in loaded_ext]
    extensions += [e for e in static.extensions if e.path not in set(loaded_ext)]
    return Target(
        kind=static.kind,
        spec=f"pid {pid}",
        executable=exe,
        extensions=_unique_extensions(extensions),
        environment=static.environment,
        searched_dirs=static.searched_dirs,
        loaded=frozenset(loaded),
        pid=pid,
        notes=static.notes,
    )


def _static_for_pid(pid: int, exe: str, loaded: Sequence[str]) -> Target:
    """The static view of the process's executable; a deleted or odd one still gives a generic target."""
    try:
        if interpreter_kind(exe, _dynamic_needed(exe)) == "python":
            venv = _pid_venv(pid, loaded)
            if venv is not None:
                return _resolve_venv(exe, venv, ())
        return _resolve_file(exe, exe, (), ())
    except TargetError as error:
        return Target(kind="generic", spec=exe, executable=exe, notes=(f"static view unavailable: {error}",))


# ---------------------------------------------------------------------------------------------------
# Candidates for the TUI's picker
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target the picker offers: ``path`` is what ``resolve_target`` takes, ``why`` where we found it."""

    label: str
    path: str
    kind: str  # "venv", "python" or "ruby"
    why: str


def _which(name: str, env: Mapping[str, str], cwd: str) -> list[str]:
    found: list[str] = []
    for directory in env.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(cwd, directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append(candidate)
    return found


def _program_candidate(path: str, why: str, env: Mapping[str, str]) -> Candidate | None:
    """A PATH or devbox entry: a venv's python becomes that venv; a shim its version; scripts are skipped."""
    venv = _venv_of_executable(path)
    if venv is not None and os.path.basename(path).startswith("python"):
        return _venv_candidate(venv, why)
    real = os.path.realpath(path)
    head = _read_head_quiet(real)
    if not head.startswith(ELF_MAGIC):
        shim = _pyenv_shim_target(path, env)
        if shim is None:
            return None
        real = os.path.realpath(shim)
    kind = "ruby" if os.path.basename(path).startswith("ruby") else "python"
    return Candidate(label=f"{os.path.basename(path)} ({real})", path=real, kind=kind, why=why)


def _read_head_quiet(path: str, size: int = 256) -> bytes:
    try:
        return _read_head(path, size)
    except TargetError:
        return b""


def _venv_candidate(venv: str, why: str) -> Candidate | None:
    try:
        version = _venv_version(read_pyvenv_cfg(os.path.join(venv, "pyvenv.cfg")))
    except TargetError:
        return None
    label = f"{venv} (Python {version})" if version else venv
    return Candidate(label=label, path=venv, kind="venv", why=why)


def detect_candidates(cwd: str, env: Mapping[str, str]) -> list[Candidate]:
    """Targets worth offering, most specific first, one per real path."""
    found: list[Candidate | None] = []
    virtual_env = env.get("VIRTUAL_ENV")
    if virtual_env and os.path.isfile(os.path.join(virtual_env, "pyvenv.cfg")):
        found.append(_venv_candidate(virtual_env, "$VIRTUAL_ENV (the active venv)"))
    for name in (".venv", "venv"):
        directory = os.path.join(cwd, name)
        if os.path.isfile(os.path.join(directory, "pyvenv.cfg")):
            found.append(_venv_candidate(directory, f"./{name} in the current directory"))
    profile = os.path.join(cwd, ".devbox", "nix", "profile", "default", "bin")
    for name in ("python3", "ruby"):
        if os.path.exists(os.path.join(profile, name)):
            found.append(_program_candidate(os.path.join(profile, name), "the devbox profile", env))
    for name in ("python3", "ruby"):
        for path in _which(name, env, cwd):
            candidate = _program_candidate(path, f"{name} on PATH", env)
            if candidate is not None:
                found.append(candidate)
                break
    return _unique(found)


def _unique(found: Iterable[Candidate | None]) -> list[Candidate]:
    seen: set[str] = set()
    unique: list[Candidate] = []
    for candidate in found:
        if candidate is None:
            continue
        key = os.path.realpath(candidate.path)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


candidates = detect_candidates  # the name docs/CONTRACTS.md uses
