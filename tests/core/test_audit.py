"""The audit: every program under some paths, each with exactly the records its own strict scan has.

Synthetic programs (gcc-built, hard-wired to a fake glibc 2.31) with plugin dirs built against 2.38;
this machine's own /usr/bin, /usr/sbin and /usr/lib/x86_64-linux-gnu, checked against the real
loader's ``--list`` on a sample; and the real-glibc lab, checked program by program against ``scan``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from glibc_doctor.core.audit import AuditProgress, AuditResult, ProgramAudit, audit, audit_steps
from glibc_doctor.core.errors import NotElf, TargetError
from glibc_doctor.core.model import Kind, Severity
from glibc_doctor.core.scan import scan
from glibc_doctor.lab.build import Lab

from tests.gcc import compile_elf
from tests.synthetic import Synthetic

SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu")
REAL_LOADER = "/lib64/ld-linux-x86-64.so.2"
_LISTED = re.compile(r"^\s*(\S+) => (\S+) \(0x[0-9a-f]+\)$")


def rows_by_name(result: AuditResult) -> dict[str, ProgramAudit]:
    return {Path(program.program).name: program for program in result.programs}


def copy_program(source: Path, directory: Path, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(source, directory / (name or source.name)))


# --- what a program is -------------------------------------------------------------------------------


def test_every_program_of_a_directory_has_the_records_of_its_own_strict_scan(synthetic: Synthetic) -> None:
    result = audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)])
    names = {path.name for path in synthetic.apps.iterdir() if os.access(path, os.X_OK)}
    assert set(rows_by_name(result)) == names
    for program in result.programs:
        alone = scan(program.program, ext=[str(synthetic.ext)], strict=True, use_cache=False)
        assert set(program.result.conflicts) == set(alone.conflicts), program.program
        assert program.result.glibc == alone.glibc


def test_the_plugins_of_ext_dir_are_dlopened_by_every_program(synthetic: Synthetic) -> None:
    result = audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)])
    app = rows_by_name(result)["app"]
    assert {Path(e.path).name for e in app.result.target.extensions} >= {"ext_needs_234.so", "ext_clean.so"}
    assert ("ext_needs_234.so", "GLIBC_2.34") in {(Path(c.object).name, c.version) for c in app.conflicts}


def test_rows_come_worst_first(synthetic: Synthetic) -> None:
    result = audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)])
    keys = [program.sort_key() for program in result.programs]
    assert keys == sorted(keys)
    counts = [len(program.conflicts) for program in result.programs]
    assert counts == sorted(counts, reverse=True)
    worst = result.programs[0].worst
    assert worst is not None
    assert worst.severity == Severity.ERROR
    assert worst.version == "GLIBC_2.38"  # the newest version any object misses comes first


def test_paths_that_exec_the_same_process_are_one_row(synthetic: Synthetic, tmp_path: Path) -> None:
    programs = tmp_path / "bin"
    app = copy_program(synthetic.app, programs)
    (programs / "app-link").symlink_to(app)
    (tmp_path / "bin-too").symlink_to(programs)
    result = audit([str(programs), str(tmp_path)])
    assert len(result.programs) == 1
    row = result.programs[0]
    assert row.program == str(app)
    assert row.aliases == (str(programs / "app-link"),)


def test_libraries_scripts_and_plain_files_are_not_programs(synthetic: Synthetic, tmp_path: Path) -> None:
    copy_program(synthetic.app, tmp_path, "libapp.so.1")  # runnable, but named like a library
    not_executable = copy_program(synthetic.app, tmp_path, "app-data")
    not_executable.chmod(0o644)
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    result = audit([str(tmp_path)])
    assert result.programs == ()
    assert result.skipped == ()


def test_a_static_program_is_skipped_with_its_reason(tmp_path: Path) -> None:
    static = compile_elf(
        tmp_path / "bin" / "static",
        "void _start(void) { for (;;) {} }\n",
        shared=False,
        nostdlib=True,
        extra=["-static", "-no-pie"],
    )
    result = audit([str(tmp_path / "bin")])
    assert result.programs == ()
    assert [(item.path, item.reason) for item in result.skipped] == [
        (str(static), "statically linked: it loads no shared glibc")
    ]


def test_a_venv_under_a_directory_is_one_python_row(tmp_path: Path) -> None:
    venv = tmp_path / "project" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    result = audit([str(tmp_path / "project")])
    rows = [program for program in result.programs if program.result.target.environment == str(venv)]
    assert len(rows) == 1
    assert rows[0].program == str(venv)
    assert rows[0].result.target.kind == "python"
    assert str(venv / "bin" / "python") in rows[0].aliases
    alone = scan(str(venv), strict=True, use_cache=False)
    assert set(rows[0].result.conflicts) == set(alone.conflicts)


# --- bad input, progress, cancel ---------------------------------------------------------------------


def test_a_named_path_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file or directory"):
        audit([str(tmp_path / "nowhere")])


def test_a_named_file_that_is_not_a_program_is_bad_input(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(NotElf):
        audit([str(text)])


def test_an_ext_dir_must_be_a_directory(synthetic: Synthetic) -> None:
    with pytest.raises(TargetError, match="--ext-dir needs a directory"):
        audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext_clean)])


def test_progress_counts_every_program_then_the_result_comes(synthetic: Synthetic) -> None:
    events = list(audit_steps([str(synthetic.apps)]))
    assert isinstance(events[-1], AuditResult)
    scanning = [e for e in events if isinstance(e, AuditProgress) and e.stage == "scanning"]
    total = len(events[-1].programs)
    assert [e.done for e in scanning] == list(range(total + 1))
    assert {e.total for e in scanning} == {total}


def test_a_cancelled_audit_ends_without_a_result(synthetic: Synthetic) -> None:
    cancel = threading.Event()
    seen: list[object] = []
    for event in audit_steps([str(synthetic.apps)], cancel=cancel):
        seen.append(event)
        if isinstance(event, AuditProgress) and event.stage == "scanning":
            cancel.set()
    assert not any(isinstance(event, AuditResult) for event in seen)
    assert sum(isinstance(e, AuditProgress) and e.stage == "scanning" for e in seen) == 1


def test_the_exit_code_follows_fail_on(synthetic: Synthetic) -> None:
    result = audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)])
    assert result.exit_code("conflict") == 1
    assert result.exit_code("latent") == 1
    clean = audit([str(synthetic.apps)])
    assert [len(p.conflicts) for p in clean.programs] == [0] * len(clean.programs)
    assert clean.exit_code("conflict") == 0
    with pytest.raises(ValueError, match="fail_on"):
        clean.exit_code("sometimes")


def test_the_json_document_has_its_stable_keys(synthetic: Synthetic) -> None:
    document = audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)]).as_json()
    assert list(document) == ["paths", "stdenv", "summary", "programs", "skipped", "notes"]
    row = document["programs"][0]  # type: ignore[index]
    assert list(row) == [
        "program", "aliases", "kind", "executable", "environment", "extensions", "objects", "glibc",
        "conflicts", "latent", "warnings", "worst", "records", "notes",
    ]  # fmt: skip
    assert set(row["glibc"]) == {"version", "libc", "loader", "why", "via"}
    assert row["worst"]["kind"] in {str(kind) for kind in Kind}


# --- this machine: every program loads the system glibc, as the real loader lists it -----------------


@pytest.fixture(scope="module")
def system_audit() -> AuditResult:
    dirs = [directory for directory in SYSTEM_DIRS if os.path.isdir(directory)]
    if not os.path.exists(REAL_LOADER) or len(dirs) < 2:
        pytest.skip("not a Debian-style x86-64 system")
    return audit(dirs, env={key: value for key, value in os.environ.items() if not key.startswith("LD_")})


def test_no_program_of_this_machine_gets_a_conflict(system_audit: AuditResult) -> None:
    assert len(system_audit.programs) > 100
    assert [(p.program, p.conflicts) for p in system_audit.programs if p.conflicts] == []
    versions = {p.result.glibc.version for p in system_audit.programs}
    assert len(versions) == 1, versions  # all load the one system glibc
    assert system_audit.exit_code("conflict") == 0


def test_a_sample_of_programs_loads_what_the_real_loader_lists(system_audit: AuditResult) -> None:
    """The audit never runs anything; this test asks ld.so itself (``--list`` maps, it does not run the
    program) and compares name by name: each DT_NEEDED name maps to the very path the loader prints.

    The program is given by its real path: exec() of a symlink runs the real file, and $ORIGIN is then
    the real file's directory (ld.so --list of the link would search beside the link).
    """
    generic = [p for p in system_audit.programs if p.result.target.kind == "generic"]
    sample = generic[:: max(1, len(generic) // 30)][:30]
    assert len(sample) >= 25
    for program in sample:
        executable = program.result.target.executable
        listing = subprocess.run(
            [REAL_LOADER, "--list", executable], capture_output=True, text=True, timeout=60, check=False
        )
        assert listing.returncode == 0, (executable, listing.stderr)
        listed = {m[1]: m[2] for m in map(_LISTED.match, listing.stdout.splitlines()) if m}
        graph = program.result.graph
        loader = graph.graph["loader"]
        modelled: dict[str, str] = {}
        for _requester, provider, data in graph.edges(data=True):
            if provider != loader:
                modelled.setdefault(data["needed"], provider)
        assert modelled == listed, executable


# --- the real-glibc lab: the audit finds what each scan finds, nothing else --------------------------


@pytest.mark.lab
def test_the_lab_audit_has_exactly_the_records_of_each_programs_scan(lab: Lab) -> None:
    result = audit([str(lab.root)], env=lab.environ())
    executables = {program.result.target.executable for program in result.programs}
    assert {str(lab.python), str(lab.ruby)} <= executables
    for program in result.programs:
        alone = scan(program.program, strict=True, env=lab.environ(), use_cache=False)
        assert set(program.result.conflicts) == set(alone.conflicts), program.program
        assert program.result.target.extensions == alone.target.extensions
    venv = next(p for p in result.programs if p.result.target.environment == str(lab.venv))
    assert ("ext_pthread", "GLIBC_2.34") in {
        (Path(c.object).name.split(".")[0], c.version) for c in venv.conflicts
    }
    assert venv.result.glibc.version == "2.31"
    assert result.exit_code("conflict") == 1


@pytest.mark.lab
def test_a_program_with_only_latent_conflicts_fails_only_on_latent(lab: Lab) -> None:
    result = audit([str(lab.python)], env=lab.environ())
    (store_python,) = result.programs
    assert store_python.conflicts == ()
    assert store_python.latent
    assert result.exit_code("conflict") == 0
    assert result.exit_code("latent") == 1
