"""App-wide events, named in the past tense: what happened, for whoever shows it.

Workers run in threads and talk to the screens only through these (``post_message`` is thread-safe).
They carry core records (``ScanResult``, ``FixPlan``, ``FixResult``) unchanged: the TUI renders the
same records as the CLI and the JSON output, it never re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # core records are imported by the workers, not when the app starts
    from glibc_doctor.core.audit import AuditResult
    from glibc_doctor.core.explain import Explanation
    from glibc_doctor.core.patch.run import FixResult
    from glibc_doctor.core.pipcache import Purged
    from glibc_doctor.core.scan import ScanResult
    from glibc_doctor.core.targets import Candidate
    from glibc_doctor.core.wheels import WheelsReport
    from glibc_doctor.tui.screens.engine import FixRequest


@dataclass
class CandidatesFound(Message):
    """The start screen's background detection found these targets (``core.targets.Candidate``)."""

    candidates: tuple[Candidate, ...]


@dataclass
class CandidateGlibcFound(Message):
    """The glibc release a candidate's process would load, learned after the picker painted."""

    path: str
    glibc: str


@dataclass
class TargetChosen(Message):
    """The user picked or typed a target to scan."""

    spec: str


@dataclass
class ScanProgressed(Message):
    """One step of a scan; a newer one replaces an unprocessed older one so a fast scan cannot flood."""

    step: str
    done: int = 0
    total: int | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScanProgressed)


@dataclass
class ScanFinished(Message):
    """A scan finished with its ``ScanResult``."""

    result: ScanResult


@dataclass
class ScanCancelled(Message):
    """The user stopped a scan before it finished."""


@dataclass
class AuditProgressed(Message):
    """One step of an audit (a program being scanned); a newer one replaces an unprocessed older one."""

    step: str
    done: int = 0
    total: int | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AuditProgressed)


@dataclass
class AuditFinished(Message):
    """An audit finished with its ``AuditResult`` (every program, worst first)."""

    result: AuditResult


@dataclass
class NodeChosen(Message):
    """A node of the process graph was chosen somewhere (tree, conflicts table, graph, explain)."""

    node: str


@dataclass
class PlanReady(Message):
    """The fix plan is computed (``engine.FixRequest``: core's ``FixPlan`` and what the run needs)."""

    request: FixRequest


@dataclass
class FixProgressed(Message):
    """One line of the fix's progress log (every line is kept: it is the record of what was done)."""

    line: str
    done: int = 0
    total: int | None = None


@dataclass
class FixFinished(Message):
    """The fix ended with its ``FixResult`` (or None when it was cancelled before the end)."""

    result: FixResult | None
    cancelled: bool = False


@dataclass
class ExplainFinished(Message):
    """An explanation of a loader message, and the graph nodes it involves."""

    explanation: Explanation
    involved: tuple[str, ...]
    output: str = ""


@dataclass
class RolledBack(Message):
    """A rollback finished; ``summary`` says what was restored."""

    summary: str


@dataclass
class WheelsProgressed(Message):
    """One wheel of pip's cache being checked; a newer one replaces an unprocessed older one."""

    step: str
    done: int = 0
    total: int | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WheelsProgressed)


@dataclass
class WheelsChecked(Message):
    """The wheels of the target's pip cache were checked (``core.wheels.WheelsReport``)."""

    report: WheelsReport


@dataclass
class WheelsPurged(Message):
    """The failing wheels were removed from pip's cache (``core.pipcache.Purged``: removed and kept)."""

    purged: Purged
