"""The one place where the TUI calls core: thin wrappers the screens' workers loop over.

Nothing here decides anything about ELF, loaders or patches; it only forwards to core and turns core's
progress events into short lines. Keeping the calls together means a change in a core signature is one
edit here, not a hunt through the screens.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """A progress event as the TUI shows it."""

    text: str
    done: int = 0
    total: int | None = None


def step_of(event: object) -> Step:
    """Read the common fields of a core progress event (``message``/``step``, ``done``, ``total``)."""
    text = ""
    for attr in ("message", "step", "text", "line", "stage"):
        value = getattr(event, attr, None)
        if isinstance(value, str) and value:
            text = value
            break
    done = getattr(event, "done", 0)
    total = getattr(event, "total", None)
    return Step(
        text or str(event), done if isinstance(done, int) else 0, total if isinstance(total, int) else None
    )


def is_scan_result(item: object) -> bool:
    return hasattr(item, "graph") and hasattr(item, "conflicts")


def detect_candidates(cwd: str, env: Mapping[str, str]) -> list[Any]:
    from glibc_doctor.core import targets

    return list(targets.detect_candidates(cwd, env))


def scan_steps(
    spec: str, *, ext: Sequence[str] = (), glibc: str | None = None, cancel: threading.Event | None = None
) -> Iterator[object]:
    """Core's scan as a generator: progress events, then the ``ScanResult``."""
    from glibc_doctor.core import scan

    yield from scan.scan_steps(spec, ext=tuple(ext), glibc=glibc, cancel=cancel)


@dataclass(frozen=True)
class FixRequest:
    """A plan to confirm, and what ``run_fix`` needs with it: the conflicts before, the current root.

    When the target already runs a patched copy, core's ``source_snapshot`` gives the unpatched
    original to plan from (as ``glibc-doctor fix`` does), and ``current_root`` is the copy in use.
    """

    plan: Any
    before: tuple[Any, ...]
    current_root: str | None


def prepare_fix(result: Any, glibc: str | None = None) -> FixRequest:
    """The stdenv as the compiler sees it now, and core's pure plan against it."""
    from glibc_doctor.core import patch, store
    from glibc_doctor.core.stdenv import find_stdenv

    stdenv = find_stdenv(glibc)
    found = store.source_snapshot(result.target)
    source, current_root = (found[0], found[1]) if found is not None else (result, None)
    plan = patch.plan_fix(source, stdenv, str(store.data_dir()))
    return FixRequest(plan, tuple(source.conflicts), current_root)


def run_fix(
    request: FixRequest, *, glibc: str | None = None, cancel: threading.Event | None = None
) -> Iterator[object]:
    """Core's fix: build, verify by real imports, activate; progress events then a ``FixResult``."""
    from glibc_doctor.core import patch

    yield from patch.run_fix(
        request.plan, request.before, current_root=request.current_root, glibc_dir=glibc, cancel=cancel
    )


def rollback(target_spec: str) -> Any:
    from glibc_doctor.core import store

    return store.rollback(target_spec)


def explain(text: str) -> Any:
    from glibc_doctor.core import explain as core_explain

    return core_explain.explain(text)


def diagnose(argv: Sequence[str]) -> Any:
    """Run the user's command (they typed it and asked for it to run) and explain its loader errors;
    core's ``Diagnosis`` also carries the scan conflicts that match what the loader said."""
    from glibc_doctor.core import diagnose as core_diagnose

    return core_diagnose.diagnose(list(argv))


def involved_nodes(graph: Any, explanation: Any) -> tuple[str, ...]:
    """The graph nodes a loader message names (provider, required-by, library, program): by path,
    or by file name when the message was printed on another machine or through another link."""
    names: list[str] = []
    for message in getattr(explanation, "messages", ()):
        for attr in ("required_by", "provider", "library", "program"):
            value = getattr(message, attr, None)
            if isinstance(value, str) and value:
                names.append(value)
    nodes = set(graph.nodes) if graph is not None else set()
    found: list[str] = []
    for name in names:
        if name in nodes:
            found.append(name)
            continue
        real = os.path.realpath(name)
        base = os.path.basename(name)
        found.extend(
            node
            for node in sorted(nodes)
            if os.path.basename(node) == base or (os.path.exists(name) and os.path.realpath(node) == real)
        )
    return tuple(dict.fromkeys(found))


def candidate_glibc(candidate: Any) -> str | None:
    """The glibc release a candidate's process loads: from the candidate when core knows it, else a scan."""
    known = getattr(candidate, "glibc", None)
    if isinstance(known, str) and known:
        return known
    result: object = None
    try:
        for item in scan_steps(str(candidate.path)):
            result = item
    except Exception:  # noqa: BLE001 - a candidate that cannot be scanned just shows no glibc
        return None
    glibc = getattr(result, "glibc", None)
    version = getattr(glibc, "version", None)
    return version if isinstance(version, str) else None


def rollback_summary(outcome: object) -> str:
    """One line about what a rollback restored (core returns a record or a message)."""
    if isinstance(outcome, str):
        return outcome
    for attr in ("summary", "message", "restored"):
        value = getattr(outcome, attr, None)
        if value:
            return str(value) if not isinstance(value, (list, tuple)) else ", ".join(map(str, value))
    return "the original interpreter is back"


def is_fix_result(item: object) -> bool:
    return hasattr(item, "verified") or type(item).__name__ == "FixResult"


def one_line(error: BaseException | None) -> str:
    """A worker's failure in one line: core errors carry their own message; others get their type."""
    if error is None:
        return "unknown error"
    from glibc_doctor.core.errors import DoctorError

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, DoctorError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class Line:
    text: str
    style: str = ""


def _remaining_line(item: Any) -> str:
    conflict = getattr(item, "conflict", item)
    reason = getattr(item, "reason", "")
    name = re.sub(r"\.(cpython-[^.]+|abi3)(?=\.so$)", "", os.path.basename(conflict.object))
    return f"  ✗ {name} {conflict.version or conflict.kind}" + (f": {reason}" if reason else "")


def fix_result_lines(result: Any) -> list[Line]:
    """A ``FixResult`` for people: the imports that work now (run for real by the patched interpreter),
    the ones that still fail and why, what was switched."""
    lines: list[Line] = []
    checks = getattr(getattr(result, "verification", None), "checks", ()) or ()
    working = [check for check in checks if check.ok]
    failing = [check for check in checks if not check.ok]
    if working:
        lines.append(Line("\nWorks now (imported for real by the patched interpreter)", "bold green"))
        lines.extend(Line(f"  ✓ import {check.name}", "green") for check in working)
    if failing:
        lines.append(Line("\nStill fails to import", "bold yellow"))
        for check in failing:
            first = check.detail.strip().splitlines()[-1] if check.detail.strip() else ""
            lines.append(Line(f"  ✗ {check.name}" + (f": {first}" if first else ""), "yellow"))
    remaining = getattr(result, "remaining", ()) or ()
    if remaining:
        lines.append(Line("\nWhat the stdenv cannot fix", "bold yellow"))
        lines.extend(Line(_remaining_line(item), "yellow") for item in remaining)
    activation = getattr(result, "activation", None)
    if activation is not None:
        lines.append(Line("\nSwitched", "bold"))
        lines.extend(Line(f"  {path}") for path in activation.changed)
        lines.extend(Line(f"  {hint}", "cyan") for hint in activation.hints)
    else:
        lines.append(Line("\nNothing was switched: the patched copy did not verify.", "bold red"))
        problems = result.verification.failures() if hasattr(result, "verification") else []
        lines.extend(Line(f"  {problem}", "red") for problem in problems)
    return lines


def explanation_lines(explanation: object) -> list[Line]:
    """An ``Explanation`` as lines: each loader message with its cause, the summary, what to run next."""
    lines: list[Line] = []
    findings = getattr(explanation, "findings", ()) or ()
    if not findings:
        lines.append(Line("No loader error found in that text.", "yellow"))
    for finding in findings:
        message = finding.message
        lines.append(
            Line(f"{message.kind}: {message.version or message.library or message.symbol or ''}", "bold red")
        )
        for attr in ("required_by", "provider", "library", "symbol", "detail"):
            value = getattr(message, attr, None)
            if value:
                lines.append(Line(f"  {attr.replace('_', ' '):12} {value}"))
        if finding.min_glibc:
            lines.append(Line(f"  needs glibc  {finding.min_glibc} or newer"))
        if finding.cause:
            lines.append(Line(f"  {finding.cause}", "italic"))
    summary = getattr(explanation, "summary", "")
    if summary:
        lines.append(Line("\nIn short", "bold underline"))
        lines.append(Line(str(summary)))
    commands = getattr(explanation, "commands", ()) or ()
    if commands:
        lines.append(Line("\nNext", "bold underline"))
        lines.extend(Line(f"  {command}", "green") for command in commands)
    return lines


def is_cancellation(error: BaseException | None) -> bool:
    """Core raises ``ScanCancelled``/``FixCancelled``-style errors when its cancel event is set."""
    return error is not None and type(error).__name__.endswith(("Cancelled", "Canceled"))
