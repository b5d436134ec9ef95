"""The fix flow: the plan to confirm, the build streaming in a log, the verified result.

The plan screen is a ``ModalScreen[bool]`` (Enter applies, Escape cancels). The progress screen owns the
fix worker, so its Escape cancels the fix through core's cancellation event (the original stays as it
was). The result screen says what imports now, what remains and why, and how to undo.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from glibc_doctor.tui.messages import FixFinished, FixProgressed
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import report_worker_error
from glibc_doctor.tui.widgets.describe import PathNamer, namer_of, short_name
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Label, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState, get_current_worker

if TYPE_CHECKING:  # core's fix records arrive from the workers
    from glibc_doctor.core.model import Conflict
    from glibc_doctor.core.patch.plan import FixPlan, Remaining
    from glibc_doctor.core.patch.run import FixResult


def plan_text(plan: FixPlan, name: PathNamer) -> Text:
    """The plan as the user reads it before saying yes: what gets fixed, what does not and why, the
    interpreter's new loader and RPATH, where the copy goes, what is retargeted; then core's full list."""
    text = Text()
    old, new = plan.old_glibc, plan.stdenv
    text.append(f"glibc {old.version or '?'} → {new.version or '?'}", style="bold")
    text.append(f"   (the stdenv's, from {new.source})\n")
    _versions_section(text, "Fixes", plan.fixes, "green")
    _remaining_section(text, plan.remaining, name)
    _warnings_section(text, plan.warnings, name)
    _interpreter_section(text, plan, name)
    _copy_section(text, plan, name)
    text.append("\nFull plan\n", style="bold underline")
    for line in plan.describe():
        text.append(name.text(str(line)) + "\n", style="dim")
    return text


def _remaining_section(text: Text, remaining: Sequence[Remaining], name: PathNamer) -> None:
    if not remaining:
        return
    text.append("Still broken after the fix\n", style="bold yellow")
    for item in remaining:
        conflict = item.conflict
        what = f"{short_name(conflict.object)} {conflict.version or conflict.kind}"
        text.append(f"  ✗ {what}: {name.text(item.reason)}\n", style="yellow")


def _warnings_section(text: Text, warnings: Sequence[Conflict], name: PathNamer) -> None:
    """What loads today and the stdenv's loader would refuse: the fix would break it (verification
    catches it and does not activate the build; better to know before)."""
    if not warnings:
        return
    text.append("Broken by the fix\n", style="bold red")
    for conflict in warnings:
        what = conflict.message.removeprefix(f"{conflict.object}: ")
        text.append(f"  ! {short_name(conflict.object)}: {name.text(what)}\n", style="red")
        if conflict.fixes:
            text.append(f"    fix: {name.text(conflict.fixes[0])}\n", style="dim")


def _interpreter_section(text: Text, plan: FixPlan, name: PathNamer) -> None:
    main = next((patch for patch in plan.elf_patches if patch.relpath == plan.interpreter), None)
    if main is None:
        return
    text.append(f"\nInterpreter {plan.interpreter}\n", style="bold")
    if main.new_interpreter is not None:
        text.append(f"  loader  {name(main.old_interpreter)}\n       → {name(main.new_interpreter)}\n")
    before = f"RUNPATH {main.old_runpath}" if main.old_runpath else f"RPATH {main.old_rpath or '(none)'}"
    text.append(f"  {name.text(before)}\n  → RPATH {name.text(main.new_rpath)}\n")
    for needed in main.add_needed:
        text.append(f"  + DT_NEEDED {needed}\n")
    view = getattr(plan, "view", None)  # the stdenv's glibc, seen through a directory of links
    if view is not None:
        text.append(
            f"  {name(view.lib_dir)} links to the stdenv's glibc in {name(view.source_dir)}\n", style="dim"
        )


def _copy_section(text: Text, plan: FixPlan, name: PathNamer) -> None:
    others = sum(1 for patch in plan.elf_patches if patch.relpath != plan.interpreter)
    text.append("\nCopy ", style="bold")
    text.append(f"{name(plan.source_package)}\n  → {name(plan.destination)}\n")
    counts = f"{others} more ELF files, {len(plan.text_rewrites)} text files, {len(plan.links)} links"
    text.append(f"  {counts} adjusted\n")
    text.append("\nRetarget ", style="bold")
    environment = plan.target.environment
    if environment:
        text.append(f"the venv {name(environment)}: its bin/python* and pyvenv.cfg point at the copy\n")
    else:
        text.append("a profile link in the data dir points at the copy (put its bin on PATH)\n")
    text.append("The original stays untouched; u (rollback) switches back.\n", style="dim")


def _versions_section(text: Text, title: str, conflicts: Iterable[Conflict], style: str) -> None:
    by_object: dict[str, list[str]] = {}
    for conflict in conflicts:
        by_object.setdefault(short_name(conflict.object), []).append(conflict.version or str(conflict.kind))
    if not by_object:
        return
    text.append(f"{title}\n", style=f"bold {style}")
    for who, versions in by_object.items():
        text.append(f"  ✓ {who}: {', '.join(versions)}\n", style=style)


class FixPlanScreen(ModalScreen[bool]):
    """What the fix will do, decided before anything is touched. Enter applies, Escape cancels."""

    BINDINGS = [
        Binding("enter", "apply", "Apply the fix", id="plan.apply"),
        Binding("escape", "cancel", "Cancel", id="plan.cancel"),
    ]

    def __init__(self, plan: FixPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(id="plan-dialog"):
            yield Label("[b]Fix plan[/b] — nothing is changed until you press Enter", id="plan-title")
            with VerticalScroll(id="plan-body"):
                yield Static(plan_text(self.plan, namer_of(self.app)), id="plan-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply (Enter)", id="apply", variant="success", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan-body").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "apply")

    def action_apply(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class FixProgressScreen(Screen["FixResult | None"]):
    """The fix running: each step in a log; Escape cancels and leaves the original untouched."""

    BINDINGS = [Binding("escape", "cancel", "Cancel the fix", id="fixing.cancel")]

    def __init__(self, request: engine.FixRequest, glibc: str | None = None) -> None:
        super().__init__()
        self.request = request
        self.glibc = glibc
        self.cancel_event = threading.Event()
        self.finished = False

    def compose(self) -> ComposeResult:
        yield Label("[b]Fixing[/b] — building a patched copy, verifying it, switching to it", id="fix-title")
        yield ProgressBar(show_eta=False, id="fix-progress")
        yield RichLog(id="fix-log", wrap=True, markup=False, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.run_fix()

    def on_unmount(self) -> None:
        self.cancel_event.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fix")
    def run_fix(self) -> None:
        worker = get_current_worker()
        for item in engine.run_fix(self.request, glibc=self.glibc, cancel=self.cancel_event):
            if worker.is_cancelled:
                self.cancel_event.set()
            event = engine.fix_event(item)
            if not isinstance(event, engine.Step):
                self.post_message(FixFinished(event))
                return
            self.post_message(FixProgressed(event.text, event.done, event.total))
        self.post_message(FixFinished(None, cancelled=True))

    def on_fix_progressed(self, message: FixProgressed) -> None:
        self.query_one(RichLog).write(namer_of(self.app).text(message.line))
        if message.total:
            self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_fix_finished(self, message: FixFinished) -> None:
        self.finished = True
        if message.result is not None:
            self.dismiss(message.result)
            return
        self.query_one(RichLog).write("Cancelled: the original is untouched. Press Escape to go back.")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "fix" or event.state not in (WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.finished = True
        log = self.query_one(RichLog)
        if self.cancel_event.is_set():  # core stops with an error at its next check: that is the cancel
            log.write("Cancelled: nothing was changed. Press Escape to go back.")
            return
        report_worker_error(self, event)
        log.write(f"Stopped: {namer_of(self.app).text(engine.one_line(event.worker.error))}")
        log.write("The original is untouched. Press Escape to go back.")

    def action_cancel(self) -> None:
        if self.finished:
            self.dismiss(None)
            return
        self.cancel_event.set()
        self.query_one(RichLog).write("Cancelling … (the current step finishes, then everything is undone)")


def result_text(result: FixResult, name: PathNamer) -> Text:
    """What works now (verified by real imports), what remains and why, and how to undo."""
    text = Text()
    if result.verified and result.activation is not None:
        text.append("✓ Fixed, verified and switched\n", style="bold green")
    else:
        text.append("✗ The patched copy did not verify: nothing was switched\n", style="bold red")
    plan = result.plan
    text.append(f"Patched interpreter  {name(plan.patched_interpreter)}\n")
    text.append(f"glibc                {plan.old_glibc.version} → {plan.stdenv.version}\n")
    for line in engine.fix_result_lines(result):
        text.append(name.text(line.text) + "\n", style=line.style)
    text.append("\nUndo: press u on the main screen, or run ", style="bold")
    text.append("glibc-doctor rollback TARGET\n")
    text.append("\nEscape goes back to the graph, rescanned.", style="dim")
    return text


class FixResultScreen(Screen[None]):
    """The outcome of the fix; closing it rescans the target (and the graph turns green)."""

    BINDINGS = [Binding("escape,enter,q", "close", "Back to the graph", id="fixed.close")]

    def __init__(self, result: FixResult) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="fix-result"):
            yield Static(result_text(self.result, namer_of(self.app)), id="fix-result-text")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
