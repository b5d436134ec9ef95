"""The first screen: pick a detected target or type a path. It paints at once; detection runs after."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from glibc_doctor.tui.messages import CandidateGlibcFound, CandidatesFound, TargetChosen
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.widgets.describe import namer_of

if TYPE_CHECKING:
    from glibc_doctor.core.targets import Candidate
from glibc_doctor.tui.screens.modals import report_worker_error
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

INTRO = (
    "Which process should I examine? Pick a detected interpreter or environment, or type a path "
    "(a python/ruby interpreter, a venv, a program)."
)


class StartScreen(Screen[None]):
    """Candidate picker plus a path input; choosing one posts ``TargetChosen`` to the app."""

    BINDINGS = [
        Binding("slash", "focus_path", "Type a path", id="start.path"),
        Binding("q", "app.quit", "Quit", id="start.quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._glibc: dict[str, str] = {}
        self._candidates: tuple[Candidate, ...] = ()
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="start"):
            yield Static("[b]glibc-doctor[/b] — find and fix glibc conflicts", id="start-title")
            yield Label(INTRO, id="start-intro")
            yield OptionList(
                Option("looking for interpreters…", id="__searching__", disabled=True), id="candidates"
            )
            yield Input(placeholder="or type a path and press Enter", id="path")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#candidates", OptionList).focus()
        self.detect()

    def on_unmount(self) -> None:
        self._cancel.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="detect")
    def detect(self) -> None:
        candidates = engine.detect_candidates(os.getcwd(), dict(os.environ))
        self.post_message(CandidatesFound(tuple(candidates)))
        for candidate in candidates:
            if get_current_worker().is_cancelled or self._cancel.is_set():
                return
            glibc = engine.candidate_glibc(candidate)
            if glibc:
                self.post_message(CandidateGlibcFound(candidate.path, glibc))

    def on_candidates_found(self, message: CandidatesFound) -> None:
        self._candidates = message.candidates
        self._refill()

    def on_candidate_glibc_found(self, message: CandidateGlibcFound) -> None:
        self._glibc[message.path] = message.glibc
        self._refill()

    def _refill(self) -> None:
        options = self.query_one("#candidates", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        if not self._candidates:
            options.add_option(Option("nothing detected here: type a path below", disabled=True))
            return
        for candidate in self._candidates:
            options.add_option(Option(self._prompt(candidate), id=candidate.path))
        options.highlighted = highlighted if highlighted is not None else 0

    def _prompt(self, candidate: Candidate) -> Text:
        label = self.app_name(candidate.label or os.path.basename(candidate.path))
        shown = self.app_name(candidate.path)
        glibc = self._glibc.get(candidate.path)
        prompt = Text()
        prompt.append(label, style="bold")
        prompt.append(f"  {candidate.kind}", style="dim")
        if glibc:
            prompt.append(f"  glibc {glibc}", style="cyan")
        prompt.append("\n  ")
        if shown not in label:
            prompt.append(f"{shown}  ")
        prompt.append(candidate.why, style="dim")
        return prompt

    def app_name(self, path: str) -> str:
        return str(namer_of(self.app).text(path))

    @on(OptionList.OptionSelected, "#candidates")
    def candidate_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.post_message(TargetChosen(event.option.id))

    @on(Input.Submitted, "#path")
    def path_typed(self, event: Input.Submitted) -> None:
        spec = event.value.strip()
        if spec:
            self.post_message(TargetChosen(os.path.expanduser(spec)))

    def action_focus_path(self) -> None:
        self.query_one("#path", Input).focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
