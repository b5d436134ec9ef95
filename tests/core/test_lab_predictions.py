"""The details of what ``scan`` predicts for the real lab: records, symbols, chains, the CLI's exit code.

tests/core/test_lab.py checks that the failing set and the first error agree with the real loader;
here each predicted record is checked in detail, and every missing version against binutils' readelf
(an independent reader of the same files).
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from glibc_doctor.core.model import Conflict, Kind, Severity
from glibc_doctor.core.scan import ScanResult, scan
from glibc_doctor.lab.build import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def venv_scan(lab: Lab) -> ScanResult:
    return scan(str(lab.venv), env=lab.environ(), use_cache=False)


def errors_of(result: ScanResult, extension: Path) -> list[Conflict]:
    """The error records on the load chain of ``extension`` (the extension itself or what it pulls in)."""
    return [c for c in result.errors if str(extension) in c.chain or c.object == str(extension)]


@cache
def readelf_versions(path: str) -> tuple[set[str], set[str]]:
    """(defined, needed) version names of ``path`` according to binutils."""
    text = subprocess.run(["readelf", "-V", "-W", path], capture_output=True, text=True, check=True).stdout
    defined = text.split("Version needs section")[0]
    needed = text.split("Version needs section")[1] if "Version needs section" in text else ""
    return set(re.findall(r"Name: (\S+)", defined)), set(re.findall(r"Name: (\S+)", needed))


def test_ext_pthread_is_predicted_to_miss_glibc_2_34(lab: Lab, venv_scan: ScanResult) -> None:
    ext = lab.extensions["ext_pthread"]
    assert [(c.kind, c.object, c.version) for c in errors_of(venv_scan, ext)] == [
        (Kind.MISSING_VERSION, str(ext), "GLIBC_2.34")
    ]


def test_ext_strlcpy_is_predicted_to_miss_glibc_2_38_with_strlcpy(lab: Lab, venv_scan: ScanResult) -> None:
    ext = lab.extensions["ext_strlcpy"]
    records = {c.version: c for c in errors_of(venv_scan, ext)}
    assert "GLIBC_2.38" in records
    assert "strlcpy" in records["GLIBC_2.38"].symbols
    assert {c.object for c in records.values()} == {str(ext)}


def test_ext_cxx_is_predicted_to_fail_in_the_machines_libstdcxx(lab: Lab, venv_scan: ScanResult) -> None:
    ext = lab.extensions["ext_cxx"]
    records = errors_of(venv_scan, ext)
    libstdcxx = [c for c in records if Path(c.object).name == "libstdc++.so.6"]
    assert libstdcxx
    assert all(re.fullmatch(r"GLIBC_2\.3\d", c.version or "") for c in libstdcxx)
    assert all(
        not c.object.startswith(str(lab.root)) for c in records
    )  # the machine's runtime, not the lab's
    assert libstdcxx[0].chain[-2:] == (str(ext), libstdcxx[0].object)


def test_every_predicted_missing_version_is_confirmed_by_readelf(venv_scan: ScanResult) -> None:
    missing = [
        c for c in venv_scan.conflicts if c.kind == Kind.MISSING_VERSION and c.severity == Severity.ERROR
    ]
    assert missing
    for conflict in missing:
        assert conflict.provider is not None
        assert conflict.version is not None
        assert conflict.version in readelf_versions(conflict.object)[1]
        assert conflict.version not in readelf_versions(conflict.provider)[0]


def test_the_lab_ruby_extension_is_predicted_to_miss_glibc_2_34(lab: Lab) -> None:
    result = scan(str(lab.ruby), ext=(str(lab.ruby_ext),), env=lab.environ(), use_cache=False)
    assert [(c.object, c.version) for c in errors_of(result, lab.ruby_ext)] == [
        (str(lab.ruby_ext), "GLIBC_2.34")
    ]


def test_the_cli_exits_1_on_the_lab_venv(lab: Lab, tmp_path: Path) -> None:
    doctor = Path(sys.executable).with_name("glibc-doctor")
    env = {**lab.environ(), "XDG_CACHE_HOME": str(tmp_path)}
    run = subprocess.run(
        [str(doctor), "scan", str(lab.venv), "--json"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 1, run.stderr
