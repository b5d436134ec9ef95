"""A --root directory is a chroot: absolute symlinks and ``..`` stop at it, nothing leads outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from glibc_doctor.core.sysroot import Sysroot, host_path


@pytest.fixture
def root(tmp_path: Path) -> Sysroot:
    top = tmp_path / "image"
    (top / "usr/lib/aarch64-linux-gnu").mkdir(parents=True)
    (top / "usr/lib/aarch64-linux-gnu/libc.so.6").write_text("inside")
    (top / "lib").symlink_to("usr/lib")
    return Sysroot.at(str(top))


def test_a_relative_symlink_is_followed_inside_the_root(root: Sysroot) -> None:
    assert root.host("/lib/aarch64-linux-gnu/libc.so.6") == f"{root.dir}/usr/lib/aarch64-linux-gnu/libc.so.6"


def test_an_absolute_symlink_restarts_at_the_root_not_at_this_machines_slash(root: Sysroot) -> None:
    link = Path(root.dir) / "usr/lib/libfoo.so.1"
    link.symlink_to("/usr/lib/aarch64-linux-gnu/libc.so.6")
    assert Path(root.host("/usr/lib/libfoo.so.1")).read_text() == "inside"
    assert root.realpath("/usr/lib/libfoo.so.1") == "/usr/lib/aarch64-linux-gnu/libc.so.6"


def test_dot_dot_stops_at_the_root(root: Sysroot) -> None:
    assert root.host("/../../../usr/lib/aarch64-linux-gnu/libc.so.6") == root.host(
        "/lib/aarch64-linux-gnu/libc.so.6"
    )
    escape = Path(root.dir) / "usr/escape"
    escape.symlink_to("../../../../../../etc")
    assert root.host("/usr/escape") == f"{root.dir}/etc"


def test_an_absolute_symlink_to_a_file_of_this_machine_is_not_followed_outside(root: Sysroot) -> None:
    (Path(root.dir) / "usr/lib/host-libc").symlink_to("/etc/hostname")
    assert root.host("/usr/lib/host-libc") == f"{root.dir}/etc/hostname"
    assert not os.path.exists(root.host("/usr/lib/host-libc"))


def test_a_symlink_loop_gives_a_path_whose_open_fails(root: Sysroot) -> None:
    loop = Path(root.dir) / "usr/lib/loop"
    loop.symlink_to("loop")
    with pytest.raises(OSError, match="Too many levels"):
        os.stat(root.host("/usr/lib/loop"))


def test_inside_paths_are_paths_below_the_root(root: Sysroot) -> None:
    assert root.inside(f"{root.dir}/usr/lib") == "/usr/lib"
    assert root.inside(root.dir) == "/"
    assert host_path(None, "/usr/lib") == "/usr/lib"
    assert host_path(root, "/usr/lib") == f"{root.dir}/usr/lib"


def test_a_root_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        Sysroot.at(str(tmp_path / "file"))
