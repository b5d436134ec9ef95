"""Fixtures of the target tests: real shared objects and a real CPython extension, built by gcc."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from tests.core.targets.layouts import EXT_SUFFIX, EXTENSION_SOURCE
from tests.gcc import compile_elf


@pytest.fixture(scope="module")
def plain_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real shared object to copy wherever a layout needs an extension file."""
    out = tmp_path_factory.mktemp("so") / "plain.so"
    # Beside it, the modules and features of the layouts below: a bare `.so` is an extension only if it
    # exports the init function Python (PyInit_<name>) or Ruby (Init_<name>) calls.
    inits = ["PyInit__speedups", *(f"Init_{name}" for name in ("etc", "parser", "nokogiri", "pg_ext"))]
    compile_elf(out.with_name("inits.so"), "".join(f"void *{name}(void) {{ return 0; }}\n" for name in inits))
    return compile_elf(out, "int plain(void) { return 1; }\n")


@pytest.fixture(scope="module")
def python_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CPython extension module ``gdmod`` built by gcc against this Python's headers."""
    out = tmp_path_factory.mktemp("ext") / f"gdmod{EXT_SUFFIX}"
    include = sysconfig.get_paths()["include"]
    return compile_elf(out, EXTENSION_SOURCE % {"name": "gdmod"}, extra=[f"-I{include}"])
