"""``glibc-doctor audit``: every program under some paths, one row each, worst first; a CI gate.

The work is core's (``core.audit.audit_steps``); here it gets a rich progress bar on stderr (only on a
terminal: a CI log gets nothing there), and its result goes to stdout as a table, JSON, SARIF or JUnit.
Exit code 1 when ``--fail-on`` is met (default: a conflict ld.so refuses today), 0 otherwise, 2 for bad
input (one line, from the main entry point). ``--tui`` opens the programs screen instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glibc_doctor.core.audit import AuditResult
    from rich.console import Console, JustifyMethod

FORMATS = ("text", "json", "sarif", "junit")
FAIL_ON = ("conflict", "latent")
_CLEAN_ROWS_SHOWN = 30  # past this many programs, the clean ones are counted, not listed (--all lists them)

AUDIT_EPILOG = """\
examples:
  glibc-doctor audit /usr/bin /usr/sbin
  glibc-doctor audit .devbox/nix/profile/default/bin --fail-on latent
  glibc-doctor audit ./build/bin/myapp --ext-dir ./build/plugins --format sarif > glibc.sarif
  glibc-doctor audit ./image-root/usr/bin --format junit > glibc-junit.xml
  glibc-doctor audit ./tools --tui

Every ELF program under the paths (an executable file with a PT_INTERP), every venv (pyvenv.cfg) and
every Nix wrapper script is scanned as `scan --strict` scans it: pythons and rubies with their
extensions, every program with the --ext-dir plugins. Paths that run the same process make one row.
Nothing is run. exit codes: 0 nothing meets --fail-on, 1 a program does, 2 usage or input error"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` subcommand to the main parser."""
    audit = subparsers.add_parser(
        "audit",
        help="scan every program under some directories; a table worst first, or SARIF/JUnit for CI",
        description="Find every program under DIR (or the PROGRAMs given) and report its glibc conflicts.",
        epilog=AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("paths", nargs="*", metavar="DIR|PROGRAM", help="directories to search, or programs")
    audit.add_argument(
        "--ext-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a plugin directory every program dlopen()s (repeatable; as scan's --ext)",
    )
    output = audit.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="same as --format json")
    output.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    output.add_argument("--tui", action="store_true", help="open the programs screen of the TUI")
    audit.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="conflict",
        help="exit 1 on a conflict today (default), or also on a latent one (strict mode)",
    )
    audit.add_argument("--glibc", metavar="DIR", help="the stdenv glibc to compare with (default: probe cc)")
    audit.add_argument("--all", action="store_true", help="list the programs without findings too")
    audit.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    if not args.paths:
        from glibc_doctor.tui.cli.main import UsageError

        raise UsageError("audit needs at least one DIR or PROGRAM")
    if args.tui:
        return _open_tui(args)
    result = audit_with_progress(list(args.paths), list(args.ext_dir), args.glibc)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        from glibc_doctor.core.scan import json_lines

        sys.stdout.write(json_lines(result.as_json()))
    elif fmt == "sarif":
        from glibc_doctor.core.ci_formats import to_sarif

        sys.stdout.write(json.dumps(to_sarif(result), indent=1) + "\n")
    elif fmt == "junit":
        from glibc_doctor.core.ci_formats import to_junit

        sys.stdout.write(to_junit(result, args.fail_on))
    else:
        print_audit(result, show_all=bool(args.all), fail_on=args.fail_on)
    sys.stdout.flush()
    return result.exit_code(args.fail_on)


def audit_with_progress(paths: list[str], ext_dirs: list[str], glibc: str | None) -> AuditResult:
    """Core's audit; on a terminal a progress bar on stderr (gone when done), elsewhere silence."""
    from glibc_doctor.core.audit import AuditResult, audit_steps

    cancel = threading.Event()
    steps = audit_steps(paths, ext_dirs=ext_dirs, glibc=glibc, cancel=cancel)
    if not sys.stderr.isatty():
        for event in steps:
            if isinstance(event, AuditResult):
                return event
        raise AssertionError("the audit ended without a result")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("[bold]audit[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("starting", total=None)
        try:
            for event in steps:
                if isinstance(event, AuditResult):
                    return event
                total = event.total if event.stage == "scanning" else None
                progress.update(task, description=event.message, completed=event.done, total=total)
        except KeyboardInterrupt:
            cancel.set()
            raise
    raise AssertionError("the audit ended without a result")


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _open_tui(args: argparse.Namespace) -> int:
    from glibc_doctor.tui.app import DoctorApp

    app = DoctorApp(audit=list(args.paths), ext=list(args.ext_dir), glibc=args.glibc)
    code = app.run()
    return int(code) if isinstance(code, int) else 0


# --- the table ----------------------------------------------------------------------------------------


def print_audit(
    result: AuditResult, console: Console | None = None, *, show_all: bool = False, fail_on: str = "conflict"
) -> None:
    """A summary line, the table (worst first), what was skipped, and the notes."""
    from glibc_doctor.tui.cli.report import make_console
    from glibc_doctor.tui.paths import short_path, shorten_text
    from glibc_doctor.tui.program_rows import program_row
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    console = console or make_console()
    console.print(summary_line(result, fail_on))
    listed = [
        p
        for p in result.programs
        if show_all or len(result.programs) <= _CLEAN_ROWS_SHOWN or p.result.conflicts
    ]
    hidden = len(result.programs) - len(listed)
    if listed:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
        for header, justify, ratio in _COLUMNS:
            table.add_column(header, justify=justify, overflow="fold", ratio=ratio)
        for program in listed:
            row = program_row(program, short_path)
            style = _STATE_STYLES[row.state]
            name = Text(row.program, style="bold")
            if row.also:
                name.append(f"\n{row.also}", style="dim")
            table.add_row(
                name, row.glibc, Text(str(row.conflicts), style=style if row.conflicts else "dim"),
                Text(str(row.latent), style="yellow" if row.latent else "dim"),
                Text(row.worst, style=style),
            )  # fmt: skip
        console.print(table)
    if hidden:
        console.print(Text(f"… and {hidden} more programs without findings (--all lists them)", style="dim"))
    for skipped in result.skipped if show_all else result.skipped[:5]:
        console.print(
            Text.from_markup(f"[dim]skipped[/] {escape(short_path(skipped.path))}: {escape(skipped.reason)}")
        )
    if len(result.skipped) > 5 and not show_all:
        console.print(Text(f"… and {len(result.skipped) - 5} more skipped (--all lists them)", style="dim"))
    for note in (*result.stdenv_notes, *result.notes):
        console.print(Text.from_markup(f"[yellow]note[/] {escape(shorten_text(note))}"))


# The paths and the worst record share what the fixed columns leave (paths get more).
_COLUMNS: tuple[tuple[str, JustifyMethod, int | None], ...] = (
    ("program", "left", 5),
    ("glibc found via", "left", None),
    ("conflicts", "right", None),
    ("latent", "right", None),
    ("worst", "left", 4),
)
_STATE_STYLES = {"error": "red", "latent": "yellow", "warning": "yellow", "ok": "green"}


def summary_line(result: AuditResult, fail_on: str = "conflict") -> str:
    """``12 programs in /usr/bin: 2 with conflicts, 1 with latent ones; 3 skipped`` (rich markup)."""
    from rich.markup import escape

    counts = result.summary()
    where = ", ".join(result.paths)
    failing = len(result.failing(fail_on))
    mark = "[bold red]✗[/]" if failing else "[bold green]✓[/]"
    parts = [f"{counts['with_conflicts']} with conflicts", f"{counts['with_latent']} with latent ones"]
    skipped = f"; {counts['skipped']} skipped" if counts["skipped"] else ""
    return f"{mark} {counts['programs']} programs in {escape(where)}: {', '.join(parts)}{skipped}"
