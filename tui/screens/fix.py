"""The fix flow: the plan to confirm, the build streaming in a log, the verified result.

The plan screen is a ``ModalScreen[bool]`` (Enter applies, Escape cancels). The progress screen owns the
fix worker, so its Escape cancels the fix through core's cancellation event (the original stays as it
was). The result screen says what imports now, what remains and why, and how to undo.
"""

from __future__ import annotations

import threading
from typing import Any

from glibc_doctor.tui.messages import FixFinished, FixProgressed
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import report_worker_error
from glibc_doctor.tui.widgets.render import PathNamer
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Label, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState, get_current_worker


def _namer(screen: Screen[Any]) -> PathNamer:
    namer = getattr(screen.app, "namer", None)
    return namer if isinstance(namer, PathNamer) else PathNamer()


def plan_text(plan: Any, name: PathNamer) -> Text:
    """The plan as the user reads it before saying yes: core's own description, paths aliased."""
    text = Text()
    lines = plan.describe() if hasattr(plan, "describe") else [str(plan)]
    for line in lines:
        shown = name.text(str(line))
        if shown.startswith(("conflicts remaining", "note:")):
            text.append(shown + "\n", style="yellow")
        elif shown.startswith(("conflicts fixed", "glibc ")) or not shown.startswith(" "):
            text.append(shown + "\n", style="bold")
        else:
            text.append(shown + "\n")
    return text


class FixPlanScreen(ModalScreen[bool]):
    """What the fix will do, decided before anything is touched. Enter applies, Escape cancels."""

    BINDINGS = [
        Binding("enter", "apply", "Apply the fix", id="plan.apply"),
        Binding("escape", "cancel", "Cancel", id="plan.cancel"),
    ]

    def __init__(self, plan: Any) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(id="plan-dialog"):
            yield Label("[b]Fix plan[/b] — nothing is changed until you press Enter", id="plan-title")
            with VerticalScroll(id="plan-body"):
                yield Static(plan_text(self.plan, _namer(self)), id="plan-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply (Enter)", id="apply", variant="success")
                yield Button("Cancel (Esc)", id="cancel")
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


class FixProgressScreen(Screen[Any]):
    """The fix running: each step in a log; Escape cancels and leaves the original untouched."""

    BINDINGS = [Binding("escape", "cancel", "Cancel the fix", id="fixing.cancel")]

    def __init__(self, plan: Any, before: tuple[Any, ...] = (), glibc: str | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.before = before
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
        for item in engine.run_fix(self.plan, self.before, glibc=self.glibc, cancel=self.cancel_event):
            if worker.is_cancelled:
                self.cancel_event.set()
            if engine.is_fix_result(item):
                self.post_message(FixFinished(item))
                return
            step = engine.step_of(item)
            detail = getattr(item, "detail", "")
            line = f"{step.text}: {detail}" if detail else step.text
            self.post_message(FixProgressed(line, step.done, step.total))
        self.post_message(FixFinished(None, cancelled=True))

    def on_fix_progressed(self, message: FixProgressed) -> None:
        self.query_one(RichLog).write(_namer(self).text(message.line))
        if message.total:
            self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_fix_finished(self, message: FixFinished) -> None:
        self.finished = True
        if message.result is not None:
            self.dismiss(message.result)
            return
        self.query_one(RichLog).write("Cancelled: the original is untouched. Press Escape to go back.")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
        if event.worker.group != "fix":
            return
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.finished = True
            cause = engine.one_line(event.worker.error) if event.worker.error else "cancelled"
            self.query_one(RichLog).write(f"Stopped: {cause}")
            self.query_one(RichLog).write("The original is untouched. Press Escape to go back.")

    def action_cancel(self) -> None:
        if self.finished:
            self.dismiss(None)
            return
        self.cancel_event.set()
        self.query_one(RichLog).write("Cancelling … (the current step finishes, then everything is undone)")


def result_text(result: Any, name: PathNamer) -> Text:
    """What works now (verified by real imports), what remains and why, and how to undo."""
    text = Text()
    verified = bool(getattr(result, "verified", False))
    text.append(
        "✓ Fixed and verified\n" if verified else "✗ Not verified: nothing was switched\n",
        style="bold green" if verified else "bold red",
    )
    interpreter = getattr(result, "interpreter", None)
    if interpreter:
        text.append(f"Patched interpreter  {name(str(interpreter))}\n")
    for line in engine.fix_result_lines(result):
        text.append(name.text(line.text) + "\n", style=line.style)
    text.append("\nUndo: press u on the main screen, or run ", style="bold")
    text.append("glibc-doctor rollback TARGET\n")
    return text


class FixResultScreen(Screen[None]):
    """The outcome of the fix; closing it rescans the target (and the graph turns green)."""

    BINDINGS = [Binding("escape,enter,q", "close", "Back to the graph", id="fixed.close")]

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="fix-result"):
            yield Static(result_text(self.result, _namer(self)), id="fix-result-text")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
