"""Small modal screens: an error with its one-line cause, a yes/no confirmation, the help."""

from __future__ import annotations

from typing import Any

from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.widgets.describe import namer_of
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Markdown
from textual.worker import Worker, WorkerState

WORKER_TITLES = {
    "scan": "The scan failed",
    "plan": "Could not plan the fix",
    "fix": "The fix failed",
    "rollback": "The rollback failed",
    "explain": "Could not explain that",
    "detect": "Could not look for interpreters",
    "audit": "The audit failed",
    "wheels": "The check of pip's cache failed",
    "purge": "The purge failed",
}


def report_worker_error(screen: Screen[Any], event: Worker.StateChanged) -> None:
    """A worker of ``screen`` raised: show its one-line cause in a modal (a cancellation is no error).

    ``Worker.StateChanged`` does not bubble, so each screen that runs workers calls this from its handler.
    """
    if event.state != WorkerState.ERROR or engine.is_cancellation(event.worker.error):
        return
    cause = namer_of(screen.app).text(engine.one_line(event.worker.error))
    screen.app.push_screen(ErrorScreen(WORKER_TITLES.get(event.worker.group, "Something failed"), cause))


class ErrorScreen(ModalScreen[None]):
    """A failure in a worker, told in one line, not a crash."""

    BINDINGS = [
        Binding("escape,enter", "close", "Close", id="error.close"),
    ]

    def __init__(self, title: str, cause: str) -> None:
        super().__init__()
        self.title_text = title
        self.cause = cause

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label(self.title_text, id="dialog-title")
            yield Label(self.cause, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Close", id="close", variant="error", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something that changes files: Enter/y confirms, Escape/n cancels."""

    BINDINGS = [
        Binding("enter,y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("escape,n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="dialog-title")
            if self.detail:
                yield Label(self.detail, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Yes", id="yes", variant="primary", compact=True)
                yield Button("No", id="no", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


HELP = """\
# glibc-doctor

A process loads **one** glibc: the one its interpreter's loader (PT_INTERP) and RPATH pick. An extension
built by today's compiler may need a newer glibc than that (`version 'GLIBC_2.34' not found`). The fix is a
patched copy of the interpreter that uses your stdenv's glibc; the original stays untouched.

| Key | Does |
|-----|------|
| `f` | fix: show the plan, Enter to apply, Escape to cancel |
| `u` | undo a fix (roll back to the original interpreter) |
| `e` | explain a pasted error message, or run a command and map its errors |
| `r` | rescan (also after changing the venv outside) |
| `c` | conflicts only, on/off |
| `/` | filter the tree by text |
| `g` | the drawn graph |
| `1` `2` `3` | the Process, Conflicts and Graph tabs |
| `Enter` | in Conflicts: jump to the object |
| `Escape` | cancel the running step, or go back |
| `ctrl+p` | command palette (all actions, themes) |
| `ctrl+t` | light / dark theme |
| `?` | this help |
| `q` | quit |
"""


class HelpScreen(ModalScreen[None]):
    """What the tool does, in two sentences, and every key."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
