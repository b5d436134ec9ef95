"""Session fixtures: venvs holding real auditwheel-repaired wheels (numpy, scipy, Pillow, psycopg2-binary).

The wheels are the ones users install: libraries vendored in ``numpy.libs/``, ``scipy.libs/``,
``pillow.libs/``, ``psycopg2_binary.libs/``, found through each extension's ``$ORIGIN/../…libs`` RPATH.
One set is for the lab's python3.9 (hard-wired to glibc 2.31), one for this machine's python.

``pip download`` fetches each set once into ``$GLIBC_DOCTOR_WHEELS`` (default
``$XDG_CACHE_HOME/glibc-doctor/wheels``, beside the lab); a venv per (interpreter, wheel set) is made
there once (``python -m venv --without-pip``, then ``pip install --target`` its site-packages, as a
cross-version install must), under a file lock so pytest-xdist workers build it once, and renamed into
place when complete. Later sessions reuse it in milliseconds. Without network or pip the tests skip,
unless ``GLIBC_DOCTOR_REQUIRE_LAB=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from glibc_doctor.lab.build import FOREIGN_ENV, Lab

PLATFORM = "manylinux2014_x86_64"  # glibc 2.17: loadable by the lab's glibc 2.31


@dataclass(frozen=True, slots=True)
class WheelSet:
    """Pinned requirements for one CPython version (``3.9``)."""

    version: str
    requirements: tuple[str, ...]

    @property
    def abi(self) -> str:
        return "cp" + self.version.replace(".", "")


LAB_WHEELS = WheelSet("3.9", ("numpy==1.26.4", "scipy==1.13.1", "pillow==11.3.0", "psycopg2-binary==2.9.10"))
MACHINE_REQUIREMENTS = ("numpy==2.2.6", "scipy==1.15.3", "pillow==11.3.0", "psycopg2-binary==2.9.10")
MACHINE_VERSIONS = ("3.10", "3.11", "3.12", "3.13")  # those the pinned releases have wheels for


@dataclass(frozen=True, slots=True)
class WheelVenv:
    """A venv with a wheel set installed: its directory, its python, its site-packages."""

    venv: Path
    python: Path
    site_packages: Path
    base: Path  # the interpreter the venv was made from (real path)
    env: dict[str, str]  # the environment to run it in (nothing that redirects loads or imports)

    @property
    def vendored(self) -> list[Path]:
        """Every library auditwheel vendored (``*.libs/`` beside the packages)."""
        return sorted(path for libs in self.site_packages.glob("*.libs") for path in libs.iterdir())


class WheelsUnavailable(Exception):
    """The wheels could not be fetched or installed (no network, no pip): the tests skip."""


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("GLIBC_DOCTOR_WHEELS"):
        return Path(env["GLIBC_DOCTOR_WHEELS"])
    cache_home = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "glibc-doctor" / "wheels"


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` without the variables that would make an interpreter load or import something else."""
    source = os.environ if base is None else base
    return {key: value for key, value in source.items() if not FOREIGN_ENV.match(key)}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(argv: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise WheelsUnavailable(f"could not {what}: {error}") from error
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "is ignored" not in line] or ["no output"]
        raise WheelsUnavailable(f"could not {what}: {lines[-1]}")


def _wheel_of(downloads: Path, requirement: str) -> Path | None:
    name, version = requirement.split("==")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = sorted(downloads.glob(f"{stem}-{version}-*.whl"))
    return found[0] if found else None


def fetch(wheels: WheelSet, root: Path) -> list[Path]:
    """The wheel files of the set, downloaded once (only the missing ones) into ``root/<abi>``."""
    downloads = root / wheels.abi
    missing = [req for req in wheels.requirements if _wheel_of(downloads, req) is None]
    if missing:
        downloads.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--python-version", wheels.version, "--implementation", "cp", "--abi", wheels.abi,
              "--platform", PLATFORM, "--dest", str(downloads), *missing],
             f"download {' '.join(missing)}")  # fmt: skip
    files = [_wheel_of(downloads, req) for req in wheels.requirements]
    if None in files:
        raise WheelsUnavailable(f"pip download left no wheel for {wheels.requirements} in {downloads}")
    return [path for path in files if path is not None]


def wheel_venv(base: Path, wheels: WheelSet, env: Mapping[str, str]) -> WheelVenv:
    """The venv of ``base`` with ``wheels`` installed, made once per (interpreter file, wheel files)."""
    root = cache_root()
    with _locked(root / "wheels.lock"):
        files = fetch(wheels, root / "downloads")
        info = base.stat()
        key = hashlib.sha256(f"{base}:{info.st_ino}:{info.st_mtime_ns}:{[f.name for f in files]}".encode())
        venv = root / "venvs" / f"{wheels.abi}-{key.hexdigest()[:12]}"
        if not (venv / ".complete").exists():
            _build(base, wheels, files, venv, env)
    site = venv / "lib" / f"python{wheels.version}" / "site-packages"
    return WheelVenv(venv, venv / "bin" / f"python{wheels.version}", site, base, dict(env))


def _build(base: Path, wheels: WheelSet, files: list[Path], venv: Path, env: Mapping[str, str]) -> None:
    """Make the venv aside, install the wheels, then rename it into place (a venv holds no absolute
    path of its own directory that imports need); older venvs of the same ABI are removed."""
    aside = venv.with_name(f".{venv.name}-{secrets.token_hex(4)}")
    try:
        _run([str(base), "-m", "venv", "--without-pip", str(aside)], f"make a venv of {base}", env=dict(env))
        site = aside / "lib" / f"python{wheels.version}" / "site-packages"
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-compile",
              "--only-binary=:all:", "--python-version", wheels.version, "--implementation", "cp",
              "--abi", wheels.abi, "--platform", PLATFORM, "--target", str(site), *map(str, files)],
             f"install {' '.join(f.name for f in files)}")  # fmt: skip
        (aside / ".complete").write_text("\n".join(f.name for f in files) + "\n")
        for old in venv.parent.glob(f"{wheels.abi}-*"):
            shutil.rmtree(old, ignore_errors=True)
        aside.rename(venv)
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _unavailable(error: Exception) -> NoReturn:
    if os.environ.get("GLIBC_DOCTOR_REQUIRE_LAB") == "1":
        pytest.fail(f"real wheels required but unavailable: {error}")
    pytest.skip(f"real wheels unavailable: {error}")


@pytest.fixture(scope="session")
def lab_wheels(lab: Lab) -> WheelVenv:
    """numpy 1.26, scipy 1.13, Pillow, psycopg2-binary in a venv of the lab's python3.9 (glibc 2.31)."""
    try:
        return wheel_venv(lab.python, LAB_WHEELS, lab.environ())
    except WheelsUnavailable as error:
        _unavailable(error)


@pytest.fixture(scope="session")
def machine_wheels() -> WheelVenv:
    """numpy 2.x, scipy, Pillow, psycopg2-binary in a venv of the python running these tests."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if version not in MACHINE_VERSIONS:
        pytest.skip(f"no pinned wheel set for Python {version}")
    base = Path(os.path.realpath(os.path.join(sys.base_prefix, "bin", f"python{version}")))
    try:
        return wheel_venv(base, WheelSet(version, MACHINE_REQUIREMENTS), clean_env())
    except WheelsUnavailable as error:
        _unavailable(error)
