"""Benchmark: ``glibc-doctor scan --json`` on a large real venv, against ``readelf -d -V -W``.

Builds (once, in a cache directory) a venv from this machine's python with numpy, scipy, pandas,
pyarrow, lxml, cryptography, grpcio, pillow, psycopg2-binary and torch==2.13.0, then measures, each as
a whole process:

- ``readelf -d -V -W`` over every object the scan reports, in one process (the baseline: the least
  work that reads the same facts),
- the first scan (result cache cleared),
- the repeated scan (result cache warm),
- peak memory of the scan process (``ru_maxrss`` of a wrapper's children),
- objects per second of the first scan.

Goals: first scan <= 1.5x readelf, repeated scan <= 0.3x readelf, peak < 150 MiB.

    .venv/bin/python benchmarks/bench_scan.py [--cache DIR] [--runs N] [--python PYTHON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "lxml",
    "cryptography",
    "grpcio",
    "pillow",
    "psycopg2-binary",
    "torch==2.13.0",  # a CPU build from this machine's wheel directory; never another version
)
GOALS = {"first": 1.5, "repeat": 0.3}
PEAK_GOAL_MIB = 150
# Runs one command, prints its wall time and the peak RSS of the command alone (the wrapper's only child).
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glibc-doctor-bench"


def ensure_venv(cache: Path, python: str) -> Path:
    """The benchmark venv, built on first use; a finished build leaves a marker and is reused."""
    venv = cache / "venv"
    marker = venv / ".bench-complete"
    if marker.exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    print(f"installing {len(PACKAGES)} packages into {venv} (once)", file=sys.stderr)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES], check=True)
    marker.write_text("\n".join(PACKAGES) + "\n")
    return venv


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, peak KiB, exit code) of ``argv`` run as its own process."""
    run = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, check=True, env=env
    )
    seconds, peak, code = run.stdout.split()
    return float(seconds), int(peak), int(code)


def scan_objects(doctor: str, venv: Path, env: dict[str, str]) -> list[str]:
    run = subprocess.run([doctor, "scan", str(venv), "--json"], capture_output=True, text=True, env=env)
    if run.returncode not in (0, 1):
        raise SystemExit(f"scan failed ({run.returncode}): {run.stderr.strip()}")
    document = json.loads(run.stdout)
    return [obj["path"] for obj in document["objects"] if obj["role"] != "missing" and not obj["problem"]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the venv is built")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median is reported)")
    parser.add_argument("--python", default=shutil.which("python3") or "python3", help="base interpreter")
    args = parser.parse_args()

    venv = ensure_venv(args.cache, args.python)
    doctor = str(Path(sys.executable).with_name("glibc-doctor"))
    scan_cache = tempfile.mkdtemp(prefix="bench-scan-cache-")
    env = {**os.environ, "XDG_CACHE_HOME": scan_cache}
    # Warm-up: the page cache and the stdenv probe (cached by core/stdenv.py) are not what we measure.
    objects = scan_objects(doctor, venv, env)
    readelf = ["readelf", "-d", "-V", "-W", *objects]
    scan = [doctor, "scan", str(venv), "--json"]

    from glibc_doctor.core.scancache import ScanRequest, lookup

    rows: dict[str, list[tuple[float, int, int]]] = {"readelf": [], "first": [], "repeat": []}
    hits = 0
    for _ in range(args.runs):
        rows["readelf"].append(measure(readelf, env))
        shutil.rmtree(os.path.join(scan_cache, "glibc-doctor", "scans"), ignore_errors=True)
        rows["first"].append(measure(scan, env))
        # Another process changing a searched directory (an apt or pip install) is a legitimate miss.
        hits += lookup(ScanRequest(str(venv)), env) is not None
        rows["repeat"].append(measure(scan, env))
    shutil.rmtree(scan_cache, ignore_errors=True)
    print(report(rows, len(objects), venv))
    print(f"repeated scans that found a valid cache entry: {hits}/{args.runs}")
    return 0


def report(rows: dict[str, list[tuple[float, int, int]]], count: int, venv: Path) -> str:
    base = statistics.median(seconds for seconds, _peak, _code in rows["readelf"])
    lines = [
        f"venv: {venv} ({count} ELF objects in the scanned process), median of {len(rows['readelf'])} runs",
        "",
        "| measurement | time (s) | vs readelf | goal | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    names = {"readelf": "readelf -d -V -W, all objects", "first": "first scan (cache cleared)"}
    names["repeat"] = "repeated scan (cache warm)"
    for key, label in names.items():
        seconds = statistics.median(s for s, _p, _c in rows[key])
        peak = max(p for _s, p, _c in rows[key]) / 1024
        goal = f"<= {GOALS[key]}x" if key in GOALS else ""
        lines.append(f"| {label} | {seconds:.3f} | {seconds / base:.2f}x | {goal} | {peak:.1f} |")
    first = statistics.median(s for s, _p, _c in rows["first"])
    peak_first = max(p for _s, p, _c in rows["first"]) / 1024
    lines += [
        "",
        f"first scan: {count / first:.0f} objects/s; peak {peak_first:.1f} MiB (goal < {PEAK_GOAL_MIB} MiB); "
        f"scan exit code {rows['first'][0][2]}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
