"""diagnose: a real command that fails to load, its loader error explained and put on its graph."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from glibc_doctor.core.diagnose import diagnose, resolve_program
from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.model import Kind
from glibc_doctor.core.versions import GlibcVersion

from tests.gcc import compile_elf
from tests.refusal_objects import RefusalObjects


@pytest.fixture(scope="module")
def broken_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A program linked against a library that was then removed: ld.so refuses to start it."""
    base = tmp_path_factory.mktemp("diagnose")
    library = compile_elf(
        base / "lib" / "libgone.so.1", "int gone(void) { return 0; }\n", soname="libgone.so.1"
    )
    program = compile_elf(
        base / "bin" / "needs-gone",
        "int gone(void);\nint main(void) { return gone(); }\n",
        shared=False,
        libs=[library],
    )
    library.unlink()
    return program


def test_a_missing_library_is_explained_and_found_on_the_graph(broken_program: Path) -> None:
    found = diagnose([str(broken_program)])
    assert found.returncode == 127
    assert [finding.message.library for finding in found.explanation.findings] == ["libgone.so.1"]
    assert [conflict.library for conflict in found.matched] == ["libgone.so.1"]
    assert found.suggestion == f"glibc-doctor fix {broken_program}"


def test_the_loader_debug_output_does_not_hide_the_error(broken_program: Path) -> None:
    found = diagnose([str(broken_program)], ld_debug=True)
    assert any("libgone.so.1" in line for line in found.output)
    assert [finding.message.library for finding in found.explanation.findings] == ["libgone.so.1"]


def test_a_command_that_loads_fine_has_nothing_to_fix() -> None:
    found = diagnose(["true"])
    assert found.returncode == 0
    assert found.explanation.findings == ()
    assert found.suggestion is None


def test_the_program_is_found_on_path_like_the_shell_does() -> None:
    assert resolve_program("true", {"PATH": os.environ["PATH"]}).endswith("/true")


def test_an_unknown_command_is_one_clear_error() -> None:
    with pytest.raises(TargetError, match="command not found"):
        diagnose(["no-such-command-glibc-doctor"])


def test_no_command_at_all_is_one_clear_error() -> None:
    with pytest.raises(TargetError, match="after --"):
        diagnose([])


def test_a_refusal_beyond_versions_is_explained_and_matched_on_the_graph(
    tmp_path: Path, refusal_objects: RefusalObjects
) -> None:
    """A program that needs, at start-up, a library with DT_RELR but no GLIBC_ABI_DT_RELR need."""
    if GlibcVersion.parse(os.confstr("CS_GNU_LIBC_VERSION").split()[-1]) < GlibcVersion(2, 36):  # type: ignore[union-attr]
        pytest.skip("glibc before 2.36 does not check DT_RELR")
    library = refusal_objects.relr_no_marker
    program = compile_elf(
        tmp_path / "needs-relr",
        "double grow(double);\nint main(void) { return grow(1.0) > 0 ? 0 : 1; }\n",
        shared=False,
        extra=[f"-L{library.parent}", f"-l:{library.name}", f"-Wl,-rpath,{library.parent}"],
    )
    found = diagnose([str(program)])
    assert found.returncode == 127
    assert [str(f.message.kind) for f in found.explanation.findings] == ["dt-relr"]
    assert [(c.kind, c.object) for c in found.matched] == [(Kind.DT_RELR, str(library))]
