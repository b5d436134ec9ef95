"""Ruby (core/targets/ruby.py): archdir, gems and the features its load path gives."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from glibc_doctor.core.targets import (
    resolve_target,
)

from tests.core.targets.layouts import (
    make_fake_ruby,
    needed_of,
)


def test_ruby_extensions_come_from_archdir_and_gems_with_require_names(
    tmp_path: Path, plain_so: Path
) -> None:
    ruby = make_fake_ruby(tmp_path, plain_so)
    target = resolve_target(str(ruby))
    assert target.kind == "ruby"
    assert [(e.name, e.caller) for e in target.extensions] == [
        ("etc", "libruby.so.3.1"),
        ("json/ext/parser", "libruby.so.3.1"),
        ("nokogiri/nokogiri", "libruby.so.3.1"),
    ]


def test_a_library_on_the_ruby_load_path_without_its_init_function_is_no_feature(
    tmp_path: Path, plain_so: Path
) -> None:
    ruby = make_fake_ruby(tmp_path, plain_so)
    gem = tmp_path / "lib" / "ruby" / "gems" / "3.1.0" / "gems" / "sassc-2.4.0" / "lib"
    gem.mkdir(parents=True)
    shutil.copy(plain_so, gem / "libsass.so")  # opened by FFI from its path, never required
    target = resolve_target(str(ruby))
    assert [e.name for e in target.extensions] == ["etc", "json/ext/parser", "nokogiri/nokogiri"]
    assert str(gem / "libsass.so") in target.examined


def test_machine_ruby_resolves_when_installed() -> None:
    if not os.path.exists("/usr/bin/ruby"):
        pytest.skip("no /usr/bin/ruby on this machine")
    target = resolve_target("/usr/bin/ruby")
    assert target.kind == "ruby"
    assert target.extensions


@pytest.mark.lab
def test_lab_debian_ruby_finds_its_vendor_archdir_extension(lab) -> None:  # type: ignore[no-untyped-def]
    target = resolve_target(str(lab.ruby))
    libruby = [name for name in needed_of(str(lab.ruby)) if name.startswith("libruby")]
    rbext = [e for e in target.extensions if e.path == str(lab.ruby_ext)]
    assert [(e.name, e.caller) for e in rbext] == [("rbext", libruby[0])]
    assert any(e.name == "json/ext/parser" for e in target.extensions)
