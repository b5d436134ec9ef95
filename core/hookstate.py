"""What the last no-op ``ensure`` depended on, written so that the shell can check it without Python.

The prompt hook (``glibc-doctor hook bash|zsh|fish``) runs at every Enter. Starting Python costs tens
of milliseconds; the shell's own ``[[ a -nt b ]]`` costs microseconds. So a no-op ``ensure`` writes a
small script of the shell's own syntax that answers "is the last verdict still good?":

- the environment variables the verdict was computed under (``PATH``, ``CC``, ``NIX_CC``, the XDG
  dirs, ...) are compared as literal strings;
- every file and directory whose change could change the verdict is tested with ``-nt`` against the
  script itself, whose mtime is set to a little *before* ``ensure`` began reading (a change made while
  it ran is seen at the next prompt). Directories catch what a file's own mtime would not: a new ``cc``
  earlier on ``PATH``, a file replaced by rename (``dpkg`` keeps the package's old mtimes), a symlink
  moved to a new Nix generation (every link on the way to a file is watched through its directory).

When any test fails, or the script is missing, the hook runs ``glibc-doctor ensure --quiet`` as before,
which writes a new script when it finds nothing to do. A verdict that cannot be watched this way (a
relative ``PATH`` entry, a compiler candidate that only a ``chmod +x`` would reveal) writes no script.

The same verdict is kept for Python too (``state.marshal``: ``marshal`` is built in, ``json`` would
import ``re``): ``ensure`` started by hand, by direnv or by a shell without the hook asks
``still_valid`` first, by the same rule, before it reads any manifest.

Standard library only, and small: this runs on ``ensure``'s fast path.
"""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False  # typing costs an import on this path; mypy treats the name as true
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# Environment variables that decide where ensure looks (store, cache) and what the stdenv is.
KEY_VARS = ("PATH", "CC", "NIX_CC", "NIX_LDFLAGS", "LDFLAGS", "HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")
SHELLS = ("bash", "zsh", "fish")
_FORMAT = 1  # of state.marshal
_HEADER = "# written by glibc-doctor ensure: what its last verdict depended on\n"
# The script's mtime is set this far before ensure began: covers file systems that keep whole seconds.
MARGIN_NS = 2_000_000_000
_MAX_HOPS = 40  # as the kernel's ELOOP limit


def state_dir(env: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/glibc-doctor/hook`` (the scripts are disposable: a missing one costs one run)."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "glibc-doctor", "hook")


def state_path(shell: str, env: Mapping[str, str]) -> str:
    return os.path.join(state_dir(env), f"state.{shell}")


def link_dirs(path: str) -> tuple[list[str], str]:
    """The directories holding each symlink met while resolving ``path``, and the path it ends at.

    Moving any of those links (``ln -sfn``, a Nix profile switch) rewrites its directory, which bumps
    the directory's mtime: watching them sees every way ``os.path.realpath(path)`` can change.
    """
    dirs: list[str] = []
    pending = os.path.abspath(path).split("/")[1:]
    resolved = ""
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = resolved.rsplit("/", 1)[0]
            continue
        candidate = f"{resolved}/{part}"
        try:
            target = os.readlink(candidate)
        except OSError:  # not a link (or not there): a plain component
            resolved = candidate
            continue
        hops += 1
        if hops > _MAX_HOPS:
            break
        dirs.append(resolved or "/")
        if target.startswith("/"):
            resolved = ""
        pending[:0] = target.split("/")
    return dirs, resolved or "/"


def watch_file(path: str) -> list[str]:
    """``path``'s real file, its directory, and the directory of every link on the way to it."""
    dirs, real = link_dirs(path)
    return [*dirs, os.path.dirname(real) or "/", real]


def existing_ancestor(path: str) -> str:
    """``path`` when it exists, else its nearest existing parent (creating ``path`` bumps that one)."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and current != "/":
        current = os.path.dirname(current)
    return current


def render(shell: str, env: Mapping[str, str], watched: Iterable[str]) -> str:
    """The script for ``shell``: defines ``_glibc_doctor_current``, true while the verdict holds."""
    paths = list(dict.fromkeys(watched))
    if shell == "fish":
        return _render_fish(env, paths)
    tests = [f"[[ ${{{name}-}} == {_sh_quote(env.get(name, ''))} ]] || return 1" for name in KEY_VARS]
    newer = [f"[[ {_sh_quote(path)} -nt $1 ]] && return 1" for path in paths]
    body = "\n    ".join([*tests, *newer, "return 0"])
    return f"{_HEADER}_glibc_doctor_current() {{\n    {body}\n}}\n"


def _render_fish(env: Mapping[str, str], paths: list[str]) -> str:
    tests = []
    for name in KEY_VARS:
        value = _fish_quote(env.get(name, ""))
        # fish keeps PATH as a list: join it back as the environment carries it.
        shown = f"(string join : -- ${name})" if name == "PATH" else f'"${name}"'
        tests.append(f"if set -q {name}; test {shown} = {value}; else; test -z {value}; end; or return 1")
    newer = [f"test {_fish_quote(path)} -nt $argv[1]; and return 1" for path in paths]
    body = "\n    ".join([*tests, *newer, "return 0"])
    return f"{_HEADER}function _glibc_doctor_current\n    {body}\nend\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write(env: Mapping[str, str], watched: Iterable[str], started_ns: int, checked: int) -> None:
    """Write the verdict (``checked`` fixed targets, all current) for every shell and for Python, each
    dated ``MARGIN_NS`` before ``started_ns``; atomic."""
    directory = state_dir(env)
    paths = list(dict.fromkeys(watched))
    stamp = started_ns - MARGIN_NS
    record = (_FORMAT, tuple(env.get(name, "") for name in KEY_VARS), tuple(paths), stamp, checked)
    try:
        os.makedirs(directory, exist_ok=True)
        for shell in (*SHELLS, "marshal"):
            final = state_path(shell, env)
            temporary = f"{final}.{os.getpid()}.tmp"
            if shell == "marshal":
                with open(temporary, "wb") as binary:
                    marshal.dump(record, binary)
            else:
                with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
                    handle.write(render(shell, env, paths))
            os.utime(temporary, ns=(stamp, stamp))
            os.replace(temporary, final)
    except OSError:
        clear(env)  # a state that cannot be written only costs the next prompt a Python start


def still_valid(env: Mapping[str, str]) -> int | None:
    """The number of fixed targets of the last verdict when nothing it depended on changed (the
    shells' rule: same variables, no watched path newer than the stamp), else None."""
    try:
        with open(state_path("marshal", env), "rb") as handle:
            form, values, paths, stamp, checked = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if form != _FORMAT or values != tuple(env.get(name, "") for name in KEY_VARS):
        return None
    for path in paths:
        try:
            if os.stat(path).st_mtime_ns > stamp:
                return None
        except OSError:  # gone: its directory, watched too, says so (as the shells' -nt does)
            continue
    return int(checked)


def clear(env: Mapping[str, str]) -> None:
    """Remove the verdict: the hook then runs ``ensure`` until one is written again."""
    for shell in (*SHELLS, "marshal"):
        try:
            os.unlink(state_path(shell, env))
        except OSError:  # not there (contextlib would cost an import on this path)
            continue
