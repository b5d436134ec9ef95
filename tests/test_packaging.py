"""The package mapping in pyproject.toml ships every package folder, and core stays apart from the lab."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "glibc_doctor.core", "lab": "glibc_doctor.lab", "tui": "glibc_doctor.tui"}


def _package_folders() -> set[str]:
    """Every folder that ships: a Python package (``__init__.py``) or a folder of package data (the
    lab's C sources), which setuptools also wants listed."""
    names = set()
    for folder, package in FOLDERS.items():
        for directory in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if not directory.is_dir() or directory.name == "__pycache__":
                continue
            if not any(child.is_file() for child in directory.iterdir()):
                continue
            relative = directory.relative_to(ROOT / folder)
            names.add(".".join([package, *relative.parts]))
    return names


def test_every_package_folder_is_listed_for_the_normal_install() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert _package_folders() == listed


def test_no_core_module_imports_the_lab() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "core").rglob("*.py")
        if "glibc_doctor.lab" in path.read_text()
    ]
    assert importers == []


def test_the_lab_imports_without_textual_or_rich() -> None:
    probe = (
        "import sys, glibc_doctor.lab.build; "
        "print(','.join(m for m in ('rich', 'textual') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""
