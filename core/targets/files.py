"""Small checks on the paths and files a target names: one clear TargetError line for each way they fail."""

from __future__ import annotations

import errno
import os
import stat

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import TargetError

ELF_MAGIC = b"\x7fELF"


def stat_or_raise(path: str, what: str) -> os.stat_result:
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
        raise TargetError(f"{path}: {os_reason(error)}; {what}") from None


def os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if error.errno == errno.ENOTDIR:
        return "a component of the path is a file, not a directory"
    if error.errno == errno.ENAMETOOLONG:
        return "path too long"
    return error.strerror or str(error)


def check_listable(directory: str) -> None:
    """A directory we may not list would look empty (no pyvenv.cfg); say the real reason instead."""
    try:
        os.listdir(directory)
    except PermissionError:
        raise TargetError(f"{directory}: permission denied; run as a user who can read it") from None
    except OSError as error:
        raise TargetError(f"{directory}: cannot list: {os_reason(error)}") from None


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


def read_text(path: str) -> str:
    return _read_regular(path, MAX_TEXT_BYTES).decode("utf-8", "replace")


def read_head(path: str, size: int = 256) -> bytes:
    try:
        return _read_regular(path, size)
    except PermissionError:
        raise TargetError(f"{path}: permission denied; run as a user who can read it") from None
    except OSError as error:
        raise TargetError(f"{path}: cannot read: {os_reason(error)}") from None


def is_elf_file(path: str) -> bool:
    try:
        return _read_regular(path, 4) == ELF_MAGIC
    except OSError:
        return False


def dynamic_needed(path: str) -> tuple[str, ...]:
    """DT_NEEDED of ``path``; empty for a static or unreadable file (the caller already checked ELF).

    The bounds-checked reader of ``core/elf.py`` never raises on a hostile file (pyelftools raises
    a different exception for each kind of damage) and is the loader's own view.
    """
    return read_elf(path).needed


def shebang(head: bytes) -> str | None:
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def program_name(path: str) -> str:
    """``.python3.11-wrapped`` (what Nix wrappers exec) is ``python3.11``."""
    return os.path.basename(path).lstrip(".").removesuffix("-wrapped")


def read_first_word(path: str) -> str | None:
    try:
        words = read_text(path).split()
    except OSError:
        return None
    return words[0] if words else None


def read_head_quiet(path: str, size: int = 256) -> bytes:
    try:
        return read_head(path, size)
    except TargetError:
        return b""
