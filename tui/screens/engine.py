"""The one place where the TUI calls core: thin wrappers the screens' workers loop over.

Nothing here decides anything about ELF, loaders or patches; it forwards to core (imported when first
used, so the app paints before core loads) and turns core's records into lines for people. Keeping the
calls together means a change in a core signature is one edit here, not a hunt through the screens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glibc_doctor.tui.widgets.describe import ProcessGraph, short_name

if TYPE_CHECKING:
    from glibc_doctor.core.audit import AuditProgress, AuditResult
    from glibc_doctor.core.diagnose import Diagnosis
    from glibc_doctor.core.explain import Explanation
    from glibc_doctor.core.model import Conflict
    from glibc_doctor.core.patch import FixPlan, FixProgress, FixResult
    from glibc_doctor.core.pipcache import Purged
    from glibc_doctor.core.scan import ScanProgress, ScanResult
    from glibc_doctor.core.targets import Candidate
    from glibc_doctor.core.wheels import WheelProgress, WheelsReport


@dataclass(frozen=True)
class Step:
    """A progress event as the TUI shows it."""

    text: str
    done: int = 0
    total: int | None = None


# --- targets and scan ------------------------------------------------------------------------------


def detect_candidates(cwd: str, env: Mapping[str, str]) -> list[Candidate]:
    from glibc_doctor.core.targets import detect_candidates as detect

    return list(detect(cwd, env))


def candidate_glibc(candidate: Candidate) -> str | None:
    """The glibc release a candidate's process loads (a full static scan; the picker shows it later)."""
    from glibc_doctor.core.errors import DoctorError
    from glibc_doctor.core.scan import scan

    try:
        version = scan(candidate.path, use_cache=False).glibc.version
    except DoctorError:
        return None  # a candidate that cannot be scanned just shows no glibc
    return str(version) if version else None


def scan_steps(
    spec: str,
    *,
    ext: Sequence[str] = (),
    glibc: str | None = None,
    cancel: threading.Event | None = None,
    root: str | None = None,
) -> Iterator[ScanProgress | ScanResult]:
    """Core's scan: progress events, then the ``ScanResult`` (nothing more when cancelled). Under
    ``root`` this shell's LD_LIBRARY_PATH/LD_PRELOAD are left out, as ``scan --root`` does."""
    import os

    from glibc_doctor.core.scan import scan_steps as steps

    env = (
        {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")} if root else None
    )
    yield from steps(spec, ext=tuple(ext), glibc=glibc, cancel=cancel, root=root, env=env)


def scan_event(item: ScanProgress | ScanResult) -> Step | ScanResult:
    """A scan step as the TUI shows it, or the result itself."""
    from glibc_doctor.core.scan import ScanResult

    return item if isinstance(item, ScanResult) else Step(item.message, item.done, item.total)


# --- audit ----------------------------------------------------------------------------------------


def audit_steps(
    paths: Sequence[str],
    *,
    ext_dirs: Sequence[str] = (),
    glibc: str | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[AuditProgress | AuditResult]:
    """Core's audit: progress events, then the ``AuditResult`` (nothing more when cancelled)."""
    from glibc_doctor.core.audit import audit_steps as steps

    yield from steps(tuple(paths), ext_dirs=tuple(ext_dirs), glibc=glibc, cancel=cancel)


def audit_event(item: AuditProgress | AuditResult) -> Step | AuditResult:
    """An audit step as the TUI shows it, or the result itself."""
    from glibc_doctor.core.audit import AuditResult

    if isinstance(item, AuditResult):
        return item
    return Step(item.message, item.done, item.total if item.stage == "scanning" else None)


# --- fix and rollback -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixRequest:
    """A plan to confirm, and what ``run_fix`` needs with it: the conflicts before, the current root.

    When the target already runs a patched copy, core's ``source_snapshot`` gives the unpatched
    original to plan from (as ``glibc-doctor fix`` does), and ``current_root`` is the copy in use.
    """

    plan: FixPlan
    before: tuple[Conflict, ...]
    current_root: str | None


def prepare_fix(result: ScanResult, glibc: str | None = None) -> FixRequest:
    """The stdenv as the compiler sees it now, and core's pure plan against it."""
    from glibc_doctor.core import store
    from glibc_doctor.core.patch import plan_fix
    from glibc_doctor.core.scan import target_class, target_machine
    from glibc_doctor.core.stdenv import find_stdenv

    stdenv = find_stdenv(glibc, elf_class=target_class(result.graph), machine=target_machine(result.graph))
    found = store.source_snapshot(result.target)
    source, current_root = (found[0], found[1]) if found is not None else (result, None)
    plan = plan_fix(source, stdenv, str(store.data_dir()))
    return FixRequest(plan, tuple(source.conflicts), current_root)


def run_fix(
    request: FixRequest, *, glibc: str | None = None, cancel: threading.Event | None = None
) -> Iterator[FixProgress | FixResult]:
    """Core's fix: build, verify by real imports, activate; progress events then a ``FixResult``."""
    from glibc_doctor.core.patch import run_fix as run

    yield from run(
        request.plan, request.before, current_root=request.current_root, glibc_dir=glibc, cancel=cancel
    )


def fix_event(item: FixProgress | FixResult) -> Step | FixResult:
    """A fix step as a log line, or the result itself."""
    from glibc_doctor.core.patch import FixResult

    if isinstance(item, FixResult):
        return item
    return Step(f"{item.step}: {item.detail}" if item.detail else item.step, item.done, item.total or None)


def rollback(target_spec: str) -> str:
    """Switch the target back to what it ran before the fix; core says what it restored."""
    from glibc_doctor.core import store

    return str(store.rollback(target_spec))


# --- explain and diagnose -----------------------------------------------------------------------------


def explain(text: str) -> Explanation:
    from glibc_doctor.core.explain import explain as parse

    return parse(text)


def diagnose(argv: Sequence[str]) -> Diagnosis:
    """Run the user's command (they typed it and asked for it to run) and explain its loader errors;
    core's ``Diagnosis`` also carries the scan conflicts that match what the loader said."""
    from glibc_doctor.core.diagnose import diagnose as run

    return run(list(argv))


def involved_nodes(graph: ProcessGraph | None, explanation: Explanation) -> tuple[str, ...]:
    """The graph nodes a loader message names (required-by, provider, library, program): by path, or
    by file name when the message was printed through another link or on another machine."""
    import os

    names = [
        value
        for message in explanation.messages
        for value in (message.required_by, message.provider, message.library, message.program)
        if value
    ]
    nodes = sorted(graph.nodes) if graph is not None else []
    found: list[str] = []
    for name in names:
        if name in nodes:
            found.append(name)
            continue
        real = os.path.realpath(name) if os.path.exists(name) else None
        base = os.path.basename(name)
        found.extend(n for n in nodes if os.path.basename(n) == base or os.path.realpath(n) == real)
    return tuple(dict.fromkeys(found))


# --- words for people ---------------------------------------------------------------------------------


def one_line(error: BaseException | None) -> str:
    """A worker's failure in one line: core errors carry their own message; others get their type."""
    if error is None:
        return "unknown error"
    from glibc_doctor.core.errors import DoctorError

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, DoctorError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_cancellation(error: BaseException | None) -> bool:
    """Core raises ``ScanCancelled``-style errors when its cancel event is set: not a failure."""
    return error is not None and type(error).__name__.endswith(("Cancelled", "Canceled"))


@dataclass(frozen=True)
class Line:
    text: str
    style: str = ""


def fix_result_lines(result: FixResult) -> list[Line]:
    """A ``FixResult`` for people: the imports that work now (run for real by the patched interpreter),
    the ones that still fail and why, what was switched."""
    checks = result.verification.checks
    lines: list[Line] = []
    working = [check for check in checks if check.ok]
    if working:
        lines.append(Line("\nWorks now (imported for real by the patched interpreter)", "bold green"))
        lines.extend(Line(f"  ✓ import {check.name}", "green") for check in working)
    failing = [check for check in checks if not check.ok]
    if failing:
        lines.append(Line("\nStill fails to import", "bold yellow"))
        for check in failing:
            last = check.detail.strip().splitlines()[-1] if check.detail.strip() else ""
            lines.append(Line(f"  ✗ {check.name}" + (f": {last}" if last else ""), "yellow"))
    if result.remaining:
        lines.append(Line("\nWhat the stdenv cannot fix", "bold yellow"))
        for item in result.remaining:
            what = f"{short_name(item.conflict.object)} {item.conflict.version or item.conflict.kind}"
            lines.append(Line(f"  ✗ {what}: {item.reason}", "yellow"))
    lines.extend(_activation_lines(result))
    return lines


def _activation_lines(result: FixResult) -> list[Line]:
    if result.activation is None:
        lines = [Line("\nNothing was switched: the patched copy did not verify.", "bold red")]
        return lines + [Line(f"  {problem}", "red") for problem in result.verification.failures()]
    lines = [Line("\nSwitched", "bold")]
    lines += [Line(f"  {path}") for path in result.activation.changed]
    return lines + [Line(f"  {hint}", "cyan") for hint in result.activation.hints]


def explanation_lines(explanation: Explanation) -> list[Line]:
    """An ``Explanation`` as lines: each loader message with its cause, the summary, what to run next."""
    lines: list[Line] = []
    if not explanation.findings:
        lines.append(Line("No loader error found in that text.", "yellow"))
    for finding in explanation.findings:
        message = finding.message
        lines.append(
            Line(f"{message.kind}: {message.version or message.library or message.symbol or ''}", "bold red")
        )
        fields: tuple[tuple[str, str | None], ...] = (
            ("required by", message.required_by),
            ("provider", message.provider),
            ("library", message.library),
            ("symbol", message.symbol),
            ("detail", message.detail),
        )
        lines.extend(Line(f"  {label:12} {value}") for label, value in fields if value)
        if finding.min_glibc:
            lines.append(Line(f"  needs glibc  {finding.min_glibc} or newer"))
        if finding.cause:
            lines.append(Line(f"  {finding.cause}", "italic"))
    if explanation.summary:
        lines += [Line("\nIn short", "bold underline"), Line(explanation.summary)]
    if explanation.commands:
        lines.append(Line("\nNext", "bold underline"))
        lines.extend(Line(f"  {command}", "green") for command in explanation.commands)
    return lines


# --- wheels -------------------------------------------------------------------------------------------


def wheel_steps(
    spec: str, *, glibc: str | None = None, cancel: threading.Event | None = None
) -> Iterator[WheelProgress | WheelsReport]:
    """Core's check of the target's pip cache: progress events, then the ``WheelsReport``."""
    from glibc_doctor.core.wheels import wheel_steps as steps

    yield from steps(spec, pip_cache_wanted=True, glibc=glibc, cancel=cancel)


def wheel_event(item: WheelProgress | WheelsReport) -> Step | WheelsReport:
    """A check step as the TUI shows it, or the report itself."""
    from glibc_doctor.core.wheels import WheelsReport

    if isinstance(item, WheelsReport):
        return item
    return Step(item.message, item.done, item.total)


def purge_wheels(report: WheelsReport) -> Purged:
    """Core's purge: the failing wheels of the report that lie in pip's cache, each as it was checked."""
    from glibc_doctor.core.wheels import purge_failing

    return purge_failing(report)
