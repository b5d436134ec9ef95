"""core/elf.py: the fast reader, checked field by field against pyelftools on every ELF we can find.

pyelftools reads sections (``.gnu.version_r``) where our reader follows the dynamic tags like ld.so;
both must give the same facts on well-formed files. Hostile files must give the right ``Problem``,
quickly, and never an exception.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE, ENUM_EI_OSABI
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import NoteSection
from elftools.elf.segments import InterpSegment, NoteSegment, Segment
from glibc_doctor.core.elf import (
    clear_cache,
    constant_ranges,
    defines_symbol,
    glibc_release,
    is_library_name,
    parse_elf,
    read_elf,
)
from glibc_doctor.core.model import DF_1_NODEFLIB, EM_AARCH64, EM_X86_64, ElfFacts, Problem, VersionNeed

from tests.budget import cpu_budget
from tests.gcc import compile_elf
from tests.refusal_objects import RefusalObjects
from tests.synthetic import Synthetic

SYSTEM_LIB = Path("/usr/lib/x86_64-linux-gnu")
VENV = Path(sys.prefix)
SAMPLE_SIZE = 300

FIELDS = (
    "elf_class",
    "little_endian",
    "machine",
    "osabi",
    "elf_type",
    "interpreter",
    "needed",
    "soname",
    "rpath",
    "runpath",
    "flags",
    "flags_1",
    "build_id",
    "requires",
    "defines",
    "relr",
    "relr_init",
    "stack_flags",
    "tls_size",
    "tls_align",
    "tls_firstbyte",
    "x86_isa_needed",
    "page_limit",
)


# ---------------------------------------------------------------------------------------------------
# The reference: the same facts through pyelftools


def _number(value: object, table: Mapping[str, int]) -> int:
    return table[value] if isinstance(value, str) else int(str(value))


def reference_facts(path: Path) -> dict[str, Any]:
    """What pyelftools says about the fields of ``ElfFacts``; raises ELFError & co. on bad files."""
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        facts: dict[str, Any] = {
            "elf_class": elf.elfclass,
            "little_endian": elf.little_endian,
            "machine": _number(elf.header["e_machine"], ENUM_E_MACHINE),
            "osabi": _number(elf.header["e_ident"]["EI_OSABI"], ENUM_EI_OSABI),
            "elf_type": _number(elf.header["e_type"], ENUM_E_TYPE),
            "interpreter": None,
            "needed": (),
            "soname": None,
            "rpath": None,
            "runpath": None,
            "flags": 0,
            "flags_1": 0,
            "build_id": None,
            "relr": False,
            "relr_init": False,
            "stack_flags": None,
            "tls_size": 0,
            "tls_align": 0,
            "tls_firstbyte": 0,
        }
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):
                facts["interpreter"] = segment.get_interp_name()
            elif isinstance(segment, NoteSegment) and facts["build_id"] is None:
                for note in segment.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                        facts["build_id"] = note["n_desc"]
            elif isinstance(segment, DynamicSegment):
                facts.update(_reference_dynamic(segment))
            facts.update(_reference_segment(segment))
        facts["requires"] = _reference_requires(elf)
        facts["defines"] = _reference_defines(elf)
        facts["x86_isa_needed"] = _reference_isa_needed(elf)
        facts["page_limit"] = _reference_page_limit(elf)
        return facts


def _reference_page_limit(elf: ELFFile) -> int:
    """The largest power of two dividing every PT_LOAD's p_align and p_vaddr - p_offset (0: none)."""
    limit = 0
    for segment in elf.iter_segments():
        if segment["p_type"] != "PT_LOAD":
            continue
        for value in (segment["p_align"], (segment["p_vaddr"] - segment["p_offset"]) % (1 << 64)):
            if value:
                low = value & -value
                limit = min(limit, low) if limit else low
    return limit


def _reference_segment(segment: Segment) -> dict[str, Any]:
    """PT_GNU_STACK's flags and the PT_TLS block (the last of each, as ld.so assigns them in a loop)."""
    kind = segment["p_type"]
    if kind == "PT_GNU_STACK":
        return {"stack_flags": segment["p_flags"]}
    if kind == "PT_TLS" and segment["p_memsz"]:
        align = segment["p_align"]
        firstbyte = segment["p_vaddr"] & (align - 1) if align else 0
        return {"tls_size": segment["p_memsz"], "tls_align": align, "tls_firstbyte": firstbyte}
    return {}


def _reference_isa_needed(elf: ELFFile) -> int:
    """GNU_PROPERTY_X86_ISA_1_NEEDED from the ``.note.gnu.property`` section (x86 objects only)."""
    section = elf.get_section_by_name(".note.gnu.property")
    if elf["e_machine"] not in ("EM_X86_64", "EM_386") or not isinstance(section, NoteSection):
        return 0
    for note in section.iter_notes():
        if note["n_type"] == "NT_GNU_PROPERTY_TYPE_0":
            for prop in note["n_desc"]:
                if prop["pr_type"] == "GNU_PROPERTY_X86_ISA_1_NEEDED":
                    return int(prop["pr_data"])
    return 0


def _reference_dynamic(segment: DynamicSegment) -> dict[str, Any]:
    found: dict[str, Any] = {"needed": []}
    for tag in segment.iter_tags():
        kind = tag.entry.d_tag
        if kind == "DT_NEEDED":
            found["needed"].append(tag.needed)  # type: ignore[attr-defined]
        elif kind in ("DT_SONAME", "DT_RPATH", "DT_RUNPATH"):
            key = kind[3:].lower()
            found.setdefault(key, getattr(tag, key))
        elif kind in ("DT_FLAGS", "DT_FLAGS_1", "DT_INIT_ARRAY", "DT_INIT_ARRAYSZ"):
            found.setdefault(kind[3:].lower(), tag.entry.d_val)
        elif kind == "DT_RELR":
            found["relr"] = True
    init, size = found.pop("init_array", None), found.pop("init_arraysz", 0)
    if found.get("relr") and init is not None:
        relocated = segment.get_relocation_tables()["RELR"].iter_relocations()
        found["relr_init"] = any(init <= entry["r_offset"] < init + size for entry in relocated)
    found["needed"] = tuple(found["needed"])
    return found


def _reference_requires(elf: ELFFile) -> tuple[VersionNeed, ...]:
    section = elf.get_section_by_name(".gnu.version_r")
    if not isinstance(section, GNUVerNeedSection):
        return ()
    return tuple(
        VersionNeed(
            library=verneed.name,
            version=aux.name,
            weak=bool(aux["vna_flags"] & 0x2),
            index=aux["vna_other"],
            hash=aux["vna_hash"],
        )
        for verneed, auxes in section.iter_versions()
        for aux in auxes
    )


def _reference_defines(elf: ELFFile) -> tuple[str, ...]:
    section = elf.get_section_by_name(".gnu.version_d")
    if not isinstance(section, GNUVerDefSection):
        return ()
    names = []
    for verdef, auxes in section.iter_versions():
        if not verdef["vd_flags"] & 0x1:
            names.append(next(iter(auxes)).name)
    return tuple(names)


def differences(path: Path) -> list[str]:
    """Each field where our reader and pyelftools disagree, as readable lines."""
    ours = read_elf(str(path))
    try:
        theirs = reference_facts(path)
    except (ELFError, ValueError, OSError, KeyError) as error:
        return [] if ours.problem is not None else [f"{path}: pyelftools failed ({error}) but we read it"]
    if ours.problem is not None:
        return [f"{path}: we report {ours.problem} ({ours.detail}) but pyelftools reads it"]
    return [
        f"{path}: {name}: ours {getattr(ours, name)!r} != pyelftools {theirs[name]!r}"
        for name in FIELDS
        if getattr(ours, name) != theirs[name]
    ]


def system_sample() -> list[Path]:
    """A deterministic sample of the machine's libraries (every n-th by sorted path)."""
    if not SYSTEM_LIB.is_dir():
        return []
    files = sorted(path for path in _library_files(SYSTEM_LIB))
    step = max(1, len(files) // SAMPLE_SIZE)
    return files[::step][:SAMPLE_SIZE]


def _library_files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if is_library_name(name) and path.is_file() and not path.is_symlink():
                yield path


# ---------------------------------------------------------------------------------------------------
# Field by field against pyelftools


def test_reader_agrees_with_pyelftools_on_the_synthetic_corpus(synthetic: Synthetic) -> None:
    mismatches = [line for path in synthetic.well_formed for line in differences(path)]
    assert mismatches == []


def test_reader_agrees_with_pyelftools_on_the_system_libraries() -> None:
    sample = system_sample()
    if not sample:
        pytest.skip(f"no {SYSTEM_LIB} here")
    mismatches = [line for path in sample for line in differences(path)]
    assert mismatches == []


def test_reader_agrees_with_pyelftools_on_the_venv_libraries() -> None:
    files = sorted(_library_files(VENV))
    if not files:
        pytest.skip("no shared objects in this venv")
    mismatches = [line for path in files for line in differences(path)]
    assert mismatches == []


def test_the_comparison_covers_a_real_corpus() -> None:
    """Guard against a vacuous pass: the sample holds hundreds of ELF objects with version needs."""
    sample = system_sample()
    if not sample:
        pytest.skip(f"no {SYSTEM_LIB} here")
    facts = [read_elf(str(path)) for path in sample]
    assert sum(1 for fact in facts if fact.requires) > 100


def test_reader_agrees_with_pyelftools_on_the_refusal_objects(refusal_objects: RefusalObjects) -> None:
    mismatches = [line for path in refusal_objects.all for line in differences(path)]
    assert mismatches == []


def test_the_comparison_covers_what_the_loader_checks_beyond_versions() -> None:
    """The system sample exercises the new fields too: DT_RELR, initial-exec TLS, ISA notes."""
    sample = system_sample()
    if not sample:
        pytest.skip(f"no {SYSTEM_LIB} here")
    facts = [read_elf(str(path)) for path in sample]
    assert sum(1 for fact in facts if fact.tls_size) > 5
    assert sum(1 for fact in facts if fact.stack_flags is not None) > 100
    if any(fact.relr for fact in facts):  # distributions linking with -z pack-relative-relocs
        assert sum(1 for fact in facts if fact.relr_init) > 5


# ---------------------------------------------------------------------------------------------------
# What the loader checks beyond names and versions (objects from tests/refusal_objects.py)


def test_packed_relocations_covering_the_init_array_are_read(refusal_objects: RefusalObjects) -> None:
    facts = read_elf(str(refusal_objects.relr_crash))
    assert (facts.relr, facts.relr_init, facts.requires) == (True, True, ())


def test_packed_relocations_without_an_init_array_do_not_cover_it(refusal_objects: RefusalObjects) -> None:
    facts = read_elf(str(refusal_objects.relr_no_marker))
    assert (facts.relr, facts.relr_init) == (True, False)
    assert "libc.so.6" in facts.needed
    assert [need.version for need in facts.requires] == ["GLIBC_2.29"]


def test_the_dt_relr_marker_is_an_ordinary_version_need(refusal_objects: RefusalObjects) -> None:
    facts = read_elf(str(refusal_objects.relr_marker))
    assert "GLIBC_ABI_DT_RELR" in {need.version for need in facts.requires_from("libc.so.6")}


def test_an_executable_stack_is_read_from_pt_gnu_stack(refusal_objects: RefusalObjects) -> None:
    assert read_elf(str(refusal_objects.exec_stack)).stack_flags == 7  # PF_R | PF_W | PF_X
    assert read_elf(str(refusal_objects.exec_stack)).needs_exec_stack
    assert not read_elf(str(refusal_objects.plain)).needs_exec_stack


def test_no_pt_gnu_stack_means_an_executable_stack_on_x86_64(refusal_objects: RefusalObjects) -> None:
    facts = read_elf(str(refusal_objects.no_stack_header))
    assert (facts.stack_flags, facts.needs_exec_stack) == (None, True)


@pytest.mark.parametrize(("name", "bits"), [("isa_v4", 8), ("isa_v2", 2), ("tls_32", 2)])
def test_the_x86_isa_level_needed_is_read_from_the_property_note(
    refusal_objects: RefusalObjects, name: str, bits: int
) -> None:
    assert read_elf(str(getattr(refusal_objects, name))).x86_isa_needed == bits


def test_initial_exec_tls_gives_the_block_and_the_static_tls_flag(refusal_objects: RefusalObjects) -> None:
    big = read_elf(str(refusal_objects.tls_big))
    assert (big.tls_size, big.tls_align, big.static_tls) == (4096, 16, True)
    aligned = read_elf(str(refusal_objects.tls_aligned))
    assert (aligned.tls_size, aligned.tls_align) == (64, 128)
    assert read_elf(str(refusal_objects.tls_32)).static_tls
    assert not read_elf(str(refusal_objects.plain)).static_tls


def test_a_torn_property_note_gives_no_isa_level_and_no_exception(
    refusal_objects: RefusalObjects, tmp_path: Path
) -> None:
    source = refusal_objects.isa_v4
    data = bytearray(source.read_bytes())
    with source.open("rb") as handle:
        note = next(seg for seg in ELFFile(handle).iter_segments() if seg["p_type"] == "PT_GNU_PROPERTY")
        offset = note["p_offset"]
    struct.pack_into("<I", data, offset + 16 + 4, 0xFFFF)  # pr_datasz of the first property
    torn = tmp_path / "torn.so"
    torn.write_bytes(bytes(data))
    facts = read_elf(str(torn))
    assert (facts.problem, facts.x86_isa_needed) == (None, 0)


# ---------------------------------------------------------------------------------------------------
# What the synthetic objects say


def test_extension_needs_every_newer_glibc_version_with_its_index(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.ext_needs_238))
    versions = {need.version: need.index for need in facts.requires_from("libc.so.6")}
    assert set(versions) == {"GLIBC_2.38", "GLIBC_2.34", "GLIBC_2.2.5"}
    assert len(set(versions.values())) == 3


def test_weak_version_need_is_marked_weak(synthetic: Synthetic) -> None:
    weak = {need.version for need in read_elf(str(synthetic.ext_weak)).requires if need.weak}
    assert weak == {"GLIBC_2.34"}


def test_fake_libc_defines_its_versions_without_the_base_entry(synthetic: Synthetic) -> None:
    defines = read_elf(str(synthetic.old_libc)).defines
    assert defines[0] == "GLIBC_2.2.5"
    assert "libc.so.6" not in defines
    assert defines[-1] == "GLIBC_PRIVATE"


def test_program_reports_its_interpreter_and_rpath(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.app))
    assert facts.interpreter == str(synthetic.old_loader)
    assert facts.rpath == str(synthetic.old_glibc)
    assert facts.runpath is None


def test_program_with_both_tags_reports_rpath_and_runpath(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.app_both))
    assert (facts.rpath, facts.runpath) == (str(synthetic.new_glibc), str(synthetic.old_glibc))


def test_origin_token_is_kept_unexpanded(synthetic: Synthetic) -> None:
    assert read_elf(str(synthetic.app_origin_runpath)).runpath == "${ORIGIN}/../old_glibc"


def test_nodeflib_flag_is_read(synthetic: Synthetic) -> None:
    assert read_elf(str(synthetic.app_nodeflib)).flags_1 & DF_1_NODEFLIB


def test_build_id_is_the_hex_of_the_gnu_note(synthetic: Synthetic) -> None:
    build_id = read_elf(str(synthetic.ext_clean)).build_id
    assert build_id is not None
    assert len(build_id) == 40


def test_32_bit_object_is_read_with_its_version_needs(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.ext32_needs_234))
    assert (facts.elf_class, facts.machine) == (32, 3)
    assert "GLIBC_2.34" in {need.version for need in facts.requires}


@pytest.mark.parametrize("field", ["big_endian", "big_endian32"])
def test_big_endian_object_is_read(synthetic: Synthetic, field: str) -> None:
    facts = read_elf(str(getattr(synthetic, field)))
    assert facts.ok
    assert not facts.little_endian
    assert facts.needed == ("libc.so.6",)
    assert facts.defines == ("HAND_1.0",)


def test_foreign_machine_is_read_not_rejected(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.foreign_machine))
    assert facts.ok
    assert facts.machine == EM_AARCH64


def test_real_libc_is_an_x86_64_library_defining_glibc_versions() -> None:
    libc = SYSTEM_LIB / "libc.so.6"
    if not libc.exists():
        pytest.skip("no system libc.so.6")
    facts = read_elf(str(libc))
    assert facts.machine == EM_X86_64
    assert facts.soname == "libc.so.6"
    assert "GLIBC_2.34" in facts.defines


def test_relocatable_object_reads_without_dynamic_facts(tmp_path: Path) -> None:
    obj = compile_elf(tmp_path / "plain.o", "int f(void) { return 1; }\n", shared=False, extra=["-c"])
    facts = read_elf(str(obj))
    assert facts.ok
    assert (facts.elf_type, facts.needed, facts.is_dynamic) == (1, (), False)


def test_static_program_is_not_dynamic(tmp_path: Path) -> None:
    source = "void _start(void) { for (;;) {} }\n"
    program = compile_elf(tmp_path / "static", source, shared=False, nostdlib=True, extra=["-static"])
    facts = read_elf(str(program))
    assert facts.ok
    assert facts.interpreter is None
    assert not facts.is_dynamic


# ---------------------------------------------------------------------------------------------------
# Hostile inputs

HOSTILE = [
    ("empty", Problem.NOT_ELF),
    ("text", Problem.NOT_ELF),
    ("linker_script", Problem.NOT_ELF),
    ("truncated_header", Problem.TRUNCATED),
    ("truncated_phdrs", Problem.TRUNCATED),
    ("truncated_dynamic", Problem.TRUNCATED),
    ("truncated_version_r", Problem.TRUNCATED),
    ("garbage_after_magic", Problem.MALFORMED),
    ("huge_phnum", Problem.TRUNCATED),
    ("bad_phentsize", Problem.MALFORMED),
    ("dynamic_no_null", Problem.MALFORMED),
    ("strtab_unmapped", Problem.MALFORMED),
    ("vn_next_loop", Problem.MALFORMED),
    ("vn_aux_wild", Problem.MALFORMED),
    ("symlink_loop", Problem.UNREADABLE),
    ("dangling", Problem.MISSING),
    ("directory", Problem.UNREADABLE),
]


@pytest.mark.parametrize(("field", "problem"), HOSTILE)
def test_hostile_file_gives_its_problem_quickly(synthetic: Synthetic, field: str, problem: Problem) -> None:
    clear_cache()
    with cpu_budget(0.5, f"reading {field}"):
        facts = read_elf(str(getattr(synthetic, field)))
    assert facts.problem == problem
    assert facts.detail
    assert "\n" not in facts.detail


def test_a_problem_keeps_the_fields_read_before_it(synthetic: Synthetic) -> None:
    facts = read_elf(str(synthetic.vn_aux_wild))
    assert facts.problem == Problem.MALFORMED
    assert (facts.elf_class, facts.machine, facts.needed) == (64, EM_X86_64, ("libc.so.6",))


def test_random_bytes_after_a_valid_ident_are_truncated_or_malformed(synthetic: Synthetic) -> None:
    assert read_elf(str(synthetic.random_after_ident)).problem in (Problem.TRUNCATED, Problem.MALFORMED)


@pytest.mark.parametrize(("field", "problem"), HOSTILE)
def test_what_was_read_before_the_problem_matches_pyelftools(
    synthetic: Synthetic, field: str, problem: Problem
) -> None:
    """pyelftools either fails on the file too, or agrees with the header fields we did read."""
    path = getattr(synthetic, field)
    facts = read_elf(str(path))
    try:
        theirs = reference_facts(path)
    except (ELFError, ValueError, OSError, KeyError, AssertionError):
        return
    if facts.elf_class:
        assert (facts.elf_class, facts.little_endian) == (theirs["elf_class"], theirs["little_endian"])
    if facts.machine:
        assert (facts.machine, facts.elf_type) == (theirs["machine"], theirs["elf_type"])


def test_missing_file_is_missing(tmp_path: Path) -> None:
    assert read_elf(str(tmp_path / "libnothere.so.1")).problem == Problem.MISSING


def test_path_through_a_regular_file_is_missing(synthetic: Synthetic) -> None:
    assert read_elf(str(synthetic.ext_clean / "libc.so.6")).problem == Problem.MISSING


def test_fifo_is_unreadable_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "libfifo.so"
    os.mkfifo(fifo)
    assert read_elf(str(fifo)).problem == Problem.UNREADABLE


def problem_as_unprivileged(path: Path) -> str:
    """read_elf(path).problem in a process that permission bits apply to.

    As root, the child runs without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (setpriv), so a mode-0 file
    gives a real EACCES, not one faked by a mock.
    """
    code = f"from glibc_doctor.core.elf import read_elf; print(read_elf({str(path)!r}).problem)"
    argv = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv reads files whatever their mode")
        drop = "-dac_override,-dac_read_search"
        argv = [setpriv, "--bounding-set", drop, "--inh-caps", drop, *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def test_file_without_read_permission_is_unreadable(synthetic: Synthetic, tmp_path: Path) -> None:
    locked = tmp_path / "liblocked.so"
    shutil.copy(synthetic.ext_clean, locked)
    locked.chmod(0)
    assert problem_as_unprivileged(locked) == str(Problem.UNREADABLE)


def test_every_truncation_of_an_extension_is_reported_not_raised(synthetic: Synthetic) -> None:
    data = synthetic.ext_needs_238.read_bytes()
    results = [parse_elf("cut.so", data[:size]) for size in range(4, len(data), 3)]
    assert all(isinstance(facts, ElfFacts) for facts in results)
    assert all(facts.problem is not None for facts in results[: len(results) // 2])


def test_random_corruption_never_raises(synthetic: Synthetic) -> None:
    original = synthetic.ext_libm.read_bytes()
    noise = random.Random(7)
    for _ in range(300):
        data = bytearray(original)
        for _ in range(noise.randint(1, 8)):
            data[noise.randrange(len(data))] = noise.randrange(256)
        assert isinstance(parse_elf("mutant.so", bytes(data)), ElfFacts)


@pytest.mark.parametrize("name", ["relr_crash", "isa_v4", "tls_big", "tls_32"])
def test_corrupting_the_refusal_headers_never_raises(refusal_objects: RefusalObjects, name: str) -> None:
    """Mutations aimed at the first 1 KB (program headers, notes, the dynamic tags' neighbourhood)."""
    original = getattr(refusal_objects, name).read_bytes()
    noise = random.Random(11)
    started = time.monotonic()
    for _ in range(300):
        data = bytearray(original)
        for _ in range(noise.randint(1, 8)):
            data[noise.randrange(min(len(data), 1024))] = noise.randrange(256)
        assert isinstance(parse_elf("mutant.so", bytes(data)), ElfFacts)
    assert time.monotonic() - started < 30  # a hang guard, not a timing


def test_large_file_is_read_through_mmap_with_the_same_facts(synthetic: Synthetic, tmp_path: Path) -> None:
    big = tmp_path / "libbig.so"
    big.write_bytes(synthetic.ext_needs_238.read_bytes() + bytes(1 << 20))
    small = read_elf(str(synthetic.ext_needs_238))
    assert read_elf(str(big)).requires == small.requires


# ---------------------------------------------------------------------------------------------------
# Cache


def test_second_read_comes_from_the_cache(synthetic: Synthetic) -> None:
    clear_cache()
    assert read_elf(str(synthetic.ext_clean)) is read_elf(str(synthetic.ext_clean))


def test_cached_facts_carry_the_path_they_were_asked_for(synthetic: Synthetic, tmp_path: Path) -> None:
    link = tmp_path / "libalias.so"
    link.symlink_to(synthetic.ext_clean)
    read_elf(str(synthetic.ext_clean))
    assert read_elf(str(link)).path == str(link)


def test_rewritten_file_is_read_again(synthetic: Synthetic, tmp_path: Path) -> None:
    target = tmp_path / "libchanging.so"
    shutil.copy(synthetic.ext_clean, target)
    assert read_elf(str(target)).ok
    target.write_text("now a linker script\n")
    assert read_elf(str(target)).problem == Problem.NOT_ELF


def test_clear_cache_forces_a_fresh_read(synthetic: Synthetic) -> None:
    first = read_elf(str(synthetic.ext_clean))
    clear_cache()
    second = read_elf(str(synthetic.ext_clean))
    assert first == second
    assert first is not second


# ---------------------------------------------------------------------------------------------------
# glibc_release, is_library_name


def test_glibc_release_reads_the_release_string(synthetic: Synthetic) -> None:
    assert glibc_release(str(synthetic.old_libc)) == "2.31"
    assert glibc_release(str(synthetic.new_libc)) == "2.38"


def test_glibc_release_of_the_system_libc_is_the_running_glibc() -> None:
    libc = SYSTEM_LIB / "libc.so.6"
    running = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not libc.exists() or not running.startswith("glibc "):
        pytest.skip("no glibc system libc here")
    assert glibc_release(str(libc)) == running.split()[1]


def test_glibc_release_falls_back_to_a_nix_store_path(synthetic: Synthetic, tmp_path: Path) -> None:
    lib = tmp_path / "nix" / "store" / "0abc-glibc-2.27" / "lib"
    lib.mkdir(parents=True)
    shutil.copy(synthetic.ext_clean, lib / "libc.so.6")
    assert glibc_release(str(lib / "libc.so.6")) == "2.27"


def test_glibc_release_of_an_unknown_file_is_none(synthetic: Synthetic) -> None:
    assert glibc_release(str(synthetic.ext_clean)) is None
    assert glibc_release(str(synthetic.empty)) is None
    assert glibc_release(str(synthetic.dangling)) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("libc.so.6", True),
        ("libfoo.so", True),
        ("/usr/lib/libstdc++.so.6.0.30", True),
        ("_psycopg.cpython-39-x86_64-linux-gnu.so", True),
        ("ld-linux-x86-64.so.2", True),
        ("libfoo.so.bak", False),
        ("libfoo.so.debug", False),
        ("libfoo.a", False),
        ("libfoo.sox", False),
        ("python3.11", False),
        (".so", False),
    ],
)
def test_is_library_name(name: str, expected: bool) -> None:
    assert is_library_name(name) is expected


@pytest.mark.parametrize("module", ["glibc_doctor.core.elf", "glibc_doctor.core.symbols"])
def test_module_imports_no_terminal_library(module: str) -> None:
    code = f"import sys, {module}; print(any(m in sys.modules for m in ('textual', 'rich')))"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------
# defines_symbol: what dlsym finds in the object itself (the init function an import calls)

MODULE_SOURCE = """
#include <string.h>
void *PyInit_probe(void) { return (void *)strlen("x"); }
void Init_probe(void) {}
__attribute__((weak)) void weak_probe(void) {}
int probe_data = 1;
static void local_probe(void) {}
__attribute__((visibility("hidden"))) void hidden_probe(void) { local_probe(); }
"""
DEFINED = ("PyInit_probe", "Init_probe", "weak_probe", "probe_data")
NOT_DEFINED = ("local_probe", "hidden_probe", "strlen", "PyInit_other", "", "PyInit_probe_")


@pytest.mark.parametrize("style", ["gnu", "sysv", "both"])
def test_defines_symbol_finds_exported_definitions_through_each_hash_table(
    tmp_path: Path, style: str
) -> None:
    module = compile_elf(tmp_path / f"probe_{style}.so", MODULE_SOURCE, extra=[f"-Wl,--hash-style={style}"])
    assert {name: defines_symbol(str(module), name) for name in DEFINED + NOT_DEFINED} == {
        **dict.fromkeys(DEFINED, True),
        **dict.fromkeys(NOT_DEFINED, False),
    }


def test_defines_symbol_reads_a_32_bit_object(synthetic: Synthetic) -> None:
    defined = reference_symbols(synthetic.libc32)[0]
    assert defined
    assert all(defines_symbol(str(synthetic.libc32), name) for name in defined)
    assert defines_symbol(str(synthetic.ext32_needs_234), "pthread_create") is False


def reference_symbols(path: Path, limit: int = 40) -> tuple[list[str], list[str]]:
    """(defined and exported, only referenced) dynamic symbol names by pyelftools, ``limit`` of each."""
    defined: list[str] = []
    undefined: list[str] = []
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        table = elf.get_section_by_name(".dynsym")
        for symbol in table.iter_symbols() if table is not None else ():
            bind, kind = symbol["st_info"]["bind"], symbol["st_info"]["type"]
            if not symbol.name:
                continue
            if symbol["st_shndx"] == "SHN_UNDEF":
                undefined.append(symbol.name)
            elif bind in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE") and (
                symbol["st_value"] or kind == "STT_TLS"
            ):
                defined.append(symbol.name)
    exported = set(defined)
    return defined[:limit], [name for name in undefined if name not in exported][:limit]


def test_defines_symbol_agrees_with_pyelftools_on_the_system_libraries() -> None:
    checked = 0
    for path in system_sample()[:60]:
        defined, undefined = reference_symbols(path)
        assert [n for n in defined if not defines_symbol(str(path), n)] == [], path
        assert [n for n in undefined if defines_symbol(str(path), n) is not False] == [], path
        checked += len(defined) + len(undefined)
    assert checked > 500


def test_defines_symbol_is_none_for_what_is_not_an_elf_object(synthetic: Synthetic) -> None:
    for path in synthetic.hostile:
        assert defines_symbol(str(path), "PyInit_x") in (None, False), path
    assert defines_symbol(str(synthetic.text), "PyInit_x") is None
    assert defines_symbol(str(synthetic.directory), "PyInit_x") is None
    assert defines_symbol(str(synthetic.dangling), "PyInit_x") is None


def test_defines_symbol_does_not_open_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "module.so"
    os.mkfifo(fifo)
    assert defines_symbol(str(fifo), "PyInit_module") is None


def test_constant_ranges_are_the_loaded_segments_that_are_not_writable(synthetic: Synthetic) -> None:
    for path in (synthetic.ext_clean, synthetic.app, synthetic.libc32):
        with path.open("rb") as handle:
            expected = tuple(
                (segment["p_offset"], segment["p_filesz"])
                for segment in ELFFile(handle).iter_segments()
                if segment["p_type"] == "PT_LOAD" and not segment["p_flags"] & 2
            )
        assert expected
        assert constant_ranges(str(path)) == expected
    assert constant_ranges(str(synthetic.text)) == ()
