"""What many simulations of one snapshot of the file system share: ELF facts, listings, searches.

An audit simulates hundreds of processes whose programs load the same few hundred libraries. Each
``Loader`` already remembers its directory listings and its searches; given one ``SharedLookups``,
all of them read each file once, list each directory once, stat each path once and search each
name once per search path and ld.so configuration (a search's answer depends on the name, the search
path, the requester's DF_1_NODEFLIB and the files, never on what the process has loaded: ld.so's
already-loaded and same-inode reuse is applied per process afterwards).

The price is the snapshot: nothing here notices a file that changes while it is alive, so one
``SharedLookups`` serves one audit (or one batch of scans) and is then dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.loader import LoaderConfig, loader_config
from glibc_doctor.core.model import ElfFacts, Resolution


@dataclass(slots=True)
class SharedLookups:
    """Memo tables for one snapshot; pass it to ``simulate(..., shared=...)``."""

    cwd: str = field(default_factory=os.getcwd)
    listings: dict[str, frozenset[str] | None] = field(default_factory=dict)
    _facts: dict[str, ElfFacts] = field(default_factory=dict)
    _inodes: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    _searches: dict[LoaderConfig, dict[object, Resolution]] = field(default_factory=dict)
    _configs: dict[tuple[str, int, int], LoaderConfig] = field(default_factory=dict)
    _env: dict[str, str] | None = None

    def read_elf(self, path: str) -> ElfFacts:
        """``core.elf.read_elf`` of ``path``, read (and stat()ed) once for the snapshot."""
        facts = self._facts.get(path)
        if facts is None:
            facts = self._facts[path] = read_elf(path)
        return facts if facts.path == path else replace(facts, path=path)

    def inode(self, path: str) -> tuple[int, int] | None:
        """``(st_dev, st_ino)`` of what ``path`` leads to, or None when it leads nowhere."""
        if path in self._inodes:
            return self._inodes[path]
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            found = None
        else:
            found = (info.st_dev, info.st_ino)
        self._inodes[path] = found
        return found

    def searches(self, config: LoaderConfig) -> dict[object, Resolution]:
        """The search answers of every ``Loader`` with this configuration (same ld.so, same env)."""
        return self._searches.setdefault(config, {})

    def loader_config(self, program: str, env: Mapping[str, str]) -> LoaderConfig:
        """``core.loader.loader_config`` once per PT_INTERP loader (and ELF kind) in one environment.

        Programs without a PT_INTERP (or whose PT_INTERP is missing) keep their own entry: their
        configuration's notes name the program. Another environment than the first one asked with
        is answered without the memo.
        """
        if self._env is None:
            self._env = dict(env)
        elif env != self._env:
            return loader_config(program, env)
        facts = self.read_elf(program)
        interpreter = facts.interpreter
        loader = interpreter if interpreter and self.inode(interpreter) is not None else program
        key = (loader, facts.elf_class, facts.machine)
        config = self._configs.get(key)
        if config is None:
            config = self._configs[key] = loader_config(program, env)
        return config
