"""The session fixture ``lab``: the real-glibc lab (lab/build.py), built once and cached across runs.

The lab lives in ``$GLIBC_DOCTOR_LAB`` or ``~/.cache/glibc-doctor/lab``; a valid one is reused in well
under a second, a cold build takes seconds (Debian packages through apt-get). pytest-xdist workers each
ask for it: the lab's file lock makes one build while the others wait and reuse it. Where the lab cannot
be built (no apt-get, no network, no gcc) its tests skip with the reason, unless
``GLIBC_DOCTOR_REQUIRE_LAB=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os

import pytest
from glibc_doctor.core.errors import LabError
from glibc_doctor.lab.build import Lab, ensure_lab


@pytest.fixture(scope="session")
def lab() -> Lab:
    try:
        return ensure_lab()
    except LabError as error:
        if os.environ.get("GLIBC_DOCTOR_REQUIRE_LAB") == "1":
            pytest.fail(f"real-glibc lab required but unavailable: {error}")
        pytest.skip(f"real-glibc lab unavailable: {error}")
