"""``ensure``'s no-op: is every fixed target still built for the stdenv the user has now?

``glibc-doctor ensure --quiet`` runs at the shell prompt whenever the hook's own check
(core/hookstate.py) cannot vouch for the last verdict, so answering "nothing to do" must cost little
more than Python's start-up. First the last verdict itself (a marshal file and a stat per watched
path), then what the manifests say (a marshal digest of them, JSON only for a manifest that changed),
the probe cache of core/stdenv.py and a few stat calls: no record types, no ELF reading, no compiler
run, and no ``json`` (which imports ``re``) unless a manifest changed. A "nothing to do" leaves a new
verdict, so the following prompts need no Python at all. Anything else ("look closer") is
core/store.py's ``ensure``.
"""

from __future__ import annotations

import marshal
import os
import time

from glibc_doctor.core import hookstate

TYPE_CHECKING = False  # typing costs an import on this path; mypy treats the name as true
if TYPE_CHECKING:
    from collections.abc import Mapping

# (--glibc DIR or None for the probe, ELF class: 32 is the i386 glibc, e_machine: 0 is this machine's)
StdenvKey = tuple[str | None, int, int]


def stdenv_key(glibc_dir: str | None, recorded_stdenv: object) -> StdenvKey:
    """Which stdenv a build follows: its --glibc DIR and the class and machine of the stdenv it was built
    against (a 32-bit target's fix follows the i386 glibc, an aarch64 one on an x86-64 machine the cross
    compiler's; a manifest from before the class or machine was recorded is 64-bit x86-64)."""
    recorded = recorded_stdenv if isinstance(recorded_stdenv, dict) else {}
    machine = recorded.get("machine")
    return (
        glibc_dir,
        32 if recorded.get("elf_class") == 32 else 64,
        machine if isinstance(machine, int) else 0,
    )


def data_dir(env: Mapping[str, str]) -> str:
    """``$XDG_DATA_HOME/glibc-doctor`` (``~/.local/share/glibc-doctor`` by default)."""
    base = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME", os.path.expanduser("~")), ".local/share")
    return os.path.join(base, "glibc-doctor")


def manifest_files(env: Mapping[str, str]) -> list[str]:
    """The manifest files, sorted (a dot file is a write in progress)."""
    try:
        with os.scandir(os.path.join(data_dir(env), "manifests")) as entries:
            return sorted(e.path for e in entries if e.name.endswith(".json") and not e.name.startswith("."))
    except OSError:
        return []


def up_to_date_stdenvs(files: list[str], env: Mapping[str, str]) -> set[StdenvKey] | None:
    """The stdenvs the manifests follow (``stdenv_key``), when every manifest's build matches its
    stdenv's cached fingerprint; None means "look closer": a stale build, an unreadable manifest, or
    no valid probe cache.
    """
    from glibc_doctor.core.stdenv import cached_fingerprint

    records = manifest_records(files, env)
    if records is None:
        return None
    fingerprints: dict[StdenvKey, str | None] = {}
    for key, wanted, pinned in records:
        if pinned:
            continue
        if key not in fingerprints:
            fingerprints[key] = cached_fingerprint(key[0], env, elf_class=key[1], machine=key[2])
        if fingerprints[key] is None or fingerprints[key] != wanted:
            return None
    return set(fingerprints)


ManifestRecord = tuple[StdenvKey, str, bool]  # the stdenv a build follows, its fingerprint, pinned


def manifest_records(files: list[str], env: Mapping[str, str]) -> list[ManifestRecord] | None:
    """What the no-op needs of each manifest; None when one cannot be read.

    The manifests are JSON (readable, stable); ``json`` imports ``re``, which costs more than the rest
    of the no-op. So what was read is kept in a marshal digest in the cache, reused for every manifest
    whose size, mtime and inode are unchanged (a manifest is only ever replaced by rename).
    """
    from glibc_doctor.core.stdenv import cache_dir

    digest_path = os.path.join(cache_dir(env), "manifests.marshal")
    try:
        with open(digest_path, "rb") as handle:
            digest = marshal.load(handle)
        if not isinstance(digest, dict):
            digest = {}
    except (OSError, EOFError, ValueError, TypeError):
        digest = {}
    records: list[ManifestRecord] = []
    fresh: dict[str, tuple[tuple[int, int, int], ManifestRecord]] = {}
    for path in files:
        try:
            info = os.stat(path)
        except OSError:
            return None
        stamp = (info.st_size, info.st_mtime_ns, info.st_ino)
        known = digest.get(path)
        record = known[1] if isinstance(known, tuple) and known[0] == stamp else _read_manifest(path)
        if record is None:
            return None
        records.append(record)
        fresh[path] = (stamp, record)
    if fresh != digest:
        _write_digest(digest_path, fresh)
    return records


def _read_manifest(path: str) -> ManifestRecord | None:
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        key = stdenv_key(data.get("glibc_dir"), data["current"].get("stdenv"))
        return key, str(data["current"]["fingerprint"]), bool(data.get("pinned"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_digest(path: str, digest: dict[str, tuple[tuple[int, int, int], ManifestRecord]]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as handle:
            marshal.dump(digest, handle)
        os.replace(temporary, path)
    except OSError:
        return  # only costs the next no-op a JSON read


def nothing_to_do(env: Mapping[str, str]) -> int | None:
    """The number of fixed targets when none needs a rebuild (and the hook's script is written), else
    None. The last verdict answers when nothing it depended on moved; ``started`` is read before
    anything else, so a change made while this runs is seen at the next prompt."""
    started = time.time_ns()
    checked = hookstate.still_valid(env)
    if checked is not None:
        return checked
    files = manifest_files(env)
    stdenvs = up_to_date_stdenvs(files, env) if files else set()
    if stdenvs is None:
        return None
    record_verdict(files, stdenvs, env, started)
    return len(files)


def record_verdict(files: list[str], stdenvs: set[StdenvKey], env: Mapping[str, str], started: int) -> None:
    """Write the hook's script for this verdict, or remove it when a shell could not check it."""
    from glibc_doctor.core.stdenv import fingerprint_inputs

    links, manifests = hookstate.link_dirs(
        hookstate.existing_ancestor(os.path.join(data_dir(env), "manifests"))
    )
    watched = [*links, manifests, *files]
    for glibc_dir, elf_class, machine in stdenvs:
        inputs = fingerprint_inputs(glibc_dir, env, elf_class, machine)
        if inputs is None:
            hookstate.clear(env)
            return
        watched += inputs
    hookstate.write(env, watched, started, len(files))
