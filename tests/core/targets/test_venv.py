"""A venv (core/targets/venv.py): its base interpreter, its site-packages and .pth dirs, what is walked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.targets import (
    resolve_target,
)

from tests.budget import cpu_budget
from tests.core.targets.layouts import (
    BASE_PREFIX,
    BASE_PYTHON,
    EXT_SUFFIX,
    PY_VERSION,
    make_venv,
    run_as_nobody,
    site_of,
)


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


@pytest.mark.lab
def test_lab_venv_resolves_to_its_store_python_and_extensions(lab) -> None:  # type: ignore[no-untyped-def]
    target = resolve_target(str(lab.venv))
    assert target.executable == os.path.realpath(lab.python)
    assert {os.path.realpath(e.path) for e in target.extensions} >= {
        os.path.realpath(path) for path in lab.extensions.values()
    }
    assert str(lab.python_dynload) in target.searched_dirs


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
