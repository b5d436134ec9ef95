"""Benchmark: ``glibc-doctor audit /usr/bin /usr/sbin --json`` against ``readelf -d -V -W`` (same files).

The audit runs from a normal (non-editable) install, ``pip install .`` into a scratch venv (built once
in a cache directory, rebuilt when the source changes), as a whole process: start-up, imports, the walk
of the directories, every program's exact and strict simulation, the analysis and the JSON. The
baseline is one ``readelf -d -V -W`` process over every file the audit reads: each program and every
library its process loads (the least work that reads the same facts). The two run as interleaved pairs
(audit, readelf, audit, readelf …) and the ratio is taken pair by pair, so a machine whose speed drifts
(other jobs on a shared box) moves both sides of a pair alike. Peak RSS is each process's
``ru_maxrss`` (a wrapper's only child).

Goal: the audit <= 2x readelf.

    .venv/bin/python benchmarks/bench_audit.py [--runs N] [--cache DIR] [DIR ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

GOAL = 2.0
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = ("/usr/bin", "/usr/sbin")
# Runs one command, prints its wall time and the peak RSS of the command alone (the wrapper's only child).
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glibc-doctor-bench"


def source_digest() -> str:
    """What the install is built from: pyproject.toml and every file of the packages."""
    digest = hashlib.sha256()
    for path in sorted(
        [ROOT / "pyproject.toml", *(p for d in ("core", "tui", "lab") for p in (ROOT / d).rglob("*"))]
    ):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def installed_doctor(cache: Path) -> Path:
    """``glibc-doctor`` of a normal install of this tree in a scratch venv (reused while the source holds)."""
    venv = cache / "audit-venv"
    marker = venv / ".installed-from"
    digest = source_digest()
    doctor = venv / "bin" / "glibc-doctor"
    if marker.exists() and marker.read_text() == digest and doctor.exists():
        return doctor
    cache.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"pip install {ROOT} into {venv}", file=sys.stderr)
    pip = str(venv / "bin" / "pip")
    subprocess.run([pip, "install", "-q", str(ROOT)], check=True)  # with its dependencies
    # The same version number is "already installed" to pip: put this tree's files in place again.
    subprocess.run([pip, "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)], check=True)
    marker.write_text(digest)
    return doctor


def audited_files(dirs: list[str]) -> tuple[list[str], int]:
    """Every program the audit scans and every object its process maps (paths as the audit found them)."""
    from glibc_doctor.core.audit import audit
    from glibc_doctor.core.model import Role

    result = audit(dirs)
    files: dict[str, None] = {}
    for program in result.programs:
        graph = program.result.graph
        for node, data in graph.nodes(data=True):
            if data.get("role") != Role.MISSING and data["facts"].ok:
                files.setdefault(node)
    return list(files), len(result.programs)


def measure(argv: list[str]) -> tuple[float, int, int]:
    """(seconds, peak KiB, exit code) of ``argv`` run as its own process."""
    run = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, check=True)
    seconds, peak, code = run.stdout.split()
    return float(seconds), int(peak), int(code)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="*", default=list(DEFAULT_DIRS), help="directories to audit")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the scratch venv lives")
    parser.add_argument("--runs", type=int, default=5, help="interleaved pairs (the median is reported)")
    args = parser.parse_args()

    doctor = installed_doctor(args.cache)
    files, programs = audited_files(args.dirs)
    audit_argv = [str(doctor), "audit", *args.dirs, "--json"]
    readelf_argv = ["readelf", "-d", "-V", "-W", *files]
    measure(audit_argv)  # warm-up: the page cache and the stdenv probe's cache are not what we measure
    measure(readelf_argv)
    pairs = []
    for _ in range(args.runs):
        pairs.append((measure(audit_argv), measure(readelf_argv)))
    print(report(pairs, programs, len(files), args.dirs))
    return 0


def report(
    pairs: list[tuple[tuple[float, int, int], tuple[float, int, int]]],
    programs: int,
    files: int,
    dirs: list[str],
) -> str:
    audit_times = [a[0] for a, _ in pairs]
    readelf_times = [r[0] for _, r in pairs]
    ratios = [a[0] / r[0] for a, r in pairs]
    lines = [
        f"audit of {' '.join(dirs)}: {programs} programs, {files} ELF files read by both; "
        f"{len(pairs)} interleaved pairs, medians (min-max)",
        "",
        "| measurement | time (s) | peak RSS (MiB) |",
        "| --- | ---: | ---: |",
        f"| `glibc-doctor audit ... --json` (normal install) | {_spread(audit_times)} | "
        f"{max(a[1] for a, _ in pairs) / 1024:.1f} |",
        f"| `readelf -d -V -W` over the same files | {_spread(readelf_times)} | "
        f"{max(r[1] for _, r in pairs) / 1024:.1f} |",
        "",
        f"audit / readelf, pair by pair: median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x); goal <= {GOAL:.1f}x; "
        f"audit exit code {pairs[0][0][2]}",
    ]
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    sys.exit(main())
