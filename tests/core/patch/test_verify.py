"""Verification: loading extensions with a real interpreter, and what counts as "worse"."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from glibc_doctor.core.model import Conflict, Extension, Kind, Severity
from glibc_doctor.core.patch.verify import _import_root, import_check, module_name, worse_conflicts


def _conflict(obj: str, version: str = "GLIBC_2.34", severity: Severity = Severity.ERROR) -> Conflict:
    return Conflict(Kind.MISSING_VERSION, obj, "m", library="libc.so.6", version=version, severity=severity)


def test_a_conflict_that_was_there_before_is_not_worse() -> None:
    before = (_conflict("/venv/ext.so"),)
    assert worse_conflicts(before, (_conflict("/venv/ext.so"),), "/old", "/new") == ()


def test_a_conflict_of_a_moved_package_file_is_matched_to_its_original() -> None:
    before = (_conflict("/old/lib/mod.so"),)
    assert worse_conflicts(before, (_conflict("/new/lib/mod.so"),), "/old", "/new") == ()


def test_a_new_error_is_worse() -> None:
    new = _conflict("/new/lib/mod.so", "GLIBC_PRIVATE")
    assert worse_conflicts((), (new,), "/old", "/new") == (new,)


def test_a_warning_before_that_is_an_error_after_is_worse() -> None:
    """An extension with an executable stack loads with glibc 2.31 (a warning that a 2.41 stdenv would
    refuse it); after a repatch to 2.41 it is refused: the fix made it worse."""
    before = Conflict(Kind.EXEC_STACK, "/venv/ext.so", "w", severity=Severity.WARNING)
    after = Conflict(Kind.EXEC_STACK, "/venv/ext.so", "/venv/ext.so: cannot enable executable stack …")
    assert worse_conflicts((before,), (after,), "/old", "/new") == (after,)


def test_a_new_warning_is_not_worse() -> None:
    warning = _conflict("/new/lib/mod.so", severity=Severity.WARNING)
    assert worse_conflicts((), (warning,), "/old", "/new") == ()


def test_a_file_name_given_with_ext_imports_as_its_module() -> None:
    extension = Extension(
        "/sp/ext_cxx.cpython-39-x86_64-linux-gnu.so", "ext_cxx.cpython-39-x86_64-linux-gnu.so"
    )
    assert module_name(extension) == "ext_cxx"


def test_a_dotted_module_imports_from_above_its_package() -> None:
    assert _import_root("/sp/pkg/sub/_speedups.so", "pkg.sub._speedups") == "/sp"


def test_a_package_whose_init_is_an_extension_imports_from_above_it() -> None:
    assert _import_root("/sp/pkg/sub/__init__.cpython-39-x86_64-linux-gnu.so", "pkg.sub") == "/sp"


def test_a_module_that_loads_passes_the_check() -> None:
    path = json.__file__
    extension = Extension(path, "json")
    check = import_check("python", sys.executable, extension, True, dict(os.environ))
    assert check.ok, check.detail


def test_a_module_that_fails_reports_the_last_line_of_the_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken_ext.so"
    broken.write_bytes(b"not an ELF file")
    check = import_check(
        "python", sys.executable, Extension(str(broken), "broken_ext"), True, dict(os.environ)
    )
    assert not check.ok
    assert check.detail.startswith("ImportError")


def test_a_generic_target_has_no_runtime_check() -> None:
    check = import_check("generic", "/bin/true", Extension("/x/plugin.so", "plugin"), True, {})
    assert check.ok
    assert "rescan only" in check.detail
