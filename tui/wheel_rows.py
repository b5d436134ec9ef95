"""The wheels check in words: what the ``wheels`` table, the scan's pip-cache section, the TUI's wheels
screen and ``wheels --json`` all show.

One row per wheel (``core.wheels.WheelCheck``): its name, version and tags, whether it loads in the
target's process, each missing version with its symbols and the library that should provide it, and
whether ``glibc-doctor fix`` would make it load. That last answer is ``tui/verdict.py``'s ``verdict`` on
the wheel's failing modules (the rule the scan's table and the fix plan follow, over the simulated
process of the wheel), not a second rule: this module only groups and words it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from glibc_doctor.core.model import StdenvInfo
from glibc_doctor.core.wheels import MissingVersion, WheelCheck, WheelsReport
from glibc_doctor.tui.verdict import Verdict, broken_roots, verdict

Namer = Callable[[str], str]
_MAX_SYMBOLS = 3
STATES = ("fails", "unreadable", "loads", "other", "pure")  # a row's state, worst first


@dataclass(frozen=True, slots=True)
class WheelRow:
    """One wheel as people read it. ``state``: ``fails``, ``unreadable`` (and fails), ``loads``,
    ``other`` (built for another Python: neither loads nor fails here), ``pure`` (no native code)."""

    wheel: str  # "numpy 1.26.4"
    file: str  # the file name
    tags: str
    state: str
    verdict: str  # "fails", "loads", "another Python", "unreadable", "no native code"
    needs: tuple[str, ...]  # one line per missing version or problem
    needs_short: str  # the versions in one cell: "GLIBC_2.34", "GLIBC_2.34..2.35 via libgcc_s.so.1"
    fix: str  # "yes", "no: needs 2.38 > stdenv 2.36", "—"
    fixable: bool | None
    notes: tuple[str, ...]


def fix_verdict(check: WheelCheck, stdenv: StdenvInfo | None) -> Verdict | None:
    """Would ``fix`` make every failing module of the wheel load? ``tui/verdict.py``'s rule on each
    module's row; None when the wheel loads (or could not be read: nothing for a repatch to do)."""
    result = check.result
    if result is None or check.loads:
        return None
    rows = [row for row in broken_roots(result) if row.node in check.module_paths]
    decided = [verdict(row, stdenv, result.graph) for row in rows]
    if not decided:
        return None
    refused = next((one for one in decided if one.fixable is not True), None)
    return refused or decided[0]


def fixable_by_fix(check: WheelCheck, stdenv: StdenvInfo | None) -> bool | None:
    """``fixable_by_fix`` of the JSON: true or false for a failing wheel (null: no stdenv known), false
    for one that loads or could not be read."""
    decided = fix_verdict(check, stdenv)
    return False if decided is None else decided.fixable


def wheel_row(check: WheelCheck, stdenv: StdenvInfo | None, namer: Namer) -> WheelRow:
    decided = fix_verdict(check, stdenv)
    return WheelRow(
        wheel=f"{check.name} {check.version}",
        file=os.path.basename(check.path),
        tags=tag_lines(check.tag_text),
        state=_state(check),
        verdict=_verdict_words(check),
        needs=tuple(needs_lines(check)),
        needs_short=needs_summary(check),
        fix=decided.words if decided is not None else "—",
        fixable=decided.fixable if decided is not None else None,
        notes=tuple(namer_text(note, namer) for note in _notes(check)),
    )


def tag_lines(tag_text: str) -> str:
    """``cp39-cp39`` over one line per platform (a manylinux wheel names two or three)."""
    parts = tag_text.split("-")
    if len(parts) != 3:
        return tag_text
    return "\n".join([f"{parts[0]}-{parts[1]}", *parts[2].split(".")])


def namer_text(text: str, namer: Namer) -> str:
    """Absolute paths in a note shown through ``namer`` (the CLI shortens, the TUI aliases)."""
    return " ".join(namer(word) if word.startswith("/") else word for word in text.split(" "))


def _state(check: WheelCheck) -> str:
    if check.unreadable is not None:
        return "unreadable" if check.fails else "other"
    if check.fails:
        return "fails"
    if not check.for_this_python:
        return "other"
    return "loads" if check.modules else "pure"


def _verdict_words(check: WheelCheck) -> str:
    state = _state(check)
    if state == "other":
        return "another Python"
    if state == "pure":
        return "no native code"
    if check.selected or state == "unreadable":
        return state
    return f"{state}\nnot selected"


def needs_lines(check: WheelCheck) -> list[str]:
    """``GLIBC_2.34 from libc.so.6 (pthread_create, pthread_join)`` for the wheel's own objects,
    ``libgcc_s.so.1 → GLIBC_2.34..2.35`` for a library it reaches; then the other problems."""
    if check.unreadable is not None:
        return [check.unreadable]
    lines: list[str] = []
    own = [m for m in check.missing if not m.object.startswith("/")]
    for missing in own:
        where = "" if missing.object in check.module_files else f"{os.path.basename(missing.object)}: "
        lines.append(f"{where}{missing.version} from {missing.library}{_symbols(missing.symbols)}")
    through: dict[str, list[MissingVersion]] = {}
    for missing in check.missing:
        if missing.object.startswith("/"):
            through.setdefault(missing.object, []).append(missing)
    for path, records in through.items():
        lines.append(f"{os.path.basename(path)} → {_versions(m.version for m in records)}")
    for problem in check.problems:
        words = problem.message.removeprefix(f"{problem.object}: ")
        lines.append(f"{os.path.basename(problem.object)}: {words}" if problem.object else words)
    return lines


def needs_summary(check: WheelCheck) -> str:
    """What the wheel needs in a few words: the missing versions, and the library they are missing
    for when it is not one of the wheel's modules; the kind of any other problem."""
    if check.unreadable is not None:
        return "unreadable"
    parts: list[str] = []
    by_object: dict[str, list[str]] = {}
    for missing in check.missing:
        by_object.setdefault(missing.object, []).append(missing.version)
    for obj, versions in by_object.items():
        via = "" if obj in check.module_files else f" via {os.path.basename(obj)}"
        parts.append(_versions(versions) + via)
    parts += list(dict.fromkeys(problem.kind for problem in check.problems))
    return "; ".join(parts) or "—"


def _versions(versions: Iterable[str]) -> str:
    """``GLIBC_2.34..2.35``: the scan report's ``version_range`` (imported when words are wanted: the
    JSON path needs no rich)."""
    from glibc_doctor.tui.cli.report import version_range

    return version_range(versions)


def _symbols(symbols: tuple[str, ...]) -> str:
    if not symbols:
        return ""
    shown = ", ".join(symbols[:_MAX_SYMBOLS])
    more = f", +{len(symbols) - _MAX_SYMBOLS}" if len(symbols) > _MAX_SYMBOLS else ""
    return f" ({shown}{more})"


def _notes(check: WheelCheck) -> list[str]:
    notes = []
    if not check.selected and check.not_selected:
        notes.append(f"not selected: {check.not_selected}")
    return notes + list(check.notes)


def rows_in_order(report: WheelsReport, namer: Namer) -> list[tuple[WheelCheck, WheelRow]]:
    """Every wheel with its row, worst first (failing, unreadable, loading, other, pure), then by name."""
    stdenv = report.interpreter.stdenv
    pairs = [(check, wheel_row(check, stdenv, namer)) for check in report.wheels]
    return sorted(pairs, key=lambda pair: (STATES.index(pair[1].state), pair[1].wheel.lower(), pair[1].file))


def wheels_document(report: WheelsReport) -> dict[str, object]:
    """The ``wheels --json`` document: core's ``as_json()`` with each wheel's ``fixable_by_fix``."""
    document = report.as_json()
    stdenv = report.interpreter.stdenv
    rows = document["wheels"]
    assert isinstance(rows, list)
    for check, row in zip(report.wheels, rows, strict=True):
        row["fixable_by_fix"] = fixable_by_fix(check, stdenv)
    return document


def summary_words(report: WheelsReport, where: str) -> tuple[bool, str]:
    """(whether something fails, the line): ``2 of 7 wheels in pip's cache would break python3.9``."""
    interpreter = os.path.basename(report.interpreter.target.executable)
    glibc = report.interpreter.glibc.version or "?"
    total = len(report.wheels)
    failing = sorted(report.failing, key=lambda check: check.name.lower())
    if not total:
        return False, f"no wheels {where}"
    if failing:
        names = ", ".join(check.name for check in failing[:4])
        more = f" and {len(failing) - 4} more" if len(failing) > 4 else ""
        return True, (
            f"{len(failing)} of {total} wheel{'s' * (total != 1)} {where} would break {interpreter} "
            f"(glibc {glibc}): {names}{more}"
        )
    return (
        False,
        f"none of the {total} wheel{'s' * (total != 1)} {where} would break {interpreter} (glibc {glibc})",
    )
