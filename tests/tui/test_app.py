"""Pilot tests of the TUI on the real lab: one per binding and per flow, asserting on what the app holds.

The lab venv (an old python hard-wired to glibc 2.31, extensions built by this machine's gcc) is copied
per test that changes it (fix, rollback), with XDG_DATA_HOME/XDG_CACHE_HOME in tmp_path, so the shared
lab stays broken for the other tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from glibc_doctor.lab.arm64 import Arm64Lab
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.app import DoctorApp
from glibc_doctor.tui.cli.demo import lab_path_aliases
from glibc_doctor.tui.screens.explain import ExplainScreen
from glibc_doctor.tui.screens.fix import FixPlanScreen, FixProgressScreen, FixResultScreen
from glibc_doctor.tui.screens.main import MainScreen
from glibc_doctor.tui.screens.modals import ConfirmScreen, ErrorScreen, HelpScreen
from glibc_doctor.tui.screens.start import StartScreen
from glibc_doctor.tui.widgets.describe import PathNamer
from glibc_doctor.tui.widgets.graph_view import Box, GraphView, Picture, draw
from glibc_doctor.tui.widgets.panes import ConflictsTable, DetailsPane, SummaryBar
from glibc_doctor.tui.widgets.process_tree import ProcessTree
from textual.pilot import Pilot
from textual.widgets import Input, Label, RichLog, Static, TextArea

SIZE = (120, 40)
pytestmark = pytest.mark.lab


# --- helpers shared with test_snapshots.py --------------------------------------------------------


async def settle(pilot: Pilot[Any]) -> None:
    """Let every worker finish and every message be handled (workers may start workers)."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def copy_venv(lab: Lab, where: Path) -> Path:
    """A private copy of the lab venv (its python links stay absolute into the lab store)."""
    venv = where / "venv"
    shutil.copytree(lab.venv, venv, symlinks=True)
    return venv


def imports(venv: Path, module: str, lab: Lab) -> subprocess.CompletedProcess[str]:
    """Import ``module`` with the venv's own python, for real."""
    python = venv / "bin" / "python3.9"
    return subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=lab.environ(),
        check=False,
    )


def aliases(lab: Lab, tmp_path: Path) -> dict[str, str]:
    return {**lab_path_aliases(lab), str(tmp_path): "$TMP"}


def text_of(widget: Static) -> str:
    return str(widget.render())


def main_screen(pilot: Pilot[Any]) -> MainScreen:
    screen = pilot.app.screen
    assert isinstance(screen, MainScreen), f"expected the main screen, got {screen!r}"
    return screen


def conflict_versions(screen: MainScreen) -> set[tuple[str, str | None]]:
    return {(Path(c.object).name.split(".")[0], c.version) for c in screen.result.conflicts}


@pytest.fixture
def private_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lab: Lab) -> Path:
    """XDG dirs in tmp_path (patched copies, manifests, caches) and a clean environment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# --- the main screen on the lab venv ----------------------------------------------------------------


async def test_the_lab_venv_opens_on_its_glibc_2_34_conflict(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        assert ("ext_pthread", "GLIBC_2.34") in conflict_versions(screen)
        assert screen.query_one(SummaryBar).has_class("-bad")
        assert "2.31" in text_of(screen.query_one(SummaryBar))
        assert screen.query_one(ConflictsTable).row_count == len(screen.result.conflicts)


async def test_the_nearest_failing_extension_is_selected_with_its_details(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        assert screen.selected is not None
        assert Path(screen.selected).name.startswith("ext_pthread")
        details = text_of(screen.query_one("#details-text", Static))
        assert "GLIBC_2.34" in details
        assert "pthread_create" in details
        assert "$LAB/venv/lib/python3.9/site-packages/ext_pthread" in details


async def test_moving_the_tree_cursor_shows_that_nodes_details(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        tree = screen.query_one(ProcessTree)
        tree.focus()
        tree.move_cursor(tree.root.children[0])
        await settle(pilot)
        assert screen.selected == str(lab.python)
        details = text_of(screen.query_one("#details-text", Static))
        assert "interpreter" in details
        assert "$STORE/glibc-2.31/lib/ld-linux-x86-64.so.2" in details


async def test_enter_on_a_conflict_row_jumps_to_its_object(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        await pilot.press("2")
        table = screen.query_one(ConflictsTable)
        assert table.has_focus
        last = table.row_count - 1
        table.move_cursor(row=last)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.selected == screen.result.conflicts[last].object
        assert screen.query_one("#tabs").active == "tab-process"
        assert screen.query_one(ProcessTree).cursor_node.data == screen.selected


async def test_slash_filters_the_tree_by_text(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        everything = len(screen.query_one(ProcessTree).shown_nodes)
        await pilot.press("slash")
        assert screen.query_one("#filter", Input).has_focus
        await pilot.press(*"strlcpy")
        await settle(pilot)
        shown = screen.query_one(ProcessTree).shown_nodes
        assert any("ext_strlcpy" in node for node in shown)
        assert len(shown) < everything
        assert all("strlcpy" in node or node == str(lab.python) for node in shown)


async def test_c_keeps_only_the_conflicting_objects_and_their_chains(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        await pilot.press("c")
        await settle(pilot)
        shown = set(screen.query_one(ProcessTree).shown_nodes)
        objects = {c.object for c in screen.result.conflicts}
        assert objects <= shown
        assert not any("ext_clean" in node for node in shown)
        await pilot.press("c")
        await settle(pilot)
        assert any("ext_clean" in node for node in screen.query_one(ProcessTree).shown_nodes)


async def test_g_draws_the_graph_with_the_conflicting_extension_boxed(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert screen.query_one("#tabs").active == "tab-graph"
        drawing = text_of(screen.query_one(GraphView).query_one("#graph-drawing", Static))
        assert "ext_pthread.so" in drawing
        assert "glibc 2.31" in drawing
        assert "✗ GLIBC_2.34" in drawing
        assert "▼" in drawing


async def test_r_rescans_and_keeps_the_selection(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        before, selected = screen.result, screen.selected
        await pilot.press("r")
        await settle(pilot)
        assert screen.result is not before
        assert screen.selected == selected
        assert conflict_versions(screen) == {
            (Path(c.object).name.split(".")[0], c.version) for c in before.conflicts
        }


async def test_question_mark_opens_the_help_and_escape_closes_it(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_ctrl_t_switches_between_light_and_dark(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dark = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != dark
        await pilot.press("ctrl+t")
        assert app.theme == dark


async def test_q_quits(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_a_target_that_does_not_exist_shows_its_one_line_cause(tmp_path: Path) -> None:
    app = DoctorApp(str(tmp_path / "nowhere"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert "nowhere" in app.screen.cause
        assert "\n" not in app.screen.cause
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


# --- start ---------------------------------------------------------------------------------------------


async def test_the_start_screen_offers_the_venv_in_the_current_directory(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = copy_venv(lab, tmp_path)
    venv.rename(tmp_path / ".venv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    app = DoctorApp(None, path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, StartScreen)
        await settle(pilot)
        options = app.screen.query_one("#candidates")
        assert options.option_count == 1
        assert "glibc 2.31" in str(options.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await settle(pilot)
        screen = main_screen(pilot)
        assert ("ext_pthread", "GLIBC_2.34") in conflict_versions(screen)


async def test_a_typed_path_opens_the_main_screen_on_it(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(None, path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        app.screen.query_one("#path", Input).value = str(lab.venv)
        await pilot.press("enter")
        await settle(pilot)
        assert main_screen(pilot).spec == str(lab.venv)


# --- explain ---------------------------------------------------------------------------------------------


async def test_explaining_a_pasted_message_highlights_the_objects_it_names(lab: Lab, tmp_path: Path) -> None:
    failed = imports(lab.venv, "ext_pthread", lab)
    assert failed.returncode != 0
    assert "GLIBC_2.34" in failed.stderr
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, ExplainScreen)
        app.screen.query_one("#message", TextArea).text = failed.stderr
        await pilot.press("ctrl+s")
        await settle(pilot)
        explanation = text_of(app.screen.query_one("#explanation", Static))
        assert "GLIBC_2.34" in explanation
        assert "ext_pthread" in explanation
        await pilot.press("escape")
        await settle(pilot)
        screen = main_screen(pilot)
        assert any("ext_pthread" in node for node in screen.highlighted)
        assert "ext_pthread" in screen.selected


# --- fix, cancel, rollback ---------------------------------------------------------------------------


async def test_escape_on_the_plan_cancels_and_changes_nothing(lab: Lab, private_env: Path) -> None:
    venv = copy_venv(lab, private_env)
    before = (venv / "pyvenv.cfg").read_text()
    app = DoctorApp(str(venv), path_aliases=aliases(lab, private_env))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FixPlanScreen)
        plan = text_of(app.screen.query_one("#plan-text", Static))
        assert "$STORE/glibc-2.31" in plan
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert (venv / "pyvenv.cfg").read_text() == before
    assert imports(venv, "ext_pthread", lab).returncode != 0
    assert not (private_env / "data" / "glibc-doctor").exists() or not any(
        (private_env / "data" / "glibc-doctor").rglob("*.so*")
    )


async def test_f_then_enter_fixes_the_venv_for_real_and_u_rolls_it_back(lab: Lab, private_env: Path) -> None:
    venv = copy_venv(lab, private_env)
    app = DoctorApp(str(venv), path_aliases=aliases(lab, private_env))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FixPlanScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FixResultScreen), app.screen
        result = text_of(app.screen.query_one("#fix-result-text", Static))
        assert "verified" in result.lower()
        assert imports(venv, "ext_pthread", lab).returncode == 0
        await pilot.press("escape")
        await settle(pilot)
        screen = main_screen(pilot)
        assert ("ext_pthread", "GLIBC_2.34") not in conflict_versions(screen)
        await pilot.press("u")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert ("ext_pthread", "GLIBC_2.34") in conflict_versions(main_screen(pilot))
    assert imports(venv, "ext_pthread", lab).returncode != 0


async def test_the_details_pane_scrolls_back_to_the_top_for_each_node(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        pane = screen.query_one(DetailsPane)
        pane.scroll_end(animate=False)
        await pilot.press("2", "enter")
        await settle(pilot)
        assert pane.scroll_y == 0


async def test_escape_while_the_fix_runs_cancels_it_and_leaves_the_venv_broken(
    lab: Lab, private_env: Path
) -> None:
    venv = copy_venv(lab, private_env)
    before = (venv / "pyvenv.cfg").read_text()
    app = DoctorApp(str(venv), path_aliases=aliases(lab, private_env))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        app.simulate_key("enter")  # Enter then Escape at once, before the build gets far
        await pilot.press("escape")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FixProgressScreen)
        assert screen.finished
        log = "\n".join(str(line.text) for line in screen.query_one(RichLog).lines)
        assert "Cancelled: nothing was changed" in log
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert (venv / "pyvenv.cfg").read_text() == before
    assert imports(venv, "ext_pthread", lab).returncode != 0


async def test_the_command_palette_offers_the_fix(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"conflicts only")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        screen = main_screen(pilot)
        assert screen.conflicts_only
        assert not any("ext_clean" in node for node in screen.query_one(ProcessTree).shown_nodes)


async def test_escape_during_a_scan_cancels_it(lab: Lab, tmp_path: Path) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        await settle(pilot)
        screen = main_screen(pilot)
        if screen.result is None:  # the scan was still running when Escape arrived
            assert "cancelled" in str(screen.query_one("#scan-step", Label).render())
        await pilot.press("r")
        await settle(pilot)
        assert screen.result is not None


# --- pure rendering ----------------------------------------------------------------------------------


def test_the_drawing_boxes_every_node_and_points_an_arrow_at_each_target() -> None:
    boxes = {name: Box((name,)) for name in ("python", "ext", "libz", "glibc")}
    edges = (("python", "ext", ""), ("python", "libz", ""), ("ext", "glibc", "red"), ("libz", "glibc", ""))
    lines = draw(Picture(boxes, edges, "python")).plain.splitlines()
    rows = {name: next(i for i, line in enumerate(lines) if f"│ {name} │" in line) for name in boxes}
    assert rows["python"] < rows["ext"] == rows["libz"] < rows["glibc"]
    arrows = sum(line.count("▼") for line in lines)
    assert arrows == 3  # ext, libz, glibc (two edges into glibc share one arrow)


def test_a_long_edge_passes_beside_the_middle_layer_instead_of_through_a_box() -> None:
    boxes = {name: Box((name,)) for name in ("python", "ext", "glibc")}
    edges = (("python", "ext", ""), ("ext", "glibc", ""), ("python", "glibc", ""))
    lines = draw(Picture(boxes, edges, "python")).plain.splitlines()
    middle = next(line for line in lines if "│ ext │" in line)
    assert middle.count("│") == 3  # the ext box's two sides and the python -> glibc line beside it


def test_a_cycle_still_draws_every_box() -> None:
    boxes = {name: Box((name,)) for name in ("a", "b")}
    text = draw(Picture(boxes, (("a", "b", ""), ("b", "a", "")), "a")).plain
    assert "│ a │" in text
    assert "│ b │" in text


def test_a_path_under_two_aliased_roots_takes_the_longest() -> None:
    namer = PathNamer({"/lab": "$LAB", "/lab/store/abc-glibc": "$STORE/glibc"})
    assert namer("/lab/store/abc-glibc/lib/libc.so.6") == "$STORE/glibc/lib/libc.so.6"
    assert namer("/lab/venv") == "$LAB/venv"
    assert namer("/lab2/x") == "/lab2/x"


async def test_a_typed_command_is_run_and_its_loader_error_mapped_onto_the_graph(
    lab: Lab, tmp_path: Path
) -> None:
    app = DoctorApp(str(lab.venv), path_aliases=aliases(lab, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        command = app.screen.query_one("#command", Input)
        command.value = f"{lab.venv}/bin/python3.9 -c 'import ext_strlcpy'"
        command.focus()
        await pilot.press("enter")
        await settle(pilot)
        explanation = text_of(app.screen.query_one("#explanation", Static))
        assert "exit status 1" in explanation
        assert "GLIBC_2.38" in explanation
        await pilot.press("escape")
        await settle(pilot)
        assert any("ext_strlcpy" in node for node in main_screen(pilot).highlighted)


# --- glibc-doctor demo -------------------------------------------------------------------------------


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def test_demo_finds_the_built_lab_and_opens_a_copy_of_its_venv(lab: Lab) -> None:
    """A fix pressed in the demo must retarget a copy: the lab's venv is the tests' reproduction."""
    done = run_cli("demo", "--cache-dir", str(Path(lab.root).parent.parent), "--no-tui")
    assert done.returncode == 0, done.stderr
    venv = Path(done.stdout.strip())
    assert venv.resolve() != Path(lab.venv).resolve()
    assert (venv / "pyvenv.cfg").read_text() == (Path(lab.venv) / "pyvenv.cfg").read_text()
    assert (venv / "bin" / "python").resolve() == (Path(lab.venv) / "bin" / "python").resolve()
    again = run_cli("demo", "--cache-dir", str(Path(lab.root).parent.parent), "--no-tui")
    assert again.stdout == done.stdout  # made once per lab build


def test_demo_where_the_lab_cannot_be_built_says_so_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "no-tools"), "HOME": str(tmp_path)}
    done = run_cli("demo", "--cache-dir", str(tmp_path / "lab"), "--no-tui", env=env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "the demo cannot be built here" in done.stderr


# --- --root: a program inside an image --------------------------------------------------------------


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


async def test_a_program_inside_a_root_is_shown_in_its_inside_paths_and_fix_is_refused(
    arm64_lab: Arm64Lab, tmp_path: Path
) -> None:
    image = tmp_path / "image"
    for tree in (arm64_lab.store, arm64_lab.venv):  # the aarch64 lab at its own paths inside an image
        shutil.copytree(tree, image / str(tree).lstrip("/"), symlinks=True, copy_function=_link_or_copy)
    app = DoctorApp(str(arm64_lab.python), ext=[str(arm64_lab.site_packages)], root=str(image))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(pilot)
        assert screen.result is not None
        assert screen.result.root == str(image)
        assert ("ext_pthread", "GLIBC_2.34") in conflict_versions(screen)
        assert all(not node.startswith(str(image)) for node in screen.result.graph.nodes)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(pilot.app.screen, MainScreen)  # no plan screen: a fix cannot work in a root
        assert any("fix does not work with --root" in note.message for note in pilot.app._notifications)
