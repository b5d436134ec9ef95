"""Check a built package before anyone uses it: run it, and rescan it.

The patched interpreter runs (with a timeout, in an environment without LD_LIBRARY_PATH/LD_PRELOAD
that would hide what its own headers do) and imports or requires each extension that conflicted
before, one process per extension so one failure does not hide another. Then the patched process is
simulated again: a conflict that was not there before means the fix made something worse, and it is
not activated. An interpreter of another architecture (an aarch64 one fixed on an x86-64 machine) runs
under qemu's user-mode emulator when it is installed; without one nothing runs, and the build is not
called verified.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.model import EM_386, EM_X86_64, Conflict, Extension, GlibcInfo, Severity, Target
from glibc_doctor.core.patch.plan import FixPlan
from glibc_doctor.core.targets.architecture import emulator_for

VERIFY_TIMEOUT = 60.0
CLEANED_ENV = ("LD_LIBRARY_PATH", "LD_PRELOAD", "LD_AUDIT", "PYTHONHOME", "PYTHONPATH")
_PYTHON_IMPORT = (
    "import sys, importlib; sys.path.insert(0, sys.argv[1]); importlib.import_module(sys.argv[2])"
)
_RUBY_REQUIRE = "require ARGV[0]"


@dataclass(frozen=True, slots=True)
class ImportCheck:
    """One extension loaded by the patched interpreter: did it load, and what it said if not."""

    extension: str
    name: str
    ok: bool
    expected: bool  # True when the plan says this one gets fixed; False for a REMAINING one
    detail: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A simulated process and its conflicts (a scan without the CLI's extras)."""

    target: Target
    graph: Any
    conflicts: tuple[Conflict, ...]
    glibc: GlibcInfo


@dataclass(frozen=True, slots=True)
class Verification:
    """What the patched package did when run and rescanned."""

    checks: tuple[ImportCheck, ...]
    worse: tuple[Conflict, ...]  # conflicts of the patched process that the original did not have
    after: tuple[Conflict, ...]  # every error the patched process still has
    runner: str = "native"  # what ran the checks: "native", the emulator's name, "" when nothing could

    @property
    def ok(self) -> bool:
        """Every extension the plan fixes loads, and nothing got worse (never when nothing could run)."""
        return bool(self.runner) and not self.worse and all(c.ok for c in self.checks if c.expected)

    def failures(self) -> list[str]:
        lines = [
            f"{check.name} still fails: {check.detail}"
            for check in self.checks
            if check.expected and not check.ok
        ]
        lines += [f"new problem: {conflict.message}" for conflict in self.worse]
        return lines


def moved_target(target: Target, old_root: str, new_root: str, executable: str) -> Target:
    """The target as it will be with ``executable``, extensions inside the old package moved too."""
    extensions = tuple(
        Extension(_moved(ext.path, old_root, new_root), ext.name, ext.caller) for ext in target.extensions
    )
    return Target(
        kind=target.kind,
        spec=target.spec,
        executable=executable,
        extensions=extensions,
        environment=target.environment,
        searched_dirs=target.searched_dirs,
    )


def _moved(path: str, old_root: str, new_root: str) -> str:
    real = os.path.realpath(path)
    if real == old_root or real.startswith(old_root + "/"):
        return new_root + real[len(old_root) :]
    return path


def snapshot(target: Target, env: Mapping[str, str] | None = None) -> Snapshot:
    """Simulate ``target`` and analyse it (no extension is run)."""
    from glibc_doctor.core.analysis import analyze, glibc_info
    from glibc_doctor.core.process import simulate

    graph = simulate(target, strict=False, env=dict(clean_env(env)))
    return Snapshot(target, graph, analyze(graph), glibc_info(graph))


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without the variables that would redirect the loader or Python."""
    source = os.environ if env is None else env
    return {key: value for key, value in source.items() if key not in CLEANED_ENV}


def conflicted_extensions(plan: FixPlan) -> list[tuple[Extension, bool]]:
    """Each extension named by a conflict (as object or in its chain) or by a warning of what the new
    loader refuses, with "the plan fixes it" (so its import is checked, and expected to fail)."""
    by_path = {os.path.realpath(ext.path): ext for ext in plan.target.extensions}
    remaining = {path for item in plan.remaining for path in _extension_paths(item.conflict, by_path)}
    remaining |= {path for conflict in plan.warnings for path in _extension_paths(conflict, by_path)}
    fixed = {path for conflict in plan.fixes for path in _extension_paths(conflict, by_path)}
    chosen = sorted(remaining | fixed)
    return [(by_path[path], path not in remaining) for path in chosen]


def _extension_paths(conflict: Conflict, by_path: Mapping[str, Extension]) -> list[str]:
    paths = [os.path.realpath(path) for path in (*conflict.chain, conflict.object)]
    return [path for path in paths if path in by_path][:1]


def runner_for(interpreter: str) -> tuple[list[str] | None, str]:
    """How to run ``interpreter`` here: (argv prefix, name) — ``[]`` natively, ``[qemu]`` for another
    architecture with its emulator installed, ``None`` when this machine cannot run it."""
    facts = read_elf(interpreter)
    host = read_elf(os.path.realpath(sys.executable))
    if not facts.ok or not host.ok or facts.machine == host.machine:
        return [], "native"
    if host.machine == EM_X86_64 and facts.machine == EM_386:
        return [], "native"
    emulator = emulator_for(facts.elf_class, facts.machine)
    return ([emulator], os.path.basename(emulator)) if emulator is not None else (None, "")


def import_check(
    kind: str,
    interpreter: str,
    extension: Extension,
    expected: bool,
    env: Mapping[str, str],
    runner: list[str] | None = None,
) -> ImportCheck:
    """Run ``interpreter`` once (under ``runner``, e.g. qemu) to import/require ``extension``."""
    argv = _load_argv(kind, interpreter, extension)
    if argv is None:
        return ImportCheck(extension.path, extension.name, True, expected, "no way to load it; rescan only")
    argv = [*(runner or []), *argv]
    try:
        done = subprocess.run(
            argv, env=dict(env), capture_output=True, text=True, timeout=VERIFY_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return ImportCheck(
            extension.path, extension.name, False, expected, f"timed out after {VERIFY_TIMEOUT:.0f}s"
        )
    except OSError as error:
        return ImportCheck(
            extension.path, extension.name, False, expected, f"could not run: {error.strerror}"
        )
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return ImportCheck(extension.path, extension.name, done.returncode == 0, expected, last)


def _load_argv(kind: str, interpreter: str, extension: Extension) -> list[str] | None:
    if kind == "python":
        name = module_name(extension)
        return [interpreter, "-s", "-c", _PYTHON_IMPORT, _import_root(extension.path, name), name]
    if kind == "ruby":
        return [interpreter, "--disable-gems", "-e", _RUBY_REQUIRE, extension.path]
    return None


def module_name(extension: Extension) -> str:
    """The dotted module name; a file name given with ``--ext`` (``x.cpython-39-….so``) becomes ``x``."""
    name: str = extension.name
    if "/" in name or name.endswith(".so") or ".so." in name:
        name = os.path.basename(name).split(".")[0]
    return name


def _import_root(path: str, name: str) -> str:
    """The sys.path entry from which module ``name`` imports as the file ``path`` (a package's
    ``__init__`` extension lies one directory deeper than its name says)."""
    root: str = os.path.dirname(path)
    if os.path.basename(path).startswith("__init__."):
        root = os.path.dirname(root)
    for _ in name.split(".")[1:]:
        root = os.path.dirname(root)
    return root


def worse_conflicts(
    before: tuple[Conflict, ...], after: tuple[Conflict, ...], old_root: str, new_root: str
) -> tuple[Conflict, ...]:
    """Errors of the patched process that the original did not have as errors (paths of the copy mapped
    back): a warning before that is an error after (an executable stack that glibc 2.41 refuses) is worse."""
    known = {_identity(conflict, None, None) for conflict in before if conflict.severity == Severity.ERROR}
    return tuple(
        conflict
        for conflict in after
        if conflict.severity == Severity.ERROR and _identity(conflict, new_root, old_root) not in known
    )


def _identity(
    conflict: Conflict, from_root: str | None, to_root: str | None
) -> tuple[str, str, str | None, str | None]:
    obj = conflict.object
    if from_root is not None and to_root is not None and obj.startswith(from_root + "/"):
        obj = to_root + obj[len(from_root) :]
    return (str(conflict.kind), obj, conflict.library, conflict.version)


def verify(plan: FixPlan, before: tuple[Conflict, ...], env: Mapping[str, str] | None = None) -> Verification:
    """Load each conflicting extension with the patched interpreter, then rescan the patched process."""
    environ = clean_env(env)
    interpreter = plan.patched_interpreter
    target = moved_target(plan.target, plan.source_package, plan.destination, interpreter)
    by_path = {os.path.realpath(ext.path): ext for ext in target.extensions}
    prefix, runner = runner_for(interpreter)
    checks = []
    for extension, expected in conflicted_extensions(plan):
        moved = by_path.get(_moved(extension.path, plan.source_package, plan.destination), extension)
        if prefix is None:
            words = "not run: this machine cannot run the patched interpreter (install qemu-user-static)"
            checks.append(ImportCheck(moved.path, moved.name, False, expected, words))
            continue
        checks.append(import_check(plan.target.kind, interpreter, moved, expected, environ, prefix))
    after = snapshot(target, environ)
    errors = tuple(conflict for conflict in after.conflicts if conflict.severity == Severity.ERROR)
    worse = worse_conflicts(before, errors, plan.source_package, plan.destination)
    return Verification(tuple(checks), worse, errors, runner)
