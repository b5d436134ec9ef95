"""A running process as the target (core/targets/pid.py): what /proc/PID/maps says it loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.targets import (
    target_from_pid,
)

from tests.core.targets.layouts import (
    EXT_SUFFIX,
    EXTENSION_SOURCE,
    run_as_nobody,
    wait_until_mapped,
)
from tests.gcc import compile_elf


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


def test_pid_target_lists_the_imported_module_not_the_library_it_vendors(sleeping_numpy_like) -> None:  # type: ignore[no-untyped-def]
    process, module, library = sleeping_numpy_like
    target = target_from_pid(process.pid)
    assert {str(module), str(library)} <= target.loaded
    assert str(module) in {e.path for e in target.extensions}
    assert str(library) not in {e.path for e in target.extensions}


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
