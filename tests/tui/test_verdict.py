"""The report's rows (tui/verdict.py ``broken_roots``): one per extension that cannot load, each with the
records of its own dlopen(), however many extensions share the refused library."""

from __future__ import annotations

from pathlib import Path

import pytest
from glibc_doctor.core.scan import scan
from glibc_doctor.tui.verdict import broken_roots

from tests.gcc import compile_elf
from tests.synthetic import Synthetic

CALLS_SHARED = "int shared(void); int f(void) { return shared(); }\n"


@pytest.fixture(scope="module")
def sharing(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    """A program, and three plugins: two find (RUNPATH) one ``libshared.so`` that needs strlcpy@GLIBC_2.38,
    which this machine's libc lacks; the third needs nothing of it."""
    root = tmp_path_factory.mktemp("sharing")
    source = 'extern int strlcpy(); int shared(void) { char d[2]; return strlcpy(d, "x", 2); }\n'
    shared = compile_elf(root / "vendored" / "libshared.so", source, soname="libshared.so", nostdlib=True,
                         libs=[synthetic.new_libc])  # fmt: skip
    plugins = [
        compile_elf(root / f"{name}.so", CALLS_SHARED, libs=[shared], runpath=[str(shared.parent)])
        for name in ("alpha", "beta")
    ]
    fine = compile_elf(root / "gamma.so", "int g(void) { return 0; }\n")
    program = compile_elf(root / "host", "int main(void) { return 0; }\n", shared=False)
    return program, shared, *plugins, fine


def test_every_extension_whose_dlopen_reaches_a_refused_library_has_its_row(
    sharing: tuple[Path, ...],
) -> None:
    program, shared, alpha, beta, gamma = sharing
    result = scan(str(program), ext=[str(alpha), str(beta), str(gamma)], env={"PATH": "/usr/bin:/bin"},
                  use_cache=False)  # fmt: skip
    rows = {row.node: row for row in broken_roots(result)}
    assert set(rows) == {str(alpha), str(beta)}
    for row in rows.values():
        assert row.own == []
        assert [(c.object, c.version) for c in row.through[str(shared)]] == [(str(shared), "GLIBC_2.38")]
