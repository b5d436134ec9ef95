"""``diagnose -- CMD``: run the user's command, catch the loader's words, and put them on the graph.

The user asks for their command to run (scans never run anything). What ld.so or the interpreter
printed is parsed by ``core.explain``; the program that ran (``argv[0]`` found on PATH, or the
interpreter or venv the messages name) is scanned, so the one error the loader stopped at becomes
every conflict of the process, and the way out is ``glibc-doctor fix``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glibc_doctor.core.errors import DoctorError, TargetError
from glibc_doctor.core.model import Conflict, Severity

if TYPE_CHECKING:
    from glibc_doctor.core.explain import Explanation
    from glibc_doctor.core.scan import ScanResult

DIAGNOSE_TIMEOUT = 120.0
OUTPUT_TAIL = 60  # lines of the command's output kept for the report


@dataclass(frozen=True, slots=True, eq=False)
class Diagnosis:
    """What the command did, what the loader said, and where that sits in the process graph."""

    argv: tuple[str, ...]
    program: str
    returncode: int | None  # None: killed by the timeout
    output: tuple[str, ...]  # the last lines of stderr (and stdout) as printed
    explanation: Explanation
    target: str | None  # what was scanned (and what ``fix`` should be given)
    scan: ScanResult | None
    matched: tuple[Conflict, ...]  # scan conflicts that are what the messages report
    scan_problem: str | None = None

    @property
    def found(self) -> bool:
        """A loader problem was reported by the command or found in its graph."""
        return bool(self.explanation.findings) or bool(self.scan is not None and self.scan.errors)

    @property
    def suggestion(self) -> str | None:
        if self.target is None or not self.found:
            return None
        return f"glibc-doctor fix {self.target}"

    def as_json(self) -> dict[str, object]:
        return {
            "argv": list(self.argv),
            "program": self.program,
            "returncode": self.returncode,
            "output": list(self.output),
            "explanation": self.explanation.as_json(),
            "target": self.target,
            "matched": [conflict.as_json() for conflict in self.matched],
            "conflicts": [c.as_json() for c in self.scan.conflicts] if self.scan is not None else [],
            "scan_problem": self.scan_problem,
            "suggestion": self.suggestion,
        }


def resolve_program(name: str, env: Mapping[str, str]) -> str:
    """``argv[0]`` as the shell would find it (a path is taken as it is)."""
    if os.sep in name:
        if not os.path.exists(name):
            raise TargetError(f"{name}: no such file")
        return os.path.abspath(name)
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise TargetError(f"{name}: command not found on PATH")
    return found


def run_command(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, ld_debug: bool
) -> tuple[int | None, str]:
    """Run ``argv`` and return its exit status (None on timeout) and what it printed."""
    environ = dict(env)
    if ld_debug:
        environ["LD_DEBUG"] = "libs"
    try:
        done = subprocess.run(
            list(argv), env=environ, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        text = _text(error.stderr) + _text(error.stdout)
        return None, text
    except OSError as error:
        raise TargetError(f"{argv[0]}: cannot run: {error.strerror}") from error
    return done.returncode, done.stderr + done.stdout


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def matching_conflicts(explanation: Explanation, conflicts: Sequence[Conflict]) -> tuple[Conflict, ...]:
    """The conflicts of the scan that a loader message reports (same object and version or library)."""
    matched = []
    for conflict in conflicts:
        for message in explanation.messages:
            same_object = _same_file(message.required_by, conflict.object)
            same_need = (
                message.version == conflict.version
                or (
                    message.version is None
                    and message.library is not None
                    and message.library == conflict.library
                )
                or str(message.kind) == str(conflict.kind)  # a refusal beyond versions: exec-stack, dt-relr …
            )
            if same_object and same_need:
                matched.append(conflict)
                break
    return tuple(matched)


def _same_file(reported: str | None, path: str) -> bool:
    if reported is None:
        return False
    if reported == path or os.path.basename(reported) == os.path.basename(path):
        return True
    return os.path.exists(reported) and os.path.realpath(reported) == os.path.realpath(path)


def diagnose(
    argv: Sequence[str],
    *,
    ld_debug: bool = False,
    timeout: float = DIAGNOSE_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Diagnosis:
    """Run ``argv``, explain what the loader said, and scan the program it ran."""
    from glibc_doctor.core.explain import explain
    from glibc_doctor.core.scan import scan

    if not argv:
        raise TargetError("diagnose: give the command to run after --")
    environ = dict(os.environ if env is None else env)
    program = resolve_program(argv[0], environ)
    returncode, text = run_command([program, *argv[1:]], environ, timeout, ld_debug)
    explanation = explain(text)
    target = explanation.targets[0] if explanation.targets else program
    result = None
    problem = None
    try:
        result = scan(target, env=environ, use_cache=False)
    except DoctorError as error:
        problem = str(error)
    matched = matching_conflicts(explanation, result.conflicts) if result is not None else ()
    if result is not None and not explanation.findings and not result.errors:
        matched = ()
    lines = tuple(line for line in text.splitlines() if line.strip())[-OUTPUT_TAIL:]
    return Diagnosis(tuple(argv), program, returncode, lines, explanation, target, result, matched, problem)


def errors_of(conflicts: Sequence[Conflict]) -> tuple[Conflict, ...]:
    return tuple(conflict for conflict in conflicts if conflict.severity == Severity.ERROR)
