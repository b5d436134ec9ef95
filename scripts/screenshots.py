"""Regenerate screenshots/*.svg: the real TUI screens on the real lab case (never drawn by hand).

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 110x34]

Builds (or reuses) the lab, copies its venv into a temporary directory with private XDG dirs (the fix
really runs there, never on the shared lab), drives the app with Textual's Pilot and saves each screen.
Paths are shown as $LAB, $STORE/<name> and $TMP so the images hold nothing machine-specific but the
machine's own glibc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from glibc_doctor.lab.build import Lab, ensure_lab
from glibc_doctor.tui.app import DoctorApp
from glibc_doctor.tui.cli.demo import lab_path_aliases
from textual.pilot import Pilot

Step = Callable[[Pilot[Any]], Awaitable[None]]


async def settle(pilot: Pilot[Any]) -> None:
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def shoot(app: DoctorApp, size: tuple[int, int], shots: list[tuple[str, Step]], out: Path) -> None:
    """Run ``app``; for each (name, step): do the step, wait for the workers, save ``out/name.svg``."""
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for name, step in shots:
            await step(pilot)
            await settle(pilot)
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
            print(f"saved {out / name}.svg", file=sys.stderr)


def keys(*names: str) -> Step:
    async def press(pilot: Pilot[Any]) -> None:
        for name in names:
            await pilot.press(name)
            await settle(pilot)

    return press


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "screenshots"))
    parser.add_argument("--size", default="110x34", help="terminal WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lab = ensure_lab()
    with tempfile.TemporaryDirectory(prefix="glibc-doctor-shots-") as scratch:
        asyncio.run(_all(lab, Path(scratch), (width, height), out))
    return 0


async def _all(lab: Lab, scratch: Path, size: tuple[int, int], out: Path) -> None:
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")
    os.environ.pop("VIRTUAL_ENV", None)
    venv = scratch / ".venv"
    shutil.copytree(lab.venv, venv, symlinks=True)
    aliases = {**lab_path_aliases(lab), str(scratch): "$TMP"}
    os.chdir(scratch)
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = str(scratch / "bin")  # the picker then offers just ./.venv
    await shoot(DoctorApp(None, path_aliases=aliases), size, [("start", keys())], out)
    os.environ["PATH"] = path  # the stdenv probe needs the compiler
    await shoot(
        DoctorApp(str(venv), path_aliases=aliases),
        size,
        [
            ("details", keys()),
            ("graph", keys("g")),
            ("conflicts", keys("2")),
            ("fix-plan", keys("1", "f")),
            ("fixed", keys("enter")),
            ("after-fix", keys("escape")),
        ],
        out,
    )
    await shoot(
        DoctorApp(None, path_aliases=aliases, audit=[str(lab.root)]), size, [("programs", keys())], out
    )


if __name__ == "__main__":
    sys.exit(main())
