"""Programs this machine cannot model: another architecture, object files, core dumps."""

from __future__ import annotations

import functools
import os
import shutil
import sys

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import UnsupportedElf
from glibc_doctor.core.loader import SYSTEM_LOADERS
from glibc_doctor.core.model import EM_386, EM_AARCH64, EM_X86_64, ElfFacts
from glibc_doctor.core.sysroot import resolving

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4

# qemu's user-mode emulators, by (class, machine): a foreign program runs under one of these
# (``qemu-aarch64-static -L ROOT PROG``), so the fix's check can run a patched interpreter here.
QEMU_NAMES = {(64, EM_AARCH64): ("qemu-aarch64-static", "qemu-aarch64")}


def emulator_for(elf_class: int, machine: int) -> str | None:
    """The qemu user-mode emulator on PATH that runs programs of this class and machine, if any."""
    for name in QEMU_NAMES.get((elf_class, machine), ()):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def _own_loader_here(facts: ElfFacts) -> bool:
    """Is the program's PT_INTERP on this machine, a loader of the program's own kind (a Nix store or
    a cross sysroot hard-wires its programs so)? Then its search is read from files that are here."""
    if not facts.interpreter:
        return False
    loader = read_elf(facts.interpreter)
    return loader.ok and _kind(loader) == _kind(facts)


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
    a 32-bit loader is installed, so they are scanned then. A program of another architecture is
    scanned inside a ``--root`` directory (its own loader and libraries are there), or when its
    PT_INTERP is a loader of its own kind on this machine (a store hard-wired to it). A file whose
    header is damaged is left to the scan, which says what is wrong with it.
    """
    host = _host()
    if not facts.ok or host is None:
        return
    if facts.elf_type in _NOT_PROGRAMS:
        raise UnsupportedElf(f"{path}: {_NOT_PROGRAMS[facts.elf_type]}")
    if _kind(facts) == _kind(host) or resolving() is not None or _own_loader_here(facts):
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
        "programs; scan it on a machine of its architecture, or inside its image with --root DIR"
    )
