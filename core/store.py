"""The store: patched packages, manifests, profiles and the lock, under ``$XDG_DATA_HOME/glibc-doctor``.

Layout::

    packages/<name>-<short>/     one complete build each (only ever appears by rename)
    packages/.staging-*          a build in progress, or one that was killed (gc removes it)
    glibc/<short fingerprint>/   a glibc view per stdenv: lib/ links to its glibc libraries only, cxx/ to
                                 its libstdc++/libgcc_s (core/patch/view.py); builds' RPATHs name it
    manifests/<id>.json          one per fixed target: source, current and previous build, activation
    profiles/<name>/bin          -> the current build's bin (bare interpreters)
    lock                         fcntl.flock: fix, ensure, rollback and gc run one at a time

Every write is atomic (new file, then ``os.replace``). ``ensure`` is built to be a fast no-op
(core/uptodate.py): it lists the manifests, asks for the stdenv (a cached probe: a few stat calls) and
compares fingerprints; only when one differs does it import the ELF machinery and rebuild.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from glibc_doctor.core import hookstate, uptodate
from glibc_doctor.core.errors import DoctorError, PatchError

# typing and the record types cost imports on ensure's fast path; mypy treats this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from glibc_doctor.core.model import StdenvInfo, Target
    from glibc_doctor.core.patch.activate import Activation
    from glibc_doctor.core.patch.build import BuildResult
    from glibc_doctor.core.patch.manifest import Manifest, StatusEntry
    from glibc_doctor.core.patch.plan import FixPlan
    from glibc_doctor.core.patch.run import FixProgress, FixResult
    from glibc_doctor.core.patch.verify import Snapshot

_held = {"depth": 0}


# --- layout and lock ------------------------------------------------------------------------------


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/glibc-doctor`` (``~/.local/share/glibc-doctor`` by default)."""
    return Path(uptodate.data_dir(os.environ if env is None else env))


def packages_dir(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "packages"


def manifests_dir(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "manifests"


def profiles_dir(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "profiles"


def views_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the glibc views live (``core/patch/view.py`` names the same ``glibc`` dir)."""
    return data_dir(env) / "glibc"


@contextmanager
def locked(env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Hold the store's exclusive lock (re-entrant within this process)."""
    if _held["depth"]:
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    root = data_dir(env)
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = (root / "lock").open("a")
    except OSError as error:
        raise PatchError(f"cannot use the store at {root}: {error.strerror}") from error
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held["depth"] = 1
        try:
            yield
        finally:
            _held["depth"] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


# --- manifests ------------------------------------------------------------------------------------


def manifest_id(target_key: str, name: str) -> str:
    """``<readable name>-<8 hex of the target>``: one manifest per venv or bare interpreter."""
    import hashlib

    digest = hashlib.sha256(target_key.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._+-]', '_', name)[:50]}-{digest}"


def load_manifests(env: Mapping[str, str] | None = None) -> list[Manifest]:
    """Every readable manifest, by id; a damaged one is skipped (status names it)."""
    manifests = []
    for path in _manifest_files(env):
        manifest = read_manifest(path)
        if manifest is not None:
            manifests.append(manifest)
    return manifests


def _manifest_files(env: Mapping[str, str] | None) -> list[Path]:
    return [Path(path) for path in uptodate.manifest_files(os.environ if env is None else env)]


def read_manifest(path: Path) -> Manifest | None:
    from glibc_doctor.core.patch.manifest import Manifest

    try:
        return Manifest.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_manifest(manifest: Manifest, env: Mapping[str, str] | None = None) -> Path:
    path: Path = manifests_dir(env) / manifest.path
    write_json_atomic(path, manifest.as_json())
    return path


def manifest_for_package(package: str, env: Mapping[str, str] | None = None) -> Manifest | None:
    """The manifest whose current or previous build is ``package`` (a path inside it works too)."""
    real = os.path.realpath(package)
    for manifest in load_manifests(env):
        for build in (manifest.current, manifest.previous):
            if build is not None and (real == build.package or real.startswith(build.package + "/")):
                return manifest
    return None


# --- recording a fix ------------------------------------------------------------------------------


def _target_key(plan: FixPlan) -> tuple[str, str, bool]:
    """(key, name, is_venv): a venv is keyed by its directory, a bare interpreter by its package."""
    from glibc_doctor.core.patch.plan import readable_name

    venv = plan.target.environment
    if plan.target.kind == "python" and venv and os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        real = os.path.realpath(venv)
        return real, os.path.basename(real.rstrip("/")) or "venv", True
    return plan.source_package, readable_name(plan.source_package), False


def activate_and_record(
    plan: FixPlan,
    built: BuildResult,
    current_root: str,
    glibc_dir: str | None,
    env: Mapping[str, str],
    ext: Sequence[str] = (),
) -> tuple[Activation, str]:
    """Activate a verified build and write the manifest (the caller holds the lock)."""
    from glibc_doctor.core.patch.activate import Activation, activate_profile, activate_venv

    key, name, is_venv = _target_key(plan)
    identifier = manifest_id(key, name)
    existing = read_manifest(manifests_dir(env) / f"{identifier}.json")
    if existing is not None and existing.current.package == built.package and existing.current.activation:
        if existing.pinned:  # fixing again means "follow the stdenv" again
            save_manifest(replace_fields(existing, pinned=False), env)
        activation = Activation.from_json(existing.current.activation)
        return activation, str(manifests_dir(env) / existing.path)
    if is_venv:
        activation = activate_venv(key, current_root, built.package, plan.patched_interpreter)
    else:
        activation = activate_profile(str(profiles_dir(env) / name), built.package)
    manifest = _manifest_of(plan, built, activation, identifier, key if is_venv else None, existing)
    manifest = replace_fields(manifest, glibc_dir=glibc_dir, ext=tuple(ext) or manifest.ext)
    return activation, str(save_manifest(manifest, env))


def _manifest_of(
    plan: FixPlan,
    built: BuildResult,
    activation: Activation,
    identifier: str,
    venv: str | None,
    existing: Manifest | None,
) -> Manifest:
    """The manifest after this build: it becomes current, the one before becomes previous."""
    from glibc_doctor.core.patch.manifest import BuildRecord, Manifest

    record = BuildRecord(
        package=built.package,
        interpreter=plan.patched_interpreter,
        fingerprint=plan.stdenv.fingerprint,
        stdenv=plan.stdenv.as_json(),
        files=tuple({"path": f.relpath, "action": f.action, "sha256": f.sha256} for f in built.files),
        activation=activation.as_json(),
        view=plan.view.root,
    )
    return Manifest(
        id=identifier,
        kind=plan.target.kind,
        spec=venv or plan.target.spec,
        ext=existing.ext if existing is not None else (),
        environment=venv,
        source_package=plan.source_package,
        source_interpreter=os.path.join(plan.source_package, plan.interpreter),
        glibc_dir=None,
        current=record,
        previous=existing.current if existing is not None else None,
        remaining=tuple(item.as_json() for item in plan.remaining),
    )


def replace_fields(manifest: Manifest, **changes: Any) -> Manifest:
    """``dataclasses.replace``, imported only when a manifest is written (not on the no-op path)."""
    from dataclasses import replace

    updated: Manifest = replace(manifest, **changes)
    return updated


# --- what the target uses now ---------------------------------------------------------------------


def source_snapshot(target: Target, env: Mapping[str, str] | None = None) -> tuple[Snapshot, str] | None:
    """When ``target`` already runs one of our builds: the unpatched process it came from, and the build.

    A fixed venv points into the store; fixing it again (or ``ensure``) must start from the source
    package, never from a patched copy.
    """
    from glibc_doctor.core.patch.verify import moved_target, snapshot

    real = os.path.realpath(target.executable)
    if not real.startswith(str(packages_dir(env)) + "/"):
        return None
    manifest = manifest_for_package(real, env)
    if manifest is None:
        raise PatchError(f"{real} is a glibc-doctor build that no manifest knows; run `glibc-doctor gc`")
    build = next(b for b in (manifest.current, manifest.previous) if b and real.startswith(b.package + "/"))
    source = moved_target(target, build.package, manifest.source_package, manifest.source_interpreter)
    return snapshot(source, env), build.package


# --- status, rollback, gc -------------------------------------------------------------------------


def status(env: Mapping[str, str] | None = None) -> list[StatusEntry]:
    from glibc_doctor.core.patch.manifest import StatusEntry

    entries = []
    fingerprints: dict[StdenvKey, str | None] = {}
    for manifest in load_manifests(env):
        current = _current_fingerprint(
            _stdenv_key(manifest.glibc_dir, manifest.current.stdenv), env, fingerprints
        )
        up_to_date = None if current is None else current == manifest.current.fingerprint
        entries.append(StatusEntry(manifest, up_to_date, os.path.exists(manifest.current.interpreter)))
    return entries


StdenvKey = uptodate.StdenvKey
_stdenv_key = uptodate.stdenv_key


def _current_fingerprint(
    key: StdenvKey, env: Mapping[str, str] | None, seen: dict[StdenvKey, str | None]
) -> str | None:
    if key not in seen:
        try:
            seen[key] = current_stdenv(key[0], env, key[1], key[2]).fingerprint
        except DoctorError:
            seen[key] = None
    return seen[key]


def current_stdenv(
    glibc_dir: str | None, env: Mapping[str, str] | None, elf_class: int = 64, machine: int = 0
) -> StdenvInfo:
    from glibc_doctor.core.stdenv import find_stdenv

    return find_stdenv(glibc_dir, env, elf_class=elf_class, machine=machine)


def find_manifest(spec: str, env: Mapping[str, str] | None = None) -> Manifest:
    """The manifest of ``spec``: a venv dir, an interpreter path, a build, a profile, or a manifest id."""
    real = os.path.realpath(spec)
    for manifest in load_manifests(env):
        candidates = {manifest.id, manifest.spec, manifest.source_package, manifest.source_interpreter}
        candidates |= {os.path.realpath(manifest.spec)}
        builds = [b for b in (manifest.current, manifest.previous) if b is not None]
        if (
            spec in candidates
            or real in candidates
            or any(real.startswith(b.package + "/") or real == b.package for b in builds)
        ):
            return manifest
    raise PatchError(f"{spec}: no fix recorded for it (see `glibc-doctor status`)")


def rollback(spec: str, env: Mapping[str, str] | None = None) -> str:
    """Undo the last activation of ``spec``: back to the previous build, or to the original."""

    from glibc_doctor.core.patch.activate import Activation, undo

    with locked(env):
        manifest = find_manifest(spec, env)
        if manifest.current.activation is not None:
            undo(Activation.from_json(manifest.current.activation))
        path = manifests_dir(env) / manifest.path
        if manifest.previous is None:
            path.unlink(missing_ok=True)
            return f"{manifest.spec}: back to the original {manifest.source_interpreter}"
        save_manifest(replace_fields(manifest, current=manifest.previous, previous=None, pinned=True), env)
        return (
            f"{manifest.spec}: back to the previous build {manifest.previous.package} "
            "(ensure leaves it alone until the next `glibc-doctor fix`)"
        )


def gc(env: Mapping[str, str] | None = None) -> list[str]:
    """Remove builds no manifest uses as current or previous, glibc views no kept build names,
    abandoned staging dirs, and profile generations that link to removed builds."""
    import shutil

    with locked(env):
        keep, views = _kept(env)
        removed = []
        for directory, wanted in ((packages_dir(env), keep), (views_dir(env), views)):
            for entry in _entries(directory):
                if entry.path in wanted or not entry.is_dir(follow_symlinks=False):
                    continue
                _make_writable(entry.path)
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
        for generation in _stale_generations(env, keep):
            shutil.rmtree(generation, ignore_errors=True)
            removed.append(generation)
        return removed


def _kept(env: Mapping[str, str] | None) -> tuple[set[str], set[str]]:
    """The builds the manifests use (current and previous) and the glibc views those builds name."""
    builds = [
        build
        for manifest in load_manifests(env)
        for build in (manifest.current, manifest.previous)
        if build is not None
    ]
    return {build.package for build in builds}, {build.view for build in builds if build.view is not None}


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return []


def _stale_generations(env: Mapping[str, str] | None, keep: set[str]) -> list[str]:
    """``profiles/NAME/gen-*`` dirs not in use whose links point into no kept build."""
    stale = []
    for profile in _entries(profiles_dir(env)):
        in_use = os.path.realpath(os.path.join(profile.path, "bin"))
        for generation in _entries(Path(profile.path)):
            if not generation.name.startswith(("gen-", ".gen-")) or generation.path == in_use:
                continue
            targets = {os.path.realpath(link.path) for link in _entries(Path(generation.path))}
            if not any(target.startswith(package + "/") for target in targets for package in keep):
                stale.append(generation.path)
    return stale


def _make_writable(root: str) -> None:
    """Directories copied from a read-only package keep u+w (build.py adds it), but be sure."""
    for directory, _, _ in os.walk(root):
        try:
            os.chmod(directory, os.stat(directory).st_mode | 0o700)
        except OSError:
            continue


# --- ensure ---------------------------------------------------------------------------------------


class EnsureReport:
    """What ``ensure`` found and did: targets checked, rebuilt (with their results), failed.

    A plain class, not a dataclass: ``ensure``'s no-op path returns one, and building a dataclass
    (and importing ``dataclasses``) costs more than the whole no-op.
    """

    __slots__ = ("checked", "failed", "rebuilt")

    def __init__(
        self, checked: int, rebuilt: tuple[FixResult, ...] = (), failed: tuple[str, ...] = ()
    ) -> None:
        self.checked = checked
        self.rebuilt = rebuilt
        self.failed = failed

    @property
    def ok(self) -> bool:
        return not self.failed

    def __repr__(self) -> str:
        return f"EnsureReport(checked={self.checked}, rebuilt={len(self.rebuilt)}, failed={self.failed!r})"


def stale_manifests(
    env: Mapping[str, str] | None = None,
) -> tuple[list[Manifest], dict[StdenvKey, StdenvInfo]]:
    """Manifests whose stdenv fingerprint differs from the current stdenv (no ELF work when none do)."""
    stdenvs: dict[StdenvKey, StdenvInfo] = {}
    stale = []
    for manifest in load_manifests(env):
        if manifest.pinned:
            continue
        key = _stdenv_key(manifest.glibc_dir, manifest.current.stdenv)
        if key not in stdenvs:
            stdenvs[key] = current_stdenv(key[0], env, key[1], key[2])
        if stdenvs[key].fingerprint != manifest.current.fingerprint:
            stale.append(manifest)
    return stale, stdenvs


def ensure(
    env: Mapping[str, str] | None = None, progress: Callable[[FixProgress], None] | None = None
) -> EnsureReport:
    """Rebuild, verify and switch every fixed target whose stdenv changed; a fast no-op otherwise
    (core/uptodate.py, which also leaves the shell hook what its verdict depended on)."""
    environ = os.environ if env is None else env
    started = time.time_ns()
    checked = uptodate.nothing_to_do(environ)
    if checked is not None:
        return EnsureReport(checked)
    stale, _ = stale_manifests(env)
    if not stale:  # the probe cache was cold or stale; the stdenv itself did not move
        manifests = load_manifests(env)
        keys = {_stdenv_key(m.glibc_dir, m.current.stdenv) for m in manifests if not m.pinned}
        uptodate.record_verdict(uptodate.manifest_files(environ), keys, environ, started)
        return EnsureReport(len(manifests))
    hookstate.clear(environ)
    with locked(env):
        stale, stdenvs = stale_manifests(env)  # another ensure may have done it while we waited
        results = []
        failed = []
        for manifest in stale:
            try:
                key = _stdenv_key(manifest.glibc_dir, manifest.current.stdenv)
                results.append(rebuild(manifest, stdenvs[key], env, progress))
            except DoctorError as error:
                failed.append(f"{manifest.spec}: {error}")
        failed += [
            f"{r.plan.target.spec}: not activated: {'; '.join(r.verification.failures())}"
            for r in results
            if r.activation is None
        ]
        return EnsureReport(len(load_manifests(env)), tuple(results), tuple(failed))


def rebuild(
    manifest: Manifest,
    stdenv: StdenvInfo,
    env: Mapping[str, str] | None = None,
    progress: Callable[[FixProgress], None] | None = None,
) -> FixResult:
    """Fix ``manifest``'s target again from its source package against ``stdenv``."""
    from glibc_doctor.core.patch import FixResult, run_fix
    from glibc_doctor.core.patch.plan import plan_fix
    from glibc_doctor.core.patch.verify import snapshot
    from glibc_doctor.core.targets import resolve_target

    target = resolve_target(manifest.spec, manifest.ext)
    found = source_snapshot(target, env)
    if found is not None:
        source, current_root = found
    elif manifest.environment is None:  # a bare interpreter: its spec names the source itself
        source, current_root = snapshot(target, env), manifest.current.package
    else:
        raise PatchError(f"{manifest.spec} no longer runs a glibc-doctor build; run `glibc-doctor fix` again")
    plan = plan_fix(source, stdenv, str(data_dir(env)))
    result: FixResult | None = None
    events = run_fix(
        plan,
        source.conflicts,
        current_root=current_root,
        glibc_dir=manifest.glibc_dir,
        ext=manifest.ext,
        env=env,
    )
    for event in events:
        if isinstance(event, FixResult):
            result = event
        elif progress is not None:
            progress(event)
    assert result is not None
    return result


# --- shell hooks ----------------------------------------------------------------------------------

# Each hook first asks the script the last no-op ``ensure`` wrote (core/hookstate.py): while the
# environment and every file its verdict depended on are unchanged, no Python starts at the prompt.
HOOKS = {
    "bash": (
        "# glibc-doctor: keep patched interpreters in step with the stdenv (add to ~/.bashrc)\n"
        "_glibc_doctor_ensure() {\n"
        '    local state="${XDG_CACHE_HOME:-$HOME/.cache}/glibc-doctor/hook/state.bash"\n'
        '    if [[ -r $state ]] && . "$state" && _glibc_doctor_current "$state"; then return 0; fi\n'
        "    command glibc-doctor ensure --quiet\n"
        "}\n"
        'case ";${PROMPT_COMMAND:-};" in *";_glibc_doctor_ensure;"*) ;; '
        '*) PROMPT_COMMAND="_glibc_doctor_ensure${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;; esac\n'
    ),
    "zsh": (
        "# glibc-doctor: keep patched interpreters in step with the stdenv (add to ~/.zshrc)\n"
        "_glibc_doctor_ensure() {\n"
        '    local state="${XDG_CACHE_HOME:-$HOME/.cache}/glibc-doctor/hook/state.zsh"\n'
        '    if [[ -r $state ]] && . "$state" && _glibc_doctor_current "$state"; then return 0; fi\n'
        "    command glibc-doctor ensure --quiet\n"
        "}\n"
        "autoload -Uz add-zsh-hook\n"
        "add-zsh-hook precmd _glibc_doctor_ensure\n"
    ),
    "fish": (
        "# glibc-doctor: keep patched interpreters in step with the stdenv (add to config.fish)\n"
        "function __glibc_doctor_ensure --on-event fish_prompt\n"
        "    set -l base $XDG_CACHE_HOME\n"
        '    test -n "$base"; or set base $HOME/.cache\n'
        "    set -l state $base/glibc-doctor/hook/state.fish\n"
        "    if test -r $state; and source $state; and _glibc_doctor_current $state\n"
        "        return 0\n"
        "    end\n"
        "    command glibc-doctor ensure --quiet\n"
        "end\n"
    ),
}
HOOK_EXTRAS = (
    "# in a direnv .envrc or a devbox init_hook, one line does it:\n#   glibc-doctor ensure --quiet\n"
)


def hook_snippet(shell: str) -> str:
    """The snippet that runs ``ensure --quiet`` at each prompt of ``shell``."""
    if shell not in HOOKS:
        raise PatchError(f"hook: unknown shell {shell!r} (bash, zsh or fish)")
    return HOOKS[shell] + HOOK_EXTRAS
