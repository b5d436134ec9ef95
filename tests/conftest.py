"""Session fixtures shared by the whole suite: the synthetic ELF corpus, the objects ld.so refuses
for reasons other than versions, the real-glibc lab, and venvs of real auditwheel-repaired wheels.

The development install is setuptools' strict editable mode (README), a link tree of the package files
that mypy can read; a module added since that install is missing from it. Say so before collection,
instead of letting each test module fail on an ImportError.
"""

from __future__ import annotations

import pytest

from tests.arm64fixture import arm64_lab  # noqa: F401
from tests.labfixture import lab  # noqa: F401
from tests.linktree import missing_from_install
from tests.refusal_objects import refusal_objects  # noqa: F401
from tests.synthetic import synthetic  # noqa: F401
from tests.wheelbuild import lab_test_wheels, machine_test_wheels, pip_to_run  # noqa: F401
from tests.wheels import lab_wheels, machine_wheels  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    missing = missing_from_install()
    if missing:
        pytest.exit(
            f"{', '.join(missing)} not in the editable install (new since it was made): rerun "
            ".venv/bin/pip install -q -e '.[dev]' --config-settings editable_mode=strict",
            returncode=2,
        )
