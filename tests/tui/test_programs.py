"""Pilot tests of the programs screen (``glibc-doctor audit DIR --tui``) on the real lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.app import DoctorApp
from glibc_doctor.tui.screens.main import MainScreen
from glibc_doctor.tui.screens.modals import ErrorScreen
from glibc_doctor.tui.screens.programs import ProgramsScreen
from glibc_doctor.tui.widgets.panes import ConflictsTable
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.tui.test_app import aliases, settle

SIZE = (120, 40)
pytestmark = pytest.mark.lab


def programs_screen(pilot: Pilot[Any]) -> ProgramsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ProgramsScreen), f"expected the programs screen, got {screen!r}"
    return screen


def audit_app(lab: Lab, tmp_path: Path) -> DoctorApp:
    return DoctorApp(audit=[str(lab.root)], path_aliases=aliases(lab, tmp_path))


async def test_the_audit_lists_every_program_worst_first(lab: Lab, tmp_path: Path) -> None:
    async with audit_app(lab, tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = programs_screen(pilot)
        assert screen.result is not None
        table = screen.query_one("#programs", DataTable)
        assert table.row_count == len(screen.result.programs) >= 3
        first = screen.highlighted
        assert first is not None
        assert first.result.target.environment == str(lab.venv)  # the venv has the most conflicts
        assert str(table.get_row_at(0)[0]).startswith("$LAB/venv")
        summary = str(screen.query_one("#programs-summary", Static).render())
        assert "with conflicts" in summary
        assert "$LAB" in summary


async def test_enter_opens_the_programs_scan_and_escape_comes_back(lab: Lab, tmp_path: Path) -> None:
    async with audit_app(lab, tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        chosen = programs_screen(pilot).highlighted
        assert chosen is not None
        await pilot.press("enter")
        await settle(pilot)
        main = pilot.app.screen
        assert isinstance(main, MainScreen)
        assert main.result is chosen.result  # the audit's own scan: no second scan, the same records
        assert main.query_one(ConflictsTable).row_count == len(chosen.result.conflicts)
        await pilot.press("escape")
        await settle(pilot)
        assert programs_screen(pilot).highlighted is chosen


async def test_r_audits_again(lab: Lab, tmp_path: Path) -> None:
    async with audit_app(lab, tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = programs_screen(pilot).result
        await pilot.press("r")
        await settle(pilot)
        after = programs_screen(pilot).result
        assert after is not None
        assert after is not before
        assert [p.program for p in after.programs] == [p.program for p in before.programs]  # type: ignore[union-attr]


async def test_escape_cancels_a_running_audit(tmp_path: Path) -> None:
    """/usr/bin takes seconds to audit: Escape right after the start stops it between two programs."""
    app = DoctorApp(audit=["/usr/bin"], path_aliases={str(tmp_path): "$TMP"})
    async with app.run_test(size=SIZE) as pilot:
        screen = programs_screen(pilot)
        await pilot.pause()
        await pilot.press("escape")
        await settle(pilot)
        assert screen.result is None
        assert "cancelled" in str(screen.query_one("#audit-step").render())


async def test_a_path_that_does_not_exist_is_a_one_line_error(tmp_path: Path) -> None:
    app = DoctorApp(audit=[str(tmp_path / "nowhere")], path_aliases={str(tmp_path): "$TMP"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        modal = pilot.app.screen
        assert isinstance(modal, ErrorScreen)
        assert modal.title_text == "The audit failed"
        assert modal.cause == "$TMP/nowhere: no such file or directory; give a directory or a program"
