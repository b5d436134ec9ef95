"""The main screen: summary bar, the process tree with details, the conflicts table and the drawn graph.

It owns the scan worker (so leaving the screen cancels it), starts the fix and rollback flows, and keeps
the set of nodes an explanation highlighted.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from glibc_doctor.core.sysroot import FIX_REFUSAL as ROOT_FIX_REFUSAL
from glibc_doctor.tui.messages import (
    NodeChosen,
    PlanReady,
    RolledBack,
    ScanCancelled,
    ScanFinished,
    ScanProgressed,
)
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import ConfirmScreen, report_worker_error
from glibc_doctor.tui.widgets.describe import PathNamer, errors, namer_of, root_of
from glibc_doctor.tui.widgets.graph_view import GraphView
from glibc_doctor.tui.widgets.panes import ConflictsTable, DetailsPane, SummaryBar
from glibc_doctor.tui.widgets.process_tree import ProcessTree
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Input, Label, ProgressBar, TabbedContent, TabPane, Tree
from textual.worker import Worker, WorkerState, get_current_worker

if TYPE_CHECKING:  # the scan and plan records come from core, imported by the workers
    from glibc_doctor.core.patch.run import FixResult
    from glibc_doctor.core.scan import ScanResult


class MainCommands(Provider):
    """The main screen's actions in the command palette."""

    ACTIONS = (
        ("Fix: patch the interpreter against the stdenv glibc", "fix"),
        ("Roll back the last fix", "rollback"),
        ("Explain a loader error message / run a command", "explain"),
        ("Rescan", "rescan"),
        ("Toggle: conflicts only", "toggle_conflicts"),
        ("Filter the tree", "filter"),
        ("Show the drawn graph", "graph"),
        ("Show the conflicts table", "show_tab('tab-conflicts')"),
        ("Wheels in pip's cache: which would break this target", "wheels"),
    )

    async def discover(self) -> Hits:
        for title, action in self.ACTIONS:
            yield DiscoveryHit(title, self._runner(action), help=f"action: {action}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action in self.ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._runner(action), help=f"action: {action}")

    def _runner(self, action: str) -> Callable[[], Awaitable[None]]:
        screen = self.screen

        async def run() -> None:
            await screen.run_action(action)

        return run


class MainScreen(Screen[None]):
    """One target: scan it, show it, fix it."""

    COMMANDS = {MainCommands}
    BINDINGS = [
        Binding("f", "fix", "Fix", id="main.fix"),
        Binding("u", "rollback", "Undo", id="main.rollback"),
        Binding("e", "explain", "Explain", id="main.explain"),
        Binding("r", "rescan", "Rescan", show=False, id="main.rescan"),
        Binding("c", "toggle_conflicts", "Conflicts", id="main.conflicts_only"),
        Binding("slash", "filter", "Filter", show=False, id="main.filter"),
        Binding("g", "graph", "Graph", id="main.graph"),
        Binding("1", "show_tab('tab-process')", "Process", show=False, id="main.tab_process"),
        Binding("2", "show_tab('tab-conflicts')", "Conflicts", show=False, id="main.tab_conflicts"),
        Binding("3", "show_tab('tab-graph')", "Graph", show=False, id="main.tab_graph"),
        Binding("escape", "cancel", "Cancel", show=False, id="main.cancel"),
        Binding("backspace", "back", "Programs", id="main.back"),
        Binding("w", "wheels", "Wheels", show=False, id="main.wheels"),
    ]

    def __init__(
        self,
        spec: str,
        *,
        ext: Iterable[str] = (),
        glibc: str | None = None,
        root: str | None = None,
        result: ScanResult | None = None,
        back: bool = False,
    ) -> None:
        """``result``: a scan already made (the audit's), shown without scanning again; ``back``: this
        screen was opened from a list (the programs screen) that Escape returns to; ``root``: the
        target and every path shown are inside that directory (``--root``)."""
        super().__init__()
        self.spec = spec
        self.root = root
        self.ext = tuple(ext)
        self.glibc = glibc
        self.back = back
        self._given = result
        self.result: ScanResult | None = None
        self.selected: str | None = None
        self.highlighted: tuple[str, ...] = ()
        self.conflicts_only = False
        self._cancel = threading.Event()

    @property
    def namer(self) -> PathNamer:
        return namer_of(self.app)

    def compose(self) -> ComposeResult:
        yield SummaryBar(f"Scanning {self.namer(self.spec)} …", id="summary")
        with Horizontal(id="scan-status"):
            yield Label("starting", id="scan-step")
            yield ProgressBar(total=5, show_eta=False, id="scan-progress")
        with TabbedContent(id="tabs", initial="tab-process"):
            with TabPane("Process", id="tab-process"), Horizontal(id="process"):
                with Vertical(id="tree-column"):
                    with Horizontal(id="tree-tools"):
                        yield Input(placeholder="/ filter", id="filter", compact=True)
                        yield Checkbox("conflicts only", id="conflicts-only", compact=True)
                    yield ProcessTree(id="tree")
                yield DetailsPane(id="details")
            with TabPane("Conflicts", id="tab-conflicts"):
                yield ConflictsTable(id="conflicts")
            with TabPane("Graph", id="tab-graph"):
                yield GraphView(id="graph")
        yield Footer()

    def on_mount(self) -> None:
        if self._given is not None:
            self.query_one("#scan-status").display = False
            self.post_message(ScanFinished(self._given))
            self._given = None
            return
        self.scan()

    def on_unmount(self) -> None:
        self._cancel.set()

    # --- scanning -------------------------------------------------------------------------------------

    def action_rescan(self) -> None:
        self.scan()

    def scan(self) -> None:
        self._cancel.set()
        self._cancel = threading.Event()
        self.query_one("#scan-status").display = True
        self.query_one("#scan-step", Label).update("starting")
        self.query_one("#scan-progress", ProgressBar).update(progress=0)
        self._scan_worker(self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def _scan_worker(self, cancel: threading.Event) -> None:
        worker = get_current_worker()
        steps = engine.scan_steps(self.spec, ext=self.ext, glibc=self.glibc, cancel=cancel, root=self.root)
        for item in steps:
            if worker.is_cancelled or cancel.is_set():
                self.post_message(ScanCancelled())
                return
            event = engine.scan_event(item)
            if not isinstance(event, engine.Step):
                self.post_message(ScanFinished(event))
                return
            self.post_message(ScanProgressed(event.text, event.done, event.total))
        self.post_message(ScanCancelled())  # core ends the generator early when cancelled

    def on_scan_progressed(self, message: ScanProgressed) -> None:
        self.query_one("#scan-step", Label).update(self.namer.text(message.step))
        bar = self.query_one("#scan-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)

    def on_scan_cancelled(self, message: ScanCancelled) -> None:
        self.query_one("#scan-step", Label).update("scan cancelled — press r to scan again")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
        if event.worker.group == "plan" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.query_one(SummaryBar).border_subtitle = ""
        if event.worker.group == "scan" and event.state == WorkerState.ERROR:
            self.query_one("#scan-step", Label).update("scan failed — press r to try again")
        if event.worker.group == "scan" and event.state == WorkerState.CANCELLED:
            self.query_one("#scan-step", Label).update("scan cancelled — press r to scan again")

    def on_scan_finished(self, message: ScanFinished) -> None:
        self.result = result = message.result
        self.query_one("#scan-status").display = False
        self.query_one(SummaryBar).show(result, self.namer)
        self.query_one(ConflictsTable).show(result, self.namer)
        self._redraw()
        first = self._first_interesting(result)
        if first is not None:
            self.choose(first)

    def _first_interesting(self, result: ScanResult) -> str | None:
        if self.selected is not None and self.selected in result.graph:
            return self.selected
        failing = errors(result.conflicts)
        if failing:  # the shortest chain first: an extension itself before a library deep under one
            nearest = min(enumerate(failing), key=lambda item: (len(item[1].chain) or 99, item[0]))
            return str(nearest[1].object)
        root = root_of(result.graph)
        return str(root) if root is not None else None

    def _redraw(self) -> None:
        if self.result is None:
            return
        text = self.query_one("#filter", Input).value
        tree = self.query_one(ProcessTree)
        tree.show(
            self.result, text_filter=text, conflicts_only=self.conflicts_only, highlighted=self.highlighted
        )
        self.query_one(GraphView).show(self.result, self.highlighted)

    def action_cancel(self) -> None:
        """Escape: stop a running scan; otherwise leave the filter box; otherwise go back to the list."""
        running = [w for w in self.workers if w.group == "scan" and w.is_running]
        if running:
            self._cancel.set()
            for worker in running:
                worker.cancel()
            return
        if self.focused is self.query_one("#filter", Input):
            self.query_one(ProcessTree).focus()
        elif self.back:
            self.action_back()

    def action_back(self) -> None:
        """Back to the list this screen was opened from (the programs screen)."""
        if self.back:
            self.dismiss()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.back if action == "back" else True

    # --- selection --------------------------------------------------------------------------------------

    def choose(self, node: str) -> None:
        """Show ``node`` in the tree and its details (clearing a filter that hides it)."""
        if self.result is None or node not in self.result.graph:
            return
        self.selected = node
        self.query_one(TabbedContent).active = "tab-process"
        tree = self.query_one(ProcessTree)
        if not tree.select_path(node):
            self.query_one("#filter", Input).value = ""
            self.conflicts_only = False
            self.query_one("#conflicts-only", Checkbox).value = False
            self._redraw()
            tree.select_path(node)
        self.query_one(DetailsPane).show(self.result, node, self.namer)
        tree.focus()

    @on(Tree.NodeHighlighted, "#tree")
    def node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        node = event.node.data
        if self.result is not None and node is not None and node != self.selected:
            self.selected = node
            self.query_one(DetailsPane).show(self.result, node, self.namer)

    def on_node_chosen(self, message: NodeChosen) -> None:
        self.choose(message.node)

    # --- filter and views ------------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def filter_changed(self) -> None:
        self._redraw()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.query_one(ProcessTree).focus()

    @on(Checkbox.Changed, "#conflicts-only")
    def conflicts_only_changed(self, event: Checkbox.Changed) -> None:
        if event.value != self.conflicts_only:
            self.conflicts_only = event.value
            self._redraw()

    def action_toggle_conflicts(self) -> None:
        self.conflicts_only = not self.conflicts_only
        self.query_one("#conflicts-only", Checkbox).value = self.conflicts_only
        self._redraw()

    def action_filter(self) -> None:
        self.query_one(TabbedContent).active = "tab-process"
        self.query_one("#filter", Input).focus()

    def action_graph(self) -> None:
        self.action_show_tab("tab-graph")

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        focus = {"tab-process": "#tree", "tab-conflicts": "#conflicts", "tab-graph": "#graph"}[tab]
        self.query_one(focus).focus()

    # --- explain ---------------------------------------------------------------------------------------

    def action_explain(self) -> None:
        from glibc_doctor.tui.screens.explain import ExplainScreen

        graph = self.result.graph if self.result is not None else None
        self.app.push_screen(ExplainScreen(graph), self._explained)

    def _explained(self, involved: tuple[str, ...] | None) -> None:
        if not involved:
            return
        self.highlighted = involved
        self._redraw()
        self.choose(involved[0])

    # --- wheels in pip's cache ------------------------------------------------------------------------

    def action_wheels(self) -> None:
        from glibc_doctor.tui.screens.wheels import WheelsScreen

        self.app.push_screen(WheelsScreen(self.spec, glibc=self.glibc))

    # --- fix and rollback ------------------------------------------------------------------------------

    def action_fix(self) -> None:
        if self.result is None:
            self.notify("Wait for the scan to finish first.", severity="warning")
            return
        if not errors(self.result.conflicts):
            self.notify("Nothing to fix: no conflicts.", severity="information")
            return
        if self.root is not None:
            self.notify(ROOT_FIX_REFUSAL, severity="warning")
            return
        self.query_one(SummaryBar).border_subtitle = "planning the fix …"
        self._plan_worker(self.result)

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def _plan_worker(self, result: ScanResult) -> None:
        self.post_message(PlanReady(engine.prepare_fix(result, self.glibc)))

    def on_plan_ready(self, message: PlanReady) -> None:
        from glibc_doctor.tui.screens.fix import FixPlanScreen

        self.query_one(SummaryBar).border_subtitle = ""

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._start_fix(message.request)

        self.app.push_screen(FixPlanScreen(message.request.plan), confirmed)

    def _start_fix(self, request: engine.FixRequest) -> None:
        from glibc_doctor.tui.screens.fix import FixProgressScreen, FixResultScreen

        def finished(result: FixResult | None) -> None:
            if result is None:
                self.scan()
                return
            self.app.push_screen(FixResultScreen(result), lambda _: self.scan())

        self.app.push_screen(FixProgressScreen(request, self.glibc), finished)

    def action_rollback(self) -> None:
        if self.root is not None:
            self.notify(ROOT_FIX_REFUSAL, severity="warning")
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._rollback_worker()

        question = f"Roll back {self.namer(self.spec)} to its original interpreter?"
        detail = "The patched copy stays in the store until `glibc-doctor gc`."
        self.app.push_screen(ConfirmScreen(question, detail), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="rollback")
    def _rollback_worker(self) -> None:
        self.post_message(RolledBack(engine.rollback(self.spec)))

    def on_rolled_back(self, message: RolledBack) -> None:
        self.notify(self.namer.text(message.summary), title="Rolled back")
        self.scan()
