"""core/ never imports a terminal library: each module is imported alone in a fresh interpreter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages([str(CORE)], prefix="glibc_doctor.core.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)
PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
leaked = sorted(name for name in ("textual", "rich") if name in sys.modules)
print(",".join(leaked))
"""


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_neither_textual_nor_rich(module: str) -> None:
    run = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ""


def test_the_scan_cache_imports_only_the_standard_library() -> None:
    probe = (
        "import sys; import glibc_doctor.core.scancache; "
        "print(','.join(m for m in ('networkx', 'elftools', 'rich', 'textual') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""
