"""``glibc-doctor wheels``: wheels checked against an interpreter's process before pip installs them.

The work is core's (``core.wheels.wheel_steps``); here it gets a progress bar on stderr (on a terminal
only), a table or JSON on stdout, and ``--purge``: the failing wheels removed from pip's cache after a
confirmation on the terminal (``--yes`` skips it; without a terminal and without ``--yes`` the purge is
refused in one line before anything is checked). Exit code 1 when a wheel fails, 0 otherwise, 2 for bad
input (a wheel named on the command line that is corrupt, hostile or a zip bomb, a target that is no
Python). ``scan TARGET --pip-cache`` prints the same table as a section of the scan (``cache_section``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glibc_doctor.core.pipcache import Purged
    from glibc_doctor.core.scan import ScanResult
    from glibc_doctor.core.wheels import WheelsReport
    from glibc_doctor.tui.wheel_rows import WheelRow
    from rich.console import Console, RenderableType
    from rich.text import Text

_ROWS_SHOWN = 30  # past this many wheels, those that load are counted, not listed (--all lists them)

WHEELS_EPILOG = """\
examples:
  glibc-doctor wheels ./.venv --pip-cache           which wheels pip has cached would break the venv
  glibc-doctor wheels ./.venv --pip-cache --purge   ... and remove those from the cache (asks first)
  glibc-doctor wheels ./.venv dist/*.whl            check wheels before installing them
  glibc-doctor wheels /usr/bin/python3 ./wheelhouse --json

Nothing is installed or run: each wheel is read as a zip, its extension modules are found as the
interpreter would import them, and each is dlopen()ed into a model of the interpreter's process as
`scan` builds it (its glibc, its search path, the wheel's own vendored libraries). A wheel fails when
it is built for this Python and a module would not load. pip's cache is found as pip reads its
configuration ($PIP_CACHE_DIR, pip.conf files, ~/.cache/pip), without running pip.
exit codes: 0 no wheel fails, 1 a wheel fails, 2 usage or input error"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``wheels`` subcommand to the main parser."""
    wheels = subparsers.add_parser(
        "wheels",
        help="check wheels (files, directories, pip's cache) against an interpreter before installing",
        description="Check wheels against TARGET's process, as if pip had installed them; nothing is run.",
        epilog=WHEELS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wheels.add_argument("target", metavar="TARGET", help="python interpreter or venv directory")
    wheels.add_argument("paths", nargs="*", metavar="WHEEL|DIR", help="wheel files, or directories of them")
    wheels.add_argument("--pip-cache", action="store_true", help="check the wheels in TARGET's pip cache")
    wheels.add_argument(
        "--purge", action="store_true", help="remove the failing wheels from pip's cache (asks first)"
    )
    wheels.add_argument("--yes", action="store_true", help="purge without asking")
    wheels.add_argument("--json", action="store_true", help="the verdicts as JSON")
    wheels.add_argument("--glibc", metavar="DIR", help="the stdenv glibc to compare with (default: probe cc)")
    wheels.add_argument("--all", action="store_true", help="list every wheel, also when there are many")
    wheels.set_defaults(func=run_wheels)


def run_wheels(args: argparse.Namespace) -> int:
    from glibc_doctor.tui.cli.main import UsageError

    if not args.paths and not args.pip_cache:
        raise UsageError("wheels needs WHEEL or DIR paths, or --pip-cache")
    if args.purge and not args.pip_cache:
        raise UsageError("--purge removes wheels from pip's cache: add --pip-cache")
    if args.yes and not args.purge:
        raise UsageError("--yes confirms --purge: add --purge")
    if args.purge and not args.yes and not sys.stdin.isatty():
        raise UsageError("--purge asks before removing anything: run it on a terminal, or add --yes")
    report = check_with_progress(args.target, list(args.paths), args.pip_cache, args.glibc)
    if args.json:
        return _json_output(report, purge=bool(args.purge), yes=bool(args.yes))
    from glibc_doctor.tui.cli.report import make_console

    console = make_console()
    print_wheels(report, console, show_all=bool(args.all), hint_purge=not args.purge)
    if args.purge:
        purged = _confirmed_purge(report, yes=bool(args.yes))
        if purged is not None:
            print_purged(purged, console)
    return report.exit_code


def _json_output(report: WheelsReport, *, purge: bool, yes: bool) -> int:
    from glibc_doctor.core.scan import json_lines
    from glibc_doctor.tui.wheel_rows import wheels_document

    document = wheels_document(report)
    if purge:
        purged = _confirmed_purge(report, yes=yes)
        document["purged"] = purged.as_json() if purged is not None else None
    sys.stdout.write(json_lines(document))
    sys.stdout.flush()
    return report.exit_code


def _confirmed_purge(report: WheelsReport, *, yes: bool) -> Purged | None:
    """Ask on the terminal (stderr, stdin), then purge; None when declined or nothing to remove."""
    from glibc_doctor.core.wheels import purge_failing

    doomed = report.purgeable()
    if not doomed:
        print("glibc-doctor: nothing to purge: no failing wheel in pip's cache", file=sys.stderr)
        return None
    if not yes:
        where = report.cache.wheels_dir if report.cache is not None else "?"
        count = f"{len(doomed)} failing wheel{'s' * (len(doomed) != 1)}"
        sys.stderr.write(f"Remove {count} from pip's cache ({where})? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("glibc-doctor: nothing removed", file=sys.stderr)
            return None
    return purge_failing(report)


def check_with_progress(
    target: str, paths: list[str], pip_cache: bool, glibc: str | None, scan: ScanResult | None = None
) -> WheelsReport:
    """Core's check; on a terminal a progress bar on stderr (gone when done), elsewhere silence."""
    from glibc_doctor.core.wheels import WheelsReport, wheel_steps

    cancel = threading.Event()
    steps = wheel_steps(
        target,
        paths,
        pip_cache_wanted=pip_cache,
        glibc=glibc,
        cancel=cancel,
        target=scan.target if scan is not None else None,
    )
    if not sys.stderr.isatty():
        for event in steps:
            if isinstance(event, WheelsReport):
                return event
        raise AssertionError("the check ended without a report")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("[bold]wheels[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task("starting", total=None)
        try:
            for event in steps:
                if isinstance(event, WheelsReport):
                    return event
                progress.update(task, description=event.message, completed=event.done, total=event.total)
        except KeyboardInterrupt:
            cancel.set()
            raise
    raise AssertionError("the check ended without a report")


# --- the table -------------------------------------------------------------------------------------------


def print_wheels(
    report: WheelsReport, console: Console | None = None, *, show_all: bool = False, hint_purge: bool = True
) -> None:
    from glibc_doctor.tui.cli.report import CommandLine, make_console

    console = console or make_console()
    for part in wheels_report(report, show_all=show_all, hint_purge=hint_purge, width=console.width):
        console.print(part, soft_wrap=isinstance(part, CommandLine))


def wheels_report(
    report: WheelsReport,
    *,
    show_all: bool = False,
    hint_purge: bool = True,
    only_failing: bool = False,
    width: int = 100,
) -> list[RenderableType]:
    """The header, the summary line, the table (worst first), the notes and what to run."""
    from glibc_doctor.tui.paths import short_path, shorten_text
    from glibc_doctor.tui.wheel_rows import rows_in_order, summary_words
    from rich.markup import escape
    from rich.text import Text

    parts: list[RenderableType] = [_header(report)]
    failing, line = summary_words(report, _where(report))
    parts.append(Text(("✗ " if failing else "✓ ") + line, style="bold red" if failing else "bold green"))
    pairs = rows_in_order(report, short_path)
    few = show_all or (len(pairs) <= _ROWS_SHOWN and not only_failing)
    listed = [row for _, row in pairs if few or row.state in ("fails", "unreadable")]
    if listed:
        parts.append(_table(listed, width))
    for row in listed:
        for note in row.notes:
            parts.append(Text.from_markup(f"[dim]{escape(row.wheel)}:[/] {escape(note)}"))
    hidden = len(pairs) - len(listed)
    if hidden:
        more = "" if only_failing else " (--all lists them)"
        parts.append(Text(f"… and {hidden} more wheels that do not fail{more}", style="dim"))
    for note in report.notes + report.interpreter.base.notes:
        parts.append(Text.from_markup(f"[yellow]note[/] {escape(shorten_text(note))}"))
    parts += _what_to_do(report, hint_purge)
    return parts


def _where(report: WheelsReport) -> str:
    if report.cache is not None and not report.sources:
        return "in pip's cache"
    return "checked"


def _header(report: WheelsReport) -> RenderableType:
    from glibc_doctor.tui.paths import short_path
    from rich.console import Group
    from rich.markup import escape
    from rich.text import Text

    interpreter = report.interpreter
    tags = interpreter.tags
    python = f"Python {tags.python[0]}.{tags.python[1]}, {tags.abi}, {tags.arch}" if tags else "Python ?"
    glibc = interpreter.glibc
    lines = [
        Text.from_markup(
            f"[bold]{escape(short_path(interpreter.target.spec))}[/]  ({escape(python)}) "
            f"loads [bold]glibc {escape(glibc.version or '?')}[/]  {escape(short_path(glibc.libc or '?'))}"
        )
    ]
    if report.cache is not None:
        path = report.cache.path
        shown = short_path(path) if path is not None else "disabled"
        lines.append(
            Text.from_markup(f"pip's cache {escape(shown)}  [dim]({escape(report.cache.source)})[/]")
        )
    return Group(*lines)


def _table(rows: list[WheelRow], width: int) -> RenderableType:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    headers = ["wheel", "tags", "verdict", "needs", "fixed by `fix`"]
    cells = [
        [row.wheel.replace(" ", "\n", 1), row.tags, row.verdict, "\n".join(row.needs) or "—", row.fix]
        for row in rows
    ]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for header, column_width in zip(headers, _widths(headers, cells, width), strict=True):
        table.add_column(header, width=column_width, overflow="fold")
    for row, texts in zip(rows, cells, strict=True):
        fix_style = "green" if row.fixable else "red" if row.fixable is False else "dim"
        styles = ["bold", "dim", _STATE_STYLES[row.state], "", fix_style]
        table.add_row(*(Text(text, style=style) for text, style in zip(texts, styles, strict=False)))
    return table


# The order in which columns give up width, and how narrow each may get: the verdict of `fix` and the
# tags first (their words wrap well), the needs last.
_SHRINK = ((4, 14), (1, 14), (3, 30), (0, 10), (2, 8), (3, 16))


def _widths(headers: list[str], cells: list[list[str]], width: int) -> list[int]:
    natural = [
        max([len(header)] + [len(line) for row in cells for line in row[i].splitlines()])
        for i, header in enumerate(headers)
    ]
    widths = list(natural)
    excess = sum(widths) + 2 * len(widths) - 1 - width  # a pad and a divider between columns
    for column, floor in _SHRINK:
        if excess <= 0:
            break
        if column < len(widths):
            give = max(0, min(excess, widths[column] - floor))
            widths[column] -= give
            excess -= give
    return widths


_STATE_STYLES = {
    "fails": "bold red",
    "unreadable": "bold red",
    "loads": "green",
    "other": "dim",
    "pure": "dim",
}


def _what_to_do(report: WheelsReport, hint_purge: bool) -> list[RenderableType]:
    """The fix for the wheels it makes load, the purge for the cached ones: each command on a line of
    its own (``CommandLine``: soft-wrapped, so it stays copyable)."""
    from glibc_doctor.core.analysis import fix_command
    from glibc_doctor.tui.cli.report import CommandLine
    from glibc_doctor.tui.paths import short_path
    from glibc_doctor.tui.wheel_rows import fixable_by_fix
    from rich.text import Text

    if not report.failing:
        return []
    stdenv = report.interpreter.stdenv
    spec = short_path(report.interpreter.target.spec)
    lines: list[RenderableType] = [Text("\nWhat to do", style="bold")]
    fixable = sorted(check.name for check in report.failing if fixable_by_fix(check, stdenv))
    if fixable and stdenv is not None:
        lines.append(_command(fix_command(spec, None, stdenv), CommandLine))
        lines.append(
            Text(f"  and {', '.join(fixable)} load: the stdenv's glibc {stdenv.version} has what they need")
        )
    doomed = report.purgeable()
    if doomed and hint_purge:
        lines.append(_command(f"glibc-doctor wheels {spec} --pip-cache --purge", CommandLine))
        count = f"{len(doomed)} failing wheel{'s' * (len(doomed) != 1)}"
        lines.append(
            Text(f"  removes the {count} from pip's cache: the next pip install builds or fetches them again")
        )
    return lines


def _command(command: str, kind: type[Text]) -> Text:
    line = kind("  run  ")
    line.append(command, style="bold green")
    return line


def print_purged(purged: Purged, console: Console) -> None:
    from glibc_doctor.tui.paths import short_path
    from rich.markup import escape
    from rich.text import Text

    for path in purged.removed:
        console.print(Text.from_markup(f"[bold]removed[/] {escape(short_path(path))}"), soft_wrap=True)
    for path, reason in purged.kept:
        line = f"[yellow]kept[/] {escape(short_path(path))}: {escape(reason)}"
        console.print(Text.from_markup(line), soft_wrap=True)


# --- the scan's section ----------------------------------------------------------------------------------


def cache_report(result: ScanResult, glibc: str | None) -> WheelsReport:
    """The wheels of the scanned target's pip cache (for ``scan TARGET --pip-cache``)."""
    return check_with_progress(result.target.spec, [], True, glibc, scan=result)


def cache_section(report: WheelsReport, console: Console | None = None) -> None:
    """``Wheels in pip's cache``: the same table, listing only the wheels that would break the target."""
    from glibc_doctor.tui.cli.report import CommandLine, make_console
    from rich.text import Text

    console = console or make_console()
    console.print(Text("\nWheels in pip's cache", style="bold"))
    for part in wheels_report(report, only_failing=True, width=console.width)[1:]:
        console.print(part, soft_wrap=isinstance(part, CommandLine))


def scan_with_cache(result: ScanResult, fmt: str, *, verbose: bool, glibc: str | None) -> int:
    """``scan TARGET --pip-cache``: the scan's report, then the wheels of the target's pip cache that
    would break it (JSON: the scan's document with a ``pip_cache`` key, the ``wheels --json`` document).
    Exit code 1 when the scan finds a conflict or a cached wheel fails."""
    from glibc_doctor.tui.cli.main import UsageError

    if fmt not in ("text", "json"):
        raise UsageError(f"--pip-cache adds to the text or JSON report, not to --format {fmt}")
    if result.root is not None:
        raise UsageError("--pip-cache and --root do not go together: the cache is this machine's pip's")
    report = cache_report(result, glibc)
    if fmt == "json":
        from glibc_doctor.core.scan import json_lines
        from glibc_doctor.tui.wheel_rows import wheels_document

        document = result.as_json()
        document["pip_cache"] = wheels_document(report)
        sys.stdout.write(json_lines(document))
    else:
        from glibc_doctor.tui.cli.report import make_console, print_scan

        console = make_console()
        print_scan(result, console, verbose=verbose)
        cache_section(report, console)
    sys.stdout.flush()
    return max(result.exit_code, report.exit_code)
