"""resolve_target, target_from_pid and detect_candidates on real directory layouts and real ELF files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from glibc_doctor.core.errors import NotElf, TargetError
from glibc_doctor.core.targets import (
    Candidate,
    detect_candidates,
    resolve_target,
    target_from_pid,
)

from tests.budget import cpu_budget
from tests.gcc import compile_elf

BASE_PREFIX = sys.base_prefix
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_TAG = f"{sys.version_info.major}{sys.version_info.minor}"
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
BASE_PYTHON = os.path.realpath(os.path.join(BASE_PREFIX, "bin", f"python{PY_VERSION}"))

EXTENSION_SOURCE = """
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&def); }
"""


def needed_of(path: str) -> list[str]:
    """DT_NEEDED read by pyelftools: the reference the tests compare against."""
    with open(path, "rb") as handle:
        for segment in ELFFile(handle).iter_segments():
            if isinstance(segment, DynamicSegment):
                return [str(getattr(tag, "needed", "")) for tag in segment.iter_tags("DT_NEEDED")]
    return []


@pytest.fixture(scope="module")
def plain_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real shared object to copy wherever a layout needs an extension file."""
    out = tmp_path_factory.mktemp("so") / "plain.so"
    # Beside it, the modules and features of the layouts below: a bare `.so` is an extension only if it
    # exports the init function Python (PyInit_<name>) or Ruby (Init_<name>) calls.
    inits = ["PyInit__speedups", *(f"Init_{name}" for name in ("etc", "parser", "nokogiri", "pg_ext"))]
    compile_elf(out.with_name("inits.so"), "".join(f"void *{name}(void) {{ return 0; }}\n" for name in inits))
    return compile_elf(out, "int plain(void) { return 1; }\n")


def with_inits(plain_so: Path) -> Path:
    """The shared object beside ``plain_so`` that exports the init functions of the layouts' modules."""
    return plain_so.with_name("inits.so")


@pytest.fixture(scope="module")
def python_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CPython extension module ``gdmod`` built by gcc against this Python's headers."""
    out = tmp_path_factory.mktemp("ext") / f"gdmod{EXT_SUFFIX}"
    include = sysconfig.get_paths()["include"]
    return compile_elf(out, EXTENSION_SOURCE % {"name": "gdmod"}, extra=[f"-I{include}"])


def make_venv(root: Path, plain_so: Path, *, system_site: bool = False, key: str = "version") -> Path:
    """A venv laid out as ``python -m venv`` does, pointing at this machine's real base Python."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    value = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    (venv / "pyvenv.cfg").write_text(
        f"home = {BASE_PREFIX}/bin\n"
        f"include-system-site-packages = {'true' if system_site else 'false'}\n"
        f"{key} = {value}\n"
    )
    (venv / "bin" / "python3").symlink_to(os.path.join(BASE_PREFIX, "bin", "python3"))
    (venv / "bin" / "python").symlink_to("python3")
    site = venv / "lib" / f"python{PY_VERSION}" / "site-packages"
    for relative, source in (
        (f"psycopg2/_psycopg.cpython-{PY_TAG}-x86_64-linux-gnu.so", plain_so),
        ("cffi_backend.abi3.so", plain_so),
        ("pkg/sub/_speedups.so", with_inits(plain_so)),
    ):
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, site / relative)
    return venv


def site_of(venv: Path) -> Path:
    return venv / "lib" / f"python{PY_VERSION}" / "site-packages"


# --- python venvs ---------------------------------------------------------------------------------


def test_venv_directory_execs_the_base_interpreter_real_file(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    target = resolve_target(str(venv))
    assert (target.kind, target.executable, target.environment) == ("python", BASE_PYTHON, str(venv))


def test_venv_extension_names_are_dotted_import_names(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    names = {ext.name for ext in resolve_target(str(venv)).extensions if str(venv) in ext.path}
    assert names == {"psycopg2._psycopg", "cffi_backend", "pkg.sub._speedups"}


def test_venv_includes_base_lib_dynload_but_not_base_site_packages(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    paths = [ext.path for ext in resolve_target(str(venv)).extensions]
    dynload = os.path.join(BASE_PREFIX, "lib", f"python{PY_VERSION}", "lib-dynload")
    base_site = os.path.join(BASE_PREFIX, "lib", f"python{PY_VERSION}", "site-packages")
    assert any(p.startswith(dynload + "/") for p in paths)
    assert not any(p.startswith(base_site + "/") for p in paths)


def test_venv_with_system_site_packages_adds_the_base_site_packages(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so, system_site=True)
    target = resolve_target(str(venv))
    base_site = os.path.join(BASE_PREFIX, "lib", f"python{PY_VERSION}", "site-packages")
    assert base_site in target.searched_dirs


def test_venv_python_link_resolves_to_the_venv(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    target = resolve_target(str(venv / "bin" / "python"))
    assert (target.environment, target.executable) == (str(venv), BASE_PYTHON)


def test_virtualenv_style_version_info_key_picks_the_versioned_python(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so, key="version_info")
    assert resolve_target(str(venv)).executable == BASE_PYTHON


def test_venv_records_every_directory_it_walked(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    searched = resolve_target(str(venv)).searched_dirs
    assert {str(site_of(venv)), str(site_of(venv) / "pkg" / "sub")} <= set(searched)


def test_venv_extensions_skip_pycache(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    (site_of(venv) / "__pycache__").mkdir()
    shutil.copy(plain_so, site_of(venv) / "__pycache__" / "hidden.so")
    assert not any("__pycache__" in ext.path for ext in resolve_target(str(venv)).extensions)


def test_extensions_tagged_for_another_python_are_skipped_with_a_note(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    shutil.copy(plain_so, site_of(venv) / "old.cpython-27-x86_64-linux-gnu.so")
    target = resolve_target(str(venv))
    assert not any("old.cpython-27" in ext.path for ext in target.extensions)
    assert any("another Python" in note for note in target.notes)


def test_symlink_loop_inside_site_packages_is_walked_once(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    (site_of(venv) / "pkg" / "sub" / "back").symlink_to(site_of(venv))
    target = resolve_target(str(venv))
    speedups = [ext for ext in target.extensions if ext.name.endswith("_speedups")]
    assert len(speedups) == 1
    assert len(target.searched_dirs) == len(set(target.searched_dirs))


def test_venv_whose_base_interpreter_is_gone_names_the_venv(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    (venv / "pyvenv.cfg").write_text("home = /nonexistent/bin\nversion = 3.11.7\n")
    (venv / "bin" / "python3").unlink()
    with pytest.raises(TargetError, match=f"{venv}.*recreate the venv"):
        resolve_target(str(venv))


def test_project_directory_with_a_dot_venv_uses_it(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    venv.rename(tmp_path / ".venv")
    target = resolve_target(str(tmp_path))
    assert target.environment == str(tmp_path / ".venv")
    assert any("using the venv" in note for note in target.notes)


def test_console_script_leads_to_its_venv(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    script = venv / "bin" / "tool"
    script.write_text(f"#!{venv}/bin/python3\nprint('hi')\n")
    assert resolve_target(str(script)).environment == str(venv)


def test_walking_a_venv_of_twenty_thousand_files_is_fast(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    source = tmp_path / "module.py"
    source.touch()
    for package in range(400):
        directory = site_of(venv) / f"package{package}"
        directory.mkdir()
        for module in range(50):
            os.link(source, directory / f"module{module}.py")  # hard links: a big tree, quickly made
    with cpu_budget(0.5, "walking the venv"):
        target = resolve_target(str(venv))
    assert len([e for e in target.extensions if str(venv) in e.path]) == 3


def make_pyenv(root: Path) -> Path:
    """A pyenv root: a bash shim ``shims/python3``, a ``version`` file, and that version's python."""
    (root / "shims").mkdir(parents=True)
    (root / "shims" / "python3").write_text(
        '#!/usr/bin/env bash\nexec "$PYENV_ROOT/libexec/pyenv" exec "$0"\n'
    )
    (root / "shims" / "python3").chmod(0o755)
    (root / "version").write_text("3.11.7\n")
    (root / "versions" / "3.11.7" / "bin").mkdir(parents=True)
    (root / "versions" / "3.11.7" / "bin" / "python3").symlink_to(BASE_PYTHON)
    return root / "shims" / "python3"


def test_pyenv_shim_resolves_to_the_version_it_would_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    target = resolve_target(str(make_pyenv(tmp_path / "pyenv")))
    assert target.executable == BASE_PYTHON
    assert any("pyenv shim" in note for note in target.notes)


def test_bare_name_is_looked_up_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(BASE_PYTHON)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    target = resolve_target("python3")
    assert target.executable == BASE_PYTHON
    assert f"python3 found on PATH: {tmp_path / 'bin' / 'python3'}" in target.notes


# --- python interpreters --------------------------------------------------------------------------


def test_machine_python_prefix_matches_what_it_reports_itself() -> None:
    python = shutil.which("python3", path="/usr/bin:/bin") or pytest.skip("no /usr/bin/python3")
    truth = subprocess.run(
        [
            python,
            "-c",
            "import sys, sysconfig; print(sys.base_prefix); print(sysconfig.get_config_var('DESTSHARED'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    target = resolve_target(python)
    assert target.kind == "python"
    assert target.executable == os.path.realpath(python)
    assert truth[1] in target.searched_dirs


def test_pyenv_python_caller_is_its_libpython_soname() -> None:
    libpython = [name for name in needed_of(BASE_PYTHON) if name.startswith("libpython")]
    target = resolve_target(BASE_PYTHON)
    assert {ext.caller for ext in target.extensions} == {libpython[0] if libpython else None}


def make_fake_python(root: Path, plain_so: Path, *, shared: bool) -> Path:
    """A gcc-built ``python3.9`` in a prefix with the ``os.py`` landmark, lib-dynload and site-packages."""
    lib = root / "lib" / "python3.9"
    (lib / "lib-dynload").mkdir(parents=True)
    (lib / "os.py").write_text("")
    (lib / "site-packages" / "numpy" / "core").mkdir(parents=True)
    shutil.copy(plain_so, lib / "lib-dynload" / "_ssl.cpython-39-x86_64-linux-gnu.so")
    shutil.copy(
        plain_so, lib / "site-packages" / "numpy" / "core" / "_multiarray.cpython-39-x86_64-linux-gnu.so"
    )
    libs: list[Path] = []
    if shared:
        libs.append(
            compile_elf(
                root / "lib" / "libpython3.9.so.1.0",
                "int Py_Main(void){return 0;}\n",
                soname="libpython3.9.so.1.0",
            )
        )
    main = (
        "int Py_Main(void);\nint main(void){return Py_Main();}\n" if shared else "int main(void){return 0;}\n"
    )
    return compile_elf(root / "bin" / "python3.9", main, shared=False, libs=libs)


def test_shared_python_extensions_are_dlopened_by_libpython(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=True)
    target = resolve_target(str(python))
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("_ssl", "libpython3.9.so.1.0"),
        ("numpy.core._multiarray", "libpython3.9.so.1.0"),
    ]


def test_static_python_extensions_are_dlopened_by_the_executable(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=False)
    assert {e.caller for e in resolve_target(str(python)).extensions} == {None}


def test_python_symlink_is_followed_to_its_real_prefix(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path / "store", plain_so, shared=True)
    (tmp_path / "profile" / "bin").mkdir(parents=True)
    (tmp_path / "profile" / "bin" / "python3").symlink_to(python)
    target = resolve_target(str(tmp_path / "profile" / "bin" / "python3"))
    assert target.executable == str(python)
    assert str(tmp_path / "store" / "lib" / "python3.9" / "lib-dynload") in target.searched_dirs


def test_nix_wrapper_script_leads_to_the_wrapped_python_and_its_env(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path / "store" / "python3", plain_so, shared=True)
    wrapped = python.with_name(".python3.9-wrapped")
    python.rename(wrapped)
    env_site = tmp_path / "store" / "env" / "lib" / "python3.9" / "site-packages"
    (env_site / "yaml").mkdir(parents=True)
    shutil.copy(plain_so, env_site / "yaml" / "_yaml.cpython-39-x86_64-linux-gnu.so")
    wrapper = tmp_path / "profile" / "bin" / "python3"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        "#! /bin/bash -e\n"
        f"export NIX_PYTHONPATH='{env_site}'\n"
        "export PYTHONNOUSERSITE='true'\n"
        f'exec -a "$0" "{wrapped}"  "$@"\n'
    )
    target = resolve_target(str(wrapper))
    assert (target.kind, target.executable) == ("python", str(wrapped))
    assert [e.name for e in target.extensions] == ["_ssl", "yaml._yaml", "numpy.core._multiarray"]


def test_wrapper_with_gem_path_adds_that_gem_home(tmp_path: Path, plain_so: Path) -> None:
    ruby = make_fake_ruby(tmp_path / "ruby", plain_so)
    home = tmp_path / "gemhome"
    (home / "gems" / "pg-1.5.4" / "lib").mkdir(parents=True)
    shutil.copy(with_inits(plain_so), home / "gems" / "pg-1.5.4" / "lib" / "pg_ext.so")
    wrapper = tmp_path / "bin" / "ruby"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexport GEM_PATH='{home}:/nonexistent'\nexec {ruby} \"$@\"\n")
    target = resolve_target(str(wrapper))
    assert "pg_ext" in [e.name for e in target.extensions]


def test_prefix_directory_uses_its_bin_python(tmp_path: Path, plain_so: Path) -> None:
    python = make_fake_python(tmp_path, plain_so, shared=True)
    assert resolve_target(str(tmp_path)).executable == str(python)


def test_python_without_a_standard_library_says_to_use_ext(tmp_path: Path) -> None:
    python = compile_elf(tmp_path / "bin" / "python3.9", "int main(void){return 0;}\n", shared=False)
    target = resolve_target(str(python))
    assert target.kind == "python"
    assert any("--ext" in note for note in target.notes)


# --- ruby -----------------------------------------------------------------------------------------


def make_fake_ruby(root: Path, plain_so: Path) -> Path:
    """A gcc-built ruby linked to ``libruby.so.3.1`` with an archdir, a gem extension and a gem lib."""
    abi = root / "lib" / "ruby" / "3.1.0"
    gems = root / "lib" / "ruby" / "gems" / "3.1.0"
    for relative in (
        abi / "x86_64-linux" / "etc.so",
        gems / "extensions" / "x86_64-linux" / "3.1.0" / "json-2.6.1" / "json" / "ext" / "parser.so",
        gems / "gems" / "nokogiri-1.15.0" / "lib" / "nokogiri" / "nokogiri.so",
    ):
        relative.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(with_inits(plain_so), relative)
    libruby = compile_elf(
        root / "lib" / "libruby.so.3.1", "int ruby_init(void){return 0;}\n", soname="libruby.so.3.1"
    )
    main = "int ruby_init(void);\nint main(void){return ruby_init();}\n"
    return compile_elf(root / "bin" / "ruby", main, shared=False, libs=[libruby])


def test_ruby_extensions_come_from_archdir_and_gems_with_require_names(
    tmp_path: Path, plain_so: Path
) -> None:
    ruby = make_fake_ruby(tmp_path, plain_so)
    target = resolve_target(str(ruby))
    assert target.kind == "ruby"
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("etc", "libruby.so.3.1"),
        ("json/ext/parser", "libruby.so.3.1"),
        ("nokogiri/nokogiri", "libruby.so.3.1"),
    ]


def test_a_library_on_the_ruby_load_path_without_its_init_function_is_no_feature(
    tmp_path: Path, plain_so: Path
) -> None:
    ruby = make_fake_ruby(tmp_path, plain_so)
    gem = tmp_path / "lib" / "ruby" / "gems" / "3.1.0" / "gems" / "sassc-2.4.0" / "lib"
    gem.mkdir(parents=True)
    shutil.copy(plain_so, gem / "libsass.so")  # opened by FFI from its path, never required
    target = resolve_target(str(ruby))
    assert [e.name for e in target.extensions] == ["etc", "json/ext/parser", "nokogiri/nokogiri"]
    assert str(gem / "libsass.so") in target.examined


def test_a_venv_lists_the_modules_of_the_directories_its_pth_files_add(
    tmp_path: Path, plain_so: Path
) -> None:
    venv = make_venv(tmp_path, plain_so)
    (tmp_path / "src" / "editable").mkdir(parents=True)
    shutil.copy(plain_so, tmp_path / "src" / "editable" / f"_native{EXT_SUFFIX}")
    (site_of(venv) / "__editable__.editable-1.0.pth").write_text(f"{tmp_path / 'src'}\n")
    target = resolve_target(str(venv))
    assert ("editable._native", str(tmp_path / "src" / "editable" / f"_native{EXT_SUFFIX}")) in {
        (e.name, e.path) for e in target.extensions
    }
    assert str(site_of(venv) / "__editable__.editable-1.0.pth") in target.examined


def test_machine_ruby_resolves_when_installed() -> None:
    if not os.path.exists("/usr/bin/ruby"):
        pytest.skip("no /usr/bin/ruby on this machine")
    target = resolve_target("/usr/bin/ruby")
    assert target.kind == "ruby"
    assert target.extensions


@pytest.mark.lab
def test_lab_venv_resolves_to_its_store_python_and_extensions(lab) -> None:  # type: ignore[no-untyped-def]
    target = resolve_target(str(lab.venv))
    assert target.executable == os.path.realpath(lab.python)
    assert {os.path.realpath(e.path) for e in target.extensions} >= {
        os.path.realpath(path) for path in lab.extensions.values()
    }
    assert str(lab.python_dynload) in target.searched_dirs


@pytest.mark.lab
def test_lab_debian_ruby_finds_its_vendor_archdir_extension(lab) -> None:  # type: ignore[no-untyped-def]
    target = resolve_target(str(lab.ruby))
    libruby = [name for name in needed_of(str(lab.ruby)) if name.startswith("libruby")]
    rbext = [e for e in target.extensions if e.path == str(lab.ruby_ext)]
    assert [(e.name, e.caller) for e in rbext] == [("rbext", libruby[0])]
    assert any(e.name == "json/ext/parser" for e in target.extensions)


# --- generic programs and --ext -------------------------------------------------------------------


def test_generic_program_takes_extensions_from_ext_dirs_and_files(tmp_path: Path, plain_so: Path) -> None:
    program = compile_elf(tmp_path / "host", "int main(void){return 0;}\n", shared=False)
    (tmp_path / "plugins" / "audio").mkdir(parents=True)
    shutil.copy(plain_so, tmp_path / "plugins" / "audio" / "libmp3.so.1")
    (tmp_path / "plugins" / "README").write_text("not a library")
    target = resolve_target(str(program), ext=[str(tmp_path / "plugins"), str(plain_so)])
    assert target.kind == "generic"
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("audio/libmp3.so.1", None),
        ("plain.so", None),
    ]


def test_python_ext_dir_gets_module_names_and_no_duplicates(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    (tmp_path / "extra" / "pkg").mkdir(parents=True)
    shutil.copy(plain_so, tmp_path / "extra" / "pkg" / f"_fast.cpython-{PY_TAG}-x86_64-linux-gnu.so")
    module = site_of(venv) / "cffi_backend.abi3.so"
    target = resolve_target(str(venv), ext=[str(tmp_path / "extra"), str(module)])
    assert [e.name for e in target.extensions if e.path == str(module)] == ["cffi_backend"]
    assert "pkg._fast" in {e.name for e in target.extensions}


def test_ext_path_that_does_not_exist_is_a_target_error(tmp_path: Path) -> None:
    program = compile_elf(tmp_path / "host", "int main(void){return 0;}\n", shared=False)
    with pytest.raises(TargetError, match="no such file"):
        resolve_target(str(program), ext=[str(tmp_path / "missing")])


# --- bad input ------------------------------------------------------------------------------------


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=f"^{tmp_path}/nope: no such file or directory"):
        resolve_target(str(tmp_path / "nope"))


def test_path_below_a_file_says_a_component_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TargetError, match="is a file, not a directory"):
        resolve_target(str(tmp_path / "file" / "python3"))


def test_symlink_loop_as_target_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(TargetError, match="symlink loop"):
        resolve_target(str(tmp_path / "a"))


def test_dangling_symlink_says_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(tmp_path / "gone")
    with pytest.raises(TargetError, match="dangling symlink"):
        resolve_target(str(tmp_path / "python3"))


def test_text_file_is_not_elf(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotElf, match="not an ELF file"):
        resolve_target(str(tmp_path / "notes.txt"))


def test_env_script_asks_for_the_interpreter_it_runs(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("#!/usr/bin/env bash\necho hi\n")
    with pytest.raises(NotElf, match="a script"):
        resolve_target(str(tmp_path / "run"))


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "python3")
    with pytest.raises(TargetError, match="not a regular file"):
        resolve_target(str(tmp_path / "python3"))


def test_file_whose_read_fails_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="cannot read"):
        resolve_target("/proc/self/mem")


def test_plain_directory_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="without pyvenv.cfg"):
        resolve_target(str(tmp_path))


def run_as_nobody(call: str, prepare: Callable[[Path], None] | None = None) -> str:
    """Run ``call`` (on targets' functions) as user ``nobody`` with the system python; return what it
    printed: the TargetError's message. Root reads everything, so permission errors need another user."""
    python, setpriv = "/usr/bin/python3", shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to become another user")
    shim = Path(tempfile.mkdtemp(prefix="gd-nobody-"))
    try:
        shim.chmod(0o755)
        (shim / "glibc_doctor").mkdir(mode=0o755)
        (shim / "glibc_doctor" / "core").symlink_to(Path(__file__).resolve().parents[2] / "core")
        if prepare is not None:
            prepare(shim)
        code = (
            f"import sys; sys.path.insert(0, {str(shim)!r}); shim = {str(shim)!r}\n"
            "from glibc_doctor.core.targets import resolve_target, target_from_pid\n"
            "from glibc_doctor.core.errors import TargetError\n"
            f"try:\n    {call}\nexcept TargetError as error:\n    print(error)\n"
        )
        argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", code]
        return subprocess.run(argv, capture_output=True, text=True, cwd="/").stdout.strip()
    finally:
        shutil.rmtree(shim)


def test_unreadable_file_is_permission_denied() -> None:
    def prepare(shim: Path) -> None:
        (shim / "python3").write_bytes(b"\x7fELF")
        (shim / "python3").chmod(0)

    assert run_as_nobody("resolve_target(shim + '/python3')", prepare).endswith(
        "/python3: permission denied; run as a user who can read it"
    )


def test_unlistable_venv_directory_is_permission_denied_not_empty() -> None:
    def prepare(shim: Path) -> None:
        (shim / "venv").mkdir()
        (shim / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (shim / "venv").chmod(0)

    assert run_as_nobody("resolve_target(shim + '/venv')", prepare).endswith(
        "/venv: permission denied; run as a user who can read it"
    )


def test_self_looping_symlink_in_site_packages_does_not_hide_its_siblings(
    tmp_path: Path, plain_so: Path
) -> None:
    venv = make_venv(tmp_path, plain_so)
    (site_of(venv) / "broken").symlink_to(site_of(venv) / "broken")  # a self-loop: stat fails with ELOOP
    target = resolve_target(str(venv))
    assert {e.name for e in target.extensions if str(venv) in e.path} == {
        "psycopg2._psycopg",
        "cffi_backend",
        "pkg.sub._speedups",
    }


# --- running processes ----------------------------------------------------------------------------


@pytest.fixture
def sleeping_python(tmp_path: Path, python_extension: Path):  # type: ignore[no-untyped-def]
    """This venv's python, run as ``.venv/bin/python``, that imported ``gdmod`` and sleeps."""
    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copy(python_extension, site / python_extension.name)
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); import gdmod; "
        "print('ready', flush=True); import time; time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process, site / python_extension.name
    process.kill()
    process.wait()


def test_pid_target_lists_the_imported_extension_as_loaded_and_first(sleeping_python) -> None:  # type: ignore[no-untyped-def]
    process, module = sleeping_python
    target = target_from_pid(process.pid)
    assert str(module) in target.loaded
    assert target.extensions[0].path == str(module)
    assert target.extensions[0].name == "gdmod"


def test_pid_target_is_the_python_of_its_venv(sleeping_python) -> None:  # type: ignore[no-untyped-def]
    process, _ = sleeping_python
    target = target_from_pid(process.pid)
    assert (target.kind, target.pid, target.executable) == (
        "python",
        process.pid,
        os.path.realpath(sys.executable),
    )
    assert target.environment == sys.prefix


def test_pid_target_also_lists_extensions_not_yet_imported(sleeping_python) -> None:  # type: ignore[no-untyped-def]
    process, _ = sleeping_python
    target = target_from_pid(process.pid)
    not_loaded = [e for e in target.extensions if e.path not in target.loaded]
    assert any(e.name == "_ctypes" for e in not_loaded)


@pytest.fixture
def sleeping_numpy_like(tmp_path: Path):  # type: ignore[no-untyped-def]
    """This python after importing ``vendoring._core``, which loads the library auditwheel would vendor
    in ``vendoring.libs/`` through its ``$ORIGIN/../vendoring.libs`` RPATH; then it sleeps."""
    site = tmp_path / "site-packages"
    library = compile_elf(site / "vendoring.libs" / "libvend-1a2b3c4d.so", "int vend(void) { return 7; }\n",
                          soname="libvend-1a2b3c4d.so")  # fmt: skip
    source = EXTENSION_SOURCE % {"name": "_core"} + "int vend(void); int use(void) { return vend(); }\n"
    include = sysconfig.get_paths()["include"]
    module = compile_elf(site / "vendoring" / f"_core{EXT_SUFFIX}", source, libs=[library],
                         rpath=["$ORIGIN/../vendoring.libs"], extra=[f"-I{include}"])  # fmt: skip
    (site / "vendoring" / "__init__.py").write_text("")
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); import vendoring._core; "
        "print('ready', flush=True); import time; time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process, module, library
    process.kill()
    process.wait()


def test_pid_target_lists_the_imported_module_not_the_library_it_vendors(sleeping_numpy_like) -> None:  # type: ignore[no-untyped-def]
    process, module, library = sleeping_numpy_like
    target = target_from_pid(process.pid)
    assert {str(module), str(library)} <= target.loaded
    assert str(module) in {e.path for e in target.extensions}
    assert str(library) not in {e.path for e in target.extensions}


def wait_until_mapped(pid: int, name: str) -> None:
    """ld.so maps libraries before main(): wait (briefly) until ``name`` shows in /proc/PID/maps."""
    deadline = time.monotonic() + 10
    while name not in Path(f"/proc/{pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_pid_of_a_plain_program_is_generic_with_its_mapped_libraries() -> None:
    sleep = os.path.realpath(shutil.which("sleep") or "/bin/sleep")
    process = subprocess.Popen([sleep, "30"])
    try:
        wait_until_mapped(process.pid, "libc.so.6")
        target = target_from_pid(process.pid)
    finally:
        process.kill()
        process.wait()
    assert (target.kind, target.executable, target.extensions) == ("generic", sleep, ())
    assert any(os.path.basename(path) == "libc.so.6" for path in target.loaded)


def test_pid_whose_program_was_deleted_still_reports_what_it_mapped(tmp_path: Path) -> None:
    program = tmp_path / "sleeper"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    process = subprocess.Popen([str(program), "30"])
    try:
        wait_until_mapped(process.pid, "libc.so.6")
        program.unlink()
        target = target_from_pid(process.pid)
    finally:
        process.kill()
        process.wait()
    assert target.executable == str(program)
    assert str(program) in target.loaded
    assert any("static view unavailable" in note for note in target.notes)


def test_pid_of_a_finished_process_is_no_such_process() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    with pytest.raises(TargetError, match=f"pid {process.pid}: no such process"):
        target_from_pid(process.pid)


def test_pid_of_another_users_process_is_permission_denied() -> None:
    assert run_as_nobody("target_from_pid(1)") == (
        "pid 1: permission denied reading /proc/1/exe; run as its user or root"
    )


@pytest.mark.parametrize("pid", [0, -5])
def test_non_positive_pid_is_rejected(pid: int) -> None:
    with pytest.raises(TargetError, match="not a process id"):
        target_from_pid(pid)


def test_kernel_thread_has_no_executable() -> None:
    if os.path.exists("/proc/2/exe") or not os.path.exists("/proc/2"):
        pytest.skip("pid 2 is not a kernel thread here")
    with pytest.raises(TargetError, match="kernel thread"):
        target_from_pid(2)


# --- candidates -----------------------------------------------------------------------------------


def test_candidates_list_the_local_venv_once_even_when_also_active(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    venv.rename(tmp_path / ".venv")
    found = detect_candidates(str(tmp_path), {"VIRTUAL_ENV": str(tmp_path / ".venv"), "PATH": ""})
    assert [(c.path, c.kind, c.why) for c in found] == [
        (str(tmp_path / ".venv"), "venv", "$VIRTUAL_ENV (the active venv)")
    ]


def test_candidates_turn_a_venv_python_on_path_into_its_venv(tmp_path: Path, plain_so: Path) -> None:
    venv = make_venv(tmp_path, plain_so)
    found = detect_candidates(str(tmp_path / "elsewhere"), {"PATH": str(venv / "bin")})
    assert found == [
        Candidate(label=f"{venv} (Python {PY_VERSION})", path=str(venv), kind="venv", why="python3 on PATH")
    ]


def test_candidates_skip_scripts_on_path_and_take_the_next_python(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "python3").write_text("#!/bin/sh\nexec true\n")
    (scripts / "python3").chmod(0o755)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "python3").symlink_to(BASE_PYTHON)
    found = detect_candidates(str(tmp_path), {"PATH": f"{scripts}:{tmp_path / 'real'}"})
    assert [(c.path, c.kind) for c in found] == [(BASE_PYTHON, "python")]


def test_candidates_follow_a_pyenv_shim_on_path(tmp_path: Path) -> None:
    shim = make_pyenv(tmp_path / "pyenv")
    found = detect_candidates(str(tmp_path), {"PATH": str(shim.parent)})
    assert [(c.path, c.kind) for c in found] == [(BASE_PYTHON, "python")]


def test_candidates_skip_a_pyenv_shim_set_to_system(tmp_path: Path) -> None:
    shim = make_pyenv(tmp_path / "pyenv")
    assert detect_candidates(str(tmp_path), {"PATH": str(shim.parent), "PYENV_VERSION": "system"}) == []


def test_candidates_find_ruby_on_path(tmp_path: Path, plain_so: Path) -> None:
    ruby = make_fake_ruby(tmp_path / "ruby", plain_so)
    found = detect_candidates(str(tmp_path), {"PATH": str(ruby.parent)})
    assert [(c.path, c.kind, c.why) for c in found] == [(str(ruby), "ruby", "ruby on PATH")]


def test_candidates_include_the_devbox_profile_python(tmp_path: Path) -> None:
    profile = tmp_path / ".devbox" / "nix" / "profile" / "default" / "bin"
    profile.mkdir(parents=True)
    (profile / "python3").symlink_to(BASE_PYTHON)
    found = detect_candidates(str(tmp_path), {"PATH": ""})
    assert [(c.path, c.why) for c in found] == [(BASE_PYTHON, "the devbox profile")]
