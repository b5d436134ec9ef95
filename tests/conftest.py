"""Session fixtures shared by the whole suite: the synthetic ELF corpus, the objects ld.so refuses
for reasons other than versions, and the real-glibc lab."""

from tests.labfixture import lab  # noqa: F401
from tests.refusal_objects import refusal_objects  # noqa: F401
from tests.synthetic import synthetic  # noqa: F401
