"""ld.so's verdict on one candidate file of a search, in its own words (``open_verify``, elf/dl-load.c).

A search tries one file per directory; what ld.so does with it depends on how the open and the header
checks went, in this order:

- no such file (ENOENT, ENOTDIR): the search goes on; so does EACCES, and a file of the other ELF
  class or another machine (skipped, remembered for "wrong ELF class");
- any other failed open (a symlink loop, a name too long): the rest of that search path (this RPATH,
  LD_LIBRARY_PATH, RUNPATH or the default directories) is dropped, the next one is tried;
- a file it opened but cannot use stops the whole load with an error: a directory ("cannot read file
  data: Is a directory"), fewer bytes than an ELF header ("file too short", whatever they hold), no
  ELF magic ("invalid ELF header"), a wrong byte order, version or OS ABI, a type that is not ET_DYN or
  ET_EXEC, program headers past the end ("cannot read file data").

The errno words depend on who reports: at startup ld.so's own minimal ``strerror`` knows six errors and
prints ``Error 21`` for the rest; an error of ``dlopen()`` goes through libc's ``dlerror()``.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from glibc_doctor.core.model import EM_386, EM_AARCH64, EM_X86_64, ElfFacts, Problem

_VALID_OSABI = (0, 3)  # ELFOSABI_SYSV, ELFOSABI_GNU: what glibc's VALID_ELF_OSABI accepts
_LIBC_ABI_MAX = 4  # the GNU ABI versions glibc knows (unique symbols, IFUNC, absolute symbols)
_EHDR_SIZE = {32: 52, 64: 64}
_PHDR_SIZE = {32: 32, 64: 56}
_LITTLE_ENDIAN_LOADERS = (EM_X86_64, EM_386, EM_AARCH64)  # the byte order ld.so demands of a file
ET_EXEC, ET_DYN = 2, 3

# rtld's own __strerror_r (elf/dl-minimal.c): every other errno is "Error N".
_RTLD_ERRNO_WORDS = {
    errno.ENOMEM: "Cannot allocate memory",
    errno.EINVAL: "Invalid argument",
    errno.ENOENT: "No such file or directory",
    errno.EPERM: "Operation not permitted",
    errno.EIO: "Input/output error",
    errno.EACCES: "Permission denied",
}


class Verdict(Enum):
    """What the search does with one candidate."""

    USE = "use"  # the file is mapped
    MISSING = "missing"  # nothing there: try the next candidate
    SKIP = "skip"  # opened and passed over (other class or machine, no permission): next candidate
    END_PATH = "end-path"  # the open failed oddly: the rest of this search path is dropped
    STOP = "stop"  # the load fails with ``reason``


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    reason: str = ""


def errno_words(code: int, *, startup: bool) -> str:
    """``strerror(code)`` as the reporter prints it: rtld's short table at startup, libc's in dlopen."""
    if startup:
        return _RTLD_ERRNO_WORDS.get(code, f"Error {code}")
    return os.strerror(code)


def verify_candidate(path: str, facts: ElfFacts, *, elf_class: int, machine: int, startup: bool) -> Check:
    """ld.so's verdict on ``path`` (absolute), whose ELF facts are ``facts``, for a loader of this kind.

    A well-formed file is judged on its facts; a file the reader found a problem in is read again the
    way ld.so reads it (the first bytes only), since ld.so stops at different points than the reader.
    """
    if facts.problem is Problem.MISSING:
        return Check(Verdict.MISSING)
    if facts.ok and facts.little_endian and facts.osabi in _VALID_OSABI:
        return _verify_facts(facts, elf_class, machine)
    return _verify_file(path, elf_class, machine, startup)


def _verify_facts(facts: ElfFacts, elf_class: int, machine: int) -> Check:
    """A well-formed little-endian file of a valid OS ABI: only its class, machine and type count."""
    if facts.elf_class != elf_class:
        return Check(Verdict.SKIP, f"wrong ELF class: ELFCLASS{facts.elf_class}")
    if facts.machine != machine:
        return Check(Verdict.SKIP, f"wrong machine: e_machine {facts.machine}")
    if facts.elf_type not in (ET_EXEC, ET_DYN):
        return Check(Verdict.STOP, "only ET_DYN and ET_EXEC can be loaded")
    return Check(Verdict.USE)


def _verify_file(path: str, elf_class: int, machine: int, startup: bool) -> Check:
    """open() and read() as ld.so does, without ever blocking on a FIFO or a device."""
    try:
        info = os.stat(path)
    except OSError as error:
        return _open_failed(error.errno or errno.EIO, startup)
    except ValueError:  # an embedded NUL: no such name for the kernel either
        return Check(Verdict.MISSING)
    if stat.S_ISDIR(info.st_mode):
        return Check(Verdict.STOP, f"cannot read file data: {errno_words(errno.EISDIR, startup=startup)}")
    if not stat.S_ISREG(info.st_mode):
        return Check(Verdict.SKIP, "not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        return _open_failed(error.errno or errno.EIO, startup)
    try:
        header = os.pread(fd, _EHDR_SIZE[elf_class], 0)
    except OSError as error:
        code = error.errno or errno.EIO
        return Check(Verdict.STOP, f"cannot read file data: {errno_words(code, startup=startup)}")
    finally:
        os.close(fd)
    return _verify_header(header, info.st_size, elf_class, machine)


def _open_failed(code: int, startup: bool) -> Check:
    if code in (errno.ENOENT, errno.ENOTDIR):
        return Check(Verdict.MISSING)
    words = errno_words(code, startup=startup)
    if code == errno.EACCES:
        return Check(Verdict.SKIP, words)
    return Check(Verdict.END_PATH, words)


def _verify_header(header: bytes, size: int, elf_class: int, machine: int) -> Check:
    """The checks of ``open_verify`` on the first bytes, in its order and words."""
    if len(header) < _EHDR_SIZE[elf_class]:
        return Check(Verdict.STOP, "file too short")
    ident_problem = _ident_problem(header, elf_class, machine)
    if ident_problem is not None:
        return ident_problem
    order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    if int.from_bytes(header[20:24], order) != 1:
        return Check(Verdict.STOP, "ELF file version does not match current one")
    found_machine = int.from_bytes(header[18:20], order)
    if found_machine != machine:
        return Check(Verdict.SKIP, f"wrong machine: e_machine {found_machine}")
    if int.from_bytes(header[16:18], order) not in (ET_EXEC, ET_DYN):
        return Check(Verdict.STOP, "only ET_DYN and ET_EXEC can be loaded")
    wide = elf_class == 64
    phoff = int.from_bytes(header[32:40] if wide else header[28:32], order)
    phentsize_at = 54 if wide else 42
    phentsize = int.from_bytes(header[phentsize_at : phentsize_at + 2], order)
    phnum = int.from_bytes(header[phentsize_at + 2 : phentsize_at + 4], order)
    if phentsize != _PHDR_SIZE[elf_class]:
        return Check(Verdict.STOP, "ELF file's phentsize not the expected size")
    if phoff + phnum * phentsize > size:
        return Check(Verdict.STOP, "cannot read file data")
    return Check(Verdict.USE)


def _ident_problem(header: bytes, elf_class: int, machine: int) -> Check | None:
    """``VALID_ELF_HEADER`` and the words ld.so picks for the first difference (little-endian hosts).

    Checked against ld.so 2.31, 2.36 and 2.41: when the identification is wrong, a file of another
    machine (e_machine read in the loader's byte order) is skipped before the byte order, version,
    OS ABI or padding are blamed; a well-identified file has its e_version checked first.
    """
    if header[:4] != b"\x7fELF":
        return Check(Verdict.STOP, "invalid ELF header")
    found_class = {1: 32, 2: 64}.get(header[4], header[4])
    if found_class != elf_class:
        return Check(Verdict.SKIP, f"wrong ELF class: ELFCLASS{found_class}")
    if _ident_is_valid(header):
        return None
    found_machine = int.from_bytes(header[18:20], "little")
    if found_machine != machine:
        return Check(Verdict.SKIP, f"wrong machine: e_machine {found_machine}")
    if header[5] != 1 and machine in _LITTLE_ENDIAN_LOADERS:
        return Check(Verdict.STOP, "ELF file data encoding not little-endian")
    if header[6] != 1:
        return Check(Verdict.STOP, "ELF file version ident does not match current one")
    osabi, abiversion = header[7], header[8]
    if osabi not in _VALID_OSABI:
        return Check(Verdict.STOP, "ELF file OS ABI invalid")
    if abiversion != 0 and not (osabi == 3 and abiversion < _LIBC_ABI_MAX):
        return Check(Verdict.STOP, "ELF file ABI version invalid")
    return Check(Verdict.STOP, "nonzero padding in e_ident")


def _ident_is_valid(header: bytes) -> bool:
    osabi, abiversion = header[7], header[8]
    return (
        header[5] == 1
        and header[6] == 1
        and osabi in _VALID_OSABI
        and (abiversion == 0 or (osabi == 3 and abiversion < _LIBC_ABI_MAX))
        and not any(header[9:16])
    )
