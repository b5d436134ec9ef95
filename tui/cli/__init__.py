"""The command line: ``main`` parses and dispatches; one module per group of subcommands.

``main.py`` holds the parser, ``scan``/``explain`` and the TUI launch; ``fix.py`` the fix, ensure, status,
rollback, gc, stdenv, hook and diagnose commands; ``demo.py`` the lab demo; ``report.py`` the rich text
report that ``scan`` and ``explain`` print.
"""

from glibc_doctor.tui.cli.main import main

__all__ = ["main"]
