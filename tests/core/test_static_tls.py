"""core/static_tls.py: glibc's static TLS arithmetic (the real loaders check it in test_refusals_lab.py)."""

from __future__ import annotations

import pytest
from glibc_doctor.core.static_tls import (
    LEGACY_SURPLUS,
    TlsBlock,
    optional_for,
    parse_tunables,
    place,
    place_all,
    rseq_area,
    startup_area,
    surplus_for,
)
from glibc_doctor.core.versions import GlibcVersion

V2_31, V2_36, V2_41 = GlibcVersion(2, 31), GlibcVersion(2, 36), GlibcVersion(2, 41)
LIBC = TlsBlock("libc.so.6", 144, 8, 0)  # glibc 2.36's libc.so.6 PT_TLS


@pytest.mark.parametrize("release", [V2_31, V2_36, V2_41, None])
def test_the_default_surplus_is_1664_bytes_in_every_release(release: GlibcVersion | None) -> None:
    assert surplus_for(release) == LEGACY_SURPLUS == 1664


def test_the_optional_static_tls_tunable_grows_the_surplus_from_2_32() -> None:
    tunables = "glibc.malloc.check=0:glibc.rtld.optional_static_tls=1024"
    assert surplus_for(V2_36, tunables) == 1664 + 512
    assert surplus_for(V2_31, tunables) == 1664  # no tunables before 2.32


def test_more_namespaces_grow_the_surplus_by_288_bytes_each() -> None:
    assert surplus_for(V2_36, "glibc.rtld.nns=5") == 1664 + 288


def test_a_process_with_libc_s_block_has_1712_bytes_left_before_2_41() -> None:
    area = startup_area([LIBC], V2_36, 1664)
    assert (area.used, area.end, area.align, area.free) == (144, 1856, 64, 1712)


def test_glibc_2_41_puts_the_rseq_area_in_the_static_block_too() -> None:
    area = startup_area([LIBC], V2_41, 1664, extra=(32, 32))
    assert (area.used, area.free) == (192, 1664)


def test_the_rseq_area_is_at_least_32_bytes_aligned_to_32() -> None:
    size, align = rseq_area()
    assert size >= 32
    assert align >= 32
    assert size % align == 0


def test_a_block_that_fits_takes_its_room_and_the_next_may_not_fit() -> None:
    area = startup_area([LIBC], V2_36, 1664)
    first, second = TlsBlock("a.so", 1000, 16, 0), TlsBlock("b.so", 1000, 16, 0)
    placements = place_all(area, [first, second])
    assert [p.fits for p in placements] == [True, False]
    assert placements[1].free == 1712 - 1008  # the first took its size rounded to its alignment


def test_a_block_aligned_above_the_static_area_never_fits() -> None:
    area = startup_area([LIBC], V2_36, 1664)
    _, placement = place(area, TlsBlock("aligned.so", 64, 128, 0))
    assert (placement.fits, placement.too_aligned) == (False, True)


def test_alignment_gaps_between_start_up_blocks_are_reused() -> None:
    """A small block fits into the padding a larger alignment left (_dl_determine_tlsoffset)."""
    blocks = [TlsBlock("a", 8, 8, 0), TlsBlock("b", 64, 64, 0), TlsBlock("c", 16, 8, 0)]
    assert startup_area(blocks, V2_36, 1664).used == 128


def test_the_tunable_value_covers_the_shortfall_in_64_byte_steps() -> None:
    assert optional_for(1) == 512 + 64
    assert optional_for(2400, parse_tunables("glibc.rtld.optional_static_tls=1000")) == 1000 + 2432
