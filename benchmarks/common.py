"""What every benchmark here shares: whole processes timed in interleaved pairs, and a normal install.

The two cores are shared and their speed drifts; a figure measured alone is noise. So each measurement
runs A then B, N times, and each ratio is taken pair by pair before the median. Each run is a whole
process (start-up and imports included), timed from outside; its CPU time and peak RSS come from
``wait4`` of that child alone. What is measured is what a user runs: a normal (non-editable) install of
this checkout, made with a current pip in a scratch venv.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    peak_mib: float  # its peak resident set
    code: int


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> Run:
    """One whole process, its output thrown away."""
    start = time.perf_counter()
    child = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode)


def pairs(a: Sequence[str], b: Sequence[str], env: Mapping[str, str], runs: int) -> list[tuple[Run, Run]]:
    """``runs`` interleaved pairs (A, B) after one warm-up of each."""
    run_once(a, env)
    run_once(b, env)
    return [(run_once(a, env), run_once(b, env)) for _ in range(runs)]


@dataclass(frozen=True, slots=True)
class Paired:
    """Medians of A and B, and the median of the pair-by-pair ratios A/B."""

    a: float
    b: float
    ratio: float
    cpu_ratio: float
    a_peak: float
    b_peak: float

    @classmethod
    def of(cls, measured: list[tuple[Run, Run]]) -> Paired:
        return cls(
            a=statistics.median(x.wall for x, _ in measured),
            b=statistics.median(y.wall for _, y in measured),
            ratio=statistics.median(x.wall / y.wall for x, y in measured),
            cpu_ratio=statistics.median(x.cpu / y.cpu for x, y in measured if y.cpu > 0),
            a_peak=max(x.peak_mib for x, _ in measured),
            b_peak=max(y.peak_mib for _, y in measured),
        )


def install(venv: Path) -> Path:
    """A normal install of this checkout into ``venv`` (made with a current pip when missing); returns
    the ``glibc-doctor`` command."""
    python = venv / "bin" / "python"
    fresh = not python.exists()
    if fresh:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    how = [] if fresh else ["--no-deps", "--force-reinstall"]
    with tempfile.TemporaryDirectory(prefix="bench-src-") as src:
        shutil.copytree(
            ROOT, src, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv", "build", ".git")
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *how, src], check=True, capture_output=True
        )
    return venv / "bin" / "glibc-doctor"


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"
