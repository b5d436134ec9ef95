"""The ``scan`` text report, rendered from real scans to a fixed-width page: what someone reads at 2 a.m.

The lab (a python 3.9 hard-wired to glibc 2.31, extensions built by this machine's gcc) is scanned for
real; the synthetic corpus covers what the lab cannot (a stdenv that is missing, a chosen stdenv glibc).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from io import StringIO
from pathlib import Path

import pytest
from glibc_doctor.core.explain import explain
from glibc_doctor.core.scan import ScanResult, scan
from glibc_doctor.core.versions import GlibcVersion
from glibc_doctor.lab.build import Lab
from glibc_doctor.tui.cli.report import (
    column_widths,
    print_explanation,
    print_scan,
    short_path,
    shorten_text,
    version_range,
)
from rich.console import Console

from tests.budget import cpu_budget
from tests.gcc import compile_elf
from tests.refusal_objects import RefusalObjects
from tests.synthetic import Synthetic

WIDTH = 100
MACHINE_GLIBC = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # type: ignore[union-attr]
STORE_HASH = re.compile(r"[0-9a-df-np-sv-z]{32}")


def render(result: ScanResult, *, verbose: bool = False, width: int = WIDTH) -> str:
    out = StringIO()
    print_scan(result, Console(file=out, width=width, color_system=None), verbose=verbose)
    return out.getvalue()


@pytest.fixture(scope="module")
def lab_scan(lab: Lab) -> ScanResult:
    return scan(str(lab.venv), env=lab.environ(), use_cache=False)


@pytest.fixture(scope="module")
def lab_text(lab_scan: ScanResult) -> str:
    return render(lab_scan)


def row_of(text: str, name: str) -> str:
    """The table row of extension ``name``: its first line, then its wrapped lines, spaces collapsed."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(name + " "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


def verdict_of(text: str, name: str) -> str:
    """The last column of the first line of extension ``name``'s row."""
    first = next(line for line in text.splitlines() if line.startswith(name + " "))
    return re.split(r"\s{2,}", first.strip())[-1]


# --- the real lab, default report -----------------------------------------------------------------------


@pytest.mark.lab
def test_the_default_report_fits_on_one_screen(lab_text: str) -> None:
    assert len(lab_text.splitlines()) <= 40


@pytest.mark.lab
def test_no_line_is_wider_than_the_page(lab_text: str) -> None:
    assert max(len(line.rstrip()) for line in lab_text.splitlines()) <= WIDTH


@pytest.mark.lab
def test_the_header_says_which_glibc_loads_and_why(lab_text: str) -> None:
    header = "\n".join(lab_text.splitlines()[:6])
    assert "loads glibc 2.31" in header
    assert "PT_INTERP" in header
    assert "RUNPATH" in header
    assert "stdenv glibc" in header


@pytest.mark.lab
def test_the_verdict_names_the_three_broken_extensions(lab_scan: ScanResult, lab_text: str) -> None:
    total = len(lab_scan.target.extensions)
    assert f"✗ 3 of {total} extensions cannot load: ext_cxx, ext_pthread, ext_strlcpy" in lab_text


@pytest.mark.lab
def test_each_broken_extension_has_a_row_with_the_versions_it_misses(lab_text: str) -> None:
    assert "GLIBC_2.34" in row_of(lab_text, "ext_pthread")
    assert "pthread_create" in row_of(lab_text, "ext_pthread")
    assert "GLIBC_2.38 (strlcpy)" in row_of(lab_text, "ext_strlcpy")
    assert re.search(r"lib(stdc\+\+\.so\.6|gcc_s\.so\.1) → GLIBC_2\.3\d", row_of(lab_text, "ext_cxx"))


@pytest.mark.lab
def test_ext_strlcpy_is_fixable_only_by_a_stdenv_of_glibc_2_38(lab_scan: ScanResult, lab_text: str) -> None:
    assert lab_scan.stdenv is not None
    assert lab_scan.stdenv.version is not None
    stdenv = lab_scan.stdenv.version
    if GlibcVersion.parse(stdenv) < GlibcVersion(2, 38):
        assert verdict_of(lab_text, "ext_strlcpy") == f"no: needs 2.38 > stdenv {stdenv}"
        assert "ext_strlcpy still fails after it" in lab_text
    else:
        assert verdict_of(lab_text, "ext_strlcpy") == "yes"


@pytest.mark.lab
def test_ext_pthread_and_ext_cxx_are_fixable_by_the_stdenv(lab_text: str) -> None:
    assert verdict_of(lab_text, "ext_pthread") == "yes"
    assert verdict_of(lab_text, "ext_cxx") == "yes"


@pytest.mark.lab
def test_the_report_gives_the_one_command_to_run(lab: Lab, lab_text: str) -> None:
    assert f"run  glibc-doctor fix {short_path(str(lab.venv))}" in lab_text
    assert "--verbose" in lab_text


@pytest.mark.lab
def test_no_line_shows_a_store_hash(lab_text: str) -> None:
    assert [line for line in lab_text.splitlines() if STORE_HASH.search(line)] == []


@pytest.mark.lab
def test_clean_extensions_are_collapsed_into_a_count(lab_scan: ScanResult, lab_text: str) -> None:
    clean = len(lab_scan.target.extensions) - 3
    assert f"{clean} more extensions load cleanly" in lab_text
    assert "_asyncio" not in lab_text


@pytest.mark.lab
def test_the_failing_chain_shows_how_the_system_libstdcxx_was_found(lab_text: str) -> None:
    chain = next(line for line in lab_text.splitlines() if "libstdc++.so.6  " in line)
    assert "(via ld.so.cache)" in chain
    assert "✗ GLIBC_2.3" in chain


# --- the real lab, --verbose ----------------------------------------------------------------------------


@pytest.mark.lab
def test_verbose_adds_the_whole_load_tree(lab_scan: ScanResult) -> None:
    text = render(lab_scan, verbose=True)
    assert "Load tree" in text
    assert "_asyncio.cpython-39-x86_64-linux-gnu.so" in text


@pytest.mark.lab
def test_verbose_adds_each_records_symbols_and_chain(lab_scan: ScanResult) -> None:
    text = render(lab_scan, verbose=True)
    assert "symbols pthread_create, pthread_join" in text
    assert "chain python3.9 → ext_cxx.cpython-39-x86_64-linux-gnu.so → libstdc++.so.6" in text


@pytest.mark.lab
def test_verbose_still_shows_no_store_hash(lab_scan: ScanResult) -> None:
    text = render(lab_scan, verbose=True)
    assert [line for line in text.splitlines() if STORE_HASH.search(line)] == []


# --- the synthetic corpus --------------------------------------------------------------------------------


def synthetic_scan(s: Synthetic, glibc: str | None = None) -> ScanResult:
    return scan(str(s.app), ext=(str(s.ext_needs_238),), glibc=glibc, use_cache=False)


def test_without_a_stdenv_the_command_asks_for_a_glibc_dir(synthetic: Synthetic) -> None:
    result = dataclasses.replace(synthetic_scan(synthetic, str(synthetic.new_glibc)), stdenv=None)
    text = render(result)
    assert "stdenv not found" in text
    assert f"run  glibc-doctor fix {synthetic.app} --ext {synthetic.ext_needs_238} --glibc DIR" in text


def test_a_stdenv_new_enough_makes_the_extension_fixable(synthetic: Synthetic) -> None:
    text = render(synthetic_scan(synthetic, str(synthetic.new_glibc)))
    assert verdict_of(text, synthetic.ext_needs_238.name) == "yes"
    assert f"--glibc {synthetic.new_glibc}" in text


def test_a_stdenv_too_old_says_by_how_much_and_offers_no_fix_command(synthetic: Synthetic) -> None:
    text = render(synthetic_scan(synthetic, str(synthetic.old_glibc)))
    assert verdict_of(text, synthetic.ext_needs_238.name) == "no: needs 2.38 > stdenv 2.31"
    assert "run  glibc-doctor fix" not in text
    assert "no repatch helps" in text


def test_a_long_fix_command_is_never_broken_across_lines(synthetic: Synthetic) -> None:
    text = render(synthetic_scan(synthetic, str(synthetic.new_glibc)), width=60)
    command = (
        f"glibc-doctor fix {synthetic.app} --ext {synthetic.ext_needs_238} --glibc {synthetic.new_glibc}"
    )
    assert command in text


def test_a_clean_process_says_so_in_green_words(synthetic: Synthetic) -> None:
    result = scan(str(synthetic.app), ext=(str(synthetic.ext_clean),), use_cache=False)
    text = render(result)
    assert "✓ all 1 extensions load with glibc 2.31" in text
    assert "run  glibc-doctor fix" not in text


def test_a_plain_program_is_called_a_program_and_nothing_is_said_of_extensions(synthetic: Synthetic) -> None:
    text = render(scan(str(synthetic.app), use_cache=False))
    assert f"(generic, program {synthetic.app.name})" in text
    assert "interpreter" not in text.splitlines()[0]
    assert f"nothing: {synthetic.app.name} starts with the glibc it loads." in text
    assert "extension" not in text


def test_a_program_that_maps_no_libc_says_so_instead_of_a_glibc_it_loads(tmp_path: Path) -> None:
    program = compile_elf(
        tmp_path / "nolibc",
        "void _start(void) { for (;;) {} }\n",
        shared=False,
        nostdlib=True,
        extra=["-pie"],
    )
    text = render(scan(str(program), use_cache=False))
    assert re.search(
        r"^loads no libc\.so\.6  \(its loader \S+ld-linux-x86-64\.so\.2 is glibc \d+\.\d+\)$", text, re.M
    )
    assert "✓ no conflicts\n" in text
    assert "nothing: nolibc starts (it loads no libc.so.6)." in text
    assert "nolibc starts with 1 library:" in text


# --- display helpers -------------------------------------------------------------------------------------


def test_a_store_path_keeps_its_readable_name_and_loses_its_hash() -> None:
    path = "/nix/store/2pwd8jr874c3l8l95wqxjw0w0ac8cmrx-python3.9/bin/python3.9"
    assert short_path(path) == "…/store/2pwd…-python3.9/bin/python3.9"


def test_a_path_under_home_starts_with_a_tilde() -> None:
    assert short_path("/home/ana/app/.venv", home="/home/ana") == "~/app/.venv"
    assert short_path("/home/anabel/x", home="/home/ana") == "/home/anabel/x"


def test_paths_inside_a_sentence_are_shortened_too() -> None:
    text = "PT_INTERP of /x/store/32yyvh8jjmp39bj7blvx3chf1ipzfhjw-glibc-2.31/lib/ld.so is set"
    assert shorten_text(text, home="/root") == "PT_INTERP of …/store/32yy…-glibc-2.31/lib/ld.so is set"


@pytest.mark.parametrize(
    ("versions", "shown"),
    [
        (["GLIBC_2.34"], "GLIBC_2.34"),
        (["GLIBC_2.36", "GLIBC_2.32", "GLIBC_2.34"], "GLIBC_2.32..2.36"),
        (["GLIBC_2.9", "GLIBC_2.10"], "GLIBC_2.9..2.10"),
        (["GLIBCXX_3.4.30", "GLIBC_2.34"], "GLIBC_2.34, GLIBCXX_3.4.30"),
    ],
)
def test_a_version_range_reads_as_first_to_last(versions: list[str], shown: str) -> None:
    assert version_range(versions) == shown


CELLS = [
    ("ext_cxx", "—", "libstdc++.so.6 → GLIBC_2.32..2.36", "yes"),
    ("ext_pthread", "GLIBC_2.34 (pthread_create, pthread_join)", "—", "no: needs 2.38 > stdenv 2.36"),
]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_table_columns_fit_the_page(width: int) -> None:
    assert sum(column_widths(CELLS, width)) + 7 <= width


def test_on_a_100_column_page_only_the_needs_column_gives_up_width() -> None:
    widths = column_widths(CELLS, 100)
    assert widths[2:] == [len(CELLS[0][2]), len(CELLS[1][3])]
    assert widths[1] < len(CELLS[1][1])


def test_many_broken_extensions_are_all_in_the_table_and_summarised_elsewhere(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for index in range(10):
        shutil.copy(synthetic.ext_needs_238, plugins / f"plugin_{index}.so")
    result = scan(str(synthetic.app), ext=(str(plugins),), glibc=str(synthetic.old_glibc), use_cache=False)
    text = render(result)
    assert "✗ 10 of 10 extensions cannot load: " in text
    assert "and 4 more" in text
    assert all(f"plugin_{index}.so " in text for index in range(10))
    assert "… and 7 more that no repatch helps" in text
    assert "2 more that cannot load (the table above)" in text


# --- explain --------------------------------------------------------------------------------------------


def explained(count: int) -> str:
    """``count`` distinct loader errors (50 versions, one extension each), rendered as ``explain`` prints."""
    text = "\n".join(
        f"/nowhere/libc.so.6: version `GLIBC_2.{i % 50}' not found (required by /x/ext{i}.so)"
        for i in range(count)
    )
    out = StringIO()
    print_explanation(explain(text), None, Console(file=out, width=WIDTH, color_system=None))
    return out.getvalue()


def test_explain_draws_a_panel_for_each_of_a_few_findings() -> None:
    text = explained(3)
    assert text.count("╭") == 3
    assert "more loader message" not in text


def test_explain_of_20000_errors_draws_the_first_panels_and_counts_the_rest_by_version() -> None:
    with cpu_budget(5.0, "20000 findings"):  # a panel per finding took ~15 s and 24 MB
        text = explained(20_000)
    assert text.count("╭") == 5
    assert "19995 more loader message(s)" in text
    assert "  400 × missing-version GLIBC_2.5\n" in text  # GLIBC_2.0 … 2.4 lost one each to the panels


def test_explain_names_how_many_findings_the_groups_past_the_cap_hold() -> None:
    assert "  16795 in 42 other groups" in explained(20_000)


# --- refusals beyond versions: the lab python with objects the loader refuses or crashes on -----------


@pytest.fixture(scope="module")
def refusal_text(lab: Lab, refusal_objects: RefusalObjects) -> str:
    objects = (refusal_objects.relr_crash, refusal_objects.tls_big, refusal_objects.isa_v4)
    result = scan(
        str(lab.python), ext=tuple(str(path) for path in objects), env=lab.environ(), use_cache=False
    )
    return render(result)


def test_a_dt_relr_crash_has_a_row_that_says_so_and_the_repatch_fixes_it(refusal_text: str) -> None:
    row = row_of(refusal_text, "relr_crash")  # cells wrap: their lines interleave here
    assert "DT_RELR, loader < 2.36: crashes as" in row
    if GlibcVersion.parse(MACHINE_GLIBC) >= GlibcVersion(2, 36):
        assert " yes" in row


def test_a_static_tls_refusal_is_not_fixed_by_a_repatch_and_the_preload_is_advised(refusal_text: str) -> None:
    assert "static TLS: no room left for its block" in row_of(refusal_text, "tls_big")
    assert "no: static-tls, glibc" in row_of(refusal_text, "tls_big")
    assert "LD_PRELOAD=tls_big.so" in " ".join(refusal_text.split())


def test_the_load_tree_marks_the_crash(refusal_text: str) -> None:
    assert "relr_crash  ✗ dt-relr (crash)" in refusal_text
    assert "tls_big  ✗ static-tls" in refusal_text
