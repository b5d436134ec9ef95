"""Time budgets that catch a hang or a blow-up (a quadratic loop, a file read a million times) without
depending on how busy the machine is: they count CPU seconds, of this process and of the children it
waited for, not the wall clock. Two test workers and other jobs on two cores stretch wall time several
fold; the CPU a piece of work needs stays about the same. (How fast things are is measured in
``benchmarks/``, against baselines timed in the same run; these bounds only say "not pathological".)
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and by every child it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextmanager
def cpu_budget(limit: float, what: str = "the work") -> Iterator[None]:
    """Fail when the body uses ``limit`` CPU seconds or more."""
    before = cpu_seconds()
    yield
    used = cpu_seconds() - before
    assert used < limit, f"{what} took {used:.2f} s of CPU (budget {limit} s)"
