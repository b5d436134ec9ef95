"""SharedLookups: many simulations share reads, listings and searches, and get the very same graphs."""

from __future__ import annotations

import os

import networkx as nx
import pytest
from glibc_doctor.core.lookups import SharedLookups
from glibc_doctor.core.model import ElfFacts, Extension, Target
from glibc_doctor.core.process import simulate
from glibc_doctor.core.targets import resolve_target

from tests.synthetic import Synthetic


def same_graph(shared: nx.DiGraph[str], alone: nx.DiGraph[str]) -> None:
    assert dict(shared.nodes(data=True)) == dict(alone.nodes(data=True))
    assert {(a, b): d for a, b, d in shared.edges(data=True)} == {
        (a, b): d for a, b, d in alone.edges(data=True)
    }
    assert shared.graph == alone.graph


def synthetic_targets(synthetic: Synthetic) -> list[Target]:
    extensions = tuple(
        Extension(str(path), path.name) for path in sorted(synthetic.ext.iterdir()) if path.suffix == ".so"
    )
    apps = (
        synthetic.app, synthetic.app_runpath, synthetic.app_origin, synthetic.app_origin_runpath,
        synthetic.app_both, synthetic.app_nodeflib, synthetic.app_norpath,
    )  # fmt: skip
    return [Target("generic", str(app), str(app), extensions) for app in apps]


@pytest.mark.parametrize("strict", [False, True], ids=["exact", "strict"])
def test_synthetic_programs_simulate_the_same_with_shared_lookups(synthetic: Synthetic, strict: bool) -> None:
    shared = SharedLookups()
    targets = synthetic_targets(synthetic)
    with_shared = [simulate(target, strict=strict, shared=shared) for target in targets]
    for target, graph in zip(targets, with_shared, strict=True):
        same_graph(graph, simulate(target, strict=strict))


def test_system_programs_simulate_the_same_with_shared_lookups() -> None:
    programs = sorted(
        entry.path for entry in os.scandir("/usr/bin") if entry.is_file() and os.access(entry.path, os.X_OK)
    )
    targets = []
    for path in programs[::20]:
        try:
            targets.append(resolve_target(path))
        except Exception:  # scripts and static programs are no targets
            continue
    assert len(targets) > 10
    shared = SharedLookups()
    for strict in (False, True):
        for target in targets:
            same_graph(simulate(target, strict=strict, shared=shared), simulate(target, strict=strict))


def test_each_file_is_read_once_and_each_directory_listed_once(
    synthetic: Synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glibc_doctor.core import lookups

    reads: list[str] = []
    listings: list[str] = []
    real_read, real_listdir = lookups.read_elf, os.listdir

    def counted_read(path: str) -> ElfFacts:
        reads.append(path)
        return real_read(path)

    def counted_listdir(path: str) -> list[str]:
        listings.append(path)
        return real_listdir(path)

    monkeypatch.setattr(lookups, "read_elf", counted_read)
    monkeypatch.setattr(os, "listdir", counted_listdir)
    shared = SharedLookups()
    for target in synthetic_targets(synthetic) * 2:  # every program twice, both modes
        simulate(target, shared=shared)
        simulate(target, strict=True, shared=shared)
    assert reads
    assert len(reads) == len(set(reads))
    assert listings
    assert len(listings) == len(set(listings))


def test_another_environment_is_not_answered_from_the_memo(synthetic: Synthetic) -> None:
    shared = SharedLookups()
    app = str(synthetic.app_norpath)
    first = shared.loader_config(app, {})
    other = shared.loader_config(app, {"LD_LIBRARY_PATH": str(synthetic.new_glibc)})
    assert first.ld_library_path == ()
    assert other.ld_library_path == (str(synthetic.new_glibc),)
    assert shared.loader_config(app, {}) is first
