"""CPython: where an interpreter finds its standard library and extensions, as its ``getpath`` does."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.targets.files import dynamic_needed, program_name
from glibc_doctor.core.targets.scripts import WrapperPaths
from glibc_doctor.core.targets.walk import Walk, explicit_extensions, module_name, walked_target

PYTHON_NAME = re.compile(r"^python(?P<version>\d+(?:\.\d+)?)?[a-z]*$")


PYTHON_VERSION = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)")


LIBPYTHON = re.compile(r"^libpython(?P<version>\d+\.\d+)[a-z]*\.so")


_CPYTHON_TAG = re.compile(r"\.cpython-(?P<tag>\d+)[a-z]*-[^.]*\.so$")


@dataclass(frozen=True, slots=True)
class PythonLayout:
    """Where a CPython finds its standard library and extensions, derived as ``getpath`` does."""

    executable: str  # real path
    version: str | None  # "3.11"
    prefix: str | None  # sys.prefix of the base installation
    lib_dynload: tuple[str, ...]
    site_packages: tuple[str, ...]
    caller: str | None  # the libpython DT_NEEDED name, or None when the executable embeds Python


def _python_version_hint(executable: str, needed: Sequence[str]) -> str | None:
    for name in needed:
        match = LIBPYTHON.match(name)
        if match:
            return match["version"]
    match = PYTHON_NAME.match(program_name(executable))
    if match and match["version"] and "." in match["version"]:
        return match["version"]
    return None


def stdlib_dirs(prefix: str) -> list[tuple[str, str]]:
    """``(version, dir)`` for each ``lib/pythonX.Y`` under ``prefix`` holding the ``os.py`` landmark."""
    found: list[tuple[str, str]] = []
    for libdir in ("lib", "lib64"):
        base = os.path.join(prefix, libdir)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            match = re.fullmatch(r"python(\d+\.\d+)", name)
            if match and os.path.isfile(os.path.join(base, name, "os.py")):
                found.append((match[1], os.path.join(base, name)))
    return found


def _find_prefix(executable: str, version: str | None) -> tuple[str, str] | None:
    """Search up from the executable's directory for ``lib/pythonX.Y/os.py``: ``(prefix, version)``."""
    directory = os.path.dirname(executable)
    while True:
        stdlibs = stdlib_dirs(directory)
        matching = [item for item in stdlibs if version is None or item[0] == version]
        if matching:
            best = max(matching, key=lambda item: tuple(int(p) for p in item[0].split(".")))
            return directory, best[0]
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _existing_dirs(paths: Iterable[str]) -> tuple[str, ...]:
    unique: list[str] = []
    for path in paths:
        if os.path.isdir(path) and path not in unique:
            unique.append(path)
    return tuple(unique)


def _site_packages(prefix: str, version: str) -> tuple[str, ...]:
    """The base installation's site dirs, Debian's ``dist-packages`` included (its ``site.py`` adds them)."""
    candidates = [
        os.path.join(prefix, libdir, f"python{version}", "site-packages") for libdir in ("lib", "lib64")
    ]
    candidates.append(os.path.join(prefix, "local", "lib", f"python{version}", "dist-packages"))
    candidates.append(os.path.join(prefix, "lib", "python3", "dist-packages"))
    candidates.append(os.path.join(prefix, "lib", f"python{version}", "dist-packages"))
    return _existing_dirs(candidates)


def python_layout(executable: str) -> PythonLayout:
    """The prefix, lib-dynload and site-packages of the CPython at ``executable`` (its real path)."""
    needed = dynamic_needed(executable)
    caller = next((name for name in needed if LIBPYTHON.match(name)), None)
    hint = _python_version_hint(executable, needed)
    found = _find_prefix(executable, hint) or (_find_prefix(executable, None) if hint is None else None)
    if found is None:
        return PythonLayout(executable, hint, None, (), (), caller)
    prefix, version = found
    dynload = _existing_dirs(
        os.path.join(prefix, libdir, f"python{version}", "lib-dynload") for libdir in ("lib64", "lib")
    )
    return PythonLayout(executable, version, prefix, dynload, _site_packages(prefix, version), caller)


def _python_extension_filter(version: str | None) -> tuple[Callable[[str], bool], list[str]]:
    """Accept ``*.so`` that this Python would import; collect the names skipped for another version."""
    skipped: list[str] = []
    wanted_tag = version.replace(".", "") if version else None

    def accept(name: str) -> bool:
        if not name.endswith(".so"):
            return False
        match = _CPYTHON_TAG.search(name)
        if match and wanted_tag and match["tag"] != wanted_tag:
            skipped.append(name)
            return False
        return True

    return accept, skipped


def python_target(
    spec: str,
    layout: PythonLayout,
    roots: Sequence[str],
    ext: Sequence[str],
    *,
    executable: str | None = None,
    environment: str | None = None,
    notes: Sequence[str] = (),
) -> Target:
    walk = Walk()
    accept, skipped = _python_extension_filter(layout.version)
    for root in roots:
        walk.walk(root, accept)
    extensions = [Extension(path, module_name(path, root), layout.caller) for path, root in walk.found]
    extensions += explicit_extensions(ext, walk, layout.caller, module_name)
    all_notes = list(notes) + walk.notes
    if layout.prefix is None:
        all_notes.append(
            f"no standard library (lib/pythonX.Y/os.py) found above {layout.executable}; "
            "name extension directories with --ext"
        )
    if skipped:
        all_notes.append(f"skipped {len(skipped)} extension(s) built for another Python (e.g. {skipped[0]})")
    return walked_target(
        "python", spec, executable or layout.executable, walk, extensions, all_notes, environment
    )


def resolve_python(
    spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = (), extra: WrapperPaths | None = None
) -> Target:
    layout = python_layout(real)
    roots = list(layout.lib_dynload) + list(extra.python_paths if extra else ()) + list(layout.site_packages)
    if layout.version:
        user_site = os.path.expanduser(f"~/.local/lib/python{layout.version}/site-packages")
        roots += list(_existing_dirs([user_site]))
    return python_target(spec, layout, roots, ext, notes=notes)
