"""The glibc view on disk: made from the machine's real stdenv, atomically, reused, replaced when wrong."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import StdenvInfo
from glibc_doctor.core.patch.plan import view_provides
from glibc_doctor.core.patch.view import VIEW_RECORD, GlibcView, ViewLink, make_view, survey_view
from glibc_doctor.core.stdenv import find_stdenv


@pytest.fixture(scope="module")
def stdenv(tmp_path_factory: pytest.TempPathFactory) -> StdenvInfo:
    cache = tmp_path_factory.mktemp("cache")
    environ = {k: v for k, v in os.environ.items() if k not in ("CC", "NIX_CC")}
    return find_stdenv(env={**environ, "XDG_CACHE_HOME": str(cache)})


def _leftovers(view: GlibcView) -> list[str]:
    return [name for name in os.listdir(os.path.dirname(view.root)) if name.startswith(".")]


def test_the_machines_view_links_its_glibc_but_not_the_other_libraries_of_that_dir(
    stdenv: StdenvInfo, tmp_path: Path
) -> None:
    view = survey_view(stdenv, str(tmp_path))
    names = {link.name for link in view.glibc}
    assert {"libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2"} <= names
    source = Path(os.path.dirname(stdenv.libc))
    assert (source / "libz.so.1").exists()  # the system dir holds more than glibc …
    assert "libz.so.1" not in names  # … and the view only glibc


def test_the_machines_view_carries_its_libstdcxx_and_libgcc_s(stdenv: StdenvInfo, tmp_path: Path) -> None:
    view = survey_view(stdenv, str(tmp_path))
    runtime = {link.name: link.target for link in view.runtime}
    assert runtime["libstdc++.so.6"] == stdenv.libstdcxx
    assert os.path.basename(runtime["libgcc_s.so.1"]) == "libgcc_s.so.1"


def test_a_view_is_made_with_links_that_resolve_to_the_stdenv_files(
    stdenv: StdenvInfo, tmp_path: Path
) -> None:
    view = survey_view(stdenv, str(tmp_path))
    assert make_view(view) is True
    for link in view.glibc:
        assert os.path.samefile(os.path.join(view.lib_dir, link.name), link.target)
    for link in view.runtime:
        assert os.path.samefile(os.path.join(view.runtime_dir, link.name), link.target)
    assert json.loads(Path(view.root, VIEW_RECORD).read_text()) == view.record()
    assert _leftovers(view) == []


def test_an_existing_view_with_the_same_record_is_reused(stdenv: StdenvInfo, tmp_path: Path) -> None:
    view = survey_view(stdenv, str(tmp_path))
    make_view(view)
    inode = os.stat(view.root).st_ino
    assert make_view(view) is False
    assert os.stat(view.root).st_ino == inode


def test_a_view_that_links_elsewhere_is_replaced_whole(stdenv: StdenvInfo, tmp_path: Path) -> None:
    view = survey_view(stdenv, str(tmp_path))
    stale = replace(view, glibc=(ViewLink("libc.so.6", "/nowhere/libc.so.6"),))
    make_view(stale)
    assert make_view(view) is True
    assert os.readlink(os.path.join(view.lib_dir, "libc.so.6")) == view.target_of("libc.so.6")
    assert _leftovers(view) == []


def test_a_view_that_cannot_be_filled_leaves_nothing_behind(stdenv: StdenvInfo, tmp_path: Path) -> None:
    view = survey_view(stdenv, str(tmp_path))
    broken = replace(view, glibc=(ViewLink("no-such-dir/libc.so.6", stdenv.libc),))
    with pytest.raises(PatchError, match="cannot build the glibc view"):
        make_view(broken)
    assert os.listdir(os.path.dirname(view.root)) == []


def test_a_library_that_merely_sits_in_the_stdenv_dir_is_not_provided(
    stdenv: StdenvInfo, tmp_path: Path
) -> None:
    provided = view_provides(survey_view(stdenv, str(tmp_path)), ["libc.so.6", "libz.so.1"])
    assert provided["libz.so.1"] is None
    assert "GLIBC_2.2.5" in (provided["libc.so.6"] or ())


def test_a_stdenv_dir_without_libc_is_refused(tmp_path: Path) -> None:
    (tmp_path / "glibc").mkdir()
    fake = StdenvInfo("2.36", "/x/ld.so", str(tmp_path / "glibc" / "libc.so.6"), (), "test", "0" * 64)
    with pytest.raises(PatchError, match="has no libc.so.6"):
        survey_view(fake, str(tmp_path / "store"))
