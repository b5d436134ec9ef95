"""One exception type per kind of failure the user can cause or meet.

The CLI turns each into one line on stderr and exit code 2 (usage/input) or 1 (a fix that could not
finish). Messages are built complete before raising, so they read well without a traceback.
"""

from __future__ import annotations


class DoctorError(Exception):
    """Base of every error glibc-doctor reports to the user in one line."""


class TargetError(DoctorError):
    """The target path does not exist, cannot be read, or is not something we can scan."""


class NotElf(TargetError):
    """A file that had to be an ELF object is not one."""


class UnsupportedElf(TargetError):
    """An ELF object of a class, byte order or machine this process cannot load."""


class StdenvError(DoctorError):
    """The stdenv glibc could not be determined (no compiler, probe failed, bad --glibc DIR)."""


class PatchError(DoctorError):
    """Building, verifying or activating a patched package failed; the old state is untouched."""


class LabError(DoctorError):
    """The real-glibc lab (demo) could not be built here: no apt-get, no network, no compiler."""


class WheelError(DoctorError):
    """A wheel that cannot be checked: not a zip, corrupt, a hostile member name, a zip bomb."""
