"""The command line: ``main`` parses and dispatches; one module per group of subcommands.

``main.py`` holds the parser, ``scan``/``explain`` and the TUI launch; ``fix.py`` the fix, ensure, status,
rollback, gc, stdenv, hook and diagnose commands; ``demo.py`` the lab demo; ``report.py`` the rich text
report that ``scan`` and ``explain`` print.

This package's ``main`` is the installed entry point. It answers ``ensure [--quiet]`` with nothing to do
itself (core/uptodate.py), before the parser and everything it imports: the shell hook runs that
command whenever its own check cannot vouch for the last verdict, and it must cost little more than
Python's start-up.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs an import on the ensure path; mypy treats the name as true
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``glibc-doctor ARGS``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ensure"] and set(args[1:]) <= {"--quiet"}:
        import os

        from glibc_doctor.core.uptodate import nothing_to_do

        checked = nothing_to_do(os.environ)
        if checked is not None:
            if "--quiet" not in args:
                print(f"{checked} fixed target(s), all up to date")
            return 0
    from glibc_doctor.tui.cli.main import main as run

    return run(args)


__all__ = ["main"]
