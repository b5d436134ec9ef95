"""Paths for people, in both UIs: Nix-style store hashes elided, ``~`` for $HOME (display only).

A store path (``/nix/store/32yy…(32 chars)-glibc-2.31/lib/ld-linux-x86-64.so.2``) is 80+ columns of
which the hash says nothing to a reader; ``…/store/32yy…-glibc-2.31/lib/…`` keeps the name and enough
of the hash to tell two builds apart. The CLI report (tui/cli/report.py) and the TUI's ``PathNamer``
(tui/widgets/describe.py) both shorten through here, so the two show a path the same way. JSON output
keeps paths whole.
"""

from __future__ import annotations

import os
import re

# A Nix-style store entry: ``<anything>/store/<32 base32 chars>-name``; shown as ``…/store/2pwd…-name``.
# The directories before ``/store`` (group 1) may start with an alias a caller put there (``$LAB``, ``~``).
_STORE_ENTRY = re.compile(
    r"((?:(?<![\w$~])(?:\$\w+|~))?(?:/[^\s/:;,()'\"`]+)*)/store/([0-9a-df-np-sv-z]{4})[0-9a-df-np-sv-z]{28}-"
)


def short_path(path: str, home: str | None = None) -> str:
    """``path`` for people: store hashes elided, ``~`` for the home directory (display only)."""
    return shorten_text(path, home)


def shorten_text(text: str, home: str | None = None) -> str:
    """Every path inside ``text`` shortened like ``short_path`` (causes and messages name paths)."""
    return home_path(elide_store_hashes(text), home)


def elide_store_hashes(text: str) -> str:
    """Only the store part of ``shorten_text``: for a caller that names roots its own way (``$LAB``)."""
    return _STORE_ENTRY.sub(_elided, text)


def _elided(match: re.Match[str]) -> str:
    """``…`` stands for the directories before ``/store``; a bare alias (``$LAB/store``) is short already."""
    before = match[1]
    kept = before if re.fullmatch(r"\$\w+|~", before) else "…" if before else ""
    return f"{kept}/store/{match[2]}…-"


def home_path(text: str, home: str | None = None) -> str:
    """``$HOME/x`` as ``~/x``: still a path a shell accepts, so commands stay copy-pasteable."""
    home = (home if home is not None else os.environ.get("HOME", "")).rstrip("/")
    if not home:
        return text
    return re.sub(rf"(?<![\w/.~-]){re.escape(home)}(?=/|\b|$)", "~", text)
