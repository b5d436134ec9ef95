"""core/refusals.py: each loader rule on objects built by gcc, under loader releases chosen by the test.

The process is a real program of this machine with the objects as its dlopen()ed extensions; the
``Setting`` names the loader release and CPU, so these tests do not depend on the machine's glibc
(tests/core/test_refusals_lab.py compares the same rules with the real loaders).
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core.model import Conflict, Effect, Extension, Kind, Severity, Target
from glibc_doctor.core.process import simulate
from glibc_doctor.core.refusals import Setting, cpu_isa_bits, isa_words, refusals, would_break
from glibc_doctor.core.versions import GlibcVersion

from tests.gcc import compile_elf
from tests.refusal_objects import RefusalObjects

V2_31, V2_32, V2_33, V2_36, V2_40, V2_41, V2_42 = (GlibcVersion(2, n) for n in (31, 32, 33, 36, 40, 41, 42))
V3 = 0b0111  # baseline, v2, v3: this CPU in the tests
MAIN = "int main(void) { return 0; }\n"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_elf(tmp_path_factory.mktemp("program") / "prog", MAIN, shared=False)


def process(program: Path, *objects: Path, env: dict[str, str] | None = None) -> nx.DiGraph[str]:
    extensions = tuple(Extension(str(path), path.name) for path in objects)
    return simulate(Target("generic", str(program), str(program), extensions), env=env or {})


def found(graph: nx.DiGraph[str], setting: Setting, path: Path) -> list[tuple[Kind, Effect | None]]:
    return [(c.kind, c.effect) for c in refusals(graph, setting) if c.object == str(path)]


def only(graph: nx.DiGraph[str], setting: Setting, kind: Kind, path: Path | None = None) -> Conflict:
    """The one record of ``kind`` (on ``path``: the machine's own glibc, read here under an older
    release than its own, may have DT_RELR too)."""
    (conflict,) = [c for c in refusals(graph, setting) if c.kind == kind and path in (None, Path(c.object))]
    return conflict


# --- DT_RELR -------------------------------------------------------------------------------------------


def test_dt_relr_under_a_loader_before_2_36_crashes_when_an_init_slot_is_packed(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.relr_crash)
    record = only(graph, Setting(V2_31, V3), Kind.DT_RELR, refusal_objects.relr_crash)
    assert (record.effect, record.severity, record.min_glibc) == (Effect.CRASH, Severity.ERROR, "2.36")
    assert "crashes as it loads" in record.message
    assert "GLIBC_ABI_DT_RELR" in record.cause  # why the loader did not refuse it by name
    assert any("without -z pack-relative-relocs" in fix for fix in record.fixes)


def test_dt_relr_without_init_slots_loads_with_unrelocated_pointers(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.relr_no_marker)
    record = only(graph, Setting(V2_31, V3), Kind.DT_RELR, refusal_objects.relr_no_marker)
    assert (record.effect, record.severity) == (Effect.LOADS, Severity.ERROR)


def test_dt_relr_with_the_marker_is_left_to_the_version_check(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.relr_marker)
    assert found(graph, Setting(V2_31, V3), refusal_objects.relr_marker) == []


def test_glibc_2_36_refuses_dt_relr_without_the_marker_in_an_object_with_libc_versions(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.relr_no_marker, refusal_objects.relr_crash)
    record = only(graph, Setting(V2_36, V3), Kind.DT_RELR)
    assert record.message == f"{refusal_objects.relr_no_marker}: DT_RELR without GLIBC_ABI_DT_RELR dependency"
    assert record.effect == Effect.REFUSED


def test_the_repatch_is_offered_for_dt_relr_only_with_a_2_36_stdenv(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.relr_crash)
    relr = refusal_objects.relr_crash
    newer = only(graph, Setting(V2_31, V3, stdenv=V2_36, repatch="glibc-doctor fix X"), Kind.DT_RELR, relr)
    assert newer.fixes[0].startswith("glibc-doctor fix X: repatch")
    older = only(graph, Setting(V2_31, V3, stdenv=V2_32, repatch="glibc-doctor fix X"), Kind.DT_RELR, relr)
    assert older.fixes[-1].startswith("move the stdenv to glibc ≥ 2.36")


# --- executable stack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("release", [V2_41, V2_42])
def test_glibc_2_41_refuses_an_executable_stack_for_dlopen(
    program: Path, refusal_objects: RefusalObjects, release: GlibcVersion
) -> None:
    graph = process(
        program, refusal_objects.exec_stack, refusal_objects.no_stack_header, refusal_objects.plain
    )
    records = [c for c in refusals(graph, Setting(release, V3)) if c.kind == Kind.EXEC_STACK]
    assert [c.object for c in records] == [
        str(refusal_objects.exec_stack),
        str(refusal_objects.no_stack_header),
    ]
    assert records[0].message.endswith(
        "cannot enable executable stack as shared object requires: Invalid argument"
    )
    assert any("patchelf --clear-execstack" in fix for fix in records[0].fixes)
    assert any("execstack=2" in fix for fix in records[0].fixes) == (release >= V2_42)


def test_an_executable_stack_loads_before_2_41(program: Path, refusal_objects: RefusalObjects) -> None:
    graph = process(program, refusal_objects.exec_stack)
    assert found(graph, Setting(V2_40, V3), refusal_objects.exec_stack) == []


def test_a_program_with_an_executable_stack_lets_its_extensions_have_one(
    tmp_path: Path, refusal_objects: RefusalObjects
) -> None:
    program = compile_elf(tmp_path / "prog", MAIN, shared=False, extra=["-Wl,-z,execstack"])
    graph = process(program, refusal_objects.exec_stack)
    assert found(graph, Setting(V2_41, V3), refusal_objects.exec_stack) == []


# --- x86 ISA level --------------------------------------------------------------------------------------


def test_an_isa_level_above_the_cpu_is_refused_from_2_33(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.isa_v4, refusal_objects.isa_v2)
    record = only(graph, Setting(V2_33, V3), Kind.ISA_LEVEL)
    assert (record.object, record.effect) == (str(refusal_objects.isa_v4), Effect.REFUSED)
    assert record.message.endswith(": CPU ISA level is lower than required")
    assert "x86-64-v4" in record.cause
    assert "x86-64-v3" in record.cause


def test_an_isa_level_above_the_cpu_loads_before_2_33_and_dies_of_sigill(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.isa_v4)
    record = only(graph, Setting(V2_32, V3), Kind.ISA_LEVEL)
    assert (record.effect, record.severity) == (Effect.LOADS, Severity.ERROR)
    assert "SIGILL" in record.message


def test_a_cpu_with_the_level_or_an_unknown_cpu_refuses_nothing(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.isa_v4)
    assert found(graph, Setting(V2_36, 0b1111), refusal_objects.isa_v4) == []
    assert found(graph, Setting(V2_36, None), refusal_objects.isa_v4) == []


def test_the_cpu_level_comes_from_the_hwcaps_rule_of_the_loader_model() -> None:
    v3 = frozenset(
        [
            "cx16",
            "lahf_lm",
            "popcnt",
            "pni",
            "sse4_1",
            "sse4_2",
            "ssse3",
            "avx",
            "avx2",
            "bmi1",
            "bmi2",
            "f16c",
            "fma",
            "abm",
            "movbe",
            "xsave",
        ]
    )
    assert cpu_isa_bits(v3) == V3
    assert cpu_isa_bits(v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}) == 0b1111
    assert cpu_isa_bits(frozenset({"fpu"})) == 1
    assert cpu_isa_bits(frozenset()) is None
    assert (isa_words(8), isa_words(V3), isa_words(0x10)) == ("x86-64-v4", "x86-64-v3", "ISA bits 0x10")


# --- static TLS -----------------------------------------------------------------------------------------


def test_a_big_initial_exec_block_is_refused_with_preload_and_tunable_fixes(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.tls_small, refusal_objects.tls_big)
    record = only(graph, Setting(V2_36, V3), Kind.STATIC_TLS)
    assert record.object == str(refusal_objects.tls_big)
    assert record.message.endswith(": cannot allocate memory in static TLS block")
    assert "4096 bytes" in record.cause
    assert "after tls_small.so took their part" in record.cause
    assert record.fixes[0].startswith(f"preload it: LD_PRELOAD={refusal_objects.tls_big}")
    assert "glibc.rtld.optional_static_tls=" in record.fixes[1]


def test_no_tunable_is_offered_before_glibc_2_32(program: Path, refusal_objects: RefusalObjects) -> None:
    record = only(process(program, refusal_objects.tls_big), Setting(V2_31, V3), Kind.STATIC_TLS)
    assert not any("GLIBC_TUNABLES" in fix for fix in record.fixes)


def test_an_over_aligned_block_is_refused_for_its_alignment(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    record = only(process(program, refusal_objects.tls_aligned), Setting(V2_36, V3), Kind.STATIC_TLS)
    assert "aligned to 128 bytes" in record.cause


def test_a_preloaded_block_is_in_the_initial_area(program: Path, refusal_objects: RefusalObjects) -> None:
    big = refusal_objects.tls_big
    graph = process(program, big, env={"LD_PRELOAD": str(big)})
    assert found(graph, Setting(V2_36, V3), big) == []


def test_the_tunable_in_the_environment_is_the_surplus_the_model_uses(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    big = refusal_objects.tls_big
    graph = process(program, big, env={"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=4096"})
    assert found(graph, Setting(V2_36, V3, tunables=graph.graph["tunables"]), big) == []


# --- what a newer stdenv would break ---------------------------------------------------------------------


def test_a_repatch_to_a_2_41_stdenv_is_warned_of_the_executable_stack_it_breaks(
    program: Path, refusal_objects: RefusalObjects
) -> None:
    graph = process(program, refusal_objects.exec_stack, refusal_objects.isa_v4)
    warnings = would_break(graph, Setting(V2_31, V3, stdenv=V2_41))
    assert [(c.kind, c.severity, c.effect) for c in warnings] == [
        (Kind.EXEC_STACK, Severity.WARNING, Effect.LOADS)
    ]
    assert "after a repatch against the stdenv glibc 2.41" in warnings[0].message
