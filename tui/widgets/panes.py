"""The summary bar, the details pane and the conflicts table of the main screen."""

from __future__ import annotations

from glibc_doctor.core.patch.plan import REFUSAL_KINDS
from glibc_doctor.tui.messages import NodeChosen
from glibc_doctor.tui.verdict import problem_label
from glibc_doctor.tui.widgets.describe import (
    PathNamer,
    ScanLike,
    details_text,
    node_name,
    summary_text,
    verdict,
)
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static


class SummaryBar(Static):
    """Interpreter, loaded glibc and why, stdenv glibc, counts; red when broken, green when clean."""

    DEFAULT_CSS = """
    SummaryBar {
        height: auto; padding: 0 1; border: round $primary; text-wrap: nowrap; text-overflow: ellipsis;
    }
    SummaryBar.-bad { border: round $error; }
    SummaryBar.-good { border: round $success; }
    """

    def show(self, result: ScanLike, name: PathNamer) -> None:
        ok, _ = verdict(result)
        self.set_class(ok, "-good")
        self.set_class(not ok, "-bad")
        self.border_title = "healthy" if ok else "conflicts"
        self.update(summary_text(result, name))


class DetailsPane(VerticalScroll):
    """Everything about the selected node; scrolls when it is long."""

    DEFAULT_CSS = """
    DetailsPane { padding: 0 1; }
    DetailsPane > Static { width: 100%; }
    """

    def compose(self) -> ComposeResult:
        yield Static("Select an object in the tree.", id="details-text")

    def show(self, result: ScanLike, node: str, name: PathNamer) -> None:
        self.query_one("#details-text", Static).update(details_text(result, node, name))
        self.scroll_home(animate=False)


class ConflictsTable(DataTable[str]):
    """One row per conflict record; Enter (or a click) jumps to the object in the tree."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._objects: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_columns("Kind", "Object", "Missing", "Provider", "Cause")

    def show(self, result: ScanLike, name: PathNamer) -> None:
        self.clear()
        self._objects = {}
        for index, conflict in enumerate(result.conflicts):
            key = str(index)
            self._objects[key] = conflict.object
            provider = node_name(conflict.provider) if conflict.provider else "-"
            cause = (
                name.text(conflict.cause or conflict.message).splitlines()[0]
                if (conflict.cause or conflict.message)
                else ""
            )
            self.add_row(
                str(conflict.kind),
                node_name(conflict.object) if conflict.object in result.graph else name(conflict.object),
                conflict.version or (problem_label(conflict) if conflict.kind in REFUSAL_KINDS else "-"),
                provider,
                cause,
                key=key,
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        node = self._objects.get(str(event.row_key.value))
        if node is not None:
            self.post_message(NodeChosen(node))
