"""Session fixtures shared by the whole suite: the synthetic ELF corpus, the real-glibc lab, and venvs of
real auditwheel-repaired wheels."""

from tests.labfixture import lab  # noqa: F401
from tests.synthetic import synthetic  # noqa: F401
from tests.wheels import lab_wheels, machine_wheels  # noqa: F401
