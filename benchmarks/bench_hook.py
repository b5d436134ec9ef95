"""What the prompt hook costs when nothing changed, and what ``ensure`` costs as a process.

    .venv/bin/python benchmarks/bench_hook.py [--runs N] [--manifests M] [--venv DIR]

Measured on what a user runs: a normal (non-editable) install of this checkout, made with a current
pip into a scratch venv (``--venv DIR`` reuses one), and a store of M fixed targets that are up to date
with the stdenv. Every figure is a pair timed in turn, A then B, N times (the two cores are shared and
their speed drifts: each ratio and difference is taken pair by pair, then the median):

1. **the hook's no-op**, per shell: ``SHELL -c 'SNIPPET; CALL'`` against ``SHELL -c 'SNIPPET'`` (the
   same shell, the hook installed but not called); the difference is what a prompt costs. Goal: < 5 ms.
2. **ensure as a process**: ``glibc-doctor ensure --quiet`` against ``python -c pass`` of the same
   interpreter, twice: answered from the last verdict (the usual case: the hook's script was stale
   only for the shell), and with that verdict removed (the manifests and the probe cache read again).
   Goal: <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import Paired, install, pairs

HOOK_GOAL_MS = 5.0
ENSURE_GOAL_RATIO = 1.5


def fill_store(python: Path, env: dict[str, str], count: int) -> None:
    """``count`` manifests whose builds match the current stdenv (as right after ``fix``)."""
    code = (
        "import sys\n"
        "from glibc_doctor.core import store\n"
        "from glibc_doctor.core.patch.manifest import BuildRecord, Manifest\n"
        "from glibc_doctor.core.stdenv import find_stdenv\n"
        "fingerprint = find_stdenv().fingerprint\n"
        "for index in range(int(sys.argv[1])):\n"
        "    package = str(store.packages_dir() / f'python3.9-bench{index:04d}')\n"
        "    record = BuildRecord(package, package + '/bin/python3.9', fingerprint, {'version': 'bench'})\n"
        "    store.save_manifest(Manifest(f'bench-{index:04d}', 'python', f'/bench/venv{index}', (),\n"
        "        f'/bench/venv{index}', '/bench/store/python3.9', '/bench/store/python3.9/bin/python3.9',\n"
        "        None, record))\n"
    )
    subprocess.run([str(python), "-c", code, str(count)], env=env, check=True)


def settle(doctor: Path, env: dict[str, str]) -> None:
    """Let the set-up age past the verdict's margin, then write the verdict once."""
    time.sleep(2.5)
    subprocess.run([str(doctor), "ensure", "--quiet"], env=env, check=True)


def hook_rows(doctor: Path, env: dict[str, str], runs: int) -> list[str]:
    rows = []
    for shell in ("bash", "zsh", "fish"):
        if not shutil.which(shell):
            rows.append(f"| {shell} | not installed | | |")
            continue
        snippet = subprocess.run(
            [str(doctor), "hook", shell], env=env, check=True, capture_output=True, text=True
        ).stdout
        call = "__glibc_doctor_ensure" if shell == "fish" else "_glibc_doctor_ensure"
        measured = pairs([shell, "-c", f"{snippet}\n{call}"], [shell, "-c", snippet], env, runs)
        walls = [(a.wall - b.wall) * 1000 for a, b in measured]
        cpus = [(a.cpu - b.cpu) * 1000 for a, b in measured]
        median = statistics.median(walls)
        verdict = "met" if median < HOOK_GOAL_MS else "NOT met"
        rows.append(
            f"| {shell} | {median:.2f} (min {min(walls):.2f}, max {max(walls):.2f}) | "
            f"{statistics.median(cpus):.2f} | {verdict} |"
        )
    return rows


def ensure_row(name: str, doctor: Path, python: Path, env: dict[str, str], runs: int, fresh: bool) -> str:
    argv = [str(doctor), "ensure", "--quiet"]
    if fresh:  # the verdict removed before every run: the manifests and the probe cache are read again
        state = Path(env["XDG_CACHE_HOME"]) / "glibc-doctor" / "hook" / "state.marshal"
        argv = ["sh", "-c", f'rm -f "{state}"; exec "{doctor}" ensure --quiet']
        baseline = ["sh", "-c", f'rm -f "{state}.none"; exec "{python}" -c pass']
    else:
        baseline = [str(python), "-c", "pass"]
    paired = Paired.of(pairs(argv, baseline, env, runs))
    wall_ratio, cpu_ratio, a_ms, b_ms = paired.ratio, paired.cpu_ratio, paired.a * 1000, paired.b * 1000
    verdict = "met" if wall_ratio <= ENSURE_GOAL_RATIO else "NOT met"
    return f"| {name} | {a_ms:.1f} | {b_ms:.1f} | {wall_ratio:.2f}x | {cpu_ratio:.2f}x | {verdict} |"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--manifests", type=int, default=3)
    parser.add_argument("--venv", type=Path, help="reuse (or make) this venv for the normal install")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hook-") as scratch:
        venv = args.venv or Path(scratch) / "venv"
        doctor = install(venv)
        python = venv / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if k not in ("CC", "NIX_CC", "NO_COLOR")}
        env.update(XDG_DATA_HOME=f"{scratch}/data", XDG_CACHE_HOME=f"{scratch}/cache", HOME=scratch)
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
        fill_store(python, env, args.manifests)
        settle(doctor, env)
        print(
            f"{args.manifests} up-to-date fixed target(s); {args.runs} interleaved pairs each; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print("\n| shell | hook no-op, wall (ms, A - B per pair) | CPU (ms) | goal < 5 ms |")
        print("| --- | ---: | ---: | --- |")
        for row in hook_rows(doctor, env, args.runs):
            print(row)
        head = "| ensure --quiet, no-op | A wall (ms) | python -c pass (ms) | wall A/B | CPU A/B | goal |"
        print("\n" + head)
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        print(ensure_row("from the last verdict", doctor, python, env, args.runs, fresh=False))
        print(ensure_row("manifests and probe cache read", doctor, python, env, args.runs, fresh=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
