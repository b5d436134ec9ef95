"""Time ``glibc-doctor ensure`` when nothing changed (it runs at every shell prompt), and a lab fix.

    .venv/bin/python benchmarks/bench_ensure.py [--runs N] [--manifests M] [--lab]

Each measurement is a whole process (Python start-up and imports included), the median of N runs:

- **python -c pass**: the interpreter's own start-up, the floor under everything else;
- **core ensure**: ``python -c 'from glibc_doctor.core import store; store.ensure()'``;
- **CLI ensure --quiet**: ``python -m glibc_doctor.tui ensure --quiet``, what the shell hook runs.

The store holds M manifests that are up to date with the stdenv (the probe's answer cached, as after
any ``fix``), so ensure does what it does at each prompt: list the manifests, stat the stdenv files,
compare fingerprints. Goal: ensure no-op < 50 ms. With ``--lab`` (the real-glibc lab built), it also
times ``fix VENV --yes`` on a copy of the lab venv and the ``ensure`` that rebuilds after a stdenv move.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from glibc_doctor.core import store
from glibc_doctor.core.patch.manifest import BuildRecord, Manifest
from glibc_doctor.core.stdenv import find_stdenv

GOAL_SECONDS = 0.050


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + sys of the child) of ``runs`` executions.

    CPU time is what the command costs; wall time also holds the waits of a loaded machine.
    """
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if first.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {first.stderr.strip()}")
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def fill_store(env: dict[str, str], count: int) -> None:
    """``count`` manifests whose builds match the current stdenv fingerprint."""
    fingerprint = find_stdenv(env=env).fingerprint
    for index in range(count):
        package = str(store.packages_dir(env) / f"python3.9-bench{index:04d}")
        record = BuildRecord(package, f"{package}/bin/python3.9", fingerprint, {"version": "bench"})
        manifest = Manifest(
            id=f"bench-{index:04d}",
            kind="python",
            spec=f"/bench/venv{index}",
            ext=(),
            environment=f"/bench/venv{index}",
            source_package="/bench/store/python3.9",
            source_interpreter="/bench/store/python3.9/bin/python3.9",
            glibc_dir=None,
            current=record,
        )
        store.save_manifest(manifest, env)


def lab_figures(env: dict[str, str], scratch: Path) -> list[tuple[str, float, float | None]]:
    """Wall time of a real ``fix`` of the lab venv, and of the ``ensure`` that rebuilds it."""
    from glibc_doctor.lab.build import ensure_lab

    lab = ensure_lab()
    venv = scratch / "venv"
    shutil.copytree(lab.venv, venv, symlinks=True)
    lab_env = {**lab.environ(env), "XDG_DATA_HOME": str(scratch / "lab-data")}
    cli = [sys.executable, "-m", "glibc_doctor.tui"]
    start = time.perf_counter()
    subprocess.run([*cli, "fix", str(venv), "--yes", "--json"], env=lab_env, capture_output=True, check=False)
    fix_time = time.perf_counter() - start
    wrapper = scratch / "wrapper" / "cc"
    wrapper.parent.mkdir()
    glibc = lab.glibc_new_lib
    wrapper.write_text(
        f'#!/bin/sh\nexec {shutil.which("gcc")} "$@" -Wl,--dynamic-linker={glibc}/ld-linux-x86-64.so.2 '
        f"-Wl,-rpath,{glibc}\n"
    )
    wrapper.chmod(0o755)
    lab_env["PATH"] = f"{wrapper.parent}:{lab_env['PATH']}"
    start = time.perf_counter()
    subprocess.run([*cli, "ensure"], env=lab_env, capture_output=True, check=True)
    rebuild_time = time.perf_counter() - start
    noop = timed([*cli, "ensure", "--quiet"], lab_env, 10)[0]
    return [
        ("lab: fix VENV --yes (scan, plan, build, verify, activate)", fix_time, None),
        ("lab: ensure after the stdenv moved to glibc 2.41 (rebuild)", rebuild_time, None),
        ("lab: ensure --quiet afterwards (no-op)", noop, None),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--manifests", type=int, default=3)
    parser.add_argument("--lab", action="store_true", help="also time a real fix and rebuild on the lab")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ensure-") as scratch:
        env = {k: v for k, v in os.environ.items() if k not in ("CC", "NIX_CC")}
        env.update(XDG_DATA_HOME=f"{scratch}/data", XDG_CACHE_HOME=f"{scratch}/cache")
        fill_store(env, args.manifests)
        cli = [sys.executable, "-m", "glibc_doctor.tui", "ensure", "--quiet"]
        core = [sys.executable, "-c", "from glibc_doctor.core import store; store.ensure()"]
        fast = [
            sys.executable,
            "-c",
            "from glibc_doctor.tui.cli import main; main(['ensure', '--quiet'])",
        ]
        rows: list[tuple[str, float, float | None]] = [
            ("python -c pass (interpreter start-up)", *timed([sys.executable, "-c", "pass"], env, args.runs)),
            ("core: store.ensure() no-op, whole process", *timed(core, env, args.runs)),
            ("CLI: glibc-doctor ensure --quiet no-op", *timed(cli, env, args.runs)),
            ("CLI entry point: tui.cli.main (no parser)", *timed(fast, env, args.runs)),
        ]
        if args.lab:
            rows += lab_figures(env, Path(scratch))
    load = os.getloadavg()[0]
    print(f"{args.manifests} up-to-date manifest(s), median of {args.runs} runs, load average {load:.1f}")
    print("| measurement | wall time (ms) | CPU time (ms) |")
    print("| --- | ---: | ---: |")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall * 1000:.1f} | {'' if cpu is None else f'{cpu * 1000:.1f}'} |")
    cli_wall, cli_cpu = rows[2][1], rows[2][2] or 0.0
    verdict = "met" if min(cli_wall, cli_cpu) < GOAL_SECONDS else "NOT met"
    print(f"goal: ensure no-op < {GOAL_SECONDS * 1000:.0f} ms: {verdict} by the CLI (wall or CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
