"""CPython: where an interpreter finds its standard library and extensions, as its ``getpath`` does."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.targets.files import dynamic_needed, program_name, read_text
from glibc_doctor.core.targets.pymodules import (
    ExtensionSuffixes,
    ModuleFinder,
    assumed_suffixes,
    read_suffixes,
)
from glibc_doctor.core.targets.scripts import WrapperPaths
from glibc_doctor.core.targets.walk import Walk, explicit_extensions, module_name, walked_target

PYTHON_NAME = re.compile(r"^python(?P<version>\d+(?:\.\d+)?)?[a-z]*$")


PYTHON_VERSION = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)")


LIBPYTHON = re.compile(r"^libpython(?P<version>\d+\.\d+)[a-z]*\.so")


@dataclass(frozen=True, slots=True)
class PythonLayout:
    """Where a CPython finds its standard library and extensions, derived as ``getpath`` does."""

    executable: str  # real path
    version: str | None  # "3.11"
    prefix: str | None  # sys.prefix of the base installation
    lib_dynload: tuple[str, ...]
    site_packages: tuple[str, ...]
    caller: str | None  # the libpython DT_NEEDED name, or None when the executable embeds Python
    stdlib: str | None = None  # ``lib/pythonX.Y``: first on sys.path, its modules shadow later ones
    suffixes: ExtensionSuffixes = assumed_suffixes(None)  # importlib.machinery.EXTENSION_SUFFIXES


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


def _find_prefix(executable: str, version: str | None) -> tuple[str, str, str] | None:
    """Search up from the executable's directory for ``lib/pythonX.Y/os.py``: ``(prefix, version, dir)``."""
    directory = os.path.dirname(executable)
    while True:
        stdlibs = stdlib_dirs(directory)
        matching = [item for item in stdlibs if version is None or item[0] == version]
        if matching:
            best = max(matching, key=lambda item: tuple(int(p) for p in item[0].split(".")))
            return directory, best[0], best[1]
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
        return PythonLayout(
            executable, hint, None, (), (), caller, None, read_suffixes(executable, caller, hint)
        )
    prefix, version, stdlib = found
    dynload = _existing_dirs(
        os.path.join(prefix, libdir, f"python{version}", "lib-dynload") for libdir in ("lib64", "lib")
    )
    suffixes = read_suffixes(executable, caller, version)
    site = _site_packages(prefix, version)
    return PythonLayout(executable, version, prefix, dynload, site, caller, stdlib, suffixes)


def site_entries(site_dirs: Iterable[str], examined: list[str]) -> list[str]:
    """Each site dir, then the directories its ``.pth`` files add, as ``site.addsitedir`` appends them.

    A ``.pth`` line is a directory (relative to the site dir) added when it exists; ``import`` lines are
    code, run at startup, which a static reading cannot follow. The ``.pth`` files read go to
    ``examined`` (the scan cache must see them change).
    """
    entries: list[str] = []
    for site in site_dirs:
        entries.append(site)
        try:
            names = sorted(name for name in os.listdir(site) if name.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            path = os.path.join(site, name)
            examined.append(path)
            entries += _pth_dirs(site, path)
    return list(dict.fromkeys(entries))


def _pth_dirs(site: str, path: str) -> list[str]:
    try:
        lines = read_text(path).splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        if not line.strip() or line.startswith("#") or line.startswith(("import ", "import\t")):
            continue
        directory = os.path.abspath(os.path.join(site, line.rstrip()))
        if os.path.exists(directory):
            found.append(directory)
    return found


def python_target(
    spec: str,
    layout: PythonLayout,
    entries: Sequence[str],
    ext: Sequence[str],
    *,
    executable: str | None = None,
    environment: str | None = None,
    notes: Sequence[str] = (),
    listed_first: Sequence[str] = (),
    examined: Sequence[str] = (),
) -> Target:
    """The extension modules importable from ``entries`` (sys.path order), those under ``listed_first``
    first (the venv's own: the order extensions are simulated in), then ``--ext`` files and directories."""
    walk = Walk()
    finder = ModuleFinder(layout.suffixes, walk)
    first = {entry: index for index, entry in enumerate(listed_first)}
    shallow = [layout.stdlib] if layout.stdlib else []
    modules = sorted(finder.find(entries, shallow), key=lambda module: first.get(module.entry, len(first)))
    extensions = [Extension(module.path, module.name, layout.caller) for module in modules]
    extensions += explicit_extensions(
        ext,
        walk,
        layout.caller,
        module_name,
        directory=lambda path: [(module.path, module.name) for module in finder.find([path])],
    )
    all_notes = list(notes) + walk.notes
    if layout.prefix is None:
        all_notes.append(
            f"no standard library (lib/pythonX.Y/os.py) found above {layout.executable}; "
            "name extension directories with --ext"
        )
    if finder.other_python:
        example = os.path.basename(finder.other_python[0])
        count = len(finder.other_python)
        all_notes.append(f"skipped {count} extension(s) built for another Python (e.g. {example})")
    return walked_target(
        "python",
        spec,
        executable or layout.executable,
        walk,
        extensions,
        all_notes,
        environment,
        examined=(*examined, *finder.examined),
    )


def sys_path_head(layout: PythonLayout) -> list[str]:
    """The entries before any site dir: the standard library, then lib-dynload."""
    return ([layout.stdlib] if layout.stdlib else []) + list(layout.lib_dynload)


def resolve_python(
    spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = (), extra: WrapperPaths | None = None
) -> Target:
    layout = python_layout(real)
    site_dirs = list(extra.python_paths if extra else ())
    if layout.version:
        user_site = os.path.expanduser(f"~/.local/lib/python{layout.version}/site-packages")
        site_dirs += list(_existing_dirs([user_site]))
    examined: list[str] = []
    entries = sys_path_head(layout) + site_entries([*site_dirs, *layout.site_packages], examined)
    return python_target(spec, layout, entries, ext, notes=notes, examined=examined)
