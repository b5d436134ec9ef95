"""Benchmark: ``glibc-doctor wheels TARGET CACHE --json`` over a 50-wheel pip cache, wheels per second.

The cache is built once (in the benchmark cache directory) the way a user's pip cache looks after pip
built wheels from source distributions: 20 wheels with a C extension compiled by this machine's gcc for
the target's Python (some needing GLIBC_2.34, one GLIBC_2.38 through a hand-declared ``strlcpy``, some
with an auditwheel-style vendored library), 10 with extensions for another Python (cp39 for a 3.11
target, or cp311 otherwise), 20 pure-Python wheels of 20 modules each; each in
``wheels/<aa>/<bb>/<cc>/<hash>/`` as pip files them.

The check runs from a normal install (``benchmarks/common.py``: ``pip install`` of this checkout into a
scratch venv) as a whole process: start-up, imports, the target's interpreter simulated once, then every
wheel opened, its shared objects laid out, its modules simulated and analysed, the JSON on stdout. Two
baselines read the same wheels, each as one process, interleaved pair by pair with the check (so a
machine whose speed drifts moves both sides of a pair alike):

- **zipfile**: ``python -c`` opening every wheel with ``zipfile`` and listing its members (what
  ``python -m zipfile -l`` does, in one process): the least work that reads every wheel;
- **readelf**: ``readelf -d -V -W`` over every shared object of the wheels, extracted beforehand (not
  timed): the least work that reads the facts the check reads.

Goal: the whole check of a real pip cache under one second; wheels per second reported.

    .venv/bin/python benchmarks/bench_wheels.py [--runs N] [--cache DIR] [--target PYTHON_OR_VENV] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Run, install, load, run_once  # noqa: E402

from tests.gcc import compile_elf  # noqa: E402
from tests.wheelbuild import (  # noqa: E402
    _CLEAN,
    _HELPER,
    _MODULE,
    _PTHREAD,
    _STRLCPY,
    _VENDORED,
    make_wheel,
    pip_cache_of,
)

GOAL_SECONDS = 1.0
NATIVE, OTHER, PURE = 20, 10, 20
LISTING = "import sys, zipfile\nfor path in sys.argv[1:]:\n    zipfile.ZipFile(path).namelist()\n"


def target_venv(where: Path) -> Path:
    """A venv of this machine's python without packages: what a user's project venv starts as."""
    if not (where / "pyvenv.cfg").exists():
        base = os.path.realpath(
            os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        )
        subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True)
    return where


def target_version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def build_cache(root: Path, version: str, include: str) -> Path:
    """The 50 wheels in a pip-cache-shaped directory (built once per Python version)."""
    cache = root / f"pip-cache-{version}"
    if (cache / ".complete").exists():
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="bench-wheels-", dir=root))
    tag = "cp" + version.replace(".", "")
    other = "cp39" if tag != "cp39" else "cp311"
    includes = [f"-I{include}"]
    helper = compile_elf(work / "libhelper-1a2b3c4d.so", _HELPER, soname="libhelper-1a2b3c4d.so")
    pthread = _MODULE.format(includes="#include <pthread.h>", body=_PTHREAD)
    clean = _MODULE.format(includes="#include <string.h>", body=_CLEAN)
    modules = {
        "pthread": compile_elf(work / "pthread.so", pthread, extra=includes),
        "clean": compile_elf(work / "clean.so", clean, extra=includes),
    }
    newer_libc = _newer_libc()
    if newer_libc is not None:  # strlcpy@GLIBC_2.38 needs a glibc >= 2.38 to link against (the lab's)
        strlcpy = _MODULE.format(includes="", body=_STRLCPY)
        extra = [*includes, "-Wl,--no-as-needed", str(newer_libc)]
        modules["strlcpy"] = compile_elf(work / "strlcpy.so", strlcpy, extra=extra)
    kinds = ["pthread", "clean", "vendored", "clean", "pthread"] * (NATIVE // 5)
    kinds[-1] = "strlcpy" if "strlcpy" in modules else "pthread"
    wheels: list[Path] = []
    for index, kind in enumerate(kinds):
        name = f"native{index:02}"
        members = {f"{name}/__init__.py": b"from ._core import run\n"}
        if kind == "vendored":  # as auditwheel makes them: the helper found through $ORIGIN/../NAME.libs
            module = compile_elf(
                work / f"{name}.so",
                _MODULE.format(includes="", body=_VENDORED),
                libs=[helper],
                rpath=[f"$ORIGIN/../{name}.libs"],
                extra=includes,
            )
            members[f"{name}.libs/libhelper-1a2b3c4d.so"] = helper.read_bytes()
        else:
            module = modules[kind]
        members[f"{name}/_core.cpython-{version.replace('.', '')}-x86_64-linux-gnu.so"] = module.read_bytes()
        wheels.append(make_wheel(work / "out", name, "1.0", f"{tag}-{tag}-linux_x86_64", members))
    for index in range(OTHER):
        name = f"other{index:02}"
        members = {
            f"{name}/__init__.py": b"",
            f"{name}/_core.cpython-{other[2:]}-x86_64-linux-gnu.so": modules["clean"].read_bytes(),
        }
        wheels.append(make_wheel(work / "out", name, "1.0", f"{other}-{other}-linux_x86_64", members))
    for index in range(PURE):
        name = f"pure{index:02}"
        members = {f"{name}/m{module:02}.py": b"x = 1\n" * 50 for module in range(20)}
        members[f"{name}/__init__.py"] = b""
        wheels.append(make_wheel(work / "out", name, "1.0", "py3-none-any", members))
    pip_cache_of(work / "cache", wheels)
    (work / "cache").rename(cache)
    (cache / ".complete").write_text("50 wheels\n")
    shutil.rmtree(work, ignore_errors=True)
    return cache


def _newer_libc() -> Path | None:
    """The lab's glibc 2.41 ``libc.so.6`` when the lab is built (``tests/labfixture.py``), else None."""
    from glibc_doctor.lab.build import Lab

    lab = Lab.load()
    return lab.glibc_new_lib / "libc.so.6" if lab is not None else None


def extracted_elf(cache: Path, into: Path) -> list[str]:
    """Every shared object of the cached wheels, extracted for readelf (once, not timed)."""
    files: list[str] = []
    for index, wheel in enumerate(sorted(cache.rglob("*.whl"))):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if ".so" in name.rsplit("/", 1)[-1]:
                    dest = into / f"{index:02}" / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(archive.read(name))
                    files.append(str(dest))
    return files


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glibc-doctor-bench"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the venv and wheels live")
    parser.add_argument("--runs", type=int, default=7, help="interleaved triples (medians are reported)")
    parser.add_argument(
        "--target", help="the interpreter or venv checked against (default: a new empty venv)"
    )
    parser.add_argument("--dir", type=Path, help="check the wheels under DIR instead of the built cache")
    args = parser.parse_args()

    doctor = install(args.cache / "wheels-venv")
    if args.target is None:
        args.target = str(target_venv(args.cache / "wheels-target"))
    python = Path(args.target) / "bin" / "python" if os.path.isdir(args.target) else Path(args.target)
    version = target_version(str(python))
    include = sysconfig.get_paths()["include"]
    cache = args.dir if args.dir is not None else build_cache(args.cache, version, include)
    wheels = sorted(str(path) for path in cache.rglob("*.whl"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LD_", "PIP_"))}
    with tempfile.TemporaryDirectory(prefix="bench-wheels-elf-") as scratch:
        elf = extracted_elf(cache, Path(scratch))
        check = [str(doctor), "wheels", args.target, str(cache), "--json"]
        listing = [sys.executable, "-c", LISTING, *wheels]
        readelf = ["readelf", "-d", "-V", "-W", *elf]
        for argv in (check, listing, readelf):  # warm-up: the page cache, the stdenv probe's cache
            run_once(argv, env)
        rows = [
            (run_once(check, env), run_once(listing, env), run_once(readelf, env)) for _ in range(args.runs)
        ]
        peaks = [peak_mib(argv, env) for argv in (check, listing, readelf)]
    what = "" if args.dir is None else f" ({args.dir})"
    print(report(rows, peaks, len(wheels), len(elf), args.target + what))
    return 0


def peak_mib(argv: list[str], env: dict[str, str]) -> float:
    """The peak RSS of ``argv`` alone, through GNU time (a child of this benchmark would count the
    benchmark's own memory: ``ru_maxrss`` survives exec)."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "@@%M", *argv], env=env, capture_output=True, text=True, check=False
    )
    return int(done.stderr.rsplit("@@", 1)[1].split()[0]) / 1024


def report(rows: list[tuple[Run, Run, Run]], peaks: list[float], wheels: int, elf: int, target: str) -> str:
    check = [row[0].wall for row in rows]
    median = statistics.median(check)
    lines = [
        f"wheels check of a {wheels}-wheel pip cache ({NATIVE} native for the target, {OTHER} for another "
        f"Python, {PURE} pure; {elf} shared objects) against {target}; {len(rows)} interleaved triples, "
        f"medians (min-max); {load()} at the end",
        "",
        "| measurement | wall (s) | CPU (s) | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = (
        "`glibc-doctor wheels TARGET CACHE --json` (normal install)",
        "`zipfile` listing of every wheel (one python process)",
        "`readelf -d -V -W` over the extracted shared objects",
    )
    for index, name in enumerate(names):
        runs = [row[index] for row in rows]
        lines.append(
            f"| {name} | {_spread([r.wall for r in runs])} | {_spread([r.cpu for r in runs])} | "
            f"{peaks[index]:.1f} |"
        )
    vs_listing = [row[0].wall / row[1].wall for row in rows]
    vs_readelf = [row[0].wall / row[2].wall for row in rows]
    lines += [
        "",
        f"**{wheels / median:.0f} wheels/s** (the whole check {median:.2f} s; goal < {GOAL_SECONDS:.1f} s); "
        f"check / zipfile listing, pair by pair: median {statistics.median(vs_listing):.1f}x "
        f"(min {min(vs_listing):.1f}x, max {max(vs_listing):.1f}x); check / readelf: median "
        f"{statistics.median(vs_readelf):.0f}x; check exit code {rows[0][0].code}",
    ]
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    sys.exit(main())
