"""The audit's rows in words: what the CLI table and the TUI's programs screen both show.

One row per program (``core.audit.ProgramAudit``): the glibc it loads and how its libc.so.6 was found,
the number of conflicts (exact) and of latent ones (strict), and the worst record in a few words.
Paths go through the caller's ``namer`` (the CLI shortens them, the TUI names them by its aliases).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glibc_doctor.core.model import Conflict, Kind, Severity

if TYPE_CHECKING:
    from glibc_doctor.core.audit import ProgramAudit

Namer = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ProgramRow:
    """One program as people read it; ``state`` is ``error``, ``latent``, ``warning`` or ``ok``."""

    program: str
    also: str  # "+2 more paths" when other paths exec the same process
    kind: str
    glibc: str
    conflicts: int
    latent: int
    worst: str
    state: str


def program_row(program: ProgramAudit, namer: Namer) -> ProgramRow:
    aliases = len(program.aliases)
    return ProgramRow(
        program=namer(program.program),
        also=f"+{aliases} more path{'s' * (aliases != 1)}" if aliases else "",
        kind=program.result.target.kind,
        glibc=glibc_words(program),
        conflicts=len(program.conflicts),
        latent=len(program.latent),
        worst=worst_words(program.worst, namer, _extension_names(program)) if program.worst else "—",
        state=_state(program),
    )


def glibc_words(program: ProgramAudit) -> str:
    """``2.36 ld.so.cache``: the release the process loads and how its libc.so.6 was found."""
    version = program.result.glibc.version or ("?" if program.result.glibc.libc else "none")
    via = program.glibc_via
    return f"{version} {via}" if via else version


def worst_words(conflict: Conflict, namer: Namer, names: Mapping[str, str] | None = None) -> str:
    """The record in a few words: ``psycopg2._psycopg needs GLIBC_2.34``, ``libfoo.so.1 not found``.

    An extension goes by the name users import it by (``names``: path -> name), other objects by
    their file name.
    """
    what = (names or {}).get(conflict.object) or os.path.basename(conflict.object) or namer(conflict.object)
    prefix = "latent: " if conflict.kind == Kind.LATENT else ""
    if conflict.version and conflict.kind in (Kind.MISSING_VERSION, Kind.LATENT):
        return f"{prefix}{what} needs {conflict.version}"
    if conflict.library and conflict.kind in (Kind.NOT_FOUND, Kind.WRONG_ELF, Kind.LATENT):
        missing = "unusable" if "wrong" in conflict.message else "not found"
        return f"{prefix}{conflict.library} {missing} (for {what})"
    return f"{prefix}{conflict.kind}: {what}"


def _extension_names(program: ProgramAudit) -> dict[str, str]:
    return {extension.path: extension.name for extension in program.result.target.extensions}


def _state(program: ProgramAudit) -> str:
    if program.conflicts:
        return "error"
    if program.latent:
        return "latent"
    if any(c.severity == Severity.WARNING for c in program.warnings):
        return "warning"
    return "ok"
