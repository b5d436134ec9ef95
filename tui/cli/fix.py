"""The fix's subcommands: fix, ensure, status, rollback, gc, stdenv, hook, diagnose.

``register(subparsers)`` adds them to the main parser (tui/cli.py). Imports here are the standard
library only at the top: ``ensure --quiet`` runs at every shell prompt and must stay fast, so core's
ELF machinery and rich are imported inside the handlers that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glibc_doctor.core.diagnose import Diagnosis
    from glibc_doctor.core.patch import FixProgress, FixResult
    from glibc_doctor.core.patch.plan import FixPlan
    from rich.console import Console

OK, CONFLICTS, USAGE = 0, 1, 2

FIX_EPILOG = """\
examples:
  glibc-doctor fix ./.venv --dry-run        show what would be copied and patched
  glibc-doctor fix ./.venv --yes            patch a copy of the venv's interpreter, verify, switch the venv
  glibc-doctor fix /nix/store/...-python3-3.9/bin/python3.9 --glibc /nix/store/...-glibc-2.40/lib

The original package is never modified: a patched copy goes to $XDG_DATA_HOME/glibc-doctor/packages,
uses the stdenv glibc (the one your compiler links new extensions against), and is activated only
after the extensions that failed import with it. exit codes: 0 fixed, 1 conflicts remain or the fix
could not be verified, 2 usage or input error"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the fix's subcommands to the main parser."""
    fix = subparsers.add_parser(
        "fix",
        help="patch a copy of the interpreter to use the stdenv glibc, verify, activate",
        epilog=FIX_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fix.add_argument("target", metavar="TARGET", help="interpreter, venv directory, ruby, or program")
    fix.add_argument(
        "--ext", action="append", default=[], metavar="P", help="extension file or dir (repeatable)"
    )
    fix.add_argument(
        "--glibc", metavar="DIR", help="use this glibc instead of the compiler's (lib dir or prefix)"
    )
    fix.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    fix.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    fix.add_argument("--json", action="store_true", help="JSON on stdout")
    fix.add_argument("--root", metavar="DIR", help=argparse.SUPPRESS)  # refused with its reason
    fix.set_defaults(func=run_fix_command)

    ensure = subparsers.add_parser(
        "ensure", help="rebuild patched packages whose stdenv changed (fast no-op)"
    )
    ensure.add_argument(
        "--quiet", action="store_true", help="print nothing unless something was rebuilt or failed"
    )
    ensure.set_defaults(func=run_ensure)

    status = subparsers.add_parser(
        "status", help="list fixed targets, their builds and whether they are current"
    )
    status.add_argument("--json", action="store_true", help="JSON on stdout")
    status.set_defaults(func=run_status)

    rollback = subparsers.add_parser("rollback", help="undo the last fix or rebuild of a target")
    rollback.add_argument("target", metavar="TARGET", help="venv, interpreter, build or manifest id")
    rollback.set_defaults(func=run_rollback)

    gc = subparsers.add_parser("gc", help="remove builds no target uses (keeps current and previous)")
    gc.set_defaults(func=run_gc)

    stdenv = subparsers.add_parser("stdenv", help="show the glibc your compiler links new extensions against")
    stdenv.add_argument("--glibc", metavar="DIR", help="describe this glibc instead")
    stdenv.add_argument("--json", action="store_true", help="JSON on stdout")
    stdenv.set_defaults(func=run_stdenv)

    hook = subparsers.add_parser(
        "hook", help="print the shell snippet that runs `ensure --quiet` at each prompt"
    )
    hook.add_argument("shell", choices=("bash", "zsh", "fish"))
    hook.set_defaults(func=run_hook)

    diagnose = subparsers.add_parser(
        "diagnose", help="run a command, catch loader errors, map them onto its graph, offer the fix"
    )
    diagnose.add_argument("--ld-debug", action="store_true", help="run it with LD_DEBUG=libs too")
    diagnose.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before the command is stopped"
    )
    diagnose.add_argument("--json", action="store_true", help="JSON on stdout")
    diagnose.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARG]...")
    diagnose.set_defaults(func=run_diagnose)


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


# --- fix ------------------------------------------------------------------------------------------


def run_fix_command(args: argparse.Namespace) -> int:
    from glibc_doctor.core import store
    from glibc_doctor.core.errors import PatchError
    from glibc_doctor.core.patch import FixResult, run_fix
    from glibc_doctor.core.patch.plan import plan_fix
    from glibc_doctor.core.scan import scan, target_class, target_machine
    from glibc_doctor.core.stdenv import find_stdenv

    if args.root is not None:
        from glibc_doctor.core.errors import DoctorError
        from glibc_doctor.core.sysroot import FIX_REFUSAL

        raise DoctorError(FIX_REFUSAL)
    err = _console(stderr=True)
    result = scan(args.target, ext=tuple(args.ext), use_cache=False)
    stdenv = find_stdenv(
        args.glibc, elf_class=target_class(result.graph), machine=target_machine(result.graph)
    )
    found = store.source_snapshot(result.target)
    source, current_root = (found[0], found[1]) if found is not None else (result, None)
    plan = plan_fix(source, stdenv, str(store.data_dir()))
    if not source.conflicts and found is None:
        return _nothing_to_fix(args, plan)
    if args.dry_run:
        _show_plan(args, plan)
        return CONFLICTS if plan.remaining or plan.warnings else OK
    if not args.json:
        _show_warnings(plan, err)
    if not args.yes:
        _confirm(plan, err)
    fixed: FixResult | None = None
    try:
        events = run_fix(
            plan, source.conflicts, current_root=current_root, glibc_dir=args.glibc, ext=args.ext
        )
        for event in events:
            if isinstance(event, FixResult):
                fixed = event
            elif not args.json:
                _show_progress(err, event)
    except PatchError as error:
        print(f"glibc-doctor: fix failed, nothing was changed: {error}", file=sys.stderr)
        return CONFLICTS
    assert fixed is not None
    _show_fix(args, fixed)
    return OK if fixed.ok else CONFLICTS


def _show_progress(err: Console, event: FixProgress) -> None:
    """One line per step; per-file patch events only as a count, every tenth and the last."""
    if event.step in ("patched", "rewrote"):
        if event.total and (event.done % 10 == 0 or event.done == event.total):
            err.print(f"[dim]patched[/dim] {event.done}/{event.total} ELF files", markup=True)
        return
    err.print(f"[dim]{event.step}[/dim] {event.detail}", markup=True, highlight=False)


def _nothing_to_fix(args: argparse.Namespace, plan: FixPlan) -> int:
    if args.json:
        _print_json(
            {
                "interpreter": plan.target.executable,
                "package": None,
                "stdenv": plan.stdenv.as_json(),
                "verified": True,
                "activated": [],
                "remaining": [],
            }
        )
    else:
        _console().print(f"{plan.target.spec}: no conflicts; nothing to fix")
    return OK


def _show_plan(args: argparse.Namespace, plan: FixPlan) -> None:
    if args.json:
        _print_json(plan.as_json())
        return
    console = _console()
    console.print("[bold]fix plan[/bold] (dry run: nothing changed)")
    for line in plan.describe():
        console.print(line, markup=False)


def _show_warnings(plan: FixPlan, err: Console) -> None:
    """Before anything is built: what the stdenv's loader would refuse that loads today."""
    from glibc_doctor.core.patch.plan import warning_lines
    from rich.markup import escape

    for conflict in plan.warnings:
        first, *rest = warning_lines(conflict)
        err.print(f"[yellow]warning[/yellow] {escape(first)}", markup=True, highlight=False)
        for line in rest:
            err.print(line, markup=False, highlight=False)


def _confirm(plan: FixPlan, err: Console) -> None:
    from glibc_doctor.core.errors import DoctorError

    if not sys.stdin.isatty():
        raise DoctorError(
            "fix needs confirmation: pass --yes (no terminal to ask on), or --dry-run to see the plan"
        )
    from rich.prompt import Confirm

    err.print(f"copy [bold]{plan.source_package}[/bold]")
    err.print(f"  to {plan.destination}")
    err.print(
        f"  patch {len(plan.elf_patches)} ELF files for glibc {plan.stdenv.version} ({plan.stdenv.source})"
    )
    err.print(f"  RPATH first: {':'.join(plan.first_dirs)} (links to the stdenv glibc only)", markup=False)
    err.print(f"  fixes {len(plan.fixes)} conflict(s); {len(plan.remaining)} will remain")
    if not Confirm.ask("go ahead?", console=err, default=False):
        raise DoctorError("fix cancelled; nothing was changed")


def _show_fix(args: argparse.Namespace, fixed: FixResult) -> None:
    if args.json:
        _print_json(fixed.as_json())
        return
    console = _console()
    mark = "[green]verified[/green]" if fixed.verified else "[red]NOT verified[/red]"
    runner = fixed.verification.runner
    if runner and runner != "native":
        mark += f" under {runner}"
    elif not runner:
        mark += ": nothing here can run it"
    console.print(f"patched interpreter {fixed.plan.patched_interpreter} ({mark})")
    console.print(f"glibc {fixed.plan.stdenv.version} from {fixed.plan.stdenv.source}")
    console.print(f"glibc view {fixed.plan.view.root}", markup=False)
    for check in fixed.verification.checks:
        state = "[green]loads[/green]" if check.ok else "[red]fails[/red]"
        console.print(f"  {check.name}: {state}" + ("" if check.ok else f"  {check.detail}"))
    for problem in fixed.verification.failures():
        console.print(f"  [red]{problem}[/red]")
    if fixed.activation is not None:
        for path in fixed.activation.changed:
            console.print(f"activated: {path}")
        for hint in fixed.activation.hints:
            console.print(f"put it on PATH: [bold]{hint}[/bold]")
    else:
        console.print(
            "[yellow]not activated[/yellow]: the build is kept for inspection until `glibc-doctor gc`"
        )
    for item in fixed.remaining:
        console.print(f"[yellow]remains[/yellow] {item.conflict.object}: {item.reason}")


# --- ensure, status, rollback, gc -----------------------------------------------------------------


def run_ensure(args: argparse.Namespace) -> int:
    from glibc_doctor.core import store

    quiet = bool(args.quiet)

    def progress(event: FixProgress) -> None:
        if not quiet and event.step not in ("patched", "rewrote"):
            print(f"{event.step} {event.detail}", file=sys.stderr)

    report = store.ensure(progress=progress)
    for fixed in report.rebuilt:
        if fixed.activation is not None:
            version = fixed.plan.stdenv.version
            print(f"rebuilt {fixed.plan.target.spec} -> {fixed.build.package} (glibc {version})")
    for line in report.failed:
        print(f"glibc-doctor: ensure: {line}", file=sys.stderr)
    if not quiet and not report.rebuilt and not report.failed:
        print(f"{report.checked} fixed target(s), all up to date")
    return OK if report.ok else CONFLICTS


def run_status(args: argparse.Namespace) -> int:
    from glibc_doctor.core import store

    entries = store.status()
    if args.json:
        _print_json([entry.as_json() for entry in entries])
        return OK
    console = _console()
    if not entries:
        console.print("no fixed targets (run `glibc-doctor fix TARGET`)")
        return OK
    for entry in entries:
        manifest = entry.manifest
        state = {True: "[green]up to date[/green]", False: "[yellow]stale: run ensure[/yellow]", None: "?"}[
            entry.up_to_date
        ]
        if manifest.pinned:
            state = "[yellow]pinned by rollback[/yellow] (fix it again to follow the stdenv)"
        console.print(f"[bold]{manifest.spec}[/bold] ({manifest.kind}) {state}")
        console.print(f"  source   {manifest.source_package}")
        console.print(
            f"  current  {manifest.current.package}  glibc {manifest.current.stdenv.get('version')}"
        )
        if manifest.previous is not None:
            console.print(f"  previous {manifest.previous.package}")
        if not entry.exists:
            console.print("  [red]the current build is missing[/red]")
        for item in manifest.remaining:
            console.print(f"  remains {item.get('object')}: {item.get('reason')}")
    return OK


def run_rollback(args: argparse.Namespace) -> int:
    from glibc_doctor.core import store

    print(store.rollback(args.target))
    return OK


def run_gc(args: argparse.Namespace) -> int:
    from glibc_doctor.core import store

    removed = store.gc()
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("nothing to remove")
    return OK


def run_stdenv(args: argparse.Namespace) -> int:
    from glibc_doctor.core.stdenv import find_stdenv

    info = find_stdenv(args.glibc)
    if args.json:
        _print_json(info.as_json())
        return OK
    console = _console()
    console.print(f"glibc    {info.version or '?'}  ({info.source})")
    console.print(f"loader   {info.loader}")
    console.print(f"libc     {info.libc}")
    console.print(f"libstdc++ {info.libstdcxx or '(none found)'}")
    console.print(f"lib dirs {':'.join(info.lib_dirs)}")
    console.print(f"fingerprint {info.fingerprint[:16]}")
    return OK


def run_hook(args: argparse.Namespace) -> int:
    from glibc_doctor.core.store import hook_snippet

    sys.stdout.write(hook_snippet(args.shell))
    return OK


# --- diagnose -------------------------------------------------------------------------------------


def run_diagnose(args: argparse.Namespace) -> int:
    from glibc_doctor.core.diagnose import diagnose

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    found = diagnose(command, ld_debug=args.ld_debug, timeout=args.timeout)
    if args.json:
        _print_json(found.as_json())
    else:
        _show_diagnosis(found)
    return CONFLICTS if found.found else OK


def _show_diagnosis(found: Diagnosis) -> None:
    console = _console()
    status = "timed out" if found.returncode is None else f"exit status {found.returncode}"
    console.print(f"ran {' '.join(found.argv)} ({status})", markup=False)
    for finding in found.explanation.findings:
        console.print(f"[red]loader:[/red] {finding.message.raw}", markup=True, highlight=False)
        console.print(f"  {finding.cause}", markup=False)
    if not found.explanation.findings:
        console.print("the loader reported no error")
    if found.scan_problem:
        console.print(f"could not scan {found.target}: {found.scan_problem}", markup=False)
    if found.scan is not None:
        errors = found.scan.errors
        hidden = [conflict for conflict in errors if conflict not in found.matched]
        console.print(f"scan of {found.target}: {len(errors)} conflict(s)", markup=False)
        for conflict in hidden:
            console.print(f"  also: {conflict.message}", markup=False)
    if found.suggestion:
        console.print(f"fix it: [bold]{found.suggestion}[/bold] (add --dry-run to see the plan first)")
