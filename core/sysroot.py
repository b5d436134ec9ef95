"""A directory seen as ``/`` by the programs inside it: a sysroot, a chroot, an unpacked container image.

``scan --root DIR`` models the loader that runs inside DIR: its ``/etc/ld.so.cache``, its ld.so's default
directories, absolute RPATH/RUNPATH entries, PT_INTERP and absolute symlinks all name files *inside*
DIR. Every path of such a scan is a path as the process inside sees it (``/usr/lib/…``); only the moment
a file is opened, listed or stat()ed translates it with :meth:`Sysroot.host`, which resolves symlinks
the way the kernel does in a chroot: an absolute target restarts at DIR and ``..`` stops at DIR, so no
path ever leaves it.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

_MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS: one more is ELOOP


@dataclass(frozen=True, slots=True)
class Sysroot:
    """``dir`` is the absolute real path of the root directory on this machine."""

    dir: str

    @classmethod
    def at(cls, directory: str) -> Sysroot:
        """The root at ``directory`` (made absolute and real); raises ``NotADirectoryError``/``OSError``."""
        real = os.path.realpath(os.path.abspath(os.path.expanduser(directory)))
        info = os.stat(real)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
        return cls(real)

    def host(self, path: str) -> str:
        """Where the file the inside path ``path`` names is on this machine, every symlink resolved
        inside the root. A missing component ends the resolution (the rest is appended as it is);
        a symlink loop gives the lexical path, whose open then fails as the loop would."""
        resolved = self._resolve(path, follow_last=True)
        return resolved if resolved is not None else self.lexical(path)

    def host_parent(self, path: str) -> str:
        """``path`` with its directories resolved inside the root and its last component kept (lstat)."""
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self.host(head or "/")
        return os.path.join(parent, name) if name else parent

    def lexical(self, path: str) -> str:
        """``DIR`` + ``path`` without resolving anything."""
        return self.dir + "/" + path.lstrip("/") if path.strip("/") else self.dir

    def inside(self, host_path: str) -> str:
        """The inside path of a path under DIR on this machine (``/`` for DIR itself); a path outside
        DIR is returned as it is (it cannot be named from inside)."""
        if host_path == self.dir:
            return "/"
        if host_path.startswith(self.dir + "/"):
            return host_path[len(self.dir) :]
        return host_path

    def realpath(self, path: str) -> str:
        """The inside path with every symlink resolved (``os.path.realpath`` inside the chroot)."""
        return self.inside(self.host(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(self.host(path))

    def _resolve(self, path: str, *, follow_last: bool) -> str | None:
        """Walk ``path`` component by component from DIR; None on a symlink loop."""
        pending = [part for part in path.split("/") if part]
        pending.reverse()
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = self.dir + "/" + "/".join([*done, part])
            if not pending and not follow_last:
                done.append(part)
                break
            try:
                info = os.lstat(candidate)
            except (OSError, ValueError):
                done.append(part)
                done += reversed(pending)
                break
            if not stat.S_ISLNK(info.st_mode):
                done.append(part)
                continue
            links += 1
            if links > _MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            pending += reversed([item for item in target.split("/") if item])
        return self.dir + "/" + "/".join(done) if done else self.dir


# The root a target is being resolved in (core/targets/rooted.py): the target modules read files of this
# machine, and where a file inside names an absolute path (a venv's ``pyvenv.cfg`` home, an absolute
# ``bin/python3`` link) it must be taken inside the root, not here.
_RESOLVING: contextvars.ContextVar[Sysroot | None] = contextvars.ContextVar("resolving_in", default=None)


@contextlib.contextmanager
def resolving_in(root: Sysroot) -> Iterator[None]:
    """Within this block ``resolving()`` is ``root``: target resolution reads files inside it."""
    token = _RESOLVING.set(root)
    try:
        yield
    finally:
        _RESOLVING.reset(token)


def resolving() -> Sysroot | None:
    """The root a target is being resolved in, if any."""
    return _RESOLVING.get()


def real_file(path: str) -> str:
    """``os.path.realpath`` of a file of this machine, or, while resolving in a root, the file that a
    path under it leads to with its symlinks resolved inside the root."""
    root = _RESOLVING.get()
    absolute = os.path.abspath(path)
    if root is None or not (absolute == root.dir or absolute.startswith(root.dir + "/")):
        return os.path.realpath(path)
    return root.host(root.inside(absolute))


def named_file(path: str) -> str:
    """An absolute path written in a file (``pyvenv.cfg``'s home): inside the root while resolving in one."""
    root = _RESOLVING.get()
    return root.host(path) if root is not None and path.startswith("/") else path


def host_path(root: Sysroot | None, path: str) -> str:
    """The file on this machine for a path of a scan (``root`` is the scan's root, None for none)."""
    return root.host(path) if root is not None and path.startswith("/") else path


# Why ``fix`` (and rollback) refuse a target inside a root: the patched copy, its glibc view and the
# store live on this machine, outside DIR, where the programs inside it never look.
FIX_REFUSAL = (
    "fix does not work with --root: the patched copy and its glibc would live outside DIR, where "
    "programs inside it cannot see them; run glibc-doctor fix inside the image (or its chroot)"
)
