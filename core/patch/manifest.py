"""The store's records: a manifest per fixed target, its builds, and what status and ensure report.

They live apart from ``core/store.py`` so that ``ensure``'s no-op path (which reads manifests as plain
JSON) never pays for creating these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MANIFEST_FORMAT = 1


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """One build of a manifest: where it is, for which stdenv, what it changed, how it was activated."""

    package: str
    interpreter: str
    fingerprint: str
    stdenv: dict[str, Any]
    files: tuple[dict[str, str], ...] = ()
    activation: dict[str, Any] | None = None
    view: str | None = None  # the glibc view its RPATH names (``gc`` keeps it while this build is kept)

    def as_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "interpreter": self.interpreter,
            "fingerprint": self.fingerprint,
            "stdenv": self.stdenv,
            "files": list(self.files),
            "activation": self.activation,
            "view": self.view,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        return cls(
            package=str(data["package"]),
            interpreter=str(data["interpreter"]),
            fingerprint=str(data["fingerprint"]),
            stdenv=dict(data["stdenv"]),
            files=tuple(dict(item) for item in data.get("files", [])),
            activation=data.get("activation"),
            view=data.get("view"),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """A fixed target: what it was, which build it uses now, and the one before (for rollback)."""

    id: str
    kind: str
    spec: str
    ext: tuple[str, ...]
    environment: str | None
    source_package: str
    source_interpreter: str
    glibc_dir: str | None
    current: BuildRecord
    previous: BuildRecord | None = None
    remaining: tuple[dict[str, Any], ...] = field(default=())
    pinned: bool = False  # set by rollback: ensure leaves this target alone until the next fix

    @property
    def path(self) -> str:
        return self.id + ".json"

    def as_json(self) -> dict[str, object]:
        return {
            "format": MANIFEST_FORMAT,
            "id": self.id,
            "kind": self.kind,
            "spec": self.spec,
            "ext": list(self.ext),
            "environment": self.environment,
            "source_package": self.source_package,
            "source_interpreter": self.source_interpreter,
            "glibc_dir": self.glibc_dir,
            "current": self.current.as_json(),
            "previous": self.previous.as_json() if self.previous is not None else None,
            "remaining": list(self.remaining),
            "pinned": self.pinned,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        previous = data.get("previous")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            spec=str(data["spec"]),
            ext=tuple(str(item) for item in data.get("ext", [])),
            environment=data.get("environment"),
            source_package=str(data["source_package"]),
            source_interpreter=str(data["source_interpreter"]),
            glibc_dir=data.get("glibc_dir"),
            current=BuildRecord.from_json(data["current"]),
            previous=BuildRecord.from_json(previous) if previous else None,
            remaining=tuple(data.get("remaining", [])),
            pinned=bool(data.get("pinned", False)),
        )


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One fixed target as ``status`` shows it."""

    manifest: Manifest
    up_to_date: bool | None  # None: the stdenv could not be determined
    exists: bool

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.manifest.id,
            "target": self.manifest.spec,
            "kind": self.manifest.kind,
            "source_package": self.manifest.source_package,
            "package": self.manifest.current.package,
            "interpreter": self.manifest.current.interpreter,
            "stdenv": self.manifest.current.stdenv,
            "previous": self.manifest.previous.package if self.manifest.previous else None,
            "up_to_date": self.up_to_date,
            "exists": self.exists,
            "remaining": list(self.manifest.remaining),
            "pinned": self.manifest.pinned,
        }
