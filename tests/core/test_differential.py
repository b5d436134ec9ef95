"""What core predicts a python process maps must be what the real process maps.

A real interpreter imports a set of extension modules and prints ``/proc/self/maps``; the same
interpreter and extensions, described by hand as a ``Target``, are simulated. Compared by inode:

- every object the model predicts for those extensions (the extension and everything it reaches in
  the graph) is mapped, at the predicted file;
- every mapped object reachable from those extensions through DT_NEEDED (matched by soname among the
  mapped files) was predicted. NSS and gconv modules are dlopen()ed by libc, not needed: they are
  never reachable this way, so they are the allowed extras.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.model import Extension, Role, Target
from glibc_doctor.core.process import simulate
from glibc_doctor.lab.build import Lab

STANDARD_MODULES = (
    "_ssl", "_hashlib", "_ctypes", "_sqlite3", "pyexpat", "_decimal", "_lzma", "_bz2", "zlib",
    "_curses", "readline", "_uuid",
)  # fmt: skip
SITE_MODULES = ("markupsafe._speedups", "yaml._yaml", "pydantic_core._pydantic_core", "ast_serialize")
LAB_MODULES = ("_ssl", "_hashlib", "_ctypes", "_sqlite3", "pyexpat", "_decimal", "_lzma", "_bz2", "zlib")

Inode = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Comparison:
    predicted: frozenset[Inode]  # objects the model predicts for the extensions
    mapped: frozenset[Inode]  # every file the real process maps
    reachable: frozenset[Inode]  # mapped objects reachable from the extensions through DT_NEEDED
    names: dict[Inode, str]

    def describe(self, inodes: frozenset[Inode]) -> list[str]:
        return sorted(self.names.get(inode, str(inode)) for inode in inodes)


def inode(path: str) -> Inode | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def mapped_files(
    python: str, modules: Sequence[str], sys_path: Sequence[str], env: Mapping[str, str]
) -> list[str]:
    """Run ``python``, import ``modules`` (with ``sys_path`` in front) and return the mapped file paths."""
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = {list(sys_path)!r}\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "sys.stdout.write(open('/proc/self/maps').read())\n"
    )
    run = subprocess.run(
        [python, "-I", "-c", code], env=dict(env), capture_output=True, text=True, check=True
    )
    paths = []
    for line in run.stdout.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/") and not fields[5].endswith("(deleted)"):
            paths.append(fields[5])
    return sorted(set(paths))


def reachable_in_maps(paths: Sequence[str], roots: Sequence[str]) -> set[str]:
    """Mapped objects reachable from ``roots`` through DT_NEEDED, names matched among mapped files."""
    by_name: dict[str, str] = {}
    facts = {path: read_elf(path) for path in paths}
    for path, fact in facts.items():
        if fact.ok:
            by_name.setdefault(os.path.basename(path), path)
            if fact.soname:
                by_name.setdefault(fact.soname, path)
    seen = set(roots)
    queue = list(roots)
    while queue:
        for name in read_elf(queue.pop(0)).needed:
            found = by_name.get(name)
            if found is not None and found not in seen:
                seen.add(found)
                queue.append(found)
    return seen


def compare(
    target: Target, modules: Sequence[str], sys_path: Sequence[str], env: Mapping[str, str]
) -> Comparison:
    graph = simulate(target, env=env)
    extension_nodes = [ext.path for ext in target.extensions]
    reached: set[str] = set(extension_nodes)
    for node in extension_nodes:
        reached |= nx.descendants(graph, node)
    reached = {node for node in reached if graph.nodes[node]["role"] != Role.MISSING}
    paths = mapped_files(target.executable, modules, sys_path, env)
    mapped_by_inode = {key: path for path in paths if (key := inode(path)) is not None}
    ext_inodes = {inode(path) for path in extension_nodes}
    roots = [path for key, path in mapped_by_inode.items() if key in ext_inodes]
    reachable = reachable_in_maps(list(mapped_by_inode.values()), roots)
    names = {key: path for path in [*reached, *paths] if (key := inode(path)) is not None}
    return Comparison(
        predicted=frozenset(key for node in reached if (key := inode(node)) is not None),
        mapped=frozenset(mapped_by_inode),
        reachable=frozenset(key for path in reachable if (key := inode(path)) is not None),
        names=names,
    )


def extension_of(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        return None
    return spec.origin


def assert_same(result: Comparison) -> None:
    unmapped = result.predicted - result.mapped
    unpredicted = result.reachable - result.predicted
    assert not unmapped, f"predicted but not mapped: {result.describe(unmapped)}"
    assert not unpredicted, f"mapped through DT_NEEDED but not predicted: {result.describe(unpredicted)}"
    assert result.predicted == result.reachable


def test_the_machines_python_maps_what_core_predicts_for_its_extensions() -> None:
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    modules = [module for module in (*STANDARD_MODULES, *SITE_MODULES) if extension_of(module)]
    assert len(modules) >= 8, modules
    caller = next((name for name in read_elf(python).needed if name.startswith("libpython")), None)
    extensions = tuple(Extension(str(extension_of(module)), module, caller) for module in modules)
    target = Target("python", python, python, extensions)
    site = sysconfig.get_paths()["purelib"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    result = compare(target, modules, [site], env)
    assert_same(result)
    assert len(result.predicted) > len(modules)


@pytest.mark.lab
def test_the_lab_python_hard_wired_to_glibc_2_31_maps_what_core_predicts(lab: Lab) -> None:
    dynload = Path(lab.python_dynload)
    modules = [m for m in LAB_MODULES if any(dynload.glob(f"{m}.cpython-*.so"))]
    extensions = [
        Extension(str(next(dynload.glob(f"{module}.cpython-*.so"))), module, None) for module in modules
    ]
    extensions.append(Extension(str(lab.extensions["ext_clean"]), "ext_clean", None))
    target = Target("python", str(lab.python), str(lab.python), tuple(extensions))
    result = compare(target, [*modules, "ext_clean"], [str(lab.site_packages)], lab.environ())
    assert_same(result)
    glibc_old = {inode(str(lab.glibc_old_lib / "libc.so.6"))}
    assert glibc_old <= result.predicted


@pytest.mark.lab
def test_the_lab_pythons_version_error_names_the_libc_core_predicts(lab: Lab) -> None:
    extension = lab.extensions["ext_pthread"]
    target = Target("python", str(lab.python), str(lab.python), (Extension(str(extension), "ext_pthread"),))
    graph = simulate(target, env=lab.environ())
    libc = next(
        node
        for node in graph.successors(str(extension))
        if graph.edges[str(extension), node]["needed"] == "libc.so.6"
    )
    code = f"import sys; sys.path.insert(0, {str(lab.site_packages)!r}); import ext_pthread"
    run = subprocess.run(
        [str(lab.python), "-I", "-c", code], env=lab.environ(), capture_output=True, text=True
    )
    assert run.returncode != 0
    assert f"{libc}: version `GLIBC_2.34' not found (required by {extension})" in run.stderr
