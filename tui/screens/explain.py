"""Explain a loader error: paste the message, or type a command to run; the objects it names light up.

Parsing the message and running the command are core's (``core.explain``, ``core.diagnose``); this
screen collects the input, shows the explanation, and hands the involved graph nodes back to the main
screen when it closes.
"""

from __future__ import annotations

import shlex

from glibc_doctor.tui.messages import ExplainFinished
from glibc_doctor.tui.screens import engine
from glibc_doctor.tui.screens.modals import report_worker_error
from glibc_doctor.tui.widgets.describe import PathNamer, ProcessGraph, namer_of, node_name
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea
from textual.worker import Worker


class ExplainScreen(Screen[tuple[str, ...]]):
    """Paste a message (ctrl+s explains) or type a command (Enter runs it); Escape goes back."""

    BINDINGS = [
        Binding("ctrl+s", "explain", "Explain the pasted text", id="explain.explain"),
        Binding("escape", "close", "Back (highlight what it names)", id="explain.close"),
    ]

    def __init__(self, graph: ProcessGraph | None) -> None:
        super().__init__()
        self.graph = graph
        self.involved: tuple[str, ...] = ()

    @property
    def namer(self) -> PathNamer:
        return namer_of(self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="explain"):
            yield Label(
                "Paste the error (ImportError, LoadError, ld.so text), then ctrl+s:", classes="prompt"
            )
            yield TextArea(id="message", soft_wrap=True, show_line_numbers=False)
            with Horizontal(id="explain-buttons"):
                yield Button("Explain (ctrl+s)", id="explain-button", variant="primary", compact=True)
            yield Label("…or type a command to run and map its loader errors (Enter):", classes="prompt")
            yield Input(placeholder="python -c 'import psycopg2'", id="command")
            with VerticalScroll(id="explanation-box"):
                yield Static("", id="explanation")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#message", TextArea).focus()

    def action_explain(self) -> None:
        text = self.query_one("#message", TextArea).text
        if not text.strip():
            self.notify("Paste a loader error message first.", severity="warning")
            return
        self._explain_worker(text)

    @on(Button.Pressed, "#explain-button")
    def explain_pressed(self) -> None:
        self.action_explain()

    @on(Input.Submitted, "#command")
    def command_submitted(self, event: Input.Submitted) -> None:
        try:
            argv = shlex.split(event.value)
        except ValueError as error:
            self.notify(f"Cannot split that command: {error}", severity="error")
            return
        if argv:
            self.query_one("#explanation", Static).update(Text(f"running {event.value} …", style="dim"))
            self._diagnose_worker(argv)

    @work(thread=True, exclusive=True, exit_on_error=False, group="explain")
    def _explain_worker(self, text: str) -> None:
        explanation = engine.explain(text)
        self.post_message(ExplainFinished(explanation, engine.involved_nodes(self.graph, explanation)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="explain")
    def _diagnose_worker(self, argv: list[str]) -> None:
        found = engine.diagnose(argv)
        involved = engine.involved_nodes(self.graph, found.explanation)
        nodes = set(self.graph.nodes) if self.graph is not None else set()
        matched = tuple(conflict.object for conflict in found.matched if conflict.object in nodes)
        status = "timed out" if found.returncode is None else f"exit status {found.returncode}"
        output = f"$ {shlex.join(found.argv)}   ({status})\n" + "\n".join(found.output)
        self.post_message(
            ExplainFinished(found.explanation, tuple(dict.fromkeys(involved + matched)), output)
        )

    def on_explain_finished(self, message: ExplainFinished) -> None:
        self.involved = message.involved
        self.query_one("#explanation", Static).update(self._explanation_text(message))

    def _explanation_text(self, message: ExplainFinished) -> Text:
        name = self.namer
        text = Text()
        if message.output:
            text.append("Output\n", style="bold underline")
            text.append(name.text(message.output.strip()[-2000:]) + "\n\n", style="dim")
        for line in engine.explanation_lines(message.explanation):
            text.append(name.text(line.text) + "\n", style=line.style)
        if message.involved:
            shown = ", ".join(node_name(node) for node in message.involved)
            text.append(f"\nIn this process: {shown} (Escape shows them highlighted)\n", style="bold magenta")
        elif self.graph is not None:
            text.append("\nNone of the objects it names is in the scanned process.\n", style="yellow")
        return text

    def action_close(self) -> None:
        self.dismiss(self.involved)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)
