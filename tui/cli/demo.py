"""``glibc-doctor demo``: build the real reproduction (the tests' lab) and open the TUI on it.

A newcomer sees a real conflict and a real fix in a minute: an old python hard-wired to glibc 2.31 from
another Debian release, extensions built by this machine's gcc that it cannot load. The build is core's
(``core.lab``); here it only gets a progress bar, and a one-line answer when it cannot be built.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glibc_doctor.lab.build import Lab
    from rich.console import Console

EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the CLI's parser."""
    demo = subparsers.add_parser(
        "demo",
        help="build a real glibc conflict (old python + new extensions) and open the TUI on it",
        description=(
            "Fetch Debian packages of another release with apt-get, assemble a python hard-wired to "
            "glibc 2.31, build extensions with this machine's gcc, and open the TUI on that venv."
        ),
    )
    demo.add_argument("--cache-dir", metavar="DIR", help="where to build the lab (default: the test lab's)")
    demo.add_argument("--no-tui", action="store_true", help="build (or find) the lab and print its venv")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from glibc_doctor.core.errors import LabError

    try:
        lab = build_with_progress(Path(args.cache_dir) if args.cache_dir else None)
    except LabError as error:
        print(f"glibc-doctor: the demo cannot be built here: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("glibc-doctor: demo build cancelled", file=sys.stderr)
        return EXIT_USAGE
    try:
        venv = demo_venv(lab)
    except OSError as error:
        print(f"glibc-doctor: cannot copy the demo's venv: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.no_tui:
        print(venv)
        return 0
    from glibc_doctor.tui.app import DoctorApp

    code = DoctorApp(str(venv)).run()
    return int(code) if isinstance(code, int) else 0


def demo_venv(lab: Lab) -> Path:
    """The venv the demo opens: a copy of the lab's, made once per lab build.

    The lab is the tests' reproduction and must stay as it was built; a fix pressed in the demo (and a
    later ``ensure`` or ``rollback``) retargets this copy's ``bin/python*`` and ``pyvenv.cfg``, never
    the lab's. The copy is made aside and renamed into place, so an interrupted one is never used.
    """
    import os
    import shutil

    target = lab.cache_dir / "demo" / Path(lab.root).name / "venv"
    if target.is_dir():
        return target
    staging = target.with_name(f".venv-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(lab.venv, staging, symlinks=True)
    try:
        os.rename(staging, target)
    except OSError:  # another demo made it first
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def build_with_progress(cache_dir: Path | None) -> Lab:
    """The lab, reused when built, else built under a rich progress bar (Ctrl-C cancels cleanly)."""
    from glibc_doctor.core.errors import LabError
    from glibc_doctor.lab.build import Lab, build_lab, default_cache_dir
    from rich.progress import BarColumn, Progress, TextColumn

    directory = cache_dir or default_cache_dir()
    ready = Lab.load(directory)
    if ready is not None:
        return ready
    cancel = threading.Event()
    columns = (TextColumn("[bold]demo lab[/]"), BarColumn(), TextColumn("{task.description}"))
    with Progress(*columns, transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("starting", total=None)
        try:
            for event in build_lab(directory, cancel):
                progress.update(task, description=event.step, completed=event.done, total=event.total)
                if event.lab is not None:
                    return event.lab
        except KeyboardInterrupt:
            cancel.set()
            raise
    raise LabError("the build ended without a lab")


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def lab_path_aliases(lab: Lab) -> Mapping[str, str]:
    """Short stable names for the lab's paths (``$LAB/venv``, ``$STORE/glibc-2.31``) for screenshots
    and snapshots: store entries are ``<hash>-<name>`` and the build directory is machine-specific."""
    aliases = {str(lab.root): "$LAB"}
    current = Path(lab.root).parent.parent / "lab"  # cache_dir/lab -> builds/<id>, as a Nix profile
    if current.is_symlink() and current.resolve() == Path(lab.root).resolve():
        aliases[str(current)] = "$LAB"
    store = Path(lab.store)
    for entry in sorted(os.listdir(store)) if store.is_dir() else ():
        _, _, name = entry.partition("-")
        aliases[str(store / entry)] = f"$STORE/{name or entry}"
    return aliases
