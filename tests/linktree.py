"""Which source files the installed ``glibc_doctor`` does not have (a stale strict editable install).

setuptools' strict editable mode links each file of the package folders into ``build/__editable__.*``
when ``pip install -e`` runs; a module added later is not there until the next install. The default
(import hook) mode and a normal install are not checked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("core", "lab", "tui")


def missing_from_install() -> list[str]:
    spec = importlib.util.find_spec("glibc_doctor.core")
    if spec is None or not spec.submodule_search_locations:
        return []
    installed = Path(next(iter(spec.submodule_search_locations))).parent
    if "__editable__" not in installed.parent.name:
        return []
    return [
        str(path.relative_to(ROOT))
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not (installed / folder / path.relative_to(ROOT / folder)).exists()
    ]
