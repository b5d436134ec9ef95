"""The shell hook's own check (core/hookstate.py): no Python at the prompt while nothing moved, and
Python again after every change that could change ``ensure``'s verdict.

Each test runs the real snippet of ``glibc-doctor hook SHELL`` in the real shell, with ``glibc-doctor``
on PATH as a wrapper that logs each start and then runs the real command: the log says whether the
prompt started Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from glibc_doctor.core import hookstate, store
from glibc_doctor.core.patch.manifest import BuildRecord, Manifest
from glibc_doctor.core.stdenv import find_stdenv

GCC = shutil.which("gcc") or "/usr/bin/gcc"
SYSTEM_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
SYSTEM_LOADER = "/lib64/ld-linux-x86-64.so.2"
SHELLS = [shell for shell in ("bash", "zsh", "fish") if shutil.which(shell)]


class Prompt:
    """A private store and cache, a ``cc`` of its own on PATH, and the logging ``glibc-doctor``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "runs.log"
        self.early = tmp / "early-bin"  # first on PATH, empty for now
        self.bin = tmp / "bin"
        self.wrap = tmp / "wrap"
        for directory in (self.early, self.bin, self.wrap, tmp / "home"):
            directory.mkdir()
        (self.bin / "cc").symlink_to(GCC)
        wrapper = self.wrap / "glibc-doctor"
        wrapper.write_text(
            f'#!/bin/sh\necho run >> "{self.log}"\nexec "{sys.executable}" -m glibc_doctor.tui "$@"\n'
        )
        wrapper.chmod(0o755)
        base = {k: v for k, v in os.environ.items() if k not in ("CC", "NIX_CC", "GLIBC_DOCTOR_FAULT")}
        self.env = {
            **base,
            "HOME": str(tmp / "home"),
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "PATH": f"{self.early}:{self.bin}:{self.wrap}:/usr/bin:/bin",
        }

    def fixed(self, name: str = "venv", glibc_dir: str | None = None) -> None:
        """A manifest whose build matches the current stdenv (as right after a ``fix``)."""
        fingerprint = find_stdenv(glibc_dir, env=self.env).fingerprint
        record = BuildRecord("/p/current", "/p/current/bin/python3.9", fingerprint, {}, (), None)
        manifest = Manifest(
            id=f"{name}-0000abcd", kind="python", spec=f"/work/{name}", ext=(), environment=None,
            source_package="/store/aaaa-python3.9", source_interpreter="/store/aaaa-python3.9/bin/python3.9",
            glibc_dir=glibc_dir, current=record,
        )  # fmt: skip
        store.save_manifest(replace(manifest), self.env)

    def age(self) -> None:
        """Date everything made so far 10 s back: the hook's script is dated 2 s before its ensure
        began, so a change made in those 2 s is (rightly) seen again at the next prompt."""
        past = (os.stat(self.tmp).st_mtime_ns - 10 * 10**9,) * 2
        scripts = hookstate.state_dir(self.env)
        for directory, dirs, files in os.walk(self.tmp):
            for name in dirs + files:
                path = os.path.join(directory, name)
                if not path.startswith(scripts):
                    os.utime(path, ns=past, follow_symlinks=False)
        os.utime(self.tmp, ns=past)

    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def prompt(self, shell: str = "bash", **changes: str) -> int:
        """One prompt of ``shell`` (the hook's function, as PROMPT_COMMAND/precmd/fish_prompt run it);
        returns how many times ``glibc-doctor`` has started so far."""
        snippet = store.hook_snippet(shell)
        call = "__glibc_doctor_ensure" if shell == "fish" else "_glibc_doctor_ensure"
        env = {**self.env, **changes}
        done = subprocess.run(
            [shell, "-c", f"{snippet}\n{call}"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return self.runs()

    def settled(self, shell: str = "bash", **changes: str) -> None:
        """The set-up is done: a first prompt writes the hook's script, and the next starts nothing."""
        self.age()
        self.prompt(shell, **changes)
        self.age()
        before = self.runs()
        assert self.prompt(shell, **changes) == before, "a second prompt with nothing changed ran Python"


@pytest.fixture
def prompt(tmp_path: Path) -> Prompt:
    return Prompt(tmp_path)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_prompt_with_nothing_changed_starts_no_python(prompt: Prompt, shell: str) -> None:
    prompt.fixed()
    prompt.age()
    assert prompt.prompt(shell) == 1
    prompt.age()
    assert prompt.prompt(shell) == 1
    assert prompt.prompt(shell) == 1


@pytest.mark.parametrize("shell", SHELLS)
def test_a_new_compiler_earlier_on_path_starts_ensure_in_every_shell(prompt: Prompt, shell: str) -> None:
    prompt.fixed()
    prompt.settled(shell)
    before = prompt.runs()
    (prompt.early / "cc").symlink_to(GCC)
    assert prompt.prompt(shell) == before + 1


def test_the_compiler_link_moved_like_a_profile_switch_starts_ensure(prompt: Prompt) -> None:
    prompt.fixed()
    prompt.settled()
    before = prompt.runs()
    (prompt.bin / "cc").unlink()
    (prompt.bin / "cc").symlink_to(os.path.realpath(GCC))
    assert prompt.prompt() == before + 1


def test_a_new_fix_starts_ensure(prompt: Prompt) -> None:
    prompt.fixed()
    prompt.settled()
    before = prompt.runs()
    prompt.fixed("other")
    assert prompt.prompt() == before + 1


def test_the_first_fix_of_an_empty_store_starts_ensure(prompt: Prompt) -> None:
    prompt.settled()
    before = prompt.runs()
    prompt.fixed()
    assert prompt.prompt() == before + 1


@pytest.mark.parametrize(
    "variable", ["CC", "NIX_CC", "LDFLAGS", "NIX_LDFLAGS", "XDG_DATA_HOME", "XDG_CACHE_HOME", "PATH"]
)
def test_a_changed_variable_starts_ensure(prompt: Prompt, variable: str) -> None:
    prompt.fixed()
    prompt.settled()
    before = prompt.runs()
    value = {"PATH": prompt.env["PATH"] + ":/usr/local/bin", "CC": "gcc"}.get(variable, str(prompt.tmp))
    assert prompt.prompt(**{variable: value}) == before + 1


def _glibc_copy(tmp: Path) -> Path:
    glibc = tmp / "glibc"
    glibc.mkdir()
    shutil.copy2(SYSTEM_LIBC, glibc / "libc.so.6")
    shutil.copy2(SYSTEM_LOADER, glibc / "ld-linux-x86-64.so.2")
    return glibc


def test_a_pinned_glibc_replaced_by_rename_with_its_old_mtime_starts_ensure(prompt: Prompt) -> None:
    glibc = _glibc_copy(prompt.tmp)
    prompt.fixed(glibc_dir=str(glibc))
    prompt.settled()
    before = prompt.runs()
    old = os.stat(glibc / "libc.so.6")
    replacement = glibc / ".libc.new"
    replacement.write_bytes((glibc / "libc.so.6").read_bytes() + b"\0")
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))  # as dpkg unpacks: the package's mtime
    os.replace(replacement, glibc / "libc.so.6")
    assert prompt.prompt() == before + 1


def test_a_pinned_glibc_written_in_place_starts_ensure(prompt: Prompt) -> None:
    glibc = _glibc_copy(prompt.tmp)
    prompt.fixed(glibc_dir=str(glibc))
    prompt.settled()
    before = prompt.runs()
    with open(glibc / "libc.so.6", "ab") as handle:
        handle.write(b"\0")
    assert prompt.prompt() == before + 1


def test_an_unrelated_change_starts_nothing(prompt: Prompt) -> None:
    prompt.fixed()
    prompt.settled()
    before = prompt.runs()
    (prompt.tmp / "unrelated").write_text("x")
    assert prompt.prompt() == before


def test_a_relative_path_entry_cannot_be_watched_so_every_prompt_asks_python(prompt: Prompt) -> None:
    prompt.fixed()
    relative = prompt.env["PATH"] + ":bin"
    prompt.prompt(PATH=relative)
    before = prompt.runs()
    assert prompt.prompt(PATH=relative) == before + 1
    assert not os.path.exists(hookstate.state_path("bash", prompt.env))


def test_a_shadowing_compiler_that_only_lacks_its_x_bit_cannot_be_watched(prompt: Prompt) -> None:
    (prompt.early / "cc").write_text("#!/bin/sh\n")
    prompt.fixed()
    prompt.prompt()
    before = prompt.runs()
    assert prompt.prompt() == before + 1


def test_the_links_on_the_way_to_a_file_are_each_watched_through_their_directory(tmp_path: Path) -> None:
    (tmp_path / "store" / "gen-2" / "bin").mkdir(parents=True)
    (tmp_path / "store" / "gen-2" / "bin" / "gcc").write_text("")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "profile").symlink_to("../store/gen-2")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".profile").symlink_to(tmp_path / "profiles" / "profile")
    dirs, real = hookstate.link_dirs(str(tmp_path / "home" / ".profile" / "bin" / "gcc"))
    assert dirs == [str(tmp_path / "home"), str(tmp_path / "profiles")]
    assert real == str(tmp_path / "store" / "gen-2" / "bin" / "gcc")


def test_a_symlink_loop_ends_the_walk(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    dirs, _ = hookstate.link_dirs(str(tmp_path / "a"))
    assert len(dirs) == 40


@pytest.mark.parametrize("shell", SHELLS)
def test_quotes_and_spaces_in_watched_values_survive_each_shells_quoting(tmp_path: Path, shell: str) -> None:
    odd = tmp_path / 'it\'s a "dir" $HOME \\ x'
    odd.mkdir()
    env = {"PATH": f"{odd}:/usr/bin:/bin", "HOME": str(tmp_path), "CC": "it's"}
    script = tmp_path / f"state.{shell}"
    script.write_text(hookstate.render(shell, env, [str(odd)]))
    os.utime(script, ns=(0, os.stat(odd).st_mtime_ns + 10**9))
    source = "source" if shell == "fish" else "."
    check = (
        f'{source} "{script}"; and _glibc_doctor_current "{script}"'
        if shell == "fish"
        else (f'{source} "{script}" && _glibc_doctor_current "{script}"')
    )
    done = subprocess.run([shell, "-c", check], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
