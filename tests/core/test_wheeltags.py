"""Wheel file names and pip's tag selection, against the real pip run in the real interpreters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from glibc_doctor.core.errors import WheelError
from glibc_doctor.core.lookups import SharedLookups
from glibc_doctor.core.targets import resolve_target
from glibc_doctor.core.wheels import interpreter_for
from glibc_doctor.core.wheeltags import (
    InterpreterTags,
    Tag,
    interpreter_tags,
    manylinux_glibc,
    parse_wheel_name,
    platform_arch,
)
from glibc_doctor.lab.build import Lab

from tests.wheelbuild import pip_supported_tags

PY39 = InterpreterTags((3, 9), "cp39", "x86_64", (2, 31), "test")


def test_a_wheel_name_gives_its_distribution_version_and_tags() -> None:
    name = parse_wheel_name("numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert (name.distribution, name.version, name.build) == ("numpy", "1.26.4", None)
    assert name.tags == (
        Tag("cp39", "cp39", "manylinux2014_x86_64"),
        Tag("cp39", "cp39", "manylinux_2_17_x86_64"),
    )
    assert name.tag_text == "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64"


def test_a_build_tag_and_compressed_python_tags_are_read() -> None:
    name = parse_wheel_name("six-1.16.0-1-py2.py3-none-any.whl")
    assert name.build == "1"
    assert {str(tag) for tag in name.tags} == {"py2-none-any", "py3-none-any"}


@pytest.mark.parametrize("filename", ["numpy.whl", "numpy-1.0.whl", "a-b-c-d.zip", "x-1-cp39-cp39-linux.tar"])
def test_a_name_that_is_not_a_wheel_name_is_a_wheel_error(filename: str) -> None:
    with pytest.raises(WheelError, match="not a wheel file name"):
        parse_wheel_name(filename)


def test_the_tags_are_those_of_pip_in_this_machines_python() -> None:
    """pip's own ``get_supported`` in this very interpreter, against the tags read from its binary."""
    from pip._internal.utils.compatibility_tags import get_supported

    target = resolve_target(sys.executable)
    interpreter = interpreter_for(target, env=os.environ, glibc=None, shared=SharedLookups())
    assert interpreter.tags is not None
    assert [str(tag) for tag in interpreter.tags.supported()] == [str(tag) for tag in get_supported()]


@pytest.mark.lab
def test_the_tags_are_those_of_pip_run_by_the_lab_python_on_glibc_2_31(
    lab: Lab, pip_to_run: Path, tmp_path: Path
) -> None:
    """pip run by the lab's python3.9 asks its own glibc (2.31): the tags the scan's glibc gives."""
    interpreter = interpreter_for(
        resolve_target(str(lab.venv)), env=lab.environ(), glibc=None, shared=SharedLookups()
    )
    assert interpreter.tags is not None
    assert interpreter.tags.glibc == (2, 31)
    real = pip_supported_tags(lab.venv / "bin" / "python3.9", pip_to_run, lab.environ())
    assert [str(tag) for tag in interpreter.tags.supported()] == real
    assert "cp39-cp39-manylinux_2_31_x86_64" in real
    assert "cp39-cp39-manylinux_2_32_x86_64" not in real


def test_the_suffixes_give_the_python_abi_flags_and_architecture() -> None:
    tags = interpreter_tags((".cpython-313t-x86_64-linux-gnu.so", ".so"), None, None, "2.36", "x")
    assert tags is not None
    assert (tags.python, tags.abi, tags.arch, tags.glibc) == ((3, 13), "cp313t", "x86_64", (2, 36))
    assert tags.free_threaded
    i386 = interpreter_tags((".cpython-311-i386-linux-gnu.so",), None, None, "2.36", "x")
    assert i386 is not None
    assert i386.arch == "i686"


def test_without_a_soabi_the_version_decides_and_before_3_8_the_abi_has_its_m() -> None:
    tags = interpreter_tags((".abi3.so", ".so"), "3.7", "x86_64", "2.28", "x")
    assert tags is not None
    assert tags.abi == "cp37m"
    assert interpreter_tags((".so",), None, "x86_64", "2.28", "x") is None


@pytest.mark.parametrize(
    ("filename", "why"),
    [
        (
            "a-1-cp39-cp39-manylinux_2_34_x86_64.whl",
            "manylinux_2_34_x86_64 needs glibc 2.34, the process loads 2.31",
        ),
        ("a-1-cp311-cp311-linux_x86_64.whl", "for CPython 3.11 (cp311), not 3.9"),
        ("a-1-cp310-abi3-linux_x86_64.whl", "for the stable ABI of Python 3.10+, not 3.9"),
        ("a-1-cp39-cp39-manylinux_2_17_aarch64.whl", "for aarch64 (manylinux_2_17_aarch64), not x86_64"),
        ("a-1-cp39-cp39-musllinux_1_2_x86_64.whl", "for musl libc (musllinux_1_2_x86_64), not glibc"),
        ("a-1-cp39-cp39-win_amd64.whl", "for another platform (win_amd64)"),
        ("a-1-pp39-pypy39_pp73-linux_x86_64.whl", "for another Python implementation (pp39-pypy39_pp73)"),
    ],
)
def test_pip_would_not_select_a_wheel_and_says_why(filename: str, why: str) -> None:
    assert PY39.why_not(parse_wheel_name(filename)) == why


@pytest.mark.parametrize(
    "filename",
    [
        "a-1-cp39-cp39-manylinux_2_31_x86_64.whl",
        "a-1-cp39-cp39-manylinux2014_x86_64.whl",
        "a-1-cp39-cp39-manylinux1_x86_64.whl",
        "a-1-cp36-abi3-manylinux2010_x86_64.whl",
        "a-1-cp39-none-linux_x86_64.whl",
        "a-1-py3-none-any.whl",
        "a-1-py2.py3-none-any.whl",
        "a-1-cp39-none-any.whl",
    ],
)
def test_pip_selects_these_for_python_3_9_on_glibc_2_31(filename: str) -> None:
    wheel = parse_wheel_name(filename)
    assert PY39.why_not(wheel) is None
    assert PY39.selects(wheel.tags)


def test_a_free_threaded_python_takes_no_abi3_wheel() -> None:
    free = InterpreterTags((3, 13), "cp313t", "x86_64", (2, 36), "test")
    assert not free.selects(parse_wheel_name("a-1-cp39-abi3-linux_x86_64.whl").tags)
    assert free.selects(parse_wheel_name("a-1-cp313-cp313t-linux_x86_64.whl").tags)


def test_a_wheel_for_this_python_but_another_platform_is_still_for_this_python() -> None:
    assert PY39.accepts_python(parse_wheel_name("a-1-cp39-cp39-manylinux_2_34_x86_64.whl").tags)
    assert not PY39.accepts_python(parse_wheel_name("a-1-cp311-cp311-linux_x86_64.whl").tags)


def test_without_a_glibc_only_the_plain_linux_platform_is_offered() -> None:
    tags = InterpreterTags((3, 9), "cp39", "x86_64", None, "test")
    assert tags.platforms() == ["linux_x86_64"]


def test_manylinux_platforms_stop_at_2_17_off_x86() -> None:
    tags = InterpreterTags((3, 9), "cp39", "aarch64", (2, 31), "test")
    assert tags.platforms()[-3:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]


def test_platform_tags_name_their_glibc_and_architecture() -> None:
    assert manylinux_glibc("manylinux2014_x86_64") == (2, 17)
    assert manylinux_glibc("manylinux_2_28_aarch64") == (2, 28)
    assert manylinux_glibc("linux_x86_64") is None
    assert platform_arch("manylinux1_i686") == "i686"
    assert platform_arch("musllinux_1_1_aarch64") == "aarch64"
    assert platform_arch("linux_x86_64") == "x86_64"
    assert platform_arch("win_amd64") is None
