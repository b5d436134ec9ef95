"""Time core/elf.py's read_elf against pyelftools reading the same fields.

    .venv/bin/python benchmarks/bench_elf.py [DIR ...] [--rounds N] [--io]

Walks each DIR (default: this venv and /usr/lib/x86_64-linux-gnu) for shared objects by name, then
times: read_elf cold (cache cleared before each round, OS page cache warm), read_elf from its cache,
and pyelftools extracting the same facts (header, PT_INTERP, dynamic tags, build-id, version tables).
``--io`` also compares reading small files whole with os.read against mmap for every file, the choice
behind ``READ_WHOLE_LIMIT``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.segments import InterpSegment, NoteSegment
from glibc_doctor.core import elf

DEFAULT_DIRS = (sys.prefix, "/usr/lib/x86_64-linux-gnu")


def library_files(roots: Iterable[str]) -> list[str]:
    """Regular files named like libraries under ``roots``, each real file once."""
    seen: set[str] = set()
    files: list[str] = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if not elf.is_library_name(name) or os.path.islink(path) or not os.path.isfile(path):
                    continue
                real = os.path.realpath(path)
                if real not in seen:
                    seen.add(real)
                    files.append(path)
    return sorted(files)


def pyelftools_facts(path: str) -> dict[str, Any]:
    """The fields of ElfFacts through pyelftools (what read_elf replaces on the hot path)."""
    facts: dict[str, Any] = {"needed": [], "requires": [], "defines": []}
    try:
        with open(path, "rb") as handle:
            elf_file = ELFFile(handle)
            facts["header"] = (elf_file.elfclass, elf_file.little_endian, elf_file.header["e_machine"])
            for segment in elf_file.iter_segments():
                if isinstance(segment, InterpSegment):
                    facts["interpreter"] = segment.get_interp_name()
                elif isinstance(segment, NoteSegment):
                    for note in segment.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            facts["build_id"] = note["n_desc"]
                elif isinstance(segment, DynamicSegment):
                    for tag in segment.iter_tags():
                        facts.setdefault(tag.entry.d_tag, tag.entry.d_val)
            for section in elf_file.iter_sections():
                if isinstance(section, GNUVerNeedSection):
                    for verneed, auxes in section.iter_versions():
                        facts["requires"] += [(verneed.name, aux.name) for aux in auxes]
                elif isinstance(section, GNUVerDefSection):
                    for _, auxes in section.iter_versions():
                        facts["defines"].append(next(iter(auxes)).name)
    except Exception as error:  # noqa: BLE001 - a benchmark counts failures, it does not stop
        facts["error"] = str(error)
    return facts


def best_of(
    rounds: int, files: list[str], read: Callable[[str], object], before: Callable[[], None]
) -> float:
    best = float("inf")
    for _ in range(rounds):
        before()
        started = time.perf_counter()
        for path in files:
            read(path)
        best = min(best, time.perf_counter() - started)
    return best


def report(label: str, seconds: float, count: int) -> None:
    per_file = seconds / count * 1e6 if count else 0.0
    rate = count / seconds if seconds else float("inf")
    print(f"{label:<34} {seconds * 1e3:9.1f} ms {per_file:8.1f} us/file {rate:10.0f} files/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", default=list(DEFAULT_DIRS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--io", action="store_true", help="compare os.read and mmap for every file")
    options = parser.parse_args(argv)
    files = library_files(d for d in options.dirs if Path(d).is_dir())
    total = sum(os.path.getsize(path) for path in files)
    print(f"{len(files)} files, {total / 1e6:.1f} MB, under {', '.join(options.dirs)}")
    if not files:
        return 1
    facts = [elf.read_elf(path) for path in files]
    print(f"  {sum(f.ok for f in facts)} readable ELF, {sum(not f.ok for f in facts)} with a problem")

    cold = best_of(options.rounds, files, elf.read_elf, elf.clear_cache)
    report("read_elf, cold (cache cleared)", cold, len(files))
    warm = best_of(options.rounds, files, elf.read_elf, lambda: None)
    report("read_elf, cached", warm, len(files))
    if options.io:
        default = elf.READ_WHOLE_LIMIT
        for label, limit in (
            ("read_elf, mmap for every file", 0),
            ("read_elf, os.read for every file", 1 << 62),
        ):
            elf.READ_WHOLE_LIMIT = limit
            report(label, best_of(options.rounds, files, elf.read_elf, elf.clear_cache), len(files))
        elf.READ_WHOLE_LIMIT = default
    slow = best_of(1, files, pyelftools_facts, lambda: None)
    report("pyelftools, same fields", slow, len(files))
    print(f"read_elf cold is {slow / cold:.0f}x faster than pyelftools")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
