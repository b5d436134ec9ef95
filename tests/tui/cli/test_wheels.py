"""``glibc-doctor wheels`` and ``scan --pip-cache`` as real processes: the table, JSON, exit codes, and
the purge (refused without a terminal and --yes, asked on a terminal, exact when done)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from glibc_doctor.lab.build import Lab

from tests.wheelbuild import BuiltWheels, pip_cache_of

pytestmark = pytest.mark.lab
DOCTOR = str(Path(sys.executable).with_name("glibc-doctor"))
FAILING = {"pthreadpkg", "strlcpypkg", "vendoredpkg", "manylinuxpkg"}


@pytest.fixture
def cache(lab_test_wheels: BuiltWheels, tmp_path: Path) -> Path:
    return pip_cache_of(tmp_path / "pip-cache", list(lab_test_wheels.files.values()))


@pytest.fixture
def env(lab: Lab, cache: Path, tmp_path: Path) -> dict[str, str]:
    return {**lab.environ(), "PIP_CACHE_DIR": str(cache), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}


def run(*args: str | Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCTOR, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def cached_names(cache: Path) -> set[str]:
    return {path.name.split("-")[0] for path in cache.rglob("*.whl")}


def test_the_table_names_each_failing_wheel_its_needs_and_the_fix_and_exits_1(
    lab: Lab, env: dict[str, str]
) -> None:
    done = run("wheels", lab.venv, "--pip-cache", env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar
    out = done.stdout
    assert "✗ 4 of 6 wheels in pip's cache would break python3.9 (glibc 2.31)" in " ".join(out.split())
    assert "GLIBC_2.34 from libc.so.6" in out
    assert "(pthread_create, pthread_join)" in out
    assert "GLIBC_2.38 from libc.so.6 (strlcpy)" in out
    assert "libhelper-1a2b3c4d.so: GLIBC_2.34" in out
    assert "manylinuxpkg 1.0: not selected: manylinux_2_34_x86_64 needs glibc 2.34" in out
    assert "run  glibc-doctor wheels" in out
    assert "removes the 4 failing wheels from pip's cache" in " ".join(out.split())


def test_json_has_the_issues_keys_for_every_wheel(lab: Lab, env: dict[str, str]) -> None:
    done = run("wheels", lab.venv, "--pip-cache", "--json", env=env)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert {"target", "glibc", "wheels", "stdenv", "pip_cache"} <= set(document)
    assert document["glibc"]["version"] == "2.31"
    rows = {row["name"]: row for row in document["wheels"]}
    assert set(rows) == FAILING | {"cleanpkg", "purepkg"}
    for row in rows.values():
        assert {"path", "name", "version", "tags", "loads", "fixable_by_fix", "missing", "notes"} <= set(row)
    pthread = rows["pthreadpkg"]
    assert (pthread["loads"], pthread["fails"], pthread["fixable_by_fix"]) == (False, True, True)
    assert pthread["tags"] == ["cp39-cp39-linux_x86_64"]
    (missing,) = pthread["missing"]
    assert missing["object"] == "pthreadpkg/_core.cpython-39-x86_64-linux-gnu.so"
    assert (missing["library"], missing["version"]) == ("libc.so.6", "GLIBC_2.34")
    assert "pthread_create" in missing["symbols"]
    assert pthread["modules"] == [{"name": "pthreadpkg._core", "file": missing["object"]}]
    assert rows["cleanpkg"]["loads"] is True
    assert rows["cleanpkg"]["fixable_by_fix"] is False
    assert rows["manylinuxpkg"]["selected"] is False


def test_wheels_that_all_load_exit_0(lab: Lab, lab_test_wheels: BuiltWheels, env: dict[str, str]) -> None:
    done = run("wheels", lab.venv, lab_test_wheels["cleanpkg"], lab_test_wheels["purepkg"], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ none of the 2 wheels checked would break python3.9" in " ".join(done.stdout.split())


def test_purge_without_a_terminal_or_yes_is_refused_before_anything_is_checked(
    lab: Lab, env: dict[str, str], cache: Path
) -> None:
    before = cached_names(cache)
    done = run("wheels", lab.venv, "--pip-cache", "--purge", env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "glibc-doctor: --purge asks before removing anything: run it on a terminal, or add --yes "
        "(see glibc-doctor --help)"
    ]
    assert cached_names(cache) == before


def test_purge_with_yes_removes_exactly_the_failing_wheels(
    lab: Lab, env: dict[str, str], cache: Path
) -> None:
    everything = {path for path in cache.rglob("*") if path.is_file()}
    done = run("wheels", lab.venv, "--pip-cache", "--purge", "--yes", "--json", env=env)
    assert done.returncode == 1, done.stderr
    purged = json.loads(done.stdout)["purged"]
    removed = {Path(path) for path in purged["removed"]}
    assert {path.name.split("-")[0] for path in removed} == FAILING
    assert purged["kept"] == []
    assert {path for path in cache.rglob("*") if path.is_file()} == everything - removed
    again = run("wheels", lab.venv, "--pip-cache", env=env)
    assert again.returncode == 0, again.stdout


def test_purge_asks_on_a_terminal_and_no_keeps_everything(lab: Lab, env: dict[str, str], cache: Path) -> None:
    before = cached_names(cache)
    output = on_terminal([DOCTOR, "wheels", str(lab.venv), "--pip-cache", "--purge"], env, answer="n\n")
    assert "Remove 4 failing wheels from pip's cache" in output
    assert "nothing removed" in output
    assert cached_names(cache) == before


def test_purge_asks_on_a_terminal_and_yes_removes_and_says_what(
    lab: Lab, env: dict[str, str], cache: Path
) -> None:
    output = on_terminal([DOCTOR, "wheels", str(lab.venv), "--pip-cache", "--purge"], env, answer="y\n")
    assert output.count("removed ") == 4
    assert cached_names(cache) == {"cleanpkg", "purepkg"}


def on_terminal(argv: list[str], env: dict[str, str], answer: str) -> str:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr; type ``answer`` at the question."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the command on the terminal
        os.execve(argv[0], argv, {**env, "COLUMNS": "120", "TERM": "dumb"})
    output = b""
    answered = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"[y/N]" in output:
            os.write(fd, answer.encode())
            answered = True
    os.waitpid(pid, 0)
    return output.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "wheels needs WHEEL or DIR paths, or --pip-cache"),
        ((".", "--purge", "--yes"), "--purge removes wheels from pip's cache: add --pip-cache"),
        (("--yes", "--pip-cache"), "--yes confirms --purge: add --purge"),
    ],
)
def test_usage_errors_are_one_line(
    lab: Lab, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = run("wheels", lab.venv, *args, env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"glibc-doctor: {message} (see glibc-doctor --help)"]


def test_a_ruby_target_is_one_line(lab: Lab, env: dict[str, str], tmp_path: Path) -> None:
    done = run("wheels", lab.ruby, tmp_path, env=env)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.endswith("not a Python interpreter or venv; wheels are for Python")


def test_scan_with_pip_cache_adds_the_failing_wheels_section(lab: Lab, env: dict[str, str]) -> None:
    done = run("scan", lab.venv, "--pip-cache", env=env)
    assert done.returncode == 1
    out = done.stdout
    section = out[out.index("Wheels in pip's cache") :]
    assert "4 of 6 wheels in pip's cache would break python3.9" in " ".join(section.split())
    assert "pthreadpkg" in section
    assert "cleanpkg" not in section.split("What to do")[0]  # only the ones that break the target


def test_scan_json_with_pip_cache_has_the_wheels_document(lab: Lab, env: dict[str, str]) -> None:
    done = run("scan", lab.venv, "--pip-cache", "--json", env=env)
    document = json.loads(done.stdout)
    assert {"objects", "conflicts", "pip_cache"} <= set(document)
    assert {row["name"] for row in document["pip_cache"]["wheels"] if row["fails"]} == FAILING


def test_scan_with_pip_cache_and_a_graph_format_is_a_usage_error(lab: Lab, env: dict[str, str]) -> None:
    done = run("scan", lab.venv, "--pip-cache", "--format", "dot", env=env)
    assert done.returncode == 2
    assert "--pip-cache adds to the text or JSON report, not to --format dot" in done.stderr
