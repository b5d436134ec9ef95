"""The wheels check against what really happens: the real pip installs each wheel into a scratch venv of
the real interpreter, which then imports each module by its name (``tests/wheelbuild.py``).

On the lab's python3.9 (glibc 2.31): wheels built by this machine's gcc that need GLIBC_2.34 (directly,
or through a vendored library found by ``$ORIGIN`` RPATH) and GLIBC_2.38, one that needs nothing new, a
pure one, one tagged ``manylinux_2_34`` that pip refuses; before and after ``glibc-doctor fix``. On this
machine's python: the same sources built for it. And the real auditwheel wheels of ``tests/wheels.py``
(numpy, scipy, Pillow, psycopg2-binary) as negative controls whose vendored ``.libs`` must resolve.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from glibc_doctor.core.errors import TargetError, WheelError
from glibc_doctor.core.wheels import WheelCheck, WheelsReport, check_wheels
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.wheel_rows import fix_verdict, fixable_by_fix

from tests.hostilezips import make
from tests.wheelbuild import (
    HELPER_SONAME,
    BuiltWheels,
    Imported,
    installed_modules,
    make_wheel,
    new_venv,
    pip_cache_of,
    pip_install,
    real_imports,
    site_packages,
)
from tests.wheels import LAB_WHEELS, MACHINE_REQUIREMENTS, WheelSet, WheelVenv, cache_root, fetch

pytestmark = pytest.mark.lab
NOT_SUPPORTED = "is not a supported wheel on this platform"
LOADER_ERROR = re.compile(r"version `(?P<version>[^']+)' not found \(required by (?P<object>[^)]+)\)")


@dataclass(frozen=True)
class Installed:
    """A scratch venv, the check's report on the wheels, and what the real pip and import did."""

    venv: Path
    python: Path
    report: WheelsReport
    refused: str  # pip's output for the wheels the check says it would not select
    imports: dict[str, dict[str, Imported]]  # wheel name -> module -> what the real import did
    env: dict[str, str]

    def check(self, name: str) -> WheelCheck:
        return next(check for check in self.report.wheels if check.name == name)


def install_and_import(
    base: Path, wheels: BuiltWheels, pip: Path, env: dict[str, str], where: Path
) -> Installed:
    venv = new_venv(base, where / "venv", env)
    python = venv / "bin" / f"python{wheels.python.version}"
    report = check_wheels(str(venv), [str(path) for path in wheels.files.values()], env=env)
    selected = [Path(check.path) for check in report.wheels if check.selected]
    done = pip_install(python, pip, selected, env)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = pip_install(python, pip, [Path(c.path) for c in report.wheels if not c.selected], env)
    imports = imports_of(venv, python, report, env, where)
    return Installed(venv, python, report, refused.stdout + refused.stderr, imports, env)


def imports_of(
    venv: Path, python: Path, report: WheelsReport, env: dict[str, str], where: Path
) -> dict[str, dict[str, Imported]]:
    found: dict[str, dict[str, Imported]] = {}
    for check in report.wheels:
        if check.selected and check.modules:
            modules = installed_modules(venv, check.modules, check.module_files)
            found[check.name] = real_imports(python, modules, env, where / "cwd")
    return found


def assert_verdicts_are_the_real_imports(installed: Installed) -> None:
    """Every selected wheel: it loads exactly when each module imports and stays mapped; a failing
    one fails with a version the check names, required by an object the check names."""
    for check in installed.report.wheels:
        if not check.selected:
            continue  # pip refused it (test_pip_refuses_…): nothing installed to import
        real = installed.imports.get(check.name, {})
        assert set(real) == set(check.modules), check.name
        assert check.loads == all(one.imported and one.mapped for one in real.values()), (check.name, real)
        for one in real.values():
            if one.mapped:
                continue
            refused = {
                (m["version"], os.path.normpath(m["object"])) for m in LOADER_ERROR.finditer(one.error)
            }
            assert refused, one.error
            site = site_packages(installed.venv)
            named = {(m.version, os.path.normpath(site / m.object)) for m in check.missing}
            assert refused <= named, (check.name, refused, named)


# --- the lab's python3.9 on glibc 2.31 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_installed(
    lab: Lab, lab_test_wheels: BuiltWheels, pip_to_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    return install_and_import(
        lab.python, lab_test_wheels, pip_to_run, lab.environ(), tmp_path_factory.mktemp("lab")
    )


def test_each_lab_wheel_verdict_is_the_real_import_after_a_real_pip_install(lab_installed: Installed) -> None:
    assert_verdicts_are_the_real_imports(lab_installed)
    verdicts = {check.name: (check.loads, check.fails) for check in lab_installed.report.wheels}
    assert verdicts == {
        "pthreadpkg": (False, True),
        "strlcpypkg": (False, True),
        "vendoredpkg": (False, True),
        "manylinuxpkg": (False, True),
        "cleanpkg": (True, False),
        "purepkg": (True, False),
    }
    assert lab_installed.report.exit_code == 1


def test_pip_refuses_exactly_the_wheel_the_check_says_it_would_not_select(lab_installed: Installed) -> None:
    unselected = [check for check in lab_installed.report.wheels if not check.selected]
    assert [check.name for check in unselected] == ["manylinuxpkg"]
    assert unselected[0].not_selected == "manylinux_2_34_x86_64 needs glibc 2.34, the process loads 2.31"
    assert f"{os.path.basename(unselected[0].path)} {NOT_SUPPORTED}" in lab_installed.refused


def test_a_missing_version_names_its_symbols_object_and_library(lab_installed: Installed) -> None:
    pthread = lab_installed.check("pthreadpkg")
    assert pthread.modules == ("pthreadpkg._core",)
    (missing,) = pthread.missing
    assert missing.object == "pthreadpkg/_core.cpython-39-x86_64-linux-gnu.so"
    assert (missing.library, missing.version) == ("libc.so.6", "GLIBC_2.34")
    assert {"pthread_create", "pthread_join"} <= set(missing.symbols)
    assert missing.provider is not None
    assert missing.provider.endswith("glibc-2.31/lib/libc.so.6")
    strlcpy = lab_installed.check("strlcpypkg")
    assert [(m.version, m.symbols) for m in strlcpy.missing] == [("GLIBC_2.38", ("strlcpy",))]


def test_a_vendored_library_is_found_through_the_wheels_own_libs_directory(lab_installed: Installed) -> None:
    vendored = lab_installed.check("vendoredpkg")
    assert [(m.object, m.version) for m in vendored.missing] == [
        (f"vendoredpkg.libs/{HELPER_SONAME}", "GLIBC_2.34")
    ]
    assert vendored.problems == ()
    assert not any("not checked" in note for note in vendored.notes)


def test_fixable_by_fix_is_the_fix_plans_rule(lab_installed: Installed) -> None:
    stdenv = lab_installed.report.interpreter.stdenv
    assert stdenv is not None
    assert stdenv.version is not None
    newer_than_2_38 = tuple(int(part) for part in stdenv.version.split(".")) >= (2, 38)
    assert fixable_by_fix(lab_installed.check("pthreadpkg"), stdenv) is True
    assert fixable_by_fix(lab_installed.check("vendoredpkg"), stdenv) is True
    assert fixable_by_fix(lab_installed.check("strlcpypkg"), stdenv) is newer_than_2_38
    if not newer_than_2_38:
        decided = fix_verdict(lab_installed.check("strlcpypkg"), stdenv)
        assert decided is not None
        assert decided.words == f"no: needs 2.38 > stdenv {stdenv.version}"
    assert fixable_by_fix(lab_installed.check("cleanpkg"), stdenv) is False  # it loads: nothing to fix


def test_after_fix_the_fixable_wheels_load_for_real_and_the_check_says_so(
    lab_installed: Installed, pip_to_run: Path, tmp_path: Path
) -> None:
    """The fix moves the process to the stdenv's glibc: the wheels it said it fixes load for real, and
    pip, run by the patched interpreter, now also takes the manylinux_2_34 wheel it refused."""
    venv = tmp_path / "venv"
    shutil.copytree(lab_installed.venv, venv, symlinks=True)
    env = {
        **lab_installed.env,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("CC", None)
    fixed = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "fix", str(venv), "--yes"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert "activated" in fixed.stdout, fixed.stdout + fixed.stderr
    files = [check.path for check in lab_installed.report.wheels]
    after = check_wheels(str(venv), files, env=env)
    python = venv / "bin" / "python3.9"
    newly = [
        Path(check.path)
        for check in after.wheels
        if check.selected and not lab_installed.check(check.name).selected
    ]
    assert [path.name for path in newly] == [os.path.basename(lab_installed.check("manylinuxpkg").path)]
    done = pip_install(python, pip_to_run, newly, env)
    assert done.returncode == 0, done.stdout + done.stderr
    installed = Installed(venv, python, after, "", imports_of(venv, python, after, env, tmp_path), env)
    assert_verdicts_are_the_real_imports(installed)
    stdenv = after.interpreter.stdenv
    assert stdenv is not None
    for name in ("pthreadpkg", "vendoredpkg"):
        assert lab_installed.check(name).fails, name
        assert installed.check(name).loads, name
    assert installed.check("strlcpypkg").loads == (
        fixable_by_fix(lab_installed.check("strlcpypkg"), stdenv) is True
    )
    assert after.interpreter.glibc.version == stdenv.version


def test_a_wheel_for_another_python_neither_loads_nor_fails_here(lab: Lab, tmp_path: Path) -> None:
    other = make_wheel(
        tmp_path, "otherpkg", "1.0", "cp311-cp311-linux_x86_64",
        {"otherpkg/__init__.py": b"", "otherpkg/_core.cpython-311-x86_64-linux-gnu.so": b"\x7fELF"},
    )  # fmt: skip
    report = check_wheels(str(lab.venv), [str(other)], env=lab.environ())
    (check,) = report.wheels
    assert (check.selected, check.for_this_python, check.fails, check.modules) == (False, False, False, ())
    assert check.not_selected == "for CPython 3.11 (cp311), not 3.9"
    assert report.exit_code == 0


# --- pip's cache, bad wheels in it, bad input -------------------------------------------------------------


def test_the_pip_cache_of_the_target_is_checked_and_a_bad_wheel_in_it_is_a_row(
    lab: Lab, lab_test_wheels: BuiltWheels, tmp_path: Path
) -> None:
    hostile = make("overlap_bomb", tmp_path / "hostile")
    cache = pip_cache_of(tmp_path / "cache", [*lab_test_wheels.files.values(), hostile])
    env = {**lab.environ(), "PIP_CACHE_DIR": str(cache)}
    report = check_wheels(str(lab.venv), pip_cache_wanted=True, env=env)
    assert report.cache is not None
    assert report.cache.path == str(cache)
    by_name = {check.name: check for check in report.wheels}
    assert set(by_name) == {*lab_test_wheels.files, "evil"}
    evil = by_name["evil"]
    assert evil.unreadable is not None
    assert "overlaps the next one" in evil.unreadable
    assert evil.fails
    assert not evil.loads
    assert {check.name for check in report.purgeable()} == {
        "pthreadpkg", "strlcpypkg", "vendoredpkg", "manylinuxpkg", "evil",
    }  # fmt: skip


def test_a_bad_wheel_given_by_name_is_bad_input(lab: Lab, tmp_path: Path) -> None:
    hostile = make("dotdot", tmp_path / "hostile")
    with pytest.raises(WheelError, match="a '..' component"):
        check_wheels(str(lab.venv), [str(hostile)], env=lab.environ())


def test_a_target_that_is_not_python_is_bad_input(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not a Python interpreter or venv"):
        check_wheels(str(lab.ruby), [str(tmp_path)], env=lab.environ())


def test_a_path_that_does_not_exist_is_bad_input(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="no such file or directory"):
        check_wheels(str(lab.venv), [str(tmp_path / "nowhere.whl")], env=lab.environ())


# --- this machine's python ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def machine_installed(
    machine_test_wheels: BuiltWheels, pip_to_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    version = machine_test_wheels.python.version
    base = Path(os.path.realpath(os.path.join(sys.base_prefix, "bin", f"python{version}")))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "LD_"))
    }
    return install_and_import(base, machine_test_wheels, pip_to_run, env, tmp_path_factory.mktemp("machine"))


def test_each_machine_wheel_verdict_is_the_real_import_after_a_real_pip_install(
    machine_installed: Installed,
) -> None:
    assert_verdicts_are_the_real_imports(machine_installed)
    glibc = machine_installed.report.interpreter.glibc.version
    assert glibc is not None
    release = tuple(int(part) for part in glibc.split("."))
    expected_loads = {
        "pthreadpkg": release >= (2, 34),
        "vendoredpkg": release >= (2, 34),
        "manylinuxpkg": release >= (2, 34),
        "strlcpypkg": release >= (2, 38),
        "cleanpkg": True,
        "purepkg": True,
    }
    assert {check.name: check.loads for check in machine_installed.report.wheels} == expected_loads
    manylinux = machine_installed.check("manylinuxpkg")
    assert manylinux.selected == (release >= (2, 34))
    assert (NOT_SUPPORTED in machine_installed.refused) == (not manylinux.selected)


# --- real auditwheel wheels: numpy, scipy, Pillow, psycopg2-binary ----------------------------------------


def check_real_wheels(venv: WheelVenv, wheels: WheelSet, tmp_path: Path) -> None:
    """The check of the downloaded wheels against the venv they were installed into (by pip, for real):
    every module's verdict is that module's real import there; every vendored library resolves."""
    files = fetch(wheels, cache_root() / "downloads")
    report = check_wheels(str(venv.venv), [str(path) for path in files], env=venv.env)
    assert len(report.wheels) == len(files)
    for check in report.wheels:
        assert check.selected, check.not_selected
        assert len(check.modules) > 0, check.name
        assert not any(problem.kind == "not-found" for problem in check.problems), check.problems
        assert not any("not checked" in note for note in check.notes), check.notes
        modules = installed_modules(venv.venv, check.modules, check.module_files)
        real = real_imports(venv.python, modules, venv.env, tmp_path / "cwd")
        mapped = all(one.mapped for one in real.values())
        assert check.loads == mapped, (check.name, [(m.object, m.version) for m in check.missing][:4])


def test_real_manylinux_wheels_on_the_lab_python_match_their_real_import(
    lab_wheels: WheelVenv, tmp_path: Path
) -> None:
    check_real_wheels(lab_wheels, LAB_WHEELS, tmp_path)


def test_real_manylinux_wheels_on_this_machines_python_all_load(
    machine_wheels: WheelVenv, tmp_path: Path
) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    check_real_wheels(machine_wheels, WheelSet(version, MACHINE_REQUIREMENTS), tmp_path)
