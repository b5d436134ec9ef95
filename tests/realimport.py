"""The scan's verdict for every listed extension against a real import of it by its name.

The interpreter itself is run (clean environment, empty working directory, python ``-I``) and, for each
extension in the target's order:

- ``origin``: the file its name resolves to through the real finders (python: ``PathFinder`` over
  ``sys.path`` and each parent's ``__path__``, parents stubbed so none of their code runs; ruby:
  ``$LOAD_PATH.resolve_feature_path`` of the ``.so`` feature). It must be the listed file.
- ``imported``: ``importlib.import_module(name)`` (ruby: ``require``) succeeded.
- ``mapped``: the file is in ``/proc/self/maps`` at the end. Python never unloads an extension, and ld.so
  unmaps what a failed dlopen() mapped, so this is the real loader's own verdict on the file. When the
  import by name failed before reaching the file (a parent package that fails), the probe loads the
  spec the finders gave, so the loader still answers for it.

The scan's verdict (``analysis.extension_errors``, what the report's rows say) must equal ``mapped`` for
each extension; an import that fails although the scan says the file loads must fail for a reason the
scan names elsewhere (a parent package importing an extension the scan says cannot load) or for a pure
Python module the environment lacks (``tkinter``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glibc_doctor.core.analysis import extension_errors
from glibc_doctor.core.scan import ScanResult

MARK = "@@glibc-doctor-probe@@"

PYTHON_PROBE = r"""
import importlib, importlib.machinery, importlib.util, json, os, sys, traceback, types

def find(name):
    path, spec, placed = None, None, []
    parts = name.split(".")
    try:
        for i in range(len(parts)):
            full = ".".join(parts[: i + 1])
            if i == 0 and importlib.machinery.BuiltinImporter.find_spec(full) is not None:
                return None
            spec = importlib.machinery.PathFinder.find_spec(full, path)
            if spec is None:
                return None
            locations = spec.submodule_search_locations
            path = list(getattr(locations, "_path", locations or []))
            if full not in sys.modules:
                stub = types.ModuleType(full)
                stub.__path__ = path
                sys.modules[full] = stub
                placed.append(full)
        return spec
    finally:
        for full in placed:
            del sys.modules[full]

def failure(error):
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))

rows = {}
for name, path in json.loads(sys.argv[1]):
    spec = find(name)
    row = {"origin": spec.origin if spec is not None else None}
    try:
        importlib.import_module(name)
        row["imported"], row["error"] = True, ""
    except BaseException as error:
        row["imported"], row["error"] = False, failure(error)
        if spec is not None and spec.origin == path:
            try:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            except BaseException as again:
                row["error"] += "\n(loaded alone) " + failure(again)
    rows[path] = row
maps = set()
for line in open("/proc/self/maps"):
    fields = line.split(None, 5)
    if len(fields) == 6 and fields[5].startswith("/"):
        maps.add(fields[5].rstrip("\n"))
inodes = set()
for mapped in maps:
    try:
        info = os.stat(mapped)
    except OSError:
        continue
    inodes.add((info.st_dev, info.st_ino))
for path, row in rows.items():
    info = os.stat(path)
    row["mapped"] = (info.st_dev, info.st_ino) in inodes
print("@@glibc-doctor-probe@@" + json.dumps(rows))
"""

RUBY_PROBE = r"""
require "json"
rows = {}
JSON.parse(ARGV[0]).each do |name, path|
  found = begin
    $LOAD_PATH.resolve_feature_path(name + ".so")
  rescue LoadError
    nil
  end
  row = {"origin" => (found ? found[1] : nil)}
  begin
    require(name + ".so")
    row["imported"], row["error"] = true, ""
  rescue ScriptError, StandardError => error
    row["imported"], row["error"] = false, "#{error.class}: #{error.message}"
  end
  rows[path] = row
end
inodes = File.readlines("/proc/self/maps").map { |line| line.split[5] }.compact
  .select { |path| path.start_with?("/") }.uniq
  .map { |path| s = File.stat(path) rescue nil; s && [s.dev, s.ino] }.compact
rows.each { |path, row| s = File.stat(path); row["mapped"] = inodes.include?([s.dev, s.ino]) }
puts "@@glibc-doctor-probe@@" + JSON.generate(rows)
"""


@dataclass(frozen=True, slots=True)
class RealImport:
    origin: str | None
    imported: bool
    mapped: bool
    error: str


def real_imports(
    result: ScanResult, interpreter: Path, env: Mapping[str, str], cwd: Path
) -> dict[str, RealImport]:
    """Each listed extension's path -> what the real interpreter did importing it by its name."""
    pairs = json.dumps([(extension.name, extension.path) for extension in result.target.extensions])
    if result.target.kind == "ruby":
        argv = [str(interpreter), "-e", RUBY_PROBE, pairs]
    else:
        argv = [str(interpreter), "-I", "-c", PYTHON_PROBE, pairs]
    run = subprocess.run(
        argv, capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=240, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert MARK in run.stdout, run.stdout[-3000:]
    rows = json.loads(run.stdout.rsplit(MARK, 1)[1])
    return {path: RealImport(**row) for path, row in rows.items()}


LOADER_ERROR = re.compile(r"version `(?P<version>[^']+)' not found \(required by (?P<object>[^)]+)\)")
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '(?P<name>[^']+)'")


def mismatches(result: ScanResult, real: Mapping[str, RealImport]) -> list[str]:
    """Every disagreement between the scan and the real imports, as lines naming the extension."""
    blocking = extension_errors(result.graph, result.conflicts)
    predicted = {(c.version, c.object) for c in result.errors}
    names = {extension.name for extension in result.target.extensions}
    lines = []
    for extension in result.target.extensions:
        seen = real[extension.path]
        loads = extension.path not in blocking
        if seen.origin != extension.path:
            lines.append(f"{extension.name}: the import system finds {seen.origin}, not {extension.path}")
        if loads != seen.mapped:
            says = "loads" if loads else f"cannot load ({blocking[extension.path][0].message})"
            lines.append(f"{extension.name}: the scan says it {says}; the real loader mapped={seen.mapped}")
        if loads and not seen.imported and not _explained(seen.error, predicted, names):
            lines.append(f"{extension.name}: the scan says it loads; its import failed: {seen.error[-400:]}")
    return lines


def _explained(error: str, predicted: set[tuple[str, str]], names: set[str]) -> bool:
    """A failure the scan accounts for: another object's refusal it predicted, or a pure-Python module
    the environment lacks (no extension of that name is listed)."""
    refused = [(m["version"], m["object"]) for m in LOADER_ERROR.finditer(error)]
    if refused:
        return all(pair in predicted for pair in refused)
    missing = [m["name"] for m in MISSING_MODULE.finditer(error)]
    return bool(missing) and not any(name in names for name in missing)


def assert_scan_is_the_real_import(
    result: ScanResult, interpreter: Path, env: Mapping[str, str], cwd: Path
) -> dict[str, RealImport]:
    """The comparison itself; returns the real imports for further assertions."""
    os.makedirs(cwd, exist_ok=True)
    real = real_imports(result, interpreter, env, cwd)
    assert set(real) == {extension.path for extension in result.target.extensions}
    lines = mismatches(result, real)
    assert not lines, "\n".join(lines)
    return real
