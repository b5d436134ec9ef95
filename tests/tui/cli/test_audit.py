"""``glibc-doctor audit`` as a real process: the table, JSON, SARIF, JUnit, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.synthetic import Synthetic

DOCTOR = str(Path(sys.executable).with_name("glibc-doctor"))


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    return subprocess.run(
        [DOCTOR, "audit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def test_the_table_lists_the_broken_programs_worst_first_and_exits_1(synthetic: Synthetic) -> None:
    done = run(synthetic.apps, "--ext-dir", synthetic.ext)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar
    first = done.stdout.splitlines()[0]
    assert first.startswith("✗ 7 programs in ")
    assert "7 with conflicts" in first
    assert "GLIBC_2.38" in done.stdout  # the worst record of every row


def test_json_has_a_row_per_program_with_its_counts(synthetic: Synthetic) -> None:
    done = run(synthetic.apps, "--ext-dir", synthetic.ext, "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    rows = document["programs"]
    assert len(rows) == document["summary"]["programs"] == 7
    assert all(
        row["conflicts"]
        == len([r for r in row["records"] if r["mode"] == "exact" and r["severity"] == "error"])
        for row in rows
    )
    assert rows[0]["worst"]["version"] == "GLIBC_2.38"


def test_sarif_and_junit_go_to_stdout(synthetic: Synthetic) -> None:
    sarif = run(synthetic.apps, "--ext-dir", synthetic.ext, "--format", "sarif")
    log = json.loads(sarif.stdout)
    assert log["version"] == "2.1.0"
    assert {result["ruleId"] for result in log["runs"][0]["results"]} >= {"GLIBC_2.34", "GLIBC_2.38"}
    junit = run(synthetic.apps, "--ext-dir", synthetic.ext, "--format", "junit")
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "7"
    assert sarif.returncode == junit.returncode == 1


def test_programs_without_conflicts_exit_0(synthetic: Synthetic) -> None:
    done = run(synthetic.apps, "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["summary"]["with_conflicts"] == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "audit needs at least one DIR or PROGRAM"),
        (("/nowhere/at/all",), "/nowhere/at/all: no such file or directory"),
        (("--fail-on", "often", "/usr/bin"), "argument --fail-on: invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("glibc-doctor: ")
    assert words in done.stderr


def test_a_plugin_dir_that_is_a_file_is_bad_input(synthetic: Synthetic) -> None:
    done = run(synthetic.apps, "--ext-dir", synthetic.ext_clean)
    assert done.returncode == 2
    assert "--ext-dir needs a directory" in done.stderr


def test_on_a_terminal_the_progress_goes_to_stderr_and_the_table_to_stdout(synthetic: Synthetic) -> None:
    """stderr is a pseudo-terminal: rich draws its bar there (and clears it); stdout stays the table."""
    import pty

    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [DOCTOR, "audit", str(synthetic.apps), "--ext-dir", str(synthetic.ext)],
            stdout=subprocess.PIPE,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=300,
            check=False,
        )
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the writer is gone and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert done.returncode == 1
    assert done.stdout.startswith("✗ 7 programs in ")
    assert b"audit" in drawn
    assert b"scanning" in drawn or b"/7" in drawn
