"""Hostile wheels end to end, as a user meets them: the real ``glibc-doctor wheels`` command.

A wheel named on the command line that is corrupt, hostile (absolute or ``..`` member names, symlink or
device members, duplicates) or a zip bomb (overlapping members, an inflation ratio or a member count no
wheel has, sizes that lie) is one ``glibc-doctor:`` line and exit 2, within a CPU budget, and nothing
lands outside the check's private directory. The same wheel found under a directory, or in pip's cache,
is a row that says why it could not be read; the rest of the check goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.budget import cpu_budget
from tests.hostilezips import HOSTILE, make
from tests.test_hostile import assert_one_line_error

DOCTOR = str(Path(sys.executable).with_name("glibc-doctor"))
CPU_BUDGET = 5.0
MACHINE_PYTHON = "/usr/bin/python3"  # the distribution's python, as a user's venv would use


def run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    with cpu_budget(CPU_BUDGET, f"glibc-doctor {' '.join(map(str, args))[:80]}"):
        return subprocess.run(
            [DOCTOR, *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "XDG_CACHE", "PIP_"))}
    return {
        **clean,
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
        "TMPDIR": str(tmp_path_factory.mktemp("tmp")),
    }


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_wheel_given_by_name_is_one_line_and_exit_2(
    kind: str, env: dict[str, str], tmp_path: Path
) -> None:
    wheel = make(kind, tmp_path / "in")
    line = assert_one_line_error(run("wheels", MACHINE_PYTHON, wheel, env=env))
    assert HOSTILE[kind][1] in line
    assert os.listdir(env["TMPDIR"]) == []  # the private directory is gone, and nothing is beside it
    assert not Path("/tmp/glibc-doctor-evil.so").exists()


def test_hostile_wheels_under_a_directory_are_rows_and_the_check_completes(
    env: dict[str, str], tmp_path: Path
) -> None:
    for index, kind in enumerate(sorted(HOSTILE)):
        make(kind, tmp_path / "dir" / f"{index:02}")
    done = run("wheels", MACHINE_PYTHON, tmp_path / "dir", "--json", env=env)
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr
    rows = json.loads(done.stdout)["wheels"]
    assert len(rows) == len(HOSTILE)
    assert all(row["unreadable"] for row in rows)
    assert all(row["fails"] and not row["loads"] for row in rows)  # pip would take them, and fail


def test_a_file_that_is_not_named_like_a_wheel_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "package.zip"
    other.write_bytes(b"PK")
    line = assert_one_line_error(run("wheels", MACHINE_PYTHON, other, env=env))
    assert line.endswith("not a wheel (a *.whl file) or a directory of wheels")


def test_a_fifo_named_like_a_wheel_is_one_line_without_blocking(env: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "fifo-1.0-py3-none-any.whl"
    os.mkfifo(fifo)
    line = assert_one_line_error(run("wheels", MACHINE_PYTHON, fifo, env=env))
    assert "not a regular file, not a wheel" in line
