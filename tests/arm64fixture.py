"""The session fixture ``arm64_lab``: the aarch64 lab (lab/arm64.py), built once and cached across runs.

It needs qemu's user-mode emulator and the aarch64 cross compiler (``.ci/run`` installs both); where
they or the network are missing its tests skip with the reason, unless ``GLIBC_DOCTOR_REQUIRE_LAB=1``
(CI) makes that a failure. The lab lives in ``$GLIBC_DOCTOR_LAB_ARM64`` or
``~/.cache/glibc-doctor/lab-arm64``; pytest-xdist workers share one build through its file lock.
"""

from __future__ import annotations

import os

import pytest
from glibc_doctor.core.errors import LabError
from glibc_doctor.lab.arm64 import Arm64Lab, ensure_arm64_lab


@pytest.fixture(scope="session")
def arm64_lab() -> Arm64Lab:
    try:
        return ensure_arm64_lab()
    except LabError as error:
        if os.environ.get("GLIBC_DOCTOR_REQUIRE_LAB") == "1":
            pytest.fail(f"aarch64 lab required but unavailable: {error}")
        pytest.skip(f"aarch64 lab unavailable: {error}")
