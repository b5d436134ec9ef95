"""The wheels screen: the wheels in the target's pip cache, those that would break it first; ``p`` purges.

Opened from the main screen (``w``), it owns the check worker (leaving the screen cancels it) and the
purge worker. The rows are ``tui/wheel_rows.py``'s, the words the ``wheels`` table prints too; the
highlighted wheel's details (every missing version with its symbols and provider, the notes) show below
the table. The purge asks first (a confirmation modal), removes exactly the failing wheels that lie in
pip's cache, says what it did, and checks again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from glibc_doctor.tui.messages import ScanCancelled, WheelsChecked, WheelsProgressed, WheelsPurged
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import ConfirmScreen, report_worker_error
from glibc_doctor.tui.widgets.describe import PathNamer, namer_of
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

if TYPE_CHECKING:
    from glibc_doctor.core.wheels import WheelCheck, WheelsReport
    from glibc_doctor.tui.wheel_rows import WheelRow

_STATE_STYLES = {
    "fails": "bold red",
    "unreadable": "bold red",
    "loads": "green",
    "other": "dim",
    "pure": "dim",
}


class WheelsScreen(Screen[None]):
    """Wheels in pip's cache, checked against the target's process; ``p`` removes the failing ones."""

    DEFAULT_CSS = """
    WheelsScreen #wheels-summary { height: auto; padding: 0 1; border: round $primary; }
    WheelsScreen #wheels-status { height: 1; padding: 0 1; }
    WheelsScreen #wheels-step { width: 1fr; }
    WheelsScreen #wheels-progress { width: 40; }
    WheelsScreen #wheels { height: 1fr; }
    WheelsScreen #wheel-details { height: auto; max-height: 12; padding: 0 1; border: round $secondary; }
    """

    BINDINGS = [
        Binding("p", "purge", "Purge failing", id="wheels.purge"),
        Binding("r", "recheck", "Check again", id="wheels.recheck"),
        Binding("escape", "back", "Back", id="wheels.back"),
        Binding("backspace", "back", "Back", show=False, id="wheels.backspace"),
    ]

    def __init__(self, spec: str, *, glibc: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.glibc = glibc
        self.report: WheelsReport | None = None
        self._rows: dict[str, tuple[WheelCheck, WheelRow]] = {}
        self._cancel = threading.Event()

    @property
    def namer(self) -> PathNamer:
        return namer_of(self.app)

    def compose(self) -> ComposeResult:
        yield Static(
            f"Checking the wheels in pip's cache against {self.namer(self.spec)} …", id="wheels-summary"
        )
        with Horizontal(id="wheels-status"):
            yield Label("starting", id="wheels-step")
            yield ProgressBar(total=None, show_eta=False, id="wheels-progress")
        yield DataTable(id="wheels", cursor_type="row", zebra_stripes=True)
        yield Static("", id="wheel-details")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#wheels", DataTable)
        for label, width in (("Wheel", 17), ("Verdict", 14), ("Needs", 32), ("Fixed by fix", 28)):
            table.add_column(label, width=width)
        self.check()

    def on_unmount(self) -> None:
        self._cancel.set()

    # --- the check ------------------------------------------------------------------------------------

    def action_recheck(self) -> None:
        self.check()

    def check(self) -> None:
        self._cancel.set()
        self._cancel = threading.Event()
        self.query_one("#wheels-status").display = True
        self.query_one("#wheels-step", Label).update("starting")
        self.query_one("#wheels-progress", ProgressBar).update(total=None, progress=0)
        self._check_worker(self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="wheels")
    def _check_worker(self, cancel: threading.Event) -> None:
        worker = get_current_worker()
        for item in engine.wheel_steps(self.spec, glibc=self.glibc, cancel=cancel):
            if worker.is_cancelled or cancel.is_set():
                self.post_message(ScanCancelled())
                return
            event = engine.wheel_event(item)
            if not isinstance(event, engine.Step):
                self.post_message(WheelsChecked(event))
                return
            self.post_message(WheelsProgressed(event.text, event.done, event.total))
        self.post_message(ScanCancelled())

    def on_wheels_progressed(self, message: WheelsProgressed) -> None:
        self.query_one("#wheels-step", Label).update(message.step)
        self.query_one("#wheels-progress", ProgressBar).update(total=message.total, progress=message.done)

    def on_scan_cancelled(self, message: ScanCancelled) -> None:
        self.query_one("#wheels-step", Label).update("check cancelled — press r to check again")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
        if event.worker.group == "wheels" and event.state == WorkerState.ERROR:
            self.query_one("#wheels-step", Label).update("check failed — press r to try again")

    def on_wheels_checked(self, message: WheelsChecked) -> None:
        from glibc_doctor.tui.wheel_rows import rows_in_order

        self.report = report = message.report
        self.query_one("#wheels-status").display = False
        self.query_one("#wheels-summary", Static).update(self._summary(report))
        table = self.query_one("#wheels", DataTable)
        table.clear()
        self._rows = {}
        for index, (check, row) in enumerate(rows_in_order(report, self.namer)):
            key = str(index)
            self._rows[key] = (check, row)
            fix_style = "green" if row.fixable else "red" if row.fixable is False else "dim"
            table.add_row(
                Text(row.wheel, style="bold"),
                Text(row.verdict.split("\n")[0], style=_STATE_STYLES[row.state]),
                Text(row.needs_short),
                Text(row.fix, style=fix_style),
                key=key,
            )
        self._show_details()
        table.focus()

    def _summary(self, report: WheelsReport) -> Text:
        from glibc_doctor.tui.wheel_rows import summary_words

        failing, line = summary_words(report, "in pip's cache")
        text = Text()
        text.append("✗ " if failing else "✓ ", style="bold red" if failing else "bold green")
        text.append(line)
        cache = report.cache
        if cache is not None:
            where = self.namer(cache.path) if cache.path is not None else "disabled"
            text.append(f"\npip's cache {where} ({cache.source})", style="dim")
        if report.purgeable():
            text.append("\np removes the failing wheels from the cache (it asks first).", style="dim")
        return text

    # --- the highlighted wheel ------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#wheels")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def _show_details(self) -> None:
        details = self.query_one("#wheel-details", Static)
        chosen = self.highlighted
        if chosen is None:
            details.update("No wheel in pip's cache." if self.report is not None else "")
            return
        check, row = chosen
        text = Text()
        text.append(row.file, style="bold")
        text.append(f"  {row.verdict.replace(chr(10), ', ')}", style=_STATE_STYLES[row.state])
        text.append(f"\ntags {row.tags.replace(chr(10), ' ')}", style="dim")
        for missing in check.missing:
            text.append(f"\n{missing.object}: needs {missing.version} from {missing.library}")
            if missing.symbols:
                text.append(f" ({', '.join(missing.symbols)})", style="dim")
        for problem in check.problems:
            text.append(f"\n{self.namer.text(problem.message)}")
        if check.unreadable:
            text.append(f"\n{check.unreadable}", style="red")
        for note in row.notes:
            text.append(f"\n{note}", style="dim")
        details.update(text)

    @property
    def highlighted(self) -> tuple[WheelCheck, WheelRow] | None:
        table = self.query_one("#wheels", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._rows.get(str(key))

    # --- the purge ------------------------------------------------------------------------------------

    def action_purge(self) -> None:
        report = self.report
        if report is None:
            self.notify("Wait for the check to finish first.", severity="warning")
            return
        doomed = report.purgeable()
        if not doomed:
            self.notify("Nothing to purge: no failing wheel in pip's cache.", severity="information")
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._purge_worker(report)

        count = f"{len(doomed)} failing wheel{'s' * (len(doomed) != 1)}"
        names = ", ".join(f"{check.name} {check.version}" for check in doomed)
        detail = f"{names}\nThe next pip install builds or fetches them again; nothing else is touched."
        self.app.push_screen(ConfirmScreen(f"Remove {count} from pip's cache?", detail), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="purge")
    def _purge_worker(self, report: WheelsReport) -> None:
        self.post_message(WheelsPurged(engine.purge_wheels(report)))

    def on_wheels_purged(self, message: WheelsPurged) -> None:
        purged = message.purged
        removed = len(purged.removed)
        words = f"removed {removed} wheel{'s' * (removed != 1)} from pip's cache"
        if purged.kept:
            words += f"; kept {len(purged.kept)}: {purged.kept[0][1]}"
        self.notify(words, title="Purged")
        self.check()

    def action_back(self) -> None:
        running = [w for w in self.workers if w.group == "wheels" and w.is_running]
        if running:
            self._cancel.set()
            for worker in running:
                worker.cancel()
            return
        self.dismiss()
