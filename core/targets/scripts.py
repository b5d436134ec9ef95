"""Wrapper scripts and shims that stand for an interpreter: Nix ``makeWrapper``, pyenv shims."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from glibc_doctor.core.targets.files import is_elf_file, read_first_word, read_head_quiet


@dataclass(frozen=True, slots=True)
class WrapperPaths:
    """What a wrapper script (Nix ``makeWrapper``) execs, and the module paths it exports first."""

    program: str
    python_paths: tuple[str, ...] = ()  # NIX_PYTHONPATH / PYTHONPATH entries
    gem_paths: tuple[str, ...] = ()  # GEM_PATH / GEM_HOME entries


_WRAPPER_EXEC = re.compile(r"^\s*exec\s+(?:-a\s+\S+\s+)?[\"']?(?P<program>/[^\"'\s]+)", re.MULTILINE)


_WRAPPER_EXPORT = re.compile(
    r"^\s*export\s+(?P<name>NIX_PYTHONPATH|PYTHONPATH|GEM_PATH|GEM_HOME)=[\"']?(?P<value>[^\"'\n]*)",
    re.MULTILINE,
)


def read_wrapper(path: str) -> WrapperPaths | None:
    """Read a shell wrapper's ``exec /abs/program`` and its exported module paths; None if not one."""
    text = read_head_quiet(path, 65536).decode("utf-8", "replace")
    found = _WRAPPER_EXEC.search(text)
    if found is None or found["program"] == path or not is_elf_file(os.path.realpath(found["program"])):
        return None  # not a wrapper, or one that execs another script (pyenv's libexec): not followed
    python: list[str] = []
    gems: list[str] = []
    for export in _WRAPPER_EXPORT.finditer(text):
        dirs = [d for d in export["value"].split(":") if d.startswith("/") and os.path.isdir(d)]
        (gems if export["name"].startswith("GEM_") else python).extend(dirs)
    return WrapperPaths(found["program"], tuple(dict.fromkeys(python)), tuple(dict.fromkeys(gems)))


def pyenv_shim_target(path: str, env: Mapping[str, str] | None = None) -> str | None:
    """A pyenv shim is a bash script; ``$PYENV_VERSION`` or the version file names the real interpreter."""
    shims = os.path.dirname(path)
    if os.path.basename(shims) != "shims" or b"pyenv" not in read_head_quiet(path, 4096):
        return None
    root = os.path.dirname(shims)
    environ = os.environ if env is None else env
    chosen = environ.get("PYENV_VERSION") or read_first_word(os.path.join(root, "version")) or ""
    version = chosen.split(":", 1)[0]
    if not version or version == "system":
        return None
    candidate = os.path.join(root, "versions", version, "bin", os.path.basename(path))
    return candidate if os.path.exists(candidate) else None
