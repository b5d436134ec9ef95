"""The ``glibc-doctor`` command line: scan, explain, and the TUI.

stdout is data (the report, JSON, a graph), stderr is diagnostics; errors the user can cause are one
line ``glibc-doctor: <message>`` and exit code 2, never a traceback. The top-level imports are the
standard library only: ``scan --json`` answers from the result cache before networkx, rich or textual
are imported, and the TUI's Textual is imported only when the TUI opens.

Other modules add subcommands with ``register(subparsers)`` (``tui/cli/fix.py``, ``tui/cli/demo.py``):
each parser they add sets ``func`` (``parser.set_defaults(func=handler)``), a callable taking the parsed
``argparse.Namespace`` and returning the exit code.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, NoReturn, cast

if TYPE_CHECKING:
    from glibc_doctor.core.scan import ScanResult

PROG = "glibc-doctor"
FORMATS = ("text", "json", "mermaid", "dot", "graphml")


class ExitCode(IntEnum):
    OK = 0  # no conflict / success
    CONFLICTS = 1  # conflicts found / a fix could not resolve all
    USAGE = 2  # usage or input error (one line on stderr)


class UsageError(Exception):
    """A command line argparse rejects: reported in one line, like every other input error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


DESCRIPTION = """\
Find (and fix) glibc version conflicts between an interpreter and the native extensions it loads.
Without a command, or with a TARGET path, the interactive TUI opens."""

EPILOG = """\
examples:
  glibc-doctor                              open the TUI on the detected environment ($VIRTUAL_ENV, ./.venv)
  glibc-doctor ./.venv                      open the TUI on a venv
  glibc-doctor scan ./.venv                 what the venv's python loads, and every conflict, as a tree
  glibc-doctor scan /usr/bin/python3 --json the same as JSON (stable keys; repeated scans are cached)
  glibc-doctor scan myprog --ext plugins/   a program and the plugins it dlopen()s
  glibc-doctor scan ./.venv --format mermaid > graph.mmd
  python -c 'import psycopg2' 2>&1 | glibc-doctor explain -
  glibc-doctor diagnose -- python -c 'import psycopg2'
  glibc-doctor fix ./.venv --dry-run        what the fix would patch (a copy; your files stay as they are)
  glibc-doctor audit /usr/bin --format sarif every program under a directory, for CI (exit 1 on conflicts)

exit codes: 0 no conflict / success, 1 conflicts found, 2 usage or input error"""

SCAN_EPILOG = """\
examples:
  glibc-doctor scan ./.venv
  glibc-doctor scan /nix/store/...-python3-3.9/bin/python3.9 --ext ./build/lib --strict
  glibc-doctor scan --pid 4242 --json
  glibc-doctor scan ./.venv --format dot | dot -Tsvg > process.svg
  glibc-doctor scan --root ./arm64-rootfs /usr/bin/python3 --json

TARGET is a python interpreter, a venv directory, a ruby, or any program (give its plugins with --ext).
Nothing is run: the loader's decisions are computed from the files. --strict also resolves every
dependency on its own, to find conflicts hidden today by the load order (latent warnings, exit 1).
--root DIR reads everything inside DIR as its programs see it (its ld.so.cache, its loader, absolute
RPATHs and symlinks stop at DIR; any architecture); TARGET and --ext are paths inside DIR, and so are
the paths of the report (JSON "root" names DIR). This shell's LD_LIBRARY_PATH/LD_PRELOAD do not apply.
exit codes: 0 no conflict, 1 conflicts found, 2 usage or input error"""

EXPLAIN_EPILOG = """\
examples:
  glibc-doctor explain "version \\`GLIBC_2.38' not found (required by /venv/lib/.../_psycopg.so)"
  python -c 'import psycopg2' 2>&1 | glibc-doctor explain -

When the message names files that exist and belong to a venv or interpreter, that target is scanned
too and every conflict is shown, not only the first one the loader reported."""


def build_parser(*, optional: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``optional=False`` leaves out the subcommands of other modules (fast)."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser),
    )
    _add_scan(subparsers)
    _add_explain(subparsers)
    for register in _optional_registrars() if optional else ():
        register(subparsers)
    return parser


def _add_scan(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = subparsers.add_parser(
        "scan",
        help="show what a target loads and every glibc/libstdc++ conflict",
        description="Resolve what the process of TARGET loads, as its ld.so would, and report conflicts.",
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("target", nargs="?", metavar="TARGET", help="interpreter, venv directory or program")
    scan.add_argument(
        "--ext", action="append", default=[], metavar="P", help="an extension file or directory (repeatable)"
    )
    output = scan.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="same as --format json")
    output.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    scan.add_argument("--glibc", metavar="DIR", help="the stdenv glibc to compare with (default: probe cc)")
    scan.add_argument("--pid", type=int, metavar="PID", help="scan a running process (reads /proc/PID/maps)")
    scan.add_argument(
        "--strict",
        action="store_true",
        help="also report conflicts hidden by load order (and exit 1 on them)",
    )
    scan.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="LD_LIBRARY_PATH or LD_PRELOAD of the process (repeatable; default: this shell's own)",
    )
    scan.add_argument(
        "--root",
        metavar="DIR",
        help="scan TARGET inside DIR (a sysroot, chroot or unpacked image) as the loader inside it would",
    )
    scan.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    scan.add_argument(
        "--pip-cache", action="store_true", help="also check the wheels in pip's cache (see: wheels --help)"
    )
    scan.add_argument("-v", "--verbose", "--tree", action="store_true", help="the load tree and every record")
    scan.set_defaults(func=_run_scan)


LOADER_VARIABLES = ("LD_LIBRARY_PATH", "LD_PRELOAD")  # what --env may set: what the loader model reads


def root_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the loader's variables: this shell's LD_LIBRARY_PATH names directories of this
    machine, not of the image a ``--root`` scan reads (``--env`` still sets them, as paths inside)."""
    return {name: value for name, value in base.items() if name not in LOADER_VARIABLES}


def scan_environment(settings: Sequence[str], base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (this process's environment) with the ``--env NAME=VALUE`` settings of the scanned
    process; an empty VALUE unsets the name. Anything but the loader's own variables is a usage error."""
    environ = dict(base)
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals:
            raise UsageError(f"--env {setting}: give NAME=VALUE (LD_LIBRARY_PATH=/opt/lib)")
        if name not in LOADER_VARIABLES:
            raise UsageError(
                f"--env {name}: only {' and '.join(LOADER_VARIABLES)} change what the loader finds"
            )
        if value:
            environ[name] = value
        else:
            environ.pop(name, None)
    return environ


def _add_explain(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = subparsers.add_parser(
        "explain",
        help="explain a loader error message (ImportError, LoadError, ld.so text)",
        description="Explain a loader error message in plain words, and what to run next.",
        epilog=EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("message", nargs="*", metavar="MESSAGE", help="the message, or - to read stdin")
    explain.add_argument("--json", action="store_true", help="the findings (and the scan) as JSON")
    explain.set_defaults(func=_run_explain)


Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _optional_registrars() -> list[Registrar]:
    """Subcommands of modules that may not be installed in this tree (the fix, the demo)."""
    registrars: list[Registrar] = []
    try:
        from glibc_doctor.tui.cli import fix as cli_fix

        registrars.append(cli_fix.register)
    except ImportError:
        pass
    try:
        from glibc_doctor.tui.cli import demo as cli_demo

        registrars.append(cli_demo.register)
    except ImportError:
        pass
    try:
        from glibc_doctor.tui.cli import audit as cli_audit

        registrars.append(cli_audit.register)
    except ImportError:
        pass
    try:
        from glibc_doctor.tui.cli import wheels as cli_wheels

        registrars.append(cli_wheels.register)
    except ImportError:
        pass
    return registrars


# --- entry point -------------------------------------------------------------------------------------

_BUILTIN_COMMANDS = frozenset({"scan", "explain"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure the user can cause ends here as one line and exit code 2."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    _tolerant_stdout()
    try:
        return _dispatch(args_list)
    except UsageError as error:
        return _fail(f"{error} (see {PROG} --help)")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return int(ExitCode.OK)
    except OSError as error:
        return _fail(_os_error_text(error))
    except Exception as error:
        from glibc_doctor.core.errors import DoctorError

        if isinstance(error, DoctorError):
            return _fail(str(error))
        raise


def _dispatch(argv: list[str]) -> int:
    fast = _fast_scan_json(argv)
    if fast is not None:
        return fast
    if not argv:
        return _open_tui(None)
    root, rest = _tui_root(argv)
    if root is not None:
        return _open_tui(rest[0] if rest else None, root=root)
    if _is_tui_target(argv):
        return _open_tui(argv[0])
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        return _open_tui(None)
    return int(func(args))


def _tui_root(argv: list[str]) -> tuple[str | None, list[str]]:
    """``glibc-doctor --root DIR [TARGET]`` (the TUI on a program inside DIR): DIR and the rest."""
    first = argv[0]
    if first == "--root":
        if len(argv) < 2:
            raise UsageError("--root needs a DIR")
        root, rest = argv[1], argv[2:]
    elif first.startswith("--root="):
        root, rest = first.partition("=")[2], argv[1:]
    else:
        return None, argv
    if len(rest) > 1 or (rest and rest[0].startswith("-")):
        raise UsageError("the TUI takes --root DIR [TARGET]; for a scan: scan --root DIR TARGET")
    if not os.path.isdir(root):
        raise UsageError(f"--root {root}: not a directory")
    return root, rest


def _is_tui_target(argv: list[str]) -> bool:
    """``glibc-doctor TARGET``: one argument, not an option or a command, naming a path or a program."""
    first = argv[0]
    if first.startswith("-") or first in _BUILTIN_COMMANDS:
        return False
    if len(argv) != 1 or first in _registered_commands():
        return False
    import shutil

    return os.sep in first or os.path.exists(first) or shutil.which(first) is not None


def _registered_commands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _fail(message: str) -> int:
    print(f"{PROG}: {one_line(message)}", file=sys.stderr)
    return int(ExitCode.USAGE)


def one_line(text: str) -> str:
    """``text`` with control characters escaped as Python writes them (``\\n``, ``\\x1b``): a file name
    may hold a newline, and the error must stay one line. Bytes that were not UTF-8 (surrogate escapes)
    are written ``\\xe9``, the byte they stand for."""
    return "".join(char if char.isprintable() or char == " " else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


def _tolerant_stdout() -> None:
    """Paths that are not UTF-8 (held as surrogate escapes) go out as the bytes they were, so a strict
    UTF-8 locale (``en_US.UTF-8``) prints them instead of raising ``UnicodeEncodeError``."""
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="surrogateescape")


def _os_error_text(error: OSError) -> str:
    if error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error.strerror or error)


def _silence_stdout() -> None:
    """After a closed pipe (``| head``), point stdout at /dev/null so the interpreter's flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# --- scan --------------------------------------------------------------------------------------------


def _fast_scan_json(argv: list[str]) -> int | None:
    """``scan TARGET --json`` answered from the result cache, before any heavy import; None on a miss."""
    if not argv or argv[0] != "scan":
        return None
    try:
        args = build_parser(optional=False).parse_args(argv)
    except UsageError:
        return None  # the full path reports it
    skip = args.pid is not None or args.no_cache or args.pip_cache or not args.target or args.root
    if not _wants_json(args) or skip:
        return None
    from glibc_doctor.core import scancache

    request = scancache.ScanRequest(args.target, tuple(args.ext), args.glibc, bool(args.strict))
    try:
        environ = scan_environment(args.env, os.environ)
    except UsageError:
        return None
    hit = scancache.lookup(request, environ)
    if hit is None:
        return None
    sys.stdout.write(hit.text)
    sys.stdout.flush()
    return int(hit.exit_code)


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(args.json) or args.format == "json"


def _run_scan(args: argparse.Namespace) -> int:
    if not args.target and args.pid is None:
        raise UsageError("scan needs a TARGET or --pid PID")
    environ = scan_environment(args.env, root_environment(os.environ) if args.root else os.environ)
    from glibc_doctor.core.scan import result_text, scan, store_result

    try:
        result = scan(
            args.target or f"pid:{args.pid}",
            ext=tuple(args.ext),
            glibc=args.glibc,
            pid=args.pid,
            env=environ,
            strict=bool(args.strict),
            progress=_progress_line if sys.stderr.isatty() else None,
            use_cache=False,  # stored below, with the JSON text already made for the output
            root=args.root,
        )
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
    text = result_text(result)
    fmt = "json" if args.json else args.format
    if args.pip_cache:
        from glibc_doctor.tui.cli.wheels import scan_with_cache

        return scan_with_cache(result, fmt, verbose=bool(args.verbose), glibc=args.glibc)
    if fmt == "json":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _emit(result, fmt, verbose=bool(args.verbose))
    if not args.no_cache and args.pid is None and not args.root:
        from glibc_doctor.core.scancache import ScanRequest

        request = ScanRequest(args.target, tuple(args.ext), args.glibc, bool(args.strict))
        store_result(request, environ, result, text)
    return int(result.exit_code)


def _progress_line(step: object) -> None:
    """One self-overwriting line on a terminal's stderr (never on a pipe: stderr is for diagnostics)."""
    message = getattr(step, "message", "")
    sys.stderr.write(f"\r\033[K{PROG}: {message}…")
    sys.stderr.flush()


def _emit(result: ScanResult, fmt: str, *, verbose: bool = False) -> None:
    if fmt in ("mermaid", "dot", "graphml"):
        from glibc_doctor.core import export

        render = {"mermaid": export.to_mermaid, "dot": export.to_dot, "graphml": export.to_graphml}[fmt]
        sys.stdout.write(render(result))
    else:
        from glibc_doctor.tui.cli.report import print_scan

        print_scan(result, verbose=verbose)
    sys.stdout.flush()


# --- explain -----------------------------------------------------------------------------------------


def _run_explain(args: argparse.Namespace) -> int:
    text = _explain_input(list(args.message))
    from glibc_doctor.core.explain import explain

    explanation = explain(text)
    scanned = _scan_mentioned(explanation.targets)
    if args.json:
        document = {**explanation.as_json(), "scan": scanned.as_json() if scanned is not None else None}
        import json

        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        from glibc_doctor.tui.cli.report import print_explanation

        print_explanation(explanation, scanned)
    found = bool(explanation.findings) or (scanned is not None and bool(scanned.errors))
    return int(ExitCode.CONFLICTS if found else ExitCode.OK)


def _explain_input(words: list[str]) -> str:
    """The message from the arguments, or from stdin for ``-`` (or no argument with a pipe)."""
    if not words or words == ["-"]:
        if not words and sys.stdin.isatty():
            raise UsageError("explain needs a MESSAGE, or - to read it from stdin")
        text = _read_stdin()
    else:
        text = " ".join(words)
    if not text.strip():
        raise UsageError("explain got an empty message")
    return text


def _read_stdin() -> str:
    """stdin as bytes, decoded leniently: a pasted log may hold anything, and the locale's strict
    decoder would raise on the first byte that is not UTF-8."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # replaced by a text stream (tests, embedding)
        return sys.stdin.read()
    data: bytes = buffer.read()
    return data.decode("utf-8", errors="replace")


def _scan_mentioned(targets: Sequence[str]) -> ScanResult | None:
    """Scan the first venv or interpreter named by the message that exists here (all conflicts, not
    only the first the loader reported); a target that cannot be scanned is simply not shown."""
    from glibc_doctor.core.errors import DoctorError
    from glibc_doctor.core.scan import scan

    for target in targets:
        if os.path.exists(target):
            try:
                return scan(target)
            except (DoctorError, OSError):
                continue
    return None


# --- the TUI -----------------------------------------------------------------------------------------


def _open_tui(target: str | None, root: str | None = None) -> int:
    if root is not None:
        target = target or "python3"  # the image's own python3 (its PATH), as a plain launch picks one
    elif target is not None and not os.path.exists(target):
        raise UsageError(f"{target}: no such file or directory")
    from glibc_doctor.tui.app import DoctorApp

    app = DoctorApp(target, root=root)
    code = app.run()
    return int(code) if isinstance(code, int) else int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
