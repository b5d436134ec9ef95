"""Shared objects that ld.so refuses or breaks for a reason other than a symbol version, built by gcc.

Each one is built so that it needs no glibc symbol version newer than 2.31 of its own (the lab's oldest
glibc): what happens when it loads is decided by the property under test alone. Used by the reader's
tests (``tests/core/test_elf.py``), the analysis's (``tests/core/test_refusals.py``) and the real-loader
comparison (``tests/core/test_refusals_lab.py``).
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.gcc import compile_elf

PT_NULL = 0
PT_GNU_STACK = 0x6474E551

# A data pointer that needs a relative relocation, and gcc's crtbeginS.o brings an init array
# (frame_dummy) whose slot is one too: with DT_RELR both are packed.
POINTER_SOURCE = """
static int value = 42;
int *pointer = &value;
int get(void) { return *pointer; }
"""
# Calls a libc function, so GNU ld gives it a libc.so.6 version need, and with DT_RELR also the
# GLIBC_ABI_DT_RELR marker.
PUTS_SOURCE = """
#include <stdio.h>
static const char *names[] = {"a", "bb", "ccc"};
int say(int i) { return puts(names[i % 3]); }
"""
# Needs libm's GLIBC_2.29 and (by --no-as-needed) libc.so.6, without any libc version: DT_RELR without
# the marker, which glibc 2.36+ refuses. No start files, so no init array (no crash in a loader < 2.36).
LIBM_SOURCE = """
#include <math.h>
static double base = 2.0;
double *basep = &base;
double grow(double x) { return exp(x) * *basep; }
"""
TINY_SOURCE = "int answer(void) { return 42; }\n"


def tls_source(size: int, align: int = 16) -> str:
    """An initial-exec TLS array of ``size`` bytes that the code touches (a TPOFF relocation)."""
    return (
        f'__thread char block[{size}] __attribute__((tls_model("initial-exec"), aligned({align})));\n'
        "char *where(void) { block[0] = 1; return block; }\n"
    )


@dataclass(frozen=True, slots=True)
class RefusalObjects:
    relr_crash: Path  # DT_RELR, init array among the packed slots, no version needs at all
    relr_marker: Path  # DT_RELR + libc.so.6 GLIBC_ABI_DT_RELR (and GLIBC_2.2.5)
    relr_no_marker: Path  # DT_RELR + libm GLIBC_2.29 + DT_NEEDED libc.so.6, no marker, no init array
    exec_stack: Path  # PT_GNU_STACK RWE (-z execstack)
    no_stack_header: Path  # PT_GNU_STACK turned into PT_NULL: x86-64's default, an executable stack
    isa_v4: Path  # GNU_PROPERTY_X86_ISA_1_NEEDED x86-64-v4 (-z x86-64-v4)
    isa_v2: Path  # … x86-64-v2
    tls_small: Path  # DF_STATIC_TLS, 256 bytes of initial-exec TLS
    tls_big: Path  # DF_STATIC_TLS, 4096 bytes: more than any glibc's surplus (1664)
    tls_aligned: Path  # DF_STATIC_TLS, 64 bytes aligned to 128: above the static block's alignment
    tls_32: Path  # a 32-bit (i386) object with initial-exec TLS and the x86-64-v2 ISA note
    plain: Path  # none of the above (a control)

    @property
    def all(self) -> tuple[Path, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)


def build_refusal_objects(root: Path) -> RefusalObjects:
    """Compile every object into ``root`` (about a second; gcc runs in parallel)."""
    relr = ["-O1", "-Wl,-z,pack-relative-relocs"]
    recipes: dict[str, tuple[str, list[str]]] = {
        "relr_crash": (POINTER_SOURCE, relr),
        "relr_marker": (PUTS_SOURCE, relr),
        "relr_no_marker": (LIBM_SOURCE, [*relr, "-nostartfiles", "-Wl,--no-as-needed", "-lm", "-lc"]),
        "exec_stack": (TINY_SOURCE, ["-O1", "-Wl,-z,execstack"]),
        "no_stack_header": (TINY_SOURCE, ["-O1"]),
        "isa_v4": (TINY_SOURCE, ["-O1", "-Wl,-z,x86-64-v4"]),
        "isa_v2": (TINY_SOURCE, ["-O1", "-Wl,-z,x86-64-v2"]),
        "tls_small": (tls_source(256), ["-O1"]),
        "tls_big": (tls_source(4096), ["-O1"]),
        "tls_aligned": (tls_source(64, 128), ["-O1"]),
        "tls_32": (tls_source(512), ["-O1", "-m32", "-Wl,-z,x86-64-v2"]),
        "plain": (TINY_SOURCE, ["-O1"]),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(compile_elf, root / f"{name}.so", source, extra=extra)
            for name, (source, extra) in recipes.items()
        }
        paths = {name: future.result() for name, future in futures.items()}
    _retag_segment(paths["no_stack_header"], PT_GNU_STACK, PT_NULL)
    return RefusalObjects(**paths)


def _retag_segment(path: Path, old: int, new: int) -> None:
    """Change the type of the first program header of type ``old`` (64-bit little-endian only)."""
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        phoff, phentsize = elf.header["e_phoff"], elf.header["e_phentsize"]
        kinds = [segment.header["p_type"] for segment in elf.iter_segments()]
    names = {PT_GNU_STACK: "PT_GNU_STACK", PT_NULL: "PT_NULL"}
    index = kinds.index(names[old])
    with path.open("r+b") as handle:
        handle.seek(phoff + index * phentsize)
        handle.write(struct.pack("<I", new))


@pytest.fixture(scope="session")
def refusal_objects(tmp_path_factory: pytest.TempPathFactory) -> RefusalObjects:
    """The objects, built once per session."""
    return build_refusal_objects(tmp_path_factory.mktemp("refusals"))


PYTHON_MODULE = """
#include <Python.h>
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&module); }
"""


def python_module(python_store: Path, build_dir: Path, name: str, extra: list[str]) -> Path:
    """A python 3.9 extension module ``name`` built by gcc with the lab python's headers and ``extra``
    link flags (``-Wl,-z,pack-relative-relocs``, ``-Wl,-z,execstack``); its path in ``build_dir``."""
    includes = [f"-I{python_store / 'include' / 'python3.9'}", f"-I{python_store / 'include'}"]
    suffix = ".cpython-39-x86_64-linux-gnu.so"
    return compile_elf(
        build_dir / f"{name}{suffix}", PYTHON_MODULE % {"name": name}, extra=[*includes, *extra]
    )
