"""Snapshots of every screen on the real lab case, at fixed terminal sizes.

Paths are shown through aliases (``$LAB``, ``$STORE/<name>``, ``$TMP``) so nothing machine-specific is
photographed but the machine's own glibc (``/lib/x86_64-linux-gnu``, the stdenv). Regenerate with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.app import DoctorApp
from glibc_doctor.tui.screens import engine
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from tests.tui.test_app import aliases, copy_venv, imports, settle

pytestmark = pytest.mark.lab
SIZE = (100, 30)


def lab_app(lab: Lab, tmp_path: Path, target: Path | None = None, **extra: str) -> DoctorApp:
    return DoctorApp(str(target or lab.venv), path_aliases={**aliases(lab, tmp_path), **extra})


async def just_settle(pilot: Pilot[Any]) -> None:
    await settle(pilot)


def pressing(*keys: str) -> Any:
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


@pytest.fixture
def private_venv(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    return copy_venv(lab, tmp_path)


def build_alias(venv: Path) -> dict[str, str]:
    """The patched copy's and the glibc view's directories hold hashes of the stdenv fingerprint:
    show them as names."""
    from glibc_doctor.core.scan import scan

    plan = engine.prepare_fix(scan(str(venv), use_cache=False)).plan
    return {plan.destination: "$DATA/packages/python3.9-<build>", plan.view.root: "$DATA/glibc/<stdenv>"}


def test_start_screen(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any) -> None:
    copy_venv(lab, tmp_path).rename(tmp_path / ".venv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    app = DoctorApp(None, path_aliases=aliases(lab, tmp_path))
    assert snap_compare(app, terminal_size=SIZE, run_before=just_settle)


def test_main_screen_with_the_failing_extension_selected(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=just_settle)


def test_main_screen_at_80x24(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=(80, 24), run_before=just_settle)


def test_conflicts_table(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=pressing("2"))


def test_graph_view(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=pressing("g"))


def test_conflicts_only_tree(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=pressing("c"))


def test_explain_screen_with_a_pasted_message(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    message = imports(lab.venv, "ext_pthread", lab).stderr

    async def paste(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("e")
        pilot.app.screen.query_one("#message", TextArea).text = message
        await pilot.press("ctrl+s")
        await settle(pilot)
        pilot.app.screen.query_one("#command", Input).focus()
        await settle(pilot)

    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=paste)


def test_help_screen(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(lab_app(lab, tmp_path), terminal_size=SIZE, run_before=pressing("question_mark"))


def test_error_modal(tmp_path: Path, snap_compare: Any) -> None:
    app = DoctorApp(str(tmp_path / "nowhere"), path_aliases={str(tmp_path): "$TMP"})
    assert snap_compare(app, terminal_size=SIZE, run_before=just_settle)


def test_fix_plan_screen(lab: Lab, tmp_path: Path, private_venv: Path, snap_compare: Any) -> None:
    app = lab_app(lab, tmp_path, private_venv, **build_alias(private_venv))
    assert snap_compare(app, terminal_size=SIZE, run_before=pressing("f"))


def test_fix_result_screen(lab: Lab, tmp_path: Path, private_venv: Path, snap_compare: Any) -> None:
    app = lab_app(lab, tmp_path, private_venv, **build_alias(private_venv))
    assert snap_compare(app, terminal_size=SIZE, run_before=pressing("f", "enter"))


def test_programs_screen(lab: Lab, tmp_path: Path, snap_compare: Any) -> None:
    """``glibc-doctor audit $LAB --tui``: every program of the lab, worst first."""
    app = DoctorApp(audit=[str(lab.root)], path_aliases=aliases(lab, tmp_path))
    assert snap_compare(app, terminal_size=SIZE, run_before=just_settle)
