"""The synthetic ELF corpus: a fake old and new glibc, extensions, programs and hostile files.

Everything is compiled by the machine's gcc (``tests/gcc.py``) with ``-nostdlib`` from a few lines of
assembly, so the fake libraries carry exactly the symbol versions we choose, like a real glibc 2.31
and 2.38 do, and link in milliseconds. Nothing here is ever executed: these files are for static
reading (the loader model, the analysis, the ELF reader), never for running.

What stands in for what:
- ``old_glibc/`` is a Nix-style glibc 2.31 (libc.so.6 defines ``GLIBC_2.2.5`` … ``GLIBC_2.31`` plus
  ``GLIBC_PRIVATE``; ``pthread_create`` lives in libpthread.so.0, as before 2.34).
- ``new_glibc/`` is the stdenv glibc 2.38 the extensions were built against (adds ``GLIBC_2.32`` …
  ``GLIBC_2.38``; ``pthread_create``, ``__libc_start_main`` at ``GLIBC_2.34``, ``strlcpy`` at 2.38).
- ``apps/`` holds the "interpreter" programs, linked against the OLD glibc with PT_INTERP set to the old
  fake loader, with RPATH/RUNPATH/$ORIGIN/NODEFLIB variants.
- ``ext/`` holds extensions linked against the NEW glibc.
- ``bad/`` holds hostile inputs for the reader: truncated, malformed, foreign, links and directories.

``build_synthetic(root)`` builds the corpus anywhere (benchmarks use it too); the ``synthetic`` fixture
builds it once per test session.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from tests.gcc import compile_elf

# ---------------------------------------------------------------------------------------------------
# The symbol versions of the fake glibc. Each version node defines real-looking symbols of that release.

# libc.so.6 of the old glibc (release 2.31): versions up to GLIBC_2.31 inclusive.
OLD_LIBC_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.2.5", ("strlen", "printf", "malloc", "free", "puts", "memset", "__libc_start_main")),
    ("GLIBC_2.3", ("realpath", "__ctype_b_loc")),
    ("GLIBC_2.3.2", ("epoll_create",)),
    ("GLIBC_2.3.3", ("gnu_dev_major",)),
    ("GLIBC_2.3.4", ("getipv4sourcefilter",)),
    ("GLIBC_2.4", ("__stack_chk_fail", "openat")),
    ("GLIBC_2.5", ("splice",)),
    ("GLIBC_2.6", ("sched_getcpu",)),
    ("GLIBC_2.7", ("eventfd", "__isoc99_sscanf")),
    ("GLIBC_2.8", ("timerfd_create",)),
    ("GLIBC_2.9", ("dup3", "pipe2")),
    ("GLIBC_2.10", ("accept4",)),
    ("GLIBC_2.11", ("mkstemps",)),
    ("GLIBC_2.12", ("ntp_gettimex",)),
    ("GLIBC_2.13", ("prlimit",)),
    ("GLIBC_2.14", ("memcpy", "syncfs")),
    ("GLIBC_2.15", ("process_vm_readv", "__fdelt_chk")),
    ("GLIBC_2.16", ("aligned_alloc", "getauxval")),
    ("GLIBC_2.17", ("clock_gettime", "secure_getenv")),
    ("GLIBC_2.18", ("__cxa_thread_atexit_impl",)),
    ("GLIBC_2.19", ("__fake_glibc_2_19",)),
    ("GLIBC_2.20", ("__fake_glibc_2_20",)),
    ("GLIBC_2.21", ("__fake_glibc_2_21",)),
    ("GLIBC_2.22", ("__fake_glibc_2_22",)),
    ("GLIBC_2.23", ("fts64_open",)),
    ("GLIBC_2.24", ("quick_exit",)),
    ("GLIBC_2.25", ("getrandom", "explicit_bzero", "getentropy")),
    ("GLIBC_2.26", ("reallocarray", "preadv2")),
    ("GLIBC_2.27", ("memfd_create", "copy_file_range")),
    ("GLIBC_2.28", ("statx", "renameat2", "fcntl64")),
    ("GLIBC_2.29", ("getcpu", "posix_spawn_file_actions_addchdir_np")),
    ("GLIBC_2.30", ("gettid", "twalk_r")),
    ("GLIBC_2.31", ("__fake_glibc_2_31",)),
)

# What the new glibc (release 2.38) adds on top of the old one.
NEW_LIBC_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.32", ("sigabbrev_np", "sigdescr_np", "pthread_attr_setsigmask_np")),
    ("GLIBC_2.33", ("stat", "fstat", "lstat", "mknod")),
    ("GLIBC_2.34", ("pthread_create", "pthread_join", "dlopen", "__libc_start_main")),
    ("GLIBC_2.35", ("epoll_pwait2",)),
    ("GLIBC_2.36", ("arc4random", "pidfd_open")),
    ("GLIBC_2.37", ("__fake_glibc_2_37",)),
    ("GLIBC_2.38", ("strlcpy", "strlcat", "__isoc23_strtol")),
)

LIBC_PRIVATE = ("__libc_pthread_init", "__libc_dlopen_mode")

OLD_LIBM_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.2.5", ("sin", "cos", "floor")),
    ("GLIBC_2.15", ("__exp_finite",)),
    ("GLIBC_2.27", ("expf", "logf")),
    ("GLIBC_2.29", ("exp", "log", "pow")),
)
NEW_LIBM_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (("GLIBC_2.35", ("fmaximum", "fminimum")),)

OLD_LDSO_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.2.5", ("_dl_mcount",)),
    ("GLIBC_2.3", ("__tls_get_addr",)),
    ("GLIBC_2.4", ("__stack_chk_guard",)),
)
NEW_LDSO_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.34", ("__rtld_version_placeholder",)),
    ("GLIBC_2.35", ("_dl_find_object", "__rseq_offset")),
)
LDSO_PRIVATE = ("_rtld_global", "_dl_argv")

LIBPTHREAD_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLIBC_2.2.5", ("pthread_create", "pthread_join")),
    ("GLIBC_2.3.2", ("pthread_cond_wait",)),
)

LOADER_NAME = "ld-linux-x86-64.so.2"

# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Synthetic:
    """Paths of the synthetic corpus (all absolute, all under ``root``).

    Libraries are named exactly as ld.so looks for them (``libc.so.6``) so the loader model can search
    these directories. Where a field says "needs", it is the ``.gnu.version_r`` content.
    """

    root: Path  # the directory holding everything below

    # old_glibc/: the Nix-style glibc 2.31 the interpreter is hard-wired to.
    old_glibc: Path  # the directory
    old_libc: Path  # libc.so.6: GLIBC_2.2.5 … GLIBC_2.31 + GLIBC_PRIVATE; "stable release version 2.31"
    old_libm: Path  # libm.so.6: GLIBC_2.2.5 … GLIBC_2.29; needs libc.so.6 GLIBC_2.2.5
    old_libpthread: Path  # libpthread.so.0: pthread_create@@GLIBC_2.2.5; needs libc.so.6 GLIBC_PRIVATE
    old_loader: Path  # ld-linux-x86-64.so.2 (soname too): GLIBC_2.2.5/2.3/2.4 + GLIBC_PRIVATE

    # new_glibc/: the stdenv glibc 2.38 that built the extensions.
    new_glibc: Path
    new_libc: Path  # libc.so.6: everything old_libc defines + GLIBC_2.32 … GLIBC_2.38; release 2.38
    new_libm: Path  # libm.so.6: old_libm's versions + GLIBC_2.35 (fmaximum)
    new_loader: Path  # ld-linux-x86-64.so.2: old versions + GLIBC_2.34, GLIBC_2.35 + GLIBC_PRIVATE

    # ext/: extensions linked against the NEW glibc (libc.so.6 found by soname).
    ext: Path  # the directory
    ext_needs_234: Path  # soname ext_needs_234.so; pthread_create -> needs libc.so.6 GLIBC_2.34 (+2.2.5)
    ext_needs_238: Path  # no soname; strlcpy + pthread_create -> needs GLIBC_2.38 and GLIBC_2.34 (+2.2.5)
    ext_clean: Path  # no soname; strlen only -> needs GLIBC_2.2.5 only: loads with the old glibc
    ext_weak: Path  # pthread_create as a weak reference -> GLIBC_2.34 need has VER_FLG_WEAK (see _weak)
    ext_libm: Path  # sin + fmaximum + strlen -> needs libm.so.6 GLIBC_2.35 and libc.so.6 GLIBC_2.2.5
    libdep: Path  # soname libdep.so; stat -> needs libc.so.6 GLIBC_2.33
    ext_transitive: Path  # DT_NEEDED libdep.so (calls libdep_function), DT_RUNPATH $ORIGIN; needs 2.2.5
    ext32_needs_234: Path  # 32-bit (i386) real gcc build of ext_needs_234 against a 32-bit fake libc
    libc32: Path  # ext32/libc.so.6, the 32-bit fake libc (i386)

    # apps/: the interpreter-like executables (PIE), linked against the OLD glibc, PT_INTERP = old_loader.
    apps: Path  # the directory
    app: Path  # DT_RPATH = old_glibc; needs libc.so.6, libm.so.6, libpthread.so.0 (GLIBC_2.2.5 only)
    app_runpath: Path  # DT_RUNPATH = old_glibc (no RPATH)
    app_origin: Path  # DT_RPATH = "$ORIGIN/../old_glibc"
    app_origin_runpath: Path  # DT_RUNPATH = "${ORIGIN}/../old_glibc"
    app_both: Path  # DT_RPATH = new_glibc AND DT_RUNPATH = old_glibc (ld.so then ignores the RPATH)
    app_nodeflib: Path  # DT_RPATH = old_glibc and DF_1_NODEFLIB (-z nodeflib)
    app_norpath: Path  # no RPATH/RUNPATH at all (finds libc.so.6 through the cache/default dirs)

    # bad/: hostile inputs. The comment says what is wrong; core/elf.py decides the Problem.
    bad: Path  # the directory
    empty: Path  # 0 bytes
    text: Path  # a text file named like a library
    linker_script: Path  # bad/libc.so: a GNU ld script (as /usr/lib/x86_64-linux-gnu/libc.so is)
    truncated_header: Path  # first 20 bytes of ext_clean (magic, incomplete e_ident/header)
    truncated_phdrs: Path  # cut 8 bytes into the second program header
    truncated_dynamic: Path  # cut 24 bytes into PT_DYNAMIC's file range
    truncated_version_r: Path  # cut 8 bytes into .gnu.version_r
    garbage_after_magic: Path  # "\x7fELF" then class 0 (ELFCLASSNONE) and random bytes
    random_after_ident: Path  # a valid 64-bit little-endian e_ident, then random bytes
    huge_phnum: Path  # ext_clean with e_phnum = 0xfff0: the table runs far past the end
    bad_phentsize: Path  # ext_clean with e_phentsize = 7
    dynamic_no_null: Path  # ext_clean whose DT_NULL entries were overwritten with DT_DEBUG
    strtab_unmapped: Path  # ext_clean whose DT_STRTAB points at a vaddr no PT_LOAD maps
    vn_next_loop: Path  # ext_libm whose 2nd Verneed's vn_next wraps back (32-bit) to the 1st; count huge
    vn_aux_wild: Path  # ext_needs_238 whose first vn_aux points 2 GiB ahead
    elf32: Path  # handcrafted ELF32 little-endian i386 .so with sections, DT_NEEDED and versions
    big_endian: Path  # handcrafted ELF64 big-endian (s390x) .so with sections, DT_NEEDED and versions
    big_endian32: Path  # handcrafted ELF32 big-endian (PowerPC) .so, same content
    foreign_machine: Path  # ext_clean with e_machine = EM_AARCH64 (183): readable, wrong for x86-64
    symlink_loop: Path  # loop_a.so -> loop_b.so -> loop_a.so (ELOOP)
    dangling: Path  # a symlink to a file that does not exist (ENOENT)
    directory: Path  # a directory named libdir.so.1 (EISDIR)

    @property
    def hostile(self) -> tuple[Path, ...]:
        """Every file of ``bad/`` that is not a real, well-formed ELF (the foreign ones are well formed)."""
        return (
            self.empty,
            self.text,
            self.linker_script,
            self.truncated_header,
            self.truncated_phdrs,
            self.truncated_dynamic,
            self.truncated_version_r,
            self.garbage_after_magic,
            self.random_after_ident,
            self.huge_phnum,
            self.bad_phentsize,
            self.dynamic_no_null,
            self.strtab_unmapped,
            self.vn_next_loop,
            self.vn_aux_wild,
            self.symlink_loop,
            self.dangling,
            self.directory,
        )

    @property
    def well_formed(self) -> tuple[Path, ...]:
        """Every real ELF of the corpus, foreign classes, byte orders and machines included."""
        return (
            self.old_libc,
            self.old_libm,
            self.old_libpthread,
            self.old_loader,
            self.new_libc,
            self.new_libm,
            self.new_loader,
            self.ext_needs_234,
            self.ext_needs_238,
            self.ext_clean,
            self.ext_weak,
            self.ext_libm,
            self.libdep,
            self.ext_transitive,
            self.ext32_needs_234,
            self.libc32,
            self.app,
            self.app_runpath,
            self.app_origin,
            self.app_origin_runpath,
            self.app_both,
            self.app_nodeflib,
            self.app_norpath,
            self.elf32,
            self.big_endian,
            self.big_endian32,
            self.foreign_machine,
        )


# ---------------------------------------------------------------------------------------------------
# Fake libraries


def _asm_functions(names: Sequence[str]) -> str:
    """Top-level asm defining each name as a one-instruction function (no C prototypes to clash)."""
    lines = [".text"]
    for name in names:
        lines += [f".globl {name}", f".type {name},@function", f"{name}:", "ret", f".size {name},.-{name}"]
    body = "\\n".join(lines)
    return f'__asm__("{body}\\n");\n'


def _version_script(nodes: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A version script where each node inherits the previous one, as glibc's Versions files chain."""
    out: list[str] = []
    previous = ""
    for index, (version, names) in enumerate(nodes):
        symbols = " ".join(f"{name};" for name in names)
        local = " local: *;" if index == 0 else ""
        out.append(f"{version} {{ global: {symbols}{local} }} {previous};")
        previous = version
    return "\n".join(out) + "\n"


def _definitions(nodes: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Asm defining every symbol of ``nodes``; a name listed in two nodes gets one alias per version.

    This is how glibc 2.34 moved ``__libc_start_main`` to ``GLIBC_2.34`` and kept the old one for old
    binaries: ``.symver __libc_start_main_GLIBC_2_34, __libc_start_main@@GLIBC_2.34`` for the default
    and ``.symver …_GLIBC_2_2_5, __libc_start_main@GLIBC_2.2.5`` for the compat symbol (GNU ld drops
    one of the two when the plain name is merely listed in two version-script nodes).
    """
    newest: dict[str, str] = {}
    count: dict[str, int] = {}
    for version, names in nodes:
        for name in names:
            newest[name] = version
            count[name] = count.get(name, 0) + 1
    plain = [name for name in newest if count[name] == 1]
    source = [_asm_functions(plain)]
    for version, names in nodes:
        for name in (name for name in names if count[name] > 1):
            alias = f"{name}_{version.replace('.', '_')}"
            at = "@@" if newest[name] == version else "@"
            source.append(_asm_functions([alias]))
            source.append(f'__asm__(".symver {alias}, {name}{at}{version}");\n')
    return "".join(source)


def _fake_library(
    out: Path,
    soname: str,
    nodes: Sequence[tuple[str, Sequence[str]]],
    *,
    libs: Sequence[Path] = (),
    uses: Sequence[str] = (),
    extra_source: str = "",
    extra: Sequence[str] = (),
) -> Path:
    """A -nostdlib shared library defining ``nodes``; ``uses`` are symbols it calls from ``libs``."""
    source = _definitions(nodes) + extra_source + _caller(uses)
    link_dirs = sorted({str(lib.parent) for lib in libs})
    return compile_elf(
        out,
        source,
        soname=soname,
        libs=libs,
        version_script=_version_script(nodes),
        nostdlib=True,
        extra=[*(f"-Wl,-rpath-link,{d}" for d in link_dirs), *extra],
    )


def _caller(uses: Sequence[str], weak: Sequence[str] = ()) -> str:
    """C that references each of ``uses`` (and ``weak`` as weak references) so the linker binds them."""
    if not uses and not weak:
        return ""
    decls = "".join(f"extern int {name}();\n" for name in uses)
    decls += "".join(f"extern int {name}() __attribute__((weak));\n" for name in weak)
    calls = "".join(f"  total += {name}();\n" for name in uses)
    calls += "".join(f"  if ({name}) total += {name}();\n" for name in weak)
    return f"{decls}int glibc_doctor_entry(void) {{\n  int total = 0;\n{calls}  return total;\n}}\n"


def _ldso_strings(lib_dir: Path) -> str:
    """What a Nix ld.so carries in .rodata: its default directory (with a slash, as SYSTEM_DIRS has)."""
    return f'const char glibc_doctor_system_dirs[] = "{lib_dir}/";\n'


Nodes = Sequence[tuple[str, Sequence[str]]]


def _build_glibc(
    directory: Path, release: str, libc_nodes: Nodes, libm_nodes: Nodes, ldso_nodes: Nodes, pthread: bool
) -> None:
    """One fake glibc: ld.so, then libc.so.6 (needing ld.so's GLIBC_PRIVATE, as the real one does), libm."""
    loader = _fake_library(
        directory / LOADER_NAME,
        LOADER_NAME,
        [*ldso_nodes, ("GLIBC_PRIVATE", LDSO_PRIVATE)],
        extra_source=_ldso_strings(directory),
    )
    banner = f'const char glibc_doctor_banner[] = "GNU C Library (fake) stable release version {release}.";\n'
    libc = _fake_library(
        directory / "libc.so.6",
        "libc.so.6",
        [*libc_nodes, ("GLIBC_PRIVATE", LIBC_PRIVATE)],
        libs=[loader],
        uses=["_rtld_global", "__tls_get_addr"],
        extra_source=banner,
    )
    _fake_library(directory / "libm.so.6", "libm.so.6", libm_nodes, libs=[libc], uses=["strlen"])
    if pthread:
        _fake_library(
            directory / "libpthread.so.0",
            "libpthread.so.0",
            [*LIBPTHREAD_VERSIONS, ("GLIBC_PRIVATE", ("__pthread_unwind",))],
            libs=[libc],
            uses=["__libc_pthread_init", "strlen"],
        )


# ---------------------------------------------------------------------------------------------------
# Extensions and programs


def _extension(
    out: Path,
    libs: Sequence[Path],
    uses: Sequence[str],
    *,
    weak: Sequence[str] = (),
    soname: str | None = None,
    runpath: Sequence[str] = (),
    extra: Sequence[str] = (),
    source: str = "",
) -> Path:
    """A -nostdlib extension referencing ``uses`` from ``libs`` (the linker records their versions).

    The linker here drops a DT_NEEDED nothing is used from (``--as-needed``), so every library
    linked must provide one of ``uses``.
    """
    link_dirs = sorted({str(lib.parent) for lib in libs})
    return compile_elf(
        out,
        source + _caller(uses, weak),
        soname=soname,
        libs=libs,
        runpath=runpath,
        nostdlib=True,
        extra=[*(f"-Wl,-rpath-link,{d}" for d in link_dirs), *extra],
    )


def _program(out: Path, glibc: Path, extra: Sequence[str] = (), **kwargs: object) -> Path:
    """An executable like a Nix python: PT_INTERP = the fake loader, needs libc/libm/libpthread."""
    source = _caller(["strlen", "printf", "sin", "pthread_create", "__libc_start_main"])
    source += "void _start(void) { glibc_doctor_entry(); for (;;) {} }\n"
    libs = [glibc / "libc.so.6", glibc / "libm.so.6", glibc / "libpthread.so.0"]
    return compile_elf(
        out,
        source,
        shared=False,
        libs=libs,
        nostdlib=True,
        extra=[f"-Wl,--dynamic-linker={glibc / LOADER_NAME}", f"-Wl,-rpath-link,{glibc}", *extra],
        **kwargs,  # type: ignore[arg-type]
    )


DT_NULL = 0
DT_STRTAB = 5
DT_DEBUG = 21
DT_RUNPATH = 29
DT_AUDIT = 0x6FFFFEFC
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB = 0x800
VER_FLG_WEAK = 0x2


def _dynamic_entries(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """File offset of PT_DYNAMIC and its (tag, value) pairs (64-bit little-endian objects only)."""
    data = path.read_bytes()
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        dynamic = next(seg for seg in elf.iter_segments() if seg["p_type"] == "PT_DYNAMIC")
        offset, size = dynamic["p_offset"], dynamic["p_filesz"]
    entries = [struct.unpack_from("<qQ", data, offset + i) for i in range(0, size - 15, 16)]
    return offset, entries


def _retag(path: Path, old_tag: int, new_tag: int) -> None:
    """Change the tag of the first dynamic entry tagged ``old_tag`` (its value stays)."""
    offset, entries = _dynamic_entries(path)
    index = next(i for i, (tag, _) in enumerate(entries) if tag == old_tag)
    with path.open("r+b") as handle:
        handle.seek(offset + 16 * index)
        handle.write(struct.pack("<q", new_tag))


def _app_with_rpath_and_runpath(out: Path, glibc: Path, rpath: str, runpath: str) -> Path:
    """A program with both DT_RPATH and DT_RUNPATH, which GNU ld never writes on its own.

    Linked with ``--disable-new-dtags -rpath RPATH`` and ``--audit RUNPATH`` (ld puts the audit string
    in .dynstr under a DT_AUDIT tag); then that one tag is rewritten to DT_RUNPATH in place.
    """
    _program(out, glibc, rpath=[rpath], extra=[f"-Wl,--audit,{runpath}"])
    _retag(out, DT_AUDIT, DT_RUNPATH)
    return out


def _app_nodeflib(out: Path, glibc: Path) -> Path:
    """A program with DF_1_NODEFLIB. GNU ld 2.40 ignores ``-z nodeflib`` ("warning: -z nodeflib
    ignored"; only lld and Solaris ld honour it), so the bit is OR-ed into the DT_FLAGS_1 value that
    every PIE already carries (DF_1_PIE)."""
    _program(out, glibc, rpath=[str(glibc)])
    offset, entries = _dynamic_entries(out)
    index = next(i for i, (tag, _) in enumerate(entries) if tag == DT_FLAGS_1)
    value = entries[index][1] | DF_1_NODEFLIB
    with out.open("r+b") as handle:
        handle.seek(offset + 16 * index + 8)
        handle.write(struct.pack("<Q", value))
    return out


def _version_r_offset(path: Path) -> int:
    with path.open("rb") as handle:
        section = ELFFile(handle).get_section_by_name(".gnu.version_r")
        assert section is not None, f"{path} has no .gnu.version_r"
        return int(section["sh_offset"])


def _verneed_records(path: Path) -> list[tuple[int, str, list[tuple[int, str]]]]:
    """(file offset, library, [(aux file offset, version name)]) of each Verneed, via pyelftools."""
    records = []
    with path.open("rb") as handle:
        section = ELFFile(handle).get_section_by_name(".gnu.version_r")
        assert isinstance(section, GNUVerNeedSection), f"{path} has no .gnu.version_r"
        offset = int(section["sh_offset"])
        for verneed, auxes in section.iter_versions():
            aux_offset = offset + verneed["vn_aux"]
            aux_list = []
            for aux in auxes:
                aux_list.append((aux_offset, aux.name))
                aux_offset += aux["vna_next"]
            records.append((offset, str(verneed.name), aux_list))
            offset += verneed["vn_next"]
    return records


def _mark_weak(path: Path, version: str) -> None:
    """Set VER_FLG_WEAK on the Vernaux of ``version`` if the linker did not (vna_flags at aux + 4)."""
    for _, _, auxes in _verneed_records(path):
        for aux_offset, name in auxes:
            if name == version:
                data = bytearray(path.read_bytes())
                flags = struct.unpack_from("<H", data, aux_offset + 4)[0]
                struct.pack_into("<H", data, aux_offset + 4, flags | VER_FLG_WEAK)
                path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------------
# Handcrafted ELF of other classes and byte orders


def handcraft_elf(
    out: Path,
    *,
    elf_class: int,
    little: bool,
    machine: int,
    needed: Sequence[str] = ("libc.so.6",),
    soname: str = "libhand.so",
    runpath: str = "$ORIGIN",
    needs: Sequence[tuple[str, Sequence[str]]] = (("libc.so.6", ("GLIBC_2.0", "GLIBC_2.1")),),
    defines: Sequence[str] = ("HAND_1.0",),
) -> Path:
    """Write a minimal but complete shared object with struct.pack: the ELF header, PT_LOAD/PT_DYNAMIC
    program headers, .dynstr, .gnu.version_r, .gnu.version_d, .dynamic and section headers (so
    pyelftools reads the same facts). The load segment maps offset 0 at vaddr 0x10000, so readers must
    map vaddrs through PT_LOAD. Used where no cross compiler exists (big-endian, foreign machines).
    """
    end = "<" if little else ">"
    is64 = elf_class == 64
    addr = "Q" if is64 else "I"
    base = 0x10000

    strtab = bytearray(b"\0")

    def add_string(text: str) -> int:
        encoded = text.encode()
        position = strtab.find(encoded + b"\0")
        if position >= 0 and (position == 0 or strtab[position - 1] == 0):
            return position
        strtab.extend(encoded + b"\0")
        return len(strtab) - len(encoded) - 1

    for name in needed:
        add_string(name)
    add_string(soname)
    add_string(runpath)
    for library, versions in needs:
        add_string(library)
        for version in versions:
            add_string(version)
    for version in defines:
        add_string(version)

    def elf_hash(name: str) -> int:
        value = 0
        for char in name.encode():
            value = ((value << 4) + char) & 0xFFFFFFFF
            high = value & 0xF0000000
            if high:
                value ^= high >> 24
            value &= ~high & 0xFFFFFFFF
        return value

    # .gnu.version_r: Verneed (16 bytes) then its Vernaux (16 bytes each), for every library.
    version_r = bytearray()
    index = 2 + len(defines)
    for number, (library, versions) in enumerate(needs):
        size = 16 + 16 * len(versions)
        next_offset = 0 if number == len(needs) - 1 else size
        version_r += struct.pack(end + "HHIII", 1, len(versions), add_string(library), 16, next_offset)
        for position, version in enumerate(versions):
            aux_next = 0 if position == len(versions) - 1 else 16
            version_r += struct.pack(
                end + "IHHII", elf_hash(version), 0, index, add_string(version), aux_next
            )
            index += 1
    # .gnu.version_d: the base entry (the soname) then one entry per defined version.
    version_d = bytearray()
    all_defs = [soname, *defines]
    for number, name in enumerate(all_defs):
        flags = 1 if number == 0 else 0  # VER_FLG_BASE
        next_offset = 0 if number == len(all_defs) - 1 else 28
        version_d += struct.pack(end + "HHHHIII", 1, flags, number + 1, 1, elf_hash(name), 20, next_offset)
        version_d += struct.pack(end + "II", add_string(name), 0)
    shstrtab = b"\0.dynstr\0.gnu.version_r\0.gnu.version_d\0.dynamic\0.shstrtab\0"

    ehsize = 64 if is64 else 52
    phentsize = 56 if is64 else 32
    shentsize = 64 if is64 else 40
    dynent = 16 if is64 else 8
    phnum = 2
    layout = ehsize + phnum * phentsize

    def align(value: int) -> int:
        return (value + 7) & ~7

    strtab_off = align(layout)
    version_r_off = align(strtab_off + len(strtab))
    version_d_off = align(version_r_off + len(version_r))
    dynamic_off = align(version_d_off + len(version_d))
    tags = [(1, add_string(name)) for name in needed]
    # Strings added above are all in strtab already; add_string only looks them up now.
    tags += [
        (14, add_string(soname)),
        (29, add_string(runpath)),
        (5, base + strtab_off),
        (10, len(strtab)),
        (0x6FFFFFFE, base + version_r_off),
        (0x6FFFFFFF, len(needs)),
        (0x6FFFFFFC, base + version_d_off),
        (0x6FFFFFFD, len(all_defs)),
        (0x6FFFFFFB, 0x800),
        (0, 0),
    ]
    dyn_fmt = end + ("qQ" if is64 else "iI")
    dynamic = b"".join(struct.pack(dyn_fmt, tag, value) for tag, value in tags)
    shstrtab_off = dynamic_off + len(dynamic)
    shoff = align(shstrtab_off + len(shstrtab))
    file_size = shoff + 6 * shentsize

    ident = b"\x7fELF" + bytes([1 if not is64 else 2, 1 if little else 2, 1, 0]) + bytes(8)
    header = ident + struct.pack(
        end + "HHI" + addr * 3 + "IHHHHHH",
        3,
        machine,
        1,
        0,
        ehsize,
        shoff,
        0,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        6,
        5,
    )
    if is64:
        phdr_fmt = end + "IIQQQQQQ"
        load = struct.pack(phdr_fmt, 1, 5, 0, base, base, file_size, file_size, 0x1000)
        dyn = struct.pack(
            phdr_fmt, 2, 6, dynamic_off, base + dynamic_off, base + dynamic_off, len(dynamic), len(dynamic), 8
        )
    else:
        phdr_fmt = end + "IIIIIIII"
        load = struct.pack(phdr_fmt, 1, 0, base, base, file_size, file_size, 5, 0x1000)
        dyn = struct.pack(
            phdr_fmt, 2, dynamic_off, base + dynamic_off, base + dynamic_off, len(dynamic), len(dynamic), 6, 4
        )

    def section(
        name: int, kind: int, flags: int, offset: int, size: int, link: int, info: int, entsize: int
    ) -> bytes:
        address = base + offset if flags else 0
        fmt = end + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        return struct.pack(fmt, name, kind, flags, address, offset, size, link, info, 8, entsize)

    sections = (
        bytes(shentsize)
        + section(1, 3, 2, strtab_off, len(strtab), 0, 0, 0)
        + section(9, 0x6FFFFFFE, 2, version_r_off, len(version_r), 1, len(needs), 0)
        + section(24, 0x6FFFFFFD, 2, version_d_off, len(version_d), 1, len(all_defs), 0)
        + section(39, 6, 3, dynamic_off, len(dynamic), 1, 0, dynent)
        + section(48, 3, 0, shstrtab_off, len(shstrtab), 0, 0, 0)
    )
    image = bytearray(file_size)
    image[0 : len(header)] = header
    image[ehsize : ehsize + phentsize] = load
    image[ehsize + phentsize : layout] = dyn
    image[strtab_off : strtab_off + len(strtab)] = strtab
    image[version_r_off : version_r_off + len(version_r)] = version_r
    image[version_d_off : version_d_off + len(version_d)] = version_d
    image[dynamic_off : dynamic_off + len(dynamic)] = dynamic
    image[shstrtab_off : shstrtab_off + len(shstrtab)] = shstrtab
    image[shoff:file_size] = sections
    out.write_bytes(bytes(image))
    return out


# ---------------------------------------------------------------------------------------------------
# Hostile inputs


def _patched_copy(source: Path, out: Path, patches: Sequence[tuple[int, bytes]]) -> Path:
    data = bytearray(source.read_bytes())
    for offset, value in patches:
        data[offset : offset + len(value)] = value
    out.write_bytes(bytes(data))
    return out


def _truncated_copy(source: Path, out: Path, size: int) -> Path:
    out.write_bytes(source.read_bytes()[:size])
    return out


def _build_bad(bad: Path, clean: Path, with_libm: Path, with_238: Path) -> dict[str, Path]:
    bad.mkdir()
    paths: dict[str, Path] = {}
    paths["empty"] = bad / "empty.so"
    paths["empty"].write_bytes(b"")
    paths["text"] = bad / "libtext.so.1"
    paths["text"].write_text("this is not a shared object\n")
    paths["linker_script"] = bad / "libc.so"
    paths["linker_script"].write_text(
        "/* GNU ld script\n   Use the shared library, but some functions are only in\n"
        "   the static library, so try that secondarily.  */\nOUTPUT_FORMAT(elf64-x86-64)\n"
        "GROUP ( /lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/libc_nonshared.a "
        " AS_NEEDED ( /lib64/ld-linux-x86-64.so.2 ) )\n"
    )
    data = clean.read_bytes()
    phoff = struct.unpack_from("<Q", data, 32)[0]
    dynamic_offset, entries = _dynamic_entries(clean)
    paths["truncated_header"] = _truncated_copy(clean, bad / "truncated_header.so", 20)
    paths["truncated_phdrs"] = _truncated_copy(clean, bad / "truncated_phdrs.so", phoff + 56 + 8)
    paths["truncated_dynamic"] = _truncated_copy(clean, bad / "truncated_dynamic.so", dynamic_offset + 24)
    paths["truncated_version_r"] = _truncated_copy(
        clean, bad / "truncated_version_r.so", _version_r_offset(clean) + 8
    )
    noise = random.Random(20240607)
    paths["garbage_after_magic"] = bad / "garbage_after_magic.so"
    paths["garbage_after_magic"].write_bytes(b"\x7fELF\x00" + noise.randbytes(400))
    paths["random_after_ident"] = bad / "random_after_ident.so"
    paths["random_after_ident"].write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(8) + noise.randbytes(600))
    paths["huge_phnum"] = _patched_copy(clean, bad / "huge_phnum.so", [(56, struct.pack("<H", 0xFFF0))])
    paths["bad_phentsize"] = _patched_copy(clean, bad / "bad_phentsize.so", [(54, struct.pack("<H", 7))])
    first_null = next(i for i, (tag, _) in enumerate(entries) if tag == DT_NULL)
    paths["dynamic_no_null"] = _patched_copy(
        clean,
        bad / "dynamic_no_null.so",
        [(dynamic_offset + 16 * i, struct.pack("<qQ", DT_DEBUG, 0)) for i in range(first_null, len(entries))],
    )
    strtab_index = next(i for i, (tag, _) in enumerate(entries) if tag == DT_STRTAB)
    paths["strtab_unmapped"] = _patched_copy(
        clean,
        bad / "strtab_unmapped.so",
        [(dynamic_offset + 16 * strtab_index, struct.pack("<qQ", DT_STRTAB, 0x7FFF0000))],
    )
    paths["vn_next_loop"] = _vn_next_loop(with_libm, bad / "vn_next_loop.so")
    first_need = _verneed_records(with_238)[0][0]
    paths["vn_aux_wild"] = _patched_copy(
        with_238, bad / "vn_aux_wild.so", [(first_need + 8, struct.pack("<I", 0x80000000))]
    )
    paths["elf32"] = handcraft_elf(bad / "libhand32.so", elf_class=32, little=True, machine=3)
    paths["big_endian"] = handcraft_elf(bad / "libhand_be64.so", elf_class=64, little=False, machine=22)
    paths["big_endian32"] = handcraft_elf(bad / "libhand_be32.so", elf_class=32, little=False, machine=20)
    paths["foreign_machine"] = _patched_copy(
        clean, bad / "foreign_aarch64.so", [(18, struct.pack("<H", 183))]
    )
    paths["symlink_loop"] = bad / "loop_a.so"
    os.symlink("loop_b.so", bad / "loop_a.so")
    os.symlink("loop_a.so", bad / "loop_b.so")
    paths["dangling"] = bad / "dangling.so.1"
    os.symlink("no_such_library.so.1", paths["dangling"])
    paths["directory"] = bad / "libdir.so.1"
    paths["directory"].mkdir()
    return paths


def _vn_next_loop(source: Path, out: Path) -> Path:
    """Two Verneeds where the second's vn_next is ``2**32 - distance``: with 32-bit wrap-around (as a
    32-bit ld.so computes pointers) it points back to the first, so a reader that follows vn_next by
    DT_VERNEEDNUM (set to 0xffffffff here) and wraps offsets would loop forever."""
    records = _verneed_records(source)
    assert len(records) >= 2, "the source needs two Verneed entries"
    first, second = records[0][0], records[1][0]
    patches = [(second + 12, struct.pack("<I", (first - second) & 0xFFFFFFFF))]
    offset, entries = _dynamic_entries(source)
    count_index = next(i for i, (tag, _) in enumerate(entries) if tag == 0x6FFFFFFF)
    patches.append((offset + 16 * count_index, struct.pack("<qQ", 0x6FFFFFFF, 0xFFFFFFFF)))
    return _patched_copy(source, out, patches)


# ---------------------------------------------------------------------------------------------------


def _build_glibcs(root: Path) -> tuple[Path, Path, Path]:
    old, new, ext32 = root / "old_glibc", root / "new_glibc", root / "ext32"
    for directory in (old, new, ext32):
        directory.mkdir(parents=True)
    new_libc_nodes = [*OLD_LIBC_VERSIONS, *NEW_LIBC_VERSIONS]
    jobs = [
        (old, "2.31", OLD_LIBC_VERSIONS, OLD_LIBM_VERSIONS, OLD_LDSO_VERSIONS, True),
        (
            new,
            "2.38",
            new_libc_nodes,
            [*OLD_LIBM_VERSIONS, *NEW_LIBM_VERSIONS],
            [*OLD_LDSO_VERSIONS, *NEW_LDSO_VERSIONS],
            False,
        ),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures: list[Future[object]] = [pool.submit(_build_glibc, *job) for job in jobs]
        futures.append(
            pool.submit(
                _fake_library,
                ext32 / "libc.so.6",
                "libc.so.6",
                [("GLIBC_2.0", ("strlen",)), *NEW_LIBC_VERSIONS],
                extra=["-m32"],
            )
        )
        for future in futures:
            future.result()
    return old, new, ext32


def build_synthetic(root: Path) -> Synthetic:
    """Compile the whole corpus under ``root`` (an empty or missing directory) and return its paths."""
    old, new, ext32 = _build_glibcs(root)
    ext, apps = root / "ext", root / "apps"
    ext.mkdir()
    apps.mkdir()
    new_libc, new_libm = new / "libc.so.6", new / "libm.so.6"
    libdep = _extension(
        ext / "libdep.so",
        [new_libc],
        ["stat"],
        soname="libdep.so",
        source="int libdep_function(void) { return 0; }\n",
    )
    jobs = {
        "ext_needs_234": lambda: _extension(
            ext / "ext_needs_234.so", [new_libc], ["pthread_create", "strlen"], soname="ext_needs_234.so"
        ),
        "ext_needs_238": lambda: _extension(
            ext / "ext_needs_238.so", [new_libc], ["strlcpy", "pthread_create", "strlen"]
        ),
        "ext_clean": lambda: _extension(ext / "ext_clean.so", [new_libc], ["strlen"]),
        "ext_weak": lambda: _extension(ext / "ext_weak.so", [new_libc], ["strlen"], weak=["pthread_create"]),
        "ext_libm": lambda: _extension(
            ext / "ext_libm.so", [new_libm, new_libc], ["sin", "fmaximum", "strlen"]
        ),
        "ext_transitive": lambda: _extension(
            ext / "ext_transitive.so", [libdep, new_libc], ["strlen", "libdep_function"], runpath=["$ORIGIN"]
        ),
        "ext32_needs_234": lambda: _extension(
            ext32 / "ext32_needs_234.so", [ext32 / "libc.so.6"], ["pthread_create", "strlen"], extra=["-m32"]
        ),
        "app": lambda: _program(apps / "app", old, rpath=[str(old)]),
        "app_runpath": lambda: _program(apps / "app_runpath", old, runpath=[str(old)]),
        "app_origin": lambda: _program(apps / "app_origin", old, rpath=["$ORIGIN/../old_glibc"]),
        "app_origin_runpath": lambda: _program(
            apps / "app_origin_runpath", old, runpath=["${ORIGIN}/../old_glibc"]
        ),
        "app_both": lambda: _app_with_rpath_and_runpath(apps / "app_both", old, str(new), str(old)),
        "app_nodeflib": lambda: _app_nodeflib(apps / "app_nodeflib", old),
        "app_norpath": lambda: _program(apps / "app_norpath", old),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        built = {name: future.result() for name, future in futures.items()}
    # ext_weak references pthread_create weakly, but GNU ld 2.40 still writes vna_flags = 0 for it:
    # set VER_FLG_WEAK in the GLIBC_2.34 Vernaux of .gnu.version_r by hand (see _mark_weak).
    _mark_weak(built["ext_weak"], "GLIBC_2.34")
    bad_paths = _build_bad(root / "bad", built["ext_clean"], built["ext_libm"], built["ext_needs_238"])
    for leftover in [*root.rglob("*.c"), *root.rglob("*.map")]:
        leftover.unlink()
    return Synthetic(
        root=root,
        old_glibc=old,
        old_libc=old / "libc.so.6",
        old_libm=old / "libm.so.6",
        old_libpthread=old / "libpthread.so.0",
        old_loader=old / LOADER_NAME,
        new_glibc=new,
        new_libc=new_libc,
        new_libm=new_libm,
        new_loader=new / LOADER_NAME,
        ext=ext,
        libdep=libdep,
        libc32=ext32 / "libc.so.6",
        apps=apps,
        bad=root / "bad",
        **built,
        **bad_paths,
    )


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    """The synthetic corpus, built once per session (about a second on two cores)."""
    return build_synthetic(tmp_path_factory.mktemp("synthetic"))


__all__ = ["Synthetic", "build_synthetic", "handcraft_elf", "synthetic"]
