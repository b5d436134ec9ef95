"""Session fixtures shared by the whole suite: the synthetic ELF corpus and the real-glibc lab."""

from tests.labfixture import lab  # noqa: F401
from tests.synthetic import synthetic  # noqa: F401
