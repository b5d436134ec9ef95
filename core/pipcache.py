"""pip's wheel cache: where an interpreter's pip keeps the wheels it built, found without running pip.

``python -m pip cache dir`` would answer, but that runs the target's interpreter, and a static check
never runs what it inspects (the interpreter may be exactly what fails to start). So the answer is read
as pip's own ``Configuration`` and option parser make it (pip 20-25):

1. the environment: ``PIP_NO_CACHE_DIR`` (any value) disables the cache, else ``PIP_CACHE_DIR`` names it;
2. else ``cache-dir`` / ``no-cache-dir`` in the ``[install]`` section, then in ``[global]``, of the
   configuration files, later files overriding earlier ones: ``$XDG_CONFIG_DIRS/pip/pip.conf`` (default
   ``/etc/xdg``) and ``/etc/pip.conf``; then ``~/.pip/pip.conf`` and ``$XDG_CONFIG_HOME/pip/pip.conf``
   (``~/.config``), skipped when ``$PIP_CONFIG_FILE`` names an existing file; then ``sys.prefix/pip.conf``
   (the venv's own, or the base interpreter's prefix); then ``$PIP_CONFIG_FILE``.
   ``PIP_CONFIG_FILE=/dev/null`` loads no file at all;
3. else the default, ``$XDG_CACHE_HOME/pip`` (``~/.cache/pip``).

The wheels pip built from source distributions lie in ``<cache>/wheels/<a>/<b>/<c>/<rest of a hash>/``
(the HTTP cache beside it holds downloads in pip's own format, not ``.whl`` files). ``purge`` removes
exactly the wheel files it is given, only from there, only if they are still the files that were checked.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from glibc_doctor.core.errors import WheelError

CONFIG_NAME = "pip.conf"
_SECTIONS = ("install", "global")  # what ``pip install`` reads, the command's own section first


@dataclass(frozen=True, slots=True)
class PipCache:
    """Where pip caches, and how that was decided (``PIP_CACHE_DIR``, a config file, the default)."""

    path: str | None  # None: the cache is disabled
    source: str

    @property
    def wheels_dir(self) -> str | None:
        return os.path.join(self.path, "wheels") if self.path is not None else None

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "wheels": self.wheels_dir, "source": self.source}


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What a file was when it was checked: a purge removes it only if it is still that file."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileIdentity:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def config_files(prefix: str | None, env: Mapping[str, str]) -> list[str]:
    """pip's configuration files in the order it loads them (later ones override earlier ones)."""
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    home = env.get("HOME") or os.path.expanduser("~")
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [
        os.path.join(directory, "pip", CONFIG_NAME) for directory in xdg_dirs.split(os.pathsep) if directory
    ]
    files.append(os.path.join("/etc", CONFIG_NAME))
    if not (env_file and os.path.exists(env_file)):
        config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files += [os.path.join(home, ".pip", CONFIG_NAME), os.path.join(config_home, "pip", CONFIG_NAME)]
    if prefix is not None:
        files.append(os.path.join(prefix, CONFIG_NAME))
    if env_file:
        files.append(env_file)
    return files


def pip_cache(prefix: str | None, env: Mapping[str, str]) -> PipCache:
    """The cache the pip of an interpreter whose ``sys.prefix`` is ``prefix`` uses (see above)."""
    home = env.get("HOME") or os.path.expanduser("~")
    if env.get("PIP_NO_CACHE_DIR"):
        return PipCache(None, "$PIP_NO_CACHE_DIR disables it")
    if env.get("PIP_CACHE_DIR"):
        return PipCache(_expand(env["PIP_CACHE_DIR"], home), "$PIP_CACHE_DIR")
    found = _configured(config_files(prefix, env))
    if found is not None:
        key, value, where = found
        if key == "no-cache-dir":
            return PipCache(None, f"no-cache-dir in {where} disables it")
        return PipCache(_expand(value, home), f"cache-dir in {where}")
    cache_home = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return PipCache(os.path.join(cache_home, "pip"), "pip's default ($XDG_CACHE_HOME/pip, ~/.cache/pip)")


def _configured(files: Sequence[str]) -> tuple[str, str, str] | None:
    """(key, value, "file [section]") of the ``cache-dir``/``no-cache-dir`` setting that wins."""
    merged: dict[tuple[str, str], tuple[str, str]] = {}
    for path in files:
        for section, key, value in _settings(path):
            merged[(section, key)] = (value, f"{path} [{section}]")
    for section in _SECTIONS:
        for key in ("cache-dir", "no-cache-dir"):
            if (section, key) in merged:
                value, where = merged[(section, key)]
                return key, value, where
    return None


def _settings(path: str) -> Iterable[tuple[str, str, str]]:
    """The non-empty cache settings of one file (an unreadable or broken file counts as absent)."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return []
            parser.read_string(handle.read(1 << 20), source=path)
    except (OSError, configparser.Error):
        return []
    found = []
    for section in _SECTIONS:
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            key = name.lower().replace("_", "-").removeprefix("--")
            if key in ("cache-dir", "no-cache-dir") and value:
                found.append((section, key, value))
    return found


def _expand(path: str, home: str) -> str:
    """``~`` expanded as pip's ``path`` option type does (``os.path.expanduser``; no ``$VARS``)."""
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    return os.path.abspath(path)


def cached_wheels(cache: PipCache) -> list[str]:
    """Every ``*.whl`` file under the cache's ``wheels/`` (symlinks are not followed), sorted."""
    root = cache.wheels_dir
    if root is None or not os.path.isdir(root):
        return []
    return wheel_files(root)


def wheel_files(root: str) -> list[str]:
    """Every regular ``*.whl`` file under ``root``; directories are walked once, links not followed."""
    found: list[str] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".whl") and _regular(path):
                found.append(path)
    return sorted(found)


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge did: the files removed, and those it left with the reason."""

    removed: tuple[str, ...]
    kept: tuple[tuple[str, str], ...]  # (path, why it was not removed)

    def as_json(self) -> dict[str, object]:
        return {"removed": list(self.removed), "kept": [{"path": p, "reason": r} for p, r in self.kept]}


def purge(cache: PipCache, wheels: Iterable[tuple[str, FileIdentity | None]]) -> Purged:
    """Remove each wheel file from the cache's ``wheels/``: nothing outside it, no link, no file that
    changed since it was checked (its identity), no directory. Each removal is one ``unlink``."""
    root = cache.wheels_dir
    if root is None:
        raise WheelError("pip's cache is disabled: nothing to purge")
    real_root = os.path.realpath(root)
    removed: list[str] = []
    kept: list[tuple[str, str]] = []
    for path, identity in wheels:
        reason = _refusal(path, identity, real_root)
        if reason is not None:
            kept.append((path, reason))
            continue
        try:
            os.unlink(path)
        except OSError as error:
            kept.append((path, error.strerror or str(error)))
            continue
        removed.append(path)
    return Purged(tuple(removed), tuple(kept))


def _refusal(path: str, identity: FileIdentity | None, real_root: str) -> str | None:
    """Why ``path`` must not be removed, or None."""
    if not path.endswith(".whl"):
        return "not a wheel file"
    parent = os.path.realpath(os.path.dirname(path))
    if os.path.commonpath([parent, real_root]) != real_root:
        return "not inside pip's wheel cache"
    try:
        info = os.lstat(path)
    except OSError as error:
        return error.strerror or str(error)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if identity is not None and FileIdentity.of(info) != identity:
        return "changed since it was checked"
    return None
