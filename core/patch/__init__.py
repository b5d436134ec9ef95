"""The fix: plan (pure) -> build (staging dir, patchelf) -> verify (run + rescan) -> activate -> manifest.

The names below are loaded on first use: ``core/store.py`` imports ``core.patch.manifest`` on
``ensure``'s fast path, and that must not import patchelf, ELF or scan machinery with it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from glibc_doctor.core.patch.plan import FixPlan, plan_fix
    from glibc_doctor.core.patch.run import FixProgress, FixResult, run_fix

__all__ = ["FixPlan", "FixProgress", "FixResult", "plan_fix", "run_fix"]

_HOMES = {
    "FixPlan": "plan",
    "plan_fix": "plan",
    "FixProgress": "run",
    "FixResult": "run",
    "run_fix": "run",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
