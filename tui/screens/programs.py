"""The programs screen: the audit's table, worst first; Enter opens a program's usual scan view.

It owns the audit worker (leaving the screen cancels it). The rows are ``tui/program_rows.py``'s, the
words the CLI table prints too. Enter pushes the main screen with the audit's own scan of that program
(exact and strict: the same records as the row), and Escape there comes back here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from glibc_doctor.tui.messages import AuditFinished, AuditProgressed, ScanCancelled
from glibc_doctor.tui.program_rows import program_row
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import report_worker_error
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
    from glibc_doctor.core.audit import AuditResult, ProgramAudit

_STATE_STYLES = {"error": "bold red", "latent": "yellow", "warning": "yellow", "ok": "green"}


class ProgramsScreen(Screen[None]):
    """Every program under the audited paths, one row each; Enter drills into one."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="programs.open"),
        Binding("r", "reaudit", "Audit again", id="programs.reaudit"),
        Binding("escape", "cancel", "Cancel", show=False, id="programs.cancel"),
    ]

    def __init__(self, paths: Iterable[str], *, ext: Iterable[str] = (), glibc: str | None = None) -> None:
        super().__init__()
        self.paths = tuple(paths)
        self.ext = tuple(ext)
        self.glibc = glibc
        self.result: AuditResult | None = None
        self._programs: dict[str, ProgramAudit] = {}
        self._cancel = threading.Event()

    @property
    def namer(self) -> PathNamer:
        return namer_of(self.app)

    def compose(self) -> ComposeResult:
        where = ", ".join(self.namer(path) for path in self.paths)
        yield Static(f"Auditing {where} …", id="programs-summary")
        with Horizontal(id="audit-status"):
            yield Label("starting", id="audit-step")
            yield ProgressBar(total=None, show_eta=False, id="audit-progress")
        yield DataTable(id="programs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#programs", DataTable)
        table.add_columns("Program", "glibc found via", "Conflicts", "Latent", "Worst")
        self.audit()

    def on_unmount(self) -> None:
        self._cancel.set()

    # --- the audit ----------------------------------------------------------------------------------

    def action_reaudit(self) -> None:
        self.audit()

    def audit(self) -> None:
        self._cancel.set()
        self._cancel = threading.Event()
        self.query_one("#audit-status").display = True
        self.query_one("#audit-step", Label).update("starting")
        self.query_one("#audit-progress", ProgressBar).update(total=None, progress=0)
        self._audit_worker(self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit")
    def _audit_worker(self, cancel: threading.Event) -> None:
        worker = get_current_worker()
        for item in engine.audit_steps(self.paths, ext_dirs=self.ext, glibc=self.glibc, cancel=cancel):
            if worker.is_cancelled or cancel.is_set():
                self.post_message(ScanCancelled())
                return
            event = engine.audit_event(item)
            if not isinstance(event, engine.Step):
                self.post_message(AuditFinished(event))
                return
            self.post_message(AuditProgressed(event.text, event.done, event.total))
        self.post_message(ScanCancelled())

    def on_audit_progressed(self, message: AuditProgressed) -> None:
        self.query_one("#audit-step", Label).update(self.namer.text(message.step))
        self.query_one("#audit-progress", ProgressBar).update(total=message.total, progress=message.done)

    def on_scan_cancelled(self, message: ScanCancelled) -> None:
        self.query_one("#audit-step", Label).update("audit cancelled — press r to audit again")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
        if event.worker.group == "audit" and event.state == WorkerState.ERROR:
            self.query_one("#audit-step", Label).update("audit failed — press r to try again")

    def on_audit_finished(self, message: AuditFinished) -> None:
        self.result = result = message.result
        self.query_one("#audit-status").display = False
        self.query_one("#programs-summary", Static).update(self._summary(result))
        table = self.query_one("#programs", DataTable)
        table.clear()
        self._programs = {}
        for index, program in enumerate(result.programs):
            key = str(index)
            self._programs[key] = program
            row = program_row(program, self.namer)
            style = _STATE_STYLES[row.state]
            name = Text(row.program, style="bold")
            if row.also:
                name.append(f" (+{len(program.aliases)})", style="dim")
            table.add_row(
                name, row.glibc,
                Text(str(row.conflicts), style=style if row.conflicts else "dim", justify="right"),
                Text(str(row.latent), style="yellow" if row.latent else "dim", justify="right"),
                Text(row.worst, style=style),
                key=key,
            )  # fmt: skip
        table.focus()

    def _summary(self, result: AuditResult) -> Text:
        counts = result.summary()
        where = ", ".join(self.namer(path) for path in result.paths)
        failing = counts["with_conflicts"]
        text = Text()
        text.append("✗ " if failing else "✓ ", style="bold red" if failing else "bold green")
        text.append(f"{counts['programs']} programs in {where}: ")
        text.append(f"{failing} with conflicts", style="red" if failing else "")
        text.append(", ")
        text.append(
            f"{counts['with_latent']} with latent ones", style="yellow" if counts["with_latent"] else ""
        )
        if counts["skipped"]:
            text.append(f"; {counts['skipped']} skipped", style="dim")
        text.append("\nEnter opens a program's scan; Escape there comes back to this list.", style="dim")
        return text

    def action_cancel(self) -> None:
        self._cancel.set()
        for worker in self.workers:
            if worker.group == "audit" and worker.is_running:
                worker.cancel()

    # --- drilling into one program ------------------------------------------------------------------

    @property
    def highlighted(self) -> ProgramAudit | None:
        table = self.query_one("#programs", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._programs.get(str(key))

    @on(DataTable.RowSelected, "#programs")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        program = self._programs.get(str(event.row_key.value))
        if program is not None:
            self.open(program)

    def action_open(self) -> None:
        program = self.highlighted
        if program is not None:
            self.open(program)

    def open(self, program: ProgramAudit) -> None:
        """The main screen on this program, with the audit's scan (no second scan)."""
        from glibc_doctor.tui.screens.main import MainScreen

        self.app.push_screen(
            MainScreen(program.program, ext=self.ext, glibc=self.glibc, result=program.result, back=True)
        )
