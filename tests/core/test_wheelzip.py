"""A wheel read as a zip without trusting it: every hostile or broken archive is one WheelError line,
and nothing is written outside the directory the caller made."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from glibc_doctor.core.errors import WheelError
from glibc_doctor.core.wheelfiles import lay_out, read_info
from glibc_doctor.core.wheeltags import parse_wheel_name
from glibc_doctor.core.wheelzip import ZipLimits, open_wheel

from tests.budget import cpu_budget
from tests.hostilezips import HOSTILE, NAME, make
from tests.wheelbuild import make_wheel


def lay_out_wheel(path: Path, site: Path, limits: ZipLimits | None = None) -> None:
    """Open, read and lay out ``path`` as the check does."""
    site.mkdir(exist_ok=True)
    with open_wheel(str(path), *((limits,) if limits else ())) as archive:
        info = read_info(archive, parse_wheel_name(path.name))
        lay_out(archive, info, str(site))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_or_broken_wheel_is_one_wheel_error_line(kind: str, tmp_path: Path) -> None:
    wheel = make(kind, tmp_path / "in")
    _, words = HOSTILE[kind]
    with cpu_budget(5.0, kind), pytest.raises(WheelError) as raised:
        lay_out_wheel(wheel, tmp_path / "site")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(wheel))
    assert words in message


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_nothing_is_written_outside_the_private_directory(kind: str, tmp_path: Path) -> None:
    wheel = make(kind, tmp_path / "in")
    before = {path for path in tmp_path.rglob("*")}
    with pytest.raises(WheelError):
        lay_out_wheel(wheel, tmp_path / "site")
    after = {path for path in tmp_path.rglob("*")}
    assert {path for path in after - before if tmp_path / "site" not in path.parents} == {tmp_path / "site"}
    assert not Path("/tmp/glibc-doctor-evil.so").exists()
    assert not (tmp_path.parent.parent / "glibc-doctor-escaped.so").exists()


def test_a_fifo_named_like_a_wheel_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / NAME
    os.mkfifo(fifo)
    with pytest.raises(WheelError, match="not a regular file"):
        open_wheel(str(fifo))


def test_a_directory_named_like_a_wheel_is_refused(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    with pytest.raises(WheelError, match="a directory, not a wheel"):
        open_wheel(str(tmp_path / NAME))


def test_the_member_count_limit_is_checked_before_the_directory_is_parsed(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "many", "1.0", "py3-none-any", {f"many/m{i}.py": b"" for i in range(20)})
    with pytest.raises(WheelError, match="23 members, more than the 10"):
        open_wheel(str(wheel), ZipLimits(members=10))


def test_the_total_limit_counts_what_would_be_extracted(tmp_path: Path) -> None:
    members = {f"big/lib{i}.so": os.urandom(4096) for i in range(4)}
    wheel = make_wheel(tmp_path, "big", "1.0", "cp39-cp39-linux_x86_64", members)
    with pytest.raises(WheelError, match="declare 16,384 bytes, more than the 10,000"):
        lay_out_wheel(wheel, tmp_path / "site", ZipLimits(total_bytes=10_000))


def test_a_real_wheel_is_laid_out_with_only_its_shared_objects_and_stand_ins(tmp_path: Path) -> None:
    members = {
        "pkg/__init__.py": b"import os\n",
        "pkg/_core.cpython-39-x86_64-linux-gnu.so": b"\x7fELF-not-really",
        "pkg/data/table.csv": b"a,b\n",
        "pkg/sub/__init__.py": b"",
        "other/mod.py": b"x = 1\n",
        "top.py": b"",
        "pkg.libs/libfoo-12345678.so.1": b"\x7fELF-lib",
        "pkg-1.0.data/platlib/extra/_x.so": b"\x7fELF-x",
        "pkg-1.0.data/scripts/tool": b"#!/bin/sh\n",
    }
    wheel = make_wheel(tmp_path, "pkg", "1.0", "cp39-cp39-linux_x86_64", members)
    site = tmp_path / "site"
    lay_out_wheel(wheel, site)
    laid = {str(path.relative_to(site)): path.read_bytes() for path in site.rglob("*") if path.is_file()}
    assert laid == {
        "pkg/_core.cpython-39-x86_64-linux-gnu.so": b"\x7fELF-not-really",
        "pkg.libs/libfoo-12345678.so.1": b"\x7fELF-lib",
        "extra/_x.so": b"\x7fELF-x",
        "pkg/__init__.py": b"",
        "top.py": b"",
    }


def test_each_extracted_file_gets_an_mtime_of_its_own(tmp_path: Path) -> None:
    """The ELF caches key on (device, inode, size, mtime): a later wheel's file reusing a deleted
    file's inode, with the same size, must still differ."""
    members = {f"pkg/lib{i}.so": b"\x7fELF" + bytes(60) for i in range(20)}
    wheel = make_wheel(tmp_path, "pkg", "1.0", "cp39-cp39-linux_x86_64", members)
    lay_out_wheel(wheel, tmp_path / "site")
    stamps = [path.stat().st_mtime_ns for path in (tmp_path / "site" / "pkg").glob("*.so")]
    assert len(stamps) == 20
    assert len(set(stamps)) == 20


def test_metadata_names_the_wheel_and_the_wheel_file_its_tags(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "Some_Pkg", "2.0", "cp39-cp39-linux_x86_64", {"some_pkg/__init__.py": b""})
    with open_wheel(str(wheel)) as archive:
        info = read_info(archive, parse_wheel_name(wheel.name))
    assert (info.name, info.version, info.dist_info) == ("Some_Pkg", "2.0", "Some_Pkg-2.0.dist-info")
    assert info.wheel_tags == ("cp39-cp39-linux_x86_64",)
    assert info.notes == ()


def test_a_wheel_whose_name_and_wheel_file_disagree_says_so(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", "cp39-cp39-linux_x86_64", {"pkg/__init__.py": b""})
    renamed = wheel.rename(tmp_path / "pkg-1.0-cp39-cp39-manylinux_2_17_x86_64.whl")
    with open_wheel(str(renamed)) as archive:
        info = read_info(archive, parse_wheel_name(renamed.name))
    assert any("not all in pkg-1.0.dist-info/WHEEL" in note for note in info.notes)


def test_zipfile_reads_the_test_wheels_as_valid_zips(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", "py3-none-any", {"pkg/__init__.py": b""})
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
