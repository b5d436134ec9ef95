"""A cache of whole scan results, valid while nothing the loader would look at has changed.

A repeated ``glibc-doctor scan --json`` (shell hooks, CI, editors) must cost a fraction of reading the
ELF files again. The cache stores the printed JSON with the evidence it depends on:

- the stat (dev, inode, size, mtime_ns) of every file that was parsed,
- the mtime of every directory that was walked or searched, including directories where a lookup
  failed or where a new file could shadow the one found (a new file changes its directory's mtime),
- the ld.so.cache and /etc/ld.so.preload stats,
- in the key: the request (target, --ext, --glibc, strict), the ``LD_*`` and compiler environment,
  and the code of ``glibc_doctor.core`` itself.

This module imports only the standard library, so the CLI can answer a cache hit before it imports
networkx, rich or textual. Writes are atomic (temporary file + ``os.replace``), so a concurrent reader
sees the old entry or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

FORMAT = 1
# A file whose mtime is this close to the moment the entry was written may have changed again within
# the same timestamp tick ("racy" entries, as git calls them): such an entry is not trusted.
RACY_NS = 10_000_000
_ENV_PREFIXES = ("LD_",)
# GLIBC_TUNABLES: the static TLS surplus (core/static_tls.py) depends on it.
_ENV_NAMES = ("PATH", "CC", "CXX", "NIX_CC", "VIRTUAL_ENV", "GEM_HOME", "GEM_PATH", "GLIBC_TUNABLES")
_GLOBAL_FILES = ("/etc/ld.so.cache", "/etc/ld.so.preload")


class ScanRequest(NamedTuple):
    """What the user asked for: the same request in the same environment hashes to the same entry.

    A NamedTuple, not a dataclass: ``dataclasses`` imports ``inspect``, a tenth of a cache hit's time.
    """

    spec: str
    ext: tuple[str, ...] = ()
    glibc: str | None = None
    strict: bool = False

    def key(self, env: Mapping[str, str]) -> str:
        """The entry's name: a hash of the request, the relevant environment and the code."""
        relevant = {k: v for k, v in sorted(env.items()) if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES}
        material = [
            FORMAT,
            _absolute(self.spec),
            [_absolute(path) for path in self.ext],
            _absolute(self.glibc) if self.glibc else None,
            self.strict,
            relevant,
            os.getcwd(),
            _code_fingerprint(),
        ]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]


class CacheHit(NamedTuple):
    """A valid entry: the JSON text exactly as the scan printed it, and its exit code."""

    text: str
    exit_code: int


def cache_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "glibc-doctor", "scans")


def lookup(request: ScanRequest, env: Mapping[str, str]) -> CacheHit | None:
    """The cached result of ``request`` if every file and directory it depends on is unchanged."""
    path = os.path.join(cache_dir(env), request.key(env) + ".json")
    try:
        with open(path, encoding="utf-8") as stream:
            header = json.loads(stream.readline())
            if not _valid(header):
                return None
            return CacheHit(stream.read(), int(header["exit_code"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(
    request: ScanRequest,
    env: Mapping[str, str],
    text: str,
    exit_code: int,
    files: Iterable[str],
    dirs: Iterable[str],
) -> str | None:
    """Write an entry for ``request`` (atomically); returns its path, or None when it cannot be written."""
    header = {
        "format": FORMAT,
        "written_ns": time.time_ns(),
        "exit_code": exit_code,
        "files": [[p, _file_stat(p)] for p in sorted(set(files) | set(_GLOBAL_FILES))],
        "dirs": [[p, _dir_stamp(p)] for p in sorted(set(dirs))],
    }
    import tempfile  # only when writing: a cache hit should not pay for it

    directory = cache_dir(env)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(header, separators=(",", ":")) + "\n")
            stream.write(text)
        final = os.path.join(directory, request.key(env) + ".json")
        os.replace(tmp, final)
        return final
    except OSError:
        return None


def clear(env: Mapping[str, str]) -> int:
    """Remove every entry; returns how many were removed."""
    directory = cache_dir(env)
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except OSError:
            pass
    return removed


def _valid(header: dict[str, object]) -> bool:
    if header.get("format") != FORMAT:
        return False
    written = header["written_ns"]
    if not isinstance(written, int):
        return False
    files = header["files"]
    dirs = header["dirs"]
    if not isinstance(files, list) or not isinstance(dirs, list):
        return False
    return _all_match(files, _file_stat, written) and _all_match(dirs, _dir_stamp, written)


def _all_match(
    entries: Sequence[object], probe: Callable[[str], tuple[int, ...] | None], written: int
) -> bool:
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
            return False
        path, recorded = entry
        now = probe(path)
        expected = tuple(recorded) if isinstance(recorded, list) else recorded
        if now != expected:
            return False
        if now is not None and now[-1] >= written - RACY_NS:
            return False
    return True


def _file_stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _dir_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _absolute(path: str) -> str:
    """Paths are keyed absolute (``python3`` stays a name: PATH is part of the key)."""
    return os.path.abspath(path) if os.sep in path or os.path.exists(path) else path


def _code_fingerprint() -> list[object]:
    """The stat of every module of ``glibc_doctor.core``: new code must not answer with old results."""
    here = os.path.dirname(os.path.abspath(__file__))
    stamps: list[object] = []
    for directory in (here, os.path.join(here, "patch")):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name.endswith(".py"):
                st = os.stat(os.path.join(directory, name))
                stamps.append([name, st.st_size, st.st_mtime_ns])
    return stamps
