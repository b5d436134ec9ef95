"""Smoke test in a real terminal: tmux runs ``glibc-doctor <lab venv>``, we read the screen, press keys.

The user's whole path with the keyboard alone: the GLIBC_2.34 conflict shows, ``f`` opens the plan,
Enter applies it, and afterwards the venv's own python imports the extension for real.
It runs at 80x24, the smallest size the app promises. Run with ``-s`` to see the captured screens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from glibc_doctor.lab.build import Lab

from tests.tui.test_app import copy_venv, imports

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
ENTRY = Path(sys.executable).with_name("glibc-doctor")


class Tmux:
    """One private tmux server (its own socket), so the test touches no other session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *argv: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *argv], capture_output=True, text=True, check=True)
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "smoke")

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} did not show within {timeout}s; the screen was:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"glibc-doctor-smoke-{os.getpid()}")
    try:
        yield server
    finally:
        subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, check=False)


def test_glibc_doctor_in_tmux_shows_the_conflict_and_f_enter_fixes_it(
    lab: Lab, tmp_path: Path, tmux: Tmux
) -> None:
    venv = copy_venv(lab, tmp_path)
    assert imports(venv, "ext_pthread", lab).returncode != 0
    env = {
        **lab.environ(),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    env.pop("TEXTUAL_THEME", None)
    command = [str(ENTRY if ENTRY.exists() else "glibc-doctor"), str(venv)]
    tmux.run("new-session", "-d", "-s", "smoke", "-x", "80", "-y", "24", "-e", f"PATH={env['PATH']}",
             *[arg for key, value in env.items() if key != "PATH" for arg in ("-e", f"{key}={value}")],
             " ".join(command))  # fmt: skip

    screen = tmux.wait_for("GLIBC_2.34", timeout=60)
    print("\n--- after launch ---\n" + screen)
    assert "ext_pthread" in screen

    tmux.run("send-keys", "-t", "smoke", "f")
    screen = tmux.wait_for("Fix plan", timeout=60)
    print("\n--- after f ---\n" + screen)

    tmux.run("send-keys", "-t", "smoke", "Enter")
    screen = tmux.wait_for("Fixed, verified and switched", timeout=180)
    print("\n--- after Enter ---\n" + screen)
    assert "import ext_pthread" in screen

    done = imports(venv, "ext_pthread", lab)
    assert done.returncode == 0, done.stderr

    tmux.run("send-keys", "-t", "smoke", "Escape")
    screen = tmux.wait_for("Loads glibc  2.36", timeout=60)
    print("\n--- back on the graph ---\n" + screen)
    tmux.run("send-keys", "-t", "smoke", "q")
