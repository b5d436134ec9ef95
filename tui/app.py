"""The glibc-doctor Textual app: a start screen to pick a target, then the main screen for it (or the
programs screen of an audit, whose rows open the main screen).

The app only routes: it opens the first screen, switches to the main screen when a target is chosen,
and turns any worker failure into a modal with its one-line cause. Screens own their widgets and the
workers whose results they show (tui/screens/), widgets render core records (tui/widgets/).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from glibc_doctor.tui.messages import TargetChosen
from glibc_doctor.tui.screens.main import MainScreen
from glibc_doctor.tui.screens.modals import HelpScreen
from glibc_doctor.tui.screens.programs import ProgramsScreen
from glibc_doctor.tui.screens.start import StartScreen
from glibc_doctor.tui.widgets.describe import PathNamer
from textual.app import App
from textual.binding import Binding


def home_alias() -> dict[str, str]:
    """By default paths under the home directory show as ``~/…``: shorter, and what people type."""
    home = os.path.expanduser("~")
    return {home: "~"} if home not in ("", "/") else {}


class DoctorApp(App[int]):
    """``DoctorApp(target)``: the TUI on ``target`` (or the picker when None); ``DoctorApp(audit=PATHS)``:
    the programs screen of an audit of those paths (``ext`` then names the --ext-dir plugin dirs).

    ``path_aliases`` maps directory prefixes to short names shown instead (``{"/root/.cache/…/lab":
    "$LAB"}``): screenshots and snapshots then hold no machine-specific paths. The default shows the
    home directory as ``~``.
    """

    TITLE = "glibc-doctor"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False, id="app.theme"),
    ]

    def __init__(
        self,
        target: str | None = None,
        *,
        ext: Iterable[str] = (),
        glibc: str | None = None,
        path_aliases: Mapping[str, str] | None = None,
        audit: Iterable[str] | None = None,
        root: str | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.root = root  # --root DIR: the target and every path shown are inside DIR
        self.ext = tuple(ext)
        self.glibc = glibc
        self.audit = tuple(audit) if audit is not None else None
        self.namer = PathNamer(dict(path_aliases) if path_aliases is not None else home_alias())

    def on_mount(self) -> None:
        if self.audit is not None:
            self.push_screen(ProgramsScreen(self.audit, ext=self.ext, glibc=self.glibc))
        elif self.target is None:
            self.push_screen(StartScreen())
        else:
            self.push_screen(MainScreen(self.target, ext=self.ext, glibc=self.glibc, root=self.root))

    def on_target_chosen(self, message: TargetChosen) -> None:
        self.target = message.spec
        self.switch_screen(MainScreen(message.spec, ext=self.ext, glibc=self.glibc, root=self.root))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
