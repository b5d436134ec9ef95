"""Benchmark: ``glibc-doctor scan --json`` on a large real venv, against ``readelf -d -V -W``.

    .venv/bin/python benchmarks/bench_scan.py [--cache DIR] [--runs N] [--scale K] [--python PYTHON]

Builds (once, in a cache directory) a venv from this machine's python with numpy, scipy, pandas,
pyarrow, lxml, cryptography, grpcio, pillow, psycopg2-binary and torch==2.13.0, and a K times larger
environment made from it (each package with extension modules copied, as hard links, under K-1 other
names: ``numpy_copy1`` …, so K times the extensions, each module a file of its own (a hard link
would be the same object to ld.so); their vendored libraries are hard links and keep their sonames, as
copies of one wheel would). glibc-doctor itself is a normal install in a scratch venv (common.py).
Each figure is whole processes in interleaved pairs against ``readelf -d -V -W`` over every object the
scan reports (the least work that reads the same facts), the ratio taken pair by pair:

- the first scan (result cache cleared before each run), its peak RSS and objects per second;
- the repeated scan (answered from the result cache);
- the first scan of the K-times environment: per-object time and peak against the 1x scan (linear?).

Goals: first scan <= 1.0x readelf, repeated <= 0.15x, peak < 60 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Paired, install, load, pairs, run_once

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
GOALS = {"first": 1.0, "repeat": 0.15}
PEAK_GOAL_MIB = 60


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


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def ensure_scaled(cache: Path, venv: Path, scale: int) -> Path:
    """A venv whose site-packages holds every package with extension modules ``scale`` times."""
    scaled = cache / f"venv-x{scale}"
    marker = scaled / ".bench-complete"
    if marker.exists() and marker.read_text().startswith(f"{scale}x copies"):
        return scaled
    shutil.rmtree(scaled, ignore_errors=True)
    shutil.copytree(venv, scaled, symlinks=True, copy_function=os.link)
    site = site_packages(scaled)
    packages = [p for p in site.iterdir() if p.is_dir() and p.name.isidentifier() and any(p.rglob("*.so"))]
    for copy in range(1, scale):
        for package in packages:
            shutil.copytree(
                package, site / f"{package.name}_copy{copy}", symlinks=True, copy_function=_link_or_copy
            )
    marker.write_text(f"{scale}x copies of {venv}\n")
    return scaled


def _link_or_copy(source: str, target: str) -> None:
    """Extension modules are copied (another inode: another object), everything else hard-linked."""
    if ".cpython-" in source or source.endswith(".abi3.so"):
        shutil.copy2(source, target)
    else:
        os.link(source, target)


def scan_objects(doctor: Path, venv: Path, env: dict[str, str]) -> tuple[list[str], int]:
    """The ELF files the scan reports (to give readelf the same files), and the extension count."""
    run = subprocess.run([str(doctor), "scan", str(venv), "--json"], capture_output=True, text=True, env=env)
    if run.returncode not in (0, 1):
        raise SystemExit(f"scan failed ({run.returncode}): {run.stderr.strip()}")
    document = json.loads(run.stdout)
    objects = [o["path"] for o in document["objects"] if o["role"] != "missing" and not o["problem"]]
    return objects, len(document["target"]["extensions"])


def first_scan(doctor: Path, venv: Path, cache: str) -> list[str]:
    """The scan with its result cache removed first (``sh`` costs the same in the baseline's wrapper)."""
    scans = os.path.join(cache, "glibc-doctor", "scans")
    return ["sh", "-c", f'rm -rf "{scans}"; exec "{doctor}" scan "{venv}" --json']


def readelf(objects: list[str], listing: Path) -> list[str]:
    listing.write_text("\0".join(objects))
    return ["sh", "-c", f'xargs -0 readelf -d -V -W < "{listing}"']


def row(name: str, paired: Paired, goal: float | None) -> str:
    verdict = "" if goal is None else (f"<= {goal}x: met" if paired.ratio <= goal else f"<= {goal}x: NOT met")
    return (
        f"| {name} | {paired.a:.3f} | {paired.b:.3f} | {paired.ratio:.2f}x | {paired.cpu_ratio:.2f}x | "
        f"{paired.a_peak:.1f} | {verdict} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the venvs are built")
    parser.add_argument("--runs", type=int, default=7, help="interleaved pairs per measurement")
    parser.add_argument("--scale", type=int, default=10, help="the larger environment's factor (1: none)")
    parser.add_argument("--python", default=shutil.which("python3") or "python3", help="base interpreter")
    parser.add_argument("--tool-venv", type=Path, help="reuse (or make) this venv for glibc-doctor")
    args = parser.parse_args()

    venv = ensure_venv(args.cache, args.python)
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as scratch:
        doctor = install(args.tool_venv or Path(scratch) / "tool")
        env = {**os.environ, "XDG_CACHE_HOME": f"{scratch}/cache"}
        objects, extensions = scan_objects(doctor, venv, env)  # warms the page cache and the stdenv probe
        baseline = readelf(objects, Path(scratch) / "objects")
        print(f"{venv}: {len(objects)} ELF objects ({extensions} extensions); {args.runs} pairs; {load()}")
        print("\n| measurement | A (s) | readelf (s) | wall A/B | CPU A/B | A peak (MiB) | goal |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        first = Paired.of(pairs(first_scan(doctor, venv, env["XDG_CACHE_HOME"]), baseline, env, args.runs))
        print(row("first scan (result cache cleared)", first, GOALS["first"]))
        repeat = Paired.of(pairs([str(doctor), "scan", str(venv), "--json"], baseline, env, args.runs))
        print(row("repeated scan (result cache)", repeat, GOALS["repeat"]))
        peak = "met" if first.a_peak < PEAK_GOAL_MIB else "NOT met"
        print(
            f"\nfirst scan: {len(objects) / first.a:.0f} objects/s, peak {first.a_peak:.1f} MiB "
            f"(goal < {PEAK_GOAL_MIB}: {peak}); readelf peak {first.b_peak:.1f} MiB"
        )
        if args.scale > 1:
            big = ensure_scaled(args.cache, venv, args.scale)
            big_objects, big_extensions = scan_objects(doctor, big, env)
            big_scan = first_scan(doctor, big, env["XDG_CACHE_HOME"])
            big_readelf = readelf(big_objects, Path(scratch) / "big")
            big_first = Paired.of(pairs(big_scan, big_readelf, env, max(3, args.runs // 2)))
            print(f"\n{args.scale}x: {len(big_objects)} ELF objects ({big_extensions} extension modules)")
            print("| measurement | A (s) | readelf (s) | wall A/B | CPU A/B | A peak (MiB) | goal |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
            print(row(f"first scan, {args.scale}x environment", big_first, None))
            per_small = first.a / len(objects) * 1e3
            per_big = big_first.a / len(big_objects) * 1e3
            print(
                f"\nper object: {per_small:.2f} ms (1x) vs {per_big:.2f} ms ({args.scale}x): "
                f"{per_big / per_small:.2f}x; peak {first.a_peak:.1f} -> {big_first.a_peak:.1f} MiB "
                f"for {len(big_objects) / len(objects):.1f}x the objects"
            )
        single = run_once([str(doctor), "scan", str(venv), "--json"], env)
        print(f"\nscan exit code {single.code} (1: conflicts found; the venv's wheels are manylinux)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
