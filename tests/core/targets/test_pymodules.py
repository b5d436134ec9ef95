"""The extension-module model against the real import system: every name it lists, this machine's python
finds (``importlib.util.find_spec``) at the same file; what it leaves out is no module at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from glibc_doctor.core.targets import python_layout
from glibc_doctor.core.targets.pymodules import (
    ExtensionSuffixes,
    ModuleFinder,
    assumed_suffixes,
    init_symbol,
    read_suffixes,
)
from glibc_doctor.core.targets.python import site_entries
from glibc_doctor.core.targets.walk import Walk
from glibc_doctor.lab.build import Lab

from tests.gcc import compile_elf

BASE_PYTHON = os.path.realpath(
    os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
)
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
ABI3 = ".abi3.so"

# Every module of the layout below that an import would run: one shared object exports them all.
MODULES = (
    "extpkg",
    "sub",
    "_multiarray",
    "_C",
    "81d243bd2c585b0f4821__mypyc",
    "part",
    "other",
    "dup",
    "both",
)
MODULE_SOURCE = """
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, NULL};
"""


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CPython extension exporting ``PyInit_<name>`` for each of ``MODULES``."""
    source = MODULE_SOURCE + "".join(
        f"PyMODINIT_FUNC PyInit_{name}(void) {{ return PyModule_Create(&def); }}\n" for name in MODULES
    )
    include = sysconfig.get_paths()["include"]
    return compile_elf(tmp_path_factory.mktemp("modules") / "modules.so", source, extra=[f"-I{include}"])


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared library that is no module: it exports no init function."""
    return compile_elf(tmp_path_factory.mktemp("library") / "libplain.so", "int plain(void) { return 1; }\n")


def place(source: Path, *paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, path)


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, modules: Path, library: Path) -> tuple[Path, Path]:
    """Two sys.path entries laid out as wheels and odd installs leave them: (first, second)."""
    root = tmp_path_factory.mktemp("layout")
    first, second = root / "first", root / "second"
    # numpy: an auditwheel wheel vendors its libraries in numpy.libs/, found through the RPATH
    touch(first / "numpylike/__init__.py", first / "numpylike/core/__init__.py")
    place(modules, first / f"numpylike/core/_multiarray{EXT_SUFFIX}")
    place(library, first / "numpylike.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so",
          first / "numpylike.libs/libgfortran-040039e1.so.5.0.0", first / "numpylike.libs/libquadmath.so",
          first / "numpylike-1.0.dist-info/weird.so", first / "lib-dynload-like/_x.so")  # fmt: skip
    # torch: libraries beside a bare-suffixed module in a package dir without __init__ (a namespace)
    touch(first / "torchlike/__init__.py")
    place(library, first / "torchlike/lib/libtorch.so", first / "torchlike/lib/libc10.so")
    place(modules, first / "torchlike/lib/_C.so")
    # mypyc's shared module is imported by a name that is no identifier; a '-' name can be none
    place(modules, first / f"81d243bd2c585b0f4821__mypyc{EXT_SUFFIX}", first / f"bad-name{EXT_SUFFIX}")
    place(library, first / "old.cpython-27-x86_64-linux-gnu.so")
    # a package whose __init__ is an extension, and its submodule
    place(modules, first / f"extpkg/__init__{EXT_SUFFIX}", first / f"extpkg/sub{EXT_SUFFIX}")
    # namespace portions merge across entries; the first entry's module, package or source wins
    place(modules, first / f"nspkg/part{EXT_SUFFIX}", second / f"nspkg/other{EXT_SUFFIX}")
    place(modules, first / f"dup{EXT_SUFFIX}", second / f"dup{EXT_SUFFIX}", second / f"shadowed{EXT_SUFFIX}")
    touch(first / "shadowed.py", first / "pkgshadow/__init__.py")
    place(modules, second / f"pkgshadow/_x{EXT_SUFFIX}")
    # within one directory the interpreter's own suffix comes before .abi3.so
    place(modules, first / f"both{EXT_SUFFIX}", first / f"both{ABI3}")
    return first, second


def machine_suffixes() -> ExtensionSuffixes:
    return python_layout(BASE_PYTHON).suffixes


def found(
    entries: list[Path], suffixes: ExtensionSuffixes | None = None
) -> tuple[dict[str, str], ModuleFinder]:
    finder = ModuleFinder(suffixes or machine_suffixes(), Walk())
    return {module.name: module.path for module in finder.find([str(e) for e in entries])}, finder


def real_origins(entries: list[Path], names: list[str]) -> dict[str, str | None]:
    """``find_spec(name).origin`` for each name, by this machine's python with ``entries`` on its path."""
    code = (
        "import importlib.util, json, sys\n"
        "sys.path[:] = json.loads(sys.argv[1]) + sys.path\n"
        "out = {}\n"
        "for name in json.loads(sys.argv[2]):\n"
        "    try:\n"
        "        spec = importlib.util.find_spec(name)\n"
        "        out[name] = spec.origin if spec else None\n"
        "    except Exception as error:\n"
        "        out[name] = repr(error)\n"
        "print(json.dumps(out))\n"
    )
    argv = [BASE_PYTHON, "-I", "-S", "-c", code, json.dumps([str(e) for e in entries]), json.dumps(names)]
    run = subprocess.run(
        argv, capture_output=True, text=True, check=True, cwd="/", env={"PATH": "/usr/bin:/bin"}
    )
    result: dict[str, str | None] = json.loads(run.stdout)
    return result


def test_the_listed_names_are_exactly_the_extensions_an_import_loads(layout: tuple[Path, Path]) -> None:
    first, second = layout
    names, _ = found([first, second])
    assert names == {
        "numpylike.core._multiarray": str(first / f"numpylike/core/_multiarray{EXT_SUFFIX}"),
        "torchlike.lib._C": str(first / "torchlike/lib/_C.so"),
        "81d243bd2c585b0f4821__mypyc": str(first / f"81d243bd2c585b0f4821__mypyc{EXT_SUFFIX}"),
        "extpkg": str(first / f"extpkg/__init__{EXT_SUFFIX}"),
        "extpkg.sub": str(first / f"extpkg/sub{EXT_SUFFIX}"),
        "nspkg.part": str(first / f"nspkg/part{EXT_SUFFIX}"),
        "nspkg.other": str(second / f"nspkg/other{EXT_SUFFIX}"),
        "dup": str(first / f"dup{EXT_SUFFIX}"),
        "both": str(first / f"both{EXT_SUFFIX}"),
    }


def test_every_listed_name_is_found_by_the_real_import_system_at_its_file(layout: tuple[Path, Path]) -> None:
    names, _ = found(list(layout))
    assert real_origins(list(layout), sorted(names)) == names


def test_what_the_model_leaves_out_the_real_import_system_finds_elsewhere_or_not_at_all(
    layout: tuple[Path, Path],
) -> None:
    first, second = layout
    origins = real_origins(
        [first, second], ["shadowed", "pkgshadow._x", "bad-name", "torchlike.lib.libtorch"]
    )
    assert origins["shadowed"] == str(first / "shadowed.py")
    assert origins["pkgshadow._x"] is None  # the first entry's regular package hides the second's
    assert origins["bad-name"] == str(first / f"bad-name{EXT_SUFFIX}")  # found, but no PyInit_bad-name
    assert origins["torchlike.lib.libtorch"] == str(first / "torchlike/lib/libtorch.so")  # ditto


def test_no_vendored_library_dist_info_or_dashed_directory_is_an_extension(layout: tuple[Path, Path]) -> None:
    names, _ = found(list(layout))
    assert not [
        path for path in names.values() if ".libs/" in path or ".dist-info/" in path or "-like/" in path
    ]


def test_a_library_built_with_a_bare_so_suffix_is_examined_for_its_init_function(
    layout: tuple[Path, Path],
) -> None:
    first, _ = layout
    _, finder = found(list(layout))
    examined = {str(first / "torchlike/lib" / name) for name in ("_C.so", "libc10.so", "libtorch.so")}
    assert set(finder.examined) == examined


def test_a_module_tagged_for_another_python_is_counted_not_listed(layout: tuple[Path, Path]) -> None:
    first, _ = layout
    names, finder = found(list(layout))
    assert finder.other_python == [str(first / "old.cpython-27-x86_64-linux-gnu.so")]
    assert "old" not in names


def test_a_shallow_entry_shadows_but_is_not_descended(layout: tuple[Path, Path]) -> None:
    first, second = layout
    finder = ModuleFinder(machine_suffixes(), Walk())
    names = {module.name for module in finder.find([str(second), str(first)], shallow=[str(second)])}
    assert "nspkg.other" in names  # namespace portions are still merged
    assert "pkgshadow._x" not in names  # a package of the shallow entry wins, unlisted
    assert "extpkg.sub" in names


def test_pth_files_add_existing_directories_after_their_site_dir(tmp_path: Path) -> None:
    site, extra = tmp_path / "site", tmp_path / "extra"
    site.mkdir()
    extra.mkdir()
    (site / "a.pth").write_text(f"# a comment\n../extra\nimport os; os.environ\n{tmp_path}/missing\n\n")
    (site / "b.pth").write_text(f"{extra}\n")
    examined: list[str] = []
    assert site_entries([str(site)], examined) == [str(site), str(extra)]
    assert examined == [str(site / "a.pth"), str(site / "b.pth")]


def test_the_suffixes_are_those_of_the_interpreter_itself() -> None:
    code = "import importlib.machinery as m, json; print(json.dumps(m.EXTENSION_SUFFIXES))"
    for python in {BASE_PYTHON, os.path.realpath("/usr/bin/python3")}:
        if not os.path.exists(python):
            continue
        real = json.loads(subprocess.run([python, "-I", "-c", code], capture_output=True, check=True).stdout)
        layout = python_layout(python)
        assert list(read_suffixes(python, layout.caller, layout.version).suffixes) == real, python


@pytest.mark.lab
def test_the_suffixes_of_the_lab_python_are_read_from_its_binary(lab: Lab) -> None:
    layout = python_layout(str(lab.python))
    assert layout.suffixes.suffixes == (".cpython-39-x86_64-linux-gnu.so", ".abi3.so", ".so")
    assert layout.suffixes.source == str(lab.python)


def test_without_a_readable_binary_the_suffixes_are_assumed_from_the_version(tmp_path: Path) -> None:
    assert read_suffixes(str(tmp_path / "python3.7"), None, "3.7") == assumed_suffixes("3.7")
    assert assumed_suffixes("3.7").suffixes[0] == ".cpython-37m-x86_64-linux-gnu.so"
    assert assumed_suffixes("3.12").suffixes == (".cpython-312-x86_64-linux-gnu.so", ".abi3.so", ".so")


def test_the_init_function_is_named_for_the_last_part_in_punycode_when_not_ascii() -> None:
    assert init_symbol("numpy.core._multiarray_umath") == "PyInit__multiarray_umath"
    assert init_symbol("pkg.café") == "PyInitU_caf_dma"
    assert init_symbol("json/ext/parser".replace("/", "."), "Init") == "Init_parser"
