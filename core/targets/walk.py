"""Walking extension directories fast, and the Target built from what a walk found."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from glibc_doctor.core.elf import is_library_name
from glibc_doctor.core.errors import NotElf, TargetError
from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.targets.files import NOT_REGULAR, is_elf_file, os_reason, stat_or_raise

SKIPPED_DIR_NAMES = frozenset({"__pycache__"})


@dataclass(slots=True)
class Walk:
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
            self.notes.append(f"skipped {root}: {os_reason(error)}")
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
                            self.notes.append(f"skipped {entry.path}: {os_reason(error)}")
                        continue
                    if child is not None:
                        subdirs.append(child)
                    elif not is_dir and accept(entry.name):
                        self.found.append((entry.path, root))
        except OSError as error:
            self.notes.append(f"skipped {directory}: {os_reason(error)}")
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


def module_name(path: str, root: str, separator: str = ".") -> str:
    """``root/psycopg2/_psycopg.cpython-39-x86_64-linux-gnu.so`` -> ``psycopg2._psycopg``."""
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    parts[-1] = parts[-1].split(".", 1)[0]
    return separator.join(parts)


Namer = Callable[[str, str], str]  # (file path, root it was found under) -> the name users know


def _relative_name(path: str, root: str) -> str:
    return os.path.relpath(path, root)


DirectoryExtensions = Callable[[str], Iterable[tuple[str, str]]]  # a --ext dir -> (path, name) pairs


def explicit_extensions(
    ext: Sequence[str],
    walk: Walk,
    caller: str | None,
    namer: Namer = _relative_name,
    directory: DirectoryExtensions | None = None,
) -> list[Extension]:
    """``--ext FILE_OR_DIR``: a file is one extension; a directory gives every library name inside it,
    or what ``directory`` finds there (a python target: the modules importable from it)."""
    extensions: list[Extension] = []
    for entry in ext:
        path = os.path.abspath(os.path.expanduser(entry))
        info = stat_or_raise(path, "check the --ext path")
        if stat.S_ISDIR(info.st_mode) and directory is not None:
            extensions += [Extension(p, name, caller) for p, name in directory(path)]
        elif stat.S_ISDIR(info.st_mode):
            start = len(walk.found)
            walk.walk(path, is_library_name)
            extensions += [Extension(p, namer(p, path), caller) for p, _ in walk.found[start:]]
        elif not stat.S_ISREG(info.st_mode):
            raise TargetError(f"{path}: {NOT_REGULAR}; check the --ext path")
        elif is_elf_file(path):
            extensions.append(Extension(path, namer(path, os.path.dirname(path)), caller))
        else:
            raise NotElf(f"{path}: --ext file is not an ELF shared object; give a .so file or a directory")
    return extensions


def walked_target(
    kind: str,
    spec: str,
    executable: str,
    walk: Walk,
    extensions: Iterable[Extension],
    notes: Sequence[str],
    environment: str | None = None,
    examined: Iterable[str] = (),
) -> Target:
    """A target whose extensions ``walk`` found: one per path, and the walked dirs and the files read to
    decide (``examined``) kept for the cache."""
    return Target(
        kind=kind,
        spec=spec,
        executable=executable,
        extensions=unique_extensions(extensions),
        environment=environment,
        searched_dirs=tuple(walk.dirs),
        examined=tuple(dict.fromkeys(examined)),
        notes=tuple(notes),
    )


def unique_extensions(extensions: Iterable[Extension]) -> tuple[Extension, ...]:
    """One extension per path, the first kept (a --ext entry may repeat a walked directory's file)."""
    by_path: dict[str, Extension] = {}
    for extension in extensions:
        by_path.setdefault(extension.path, extension)
    return tuple(by_path.values())
