"""Run a fix: build (staging dir, patchelf) -> verify (run + rescan) -> activate -> manifest.

``run_fix`` drives the steps as a generator of progress events ending in a ``FixResult``, holding the
store lock for the whole run so two fixes or ``ensure`` runs never interleave.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from glibc_doctor.core.model import Conflict
from glibc_doctor.core.patch.activate import Activation
from glibc_doctor.core.patch.build import BuildProgress, BuildResult
from glibc_doctor.core.patch.plan import FixPlan, Remaining
from glibc_doctor.core.patch.verify import Verification


@dataclass(frozen=True, slots=True)
class FixProgress:
    """A step of the fix (``building``, ``patched``, ``verifying``, ``activated`` …) for the UI."""

    step: str
    detail: str = ""
    done: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class FixResult:
    """What a fix did: the build, whether it verified, what it activated, what still remains."""

    plan: FixPlan
    build: BuildResult
    verification: Verification
    activation: Activation | None
    manifest: str | None

    @property
    def verified(self) -> bool:
        ok: bool = self.verification.ok
        return ok

    @property
    def remaining(self) -> tuple[Remaining, ...]:
        remaining: tuple[Remaining, ...] = self.plan.remaining
        return remaining

    @property
    def ok(self) -> bool:
        """Activated and nothing remains: exit code 0."""
        return self.activation is not None and not self.remaining

    def as_json(self) -> dict[str, object]:
        return {
            "interpreter": self.plan.patched_interpreter,
            "package": self.build.package,
            "source_package": self.plan.source_package,
            "stdenv": self.plan.stdenv.as_json(),
            "glibc_view": self.plan.view.as_json(self.plan.uses_runtime),
            "verified": self.verified,
            # what ran the patched interpreter for the checks: "native", "qemu-aarch64-static" (another
            # architecture, under qemu), or null when nothing could run it (then never verified)
            "verified_by": self.verification.runner or None,
            "activated": self.activation.changed if self.activation is not None else [],
            "remaining": [item.as_json() for item in self.remaining],
            "warnings": [conflict.as_json() for conflict in self.plan.warnings],
            "fixed": [conflict.as_json() for conflict in self.plan.fixes],
            "checks": [
                {
                    "extension": c.extension,
                    "name": c.name,
                    "ok": c.ok,
                    "expected": c.expected,
                    "detail": c.detail,
                }
                for c in self.verification.checks
            ],
            "problems": self.verification.failures(),
            "hints": list(self.activation.hints) if self.activation is not None else [],
            "manifest": self.manifest,
        }


def run_fix(
    plan: FixPlan,
    before: tuple[Conflict, ...] | None = None,
    *,
    current_root: str | None = None,
    glibc_dir: str | None = None,
    ext: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[FixProgress | FixResult]:
    """Build, verify and (when verified) activate ``plan``; record it in the store's manifest.

    ``before`` are the conflicts of the unpatched process (a fix that adds one is not activated;
    by default the plan's own: fixed and remaining);
    ``current_root`` is the package the target uses now (the source, or an older build); ``glibc_dir``
    and ``ext`` (the ``--glibc`` and ``--ext`` given) are recorded so ``ensure`` rebuilds the same way.
    """
    from glibc_doctor.core import store
    from glibc_doctor.core.patch.build import build
    from glibc_doctor.core.patch.verify import verify

    environ = os.environ if env is None else env
    if before is None:  # the plan sorted every conflict of the unpatched process into these two
        before = plan.fixes + tuple(item.conflict for item in plan.remaining)
    with store.locked(environ):
        built: BuildResult | None = None
        for event in build(plan, cancel):
            if isinstance(event, BuildResult):
                built = event
            else:
                yield _progress(event)
        assert built is not None  # build() ends with its result or raises
        yield FixProgress("verifying", plan.patched_interpreter)
        verification = verify(plan, before, environ)
        activation = None
        manifest = None
        if verification.ok:
            yield FixProgress("activating", plan.destination)
            activation, manifest = store.activate_and_record(
                plan, built, current_root or plan.source_package, glibc_dir, environ, ext
            )
        yield FixResult(plan, built, verification, activation, manifest)


def _progress(event: BuildProgress) -> FixProgress:
    return FixProgress(event.step, event.detail, event.done, event.total)
