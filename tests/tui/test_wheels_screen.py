"""The wheels screen on the real lab: ``w`` on the main screen checks the target's pip cache (a cache of
real wheels built by this machine's gcc), ``p`` purges the failing ones after a confirmation; one
snapshot of the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.app import DoctorApp
from glibc_doctor.tui.screens.main import MainScreen
from glibc_doctor.tui.screens.modals import ConfirmScreen
from glibc_doctor.tui.screens.wheels import WheelsScreen
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.tui.test_app import aliases, settle, text_of
from tests.wheelbuild import BuiltWheels, pip_cache_of

pytestmark = pytest.mark.lab
SIZE = (100, 30)
FAILING = {"pthreadpkg", "strlcpypkg", "vendoredpkg", "manylinuxpkg"}


@pytest.fixture
def cache(lab_test_wheels: BuiltWheels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's test wheels in a pip cache that the environment names; private XDG dirs."""
    found = pip_cache_of(tmp_path / "pip-cache", list(lab_test_wheels.files.values()))
    monkeypatch.setenv("PIP_CACHE_DIR", str(found))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("PIP_NO_CACHE_DIR", raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    return found


def cached_names(cache: Path) -> set[str]:
    return {path.name.split("-")[0] for path in cache.rglob("*.whl")}


async def open_wheels(pilot: Pilot[Any]) -> WheelsScreen:
    await settle(pilot)
    await pilot.press("w")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, WheelsScreen), f"expected the wheels screen, got {screen!r}"
    return screen


async def test_w_lists_the_cached_wheels_the_failing_ones_first(
    lab: Lab, cache: Path, tmp_path: Path
) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_wheels(pilot)
        assert screen.report is not None
        table = screen.query_one("#wheels", DataTable)
        assert table.row_count == 6
        names = [str(table.get_row_at(index)[0]).split()[0] for index in range(table.row_count)]
        assert set(names[:4]) == FAILING
        summary = text_of(screen.query_one("#wheels-summary", Static))
        assert "4 of 6 wheels in pip's cache would break python3.9 (glibc 2.31)" in " ".join(summary.split())
        assert "$TMP/pip-cache" in summary


async def test_the_details_follow_the_highlighted_wheel(lab: Lab, cache: Path, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_wheels(pilot)
        table = screen.query_one("#wheels", DataTable)
        row = next(i for i in range(table.row_count) if str(table.get_row_at(i)[0]).startswith("strlcpypkg"))
        table.move_cursor(row=row)
        await settle(pilot)
        details = text_of(screen.query_one("#wheel-details", Static))
        assert "strlcpypkg/_core.cpython-39-x86_64-linux-gnu.so: needs GLIBC_2.38 from libc.so.6" in details
        assert "(strlcpy)" in details


async def test_p_asks_first_and_no_keeps_the_cache(lab: Lab, cache: Path, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_wheels(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Remove 4 failing wheels from pip's cache?"
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, WheelsScreen)
        assert cached_names(cache) == FAILING | {"cleanpkg", "purepkg"}


async def test_p_then_yes_removes_exactly_the_failing_wheels_and_checks_again(
    lab: Lab, cache: Path, tmp_path: Path
) -> None:
    everything = {path for path in cache.rglob("*") if path.is_file()}
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_wheels(pilot)
        doomed = {Path(check.path) for check in screen.report.purgeable()} if screen.report else set()
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert cached_names(cache) == {"cleanpkg", "purepkg"}
        assert {path for path in cache.rglob("*") if path.is_file()} == everything - doomed
        assert screen.report is not None
        assert screen.report.failing == ()
        assert screen.query_one("#wheels", DataTable).row_count == 2


async def test_escape_goes_back_to_the_main_screen(lab: Lab, cache: Path, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_wheels(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)


def test_wheels_screen(lab: Lab, cache: Path, tmp_path: Path, snap_compare: Any) -> None:
    """``w`` on the lab venv: the wheels of its pip cache, the failing ones first, the first one's details."""
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_wheels(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
