"""scan(): target -> graph -> conflicts -> one JSON document, with progress, cancellation and the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.core import scancache
from glibc_doctor.core.model import Conflict, GlibcInfo, Kind, Severity, Target
from glibc_doctor.core.scan import ScanProgress, ScanResult, scan, scan_steps
from glibc_doctor.core.scancache import ScanRequest

from tests.gcc import compile_elf
from tests.synthetic import Synthetic

HOUR_NS = 3600 * 10**9


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "XDG_CACHE"))}
    return {**clean, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def synthetic_scan(s: Synthetic, ext: Path, env: dict[str, str], **kwargs: object) -> ScanResult:
    return scan(str(s.app), ext=(str(ext),), env=env, use_cache=False, **kwargs)  # type: ignore[arg-type]


def test_a_strict_json_lists_the_edges_each_name_would_take_on_its_own(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path
) -> None:
    ext = compile_elf(
        tmp_path / "ext_runpath.so",
        "unsigned long strlen(const char *s);\nint f(const char *s) { return (int)strlen(s); }\n",
        libs=[synthetic.new_libc],
        runpath=[str(synthetic.new_glibc)],
        nostdlib=True,
    )
    document = synthetic_scan(synthetic, ext, env, strict=True).as_json()
    exact = {(e["from"], e["needed"]): (e["to"], e["via"]) for e in document["edges"]}  # type: ignore[attr-defined]
    strict = {(e["from"], e["needed"]): (e["to"], e["via"]) for e in document["strict_edges"]}  # type: ignore[attr-defined]
    assert exact[str(ext), "libc.so.6"] == (str(synthetic.old_libc), "already-loaded")
    assert strict[str(ext), "libc.so.6"] == (str(synthetic.new_libc), "runpath")
    assert str(synthetic.new_libc) in {o["path"] for o in document["strict_objects"]}  # type: ignore[attr-defined]


def test_a_json_without_strict_has_no_strict_edges(synthetic: Synthetic, env: dict[str, str]) -> None:
    document = synthetic_scan(synthetic, synthetic.ext_clean, env).as_json()
    assert (document["strict_edges"], document["strict_objects"]) == (None, None)


def test_scan_steps_yields_progress_in_order_then_the_result(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    events = list(scan_steps(str(synthetic.app), ext=(str(synthetic.ext_clean),), env=env, strict=True))
    progress = [e for e in events if isinstance(e, ScanProgress)]
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert isinstance(events[-1], ScanResult)
    assert all(isinstance(e, ScanProgress) for e in events[:-1])


def test_a_set_cancellation_event_stops_the_scan(synthetic: Synthetic, env: dict[str, str]) -> None:
    cancel = threading.Event()
    steps = scan_steps(str(synthetic.app), env=env, cancel=cancel)
    next(steps)
    cancel.set()
    assert not any(isinstance(event, ScanResult) for event in steps)


def test_the_result_has_every_missing_version_of_the_extension(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = synthetic_scan(synthetic, synthetic.ext_needs_238, env)
    missing = [(c.object, c.version) for c in result.conflicts if c.kind == Kind.MISSING_VERSION]
    assert missing == [
        (str(synthetic.ext_needs_238), "GLIBC_2.34"),
        (str(synthetic.ext_needs_238), "GLIBC_2.38"),
    ]
    assert result.exit_code == 1
    assert result.glibc.version == "2.31"


def test_a_clean_extension_gives_exit_code_0(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = synthetic_scan(synthetic, synthetic.ext_clean, env)
    assert [c for c in result.conflicts if c.severity == Severity.ERROR] == []
    assert result.exit_code == 0


def test_as_json_has_the_designed_keys_and_is_serialisable(synthetic: Synthetic, env: dict[str, str]) -> None:
    document = json.loads(json.dumps(synthetic_scan(synthetic, synthetic.ext_needs_238, env).as_json()))
    assert {"target", "interpreter", "glibc", "stdenv", "objects", "edges", "conflicts"} <= set(document)
    assert document["interpreter"] == str(synthetic.app)
    assert {"version", "libc", "loader"} <= set(document["glibc"])


def test_as_json_lists_every_node_and_edge_of_the_graph(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = synthetic_scan(synthetic, synthetic.ext_needs_238, env)
    document = result.as_json()
    assert {o["path"] for o in document["objects"]} == set(result.graph.nodes)  # type: ignore[union-attr,index]
    assert {(e["from"], e["to"]) for e in document["edges"]} == set(result.graph.edges)  # type: ignore[union-attr,index]
    for obj in document["objects"]:  # type: ignore[union-attr]
        assert {"path", "role", "soname", "needed", "rpath", "runpath", "requires", "defines"} <= set(obj)


def test_a_bad_glibc_dir_becomes_a_note_not_an_error(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path
) -> None:
    result = synthetic_scan(synthetic, synthetic.ext_clean, env, glibc=str(tmp_path / "no-glibc"))
    assert result.stdenv is None
    assert any(note.startswith("stdenv not found") for note in result.notes)


def test_strict_mode_builds_the_strict_graph(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = synthetic_scan(synthetic, synthetic.ext_clean, env, strict=True)
    assert result.strict_graph is not None
    assert synthetic_scan(synthetic, synthetic.ext_clean, env).strict_graph is None


# --- the result cache, on a real program built here ---------------------------------------------------


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A program with DT_RPATH ``first:lib`` needing libfoo.so.1 from ``lib`` (``first`` searched first)."""
    first, lib = tmp_path / "first", tmp_path / "lib"
    first.mkdir()
    compile_elf(lib / "libfoo.so.1", "int foo(void) { return 1; }\n", soname="libfoo.so.1")
    app = compile_elf(
        tmp_path / "bin" / "app",
        "int foo(void);\nint main(void) { return foo(); }\n",
        shared=False,
        libs=[lib / "libfoo.so.1"],
        rpath=[str(first), str(lib)],
    )
    for path in (lib / "libfoo.so.1", app, lib, first, app.parent):
        old = time.time_ns() - HOUR_NS
        os.utime(path, ns=(old, old))
    return app


def cached(app: Path, env: dict[str, str]) -> scancache.CacheHit | None:
    return scancache.lookup(ScanRequest(str(app)), env)


def test_a_scan_stores_an_entry_that_an_unchanged_environment_hits(
    program: Path, env: dict[str, str]
) -> None:
    result = scan(str(program), env=env)
    hit = cached(program, env)
    assert hit is not None
    assert json.loads(hit.text) == json.loads(json.dumps(result.as_json()))


def test_touching_a_loaded_library_invalidates_the_entry(program: Path, env: dict[str, str]) -> None:
    scan(str(program), env=env)
    os.utime(program.parent.parent / "lib" / "libfoo.so.1")
    assert cached(program, env) is None


def test_a_new_file_in_a_directory_searched_before_the_library_invalidates_the_entry(
    program: Path, env: dict[str, str]
) -> None:
    scan(str(program), env=env)
    (program.parent.parent / "first" / "libfoo.so.1").write_bytes(b"")
    assert cached(program, env) is None


def test_a_pid_scan_is_never_cached(env: dict[str, str]) -> None:
    result = scan("self", pid=os.getpid(), env=env)
    assert result.target.pid == os.getpid()
    assert not os.path.isdir(scancache.cache_dir(env)) or os.listdir(scancache.cache_dir(env)) == []


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def test_an_unchanged_venv_is_a_hit(venv: Path, env: dict[str, str]) -> None:
    scan(str(venv), env=env)
    assert cached(venv, env) is not None


def test_a_new_extension_in_the_venv_invalidates_the_entry(venv: Path, env: dict[str, str]) -> None:
    scan(str(venv), env=env)
    compile_elf(site_packages(venv) / "newext.cpython-311-x86_64-linux-gnu.so", "int f(void) { return 0; }\n")
    assert cached(venv, env) is None


def test_retargeting_the_venvs_python_invalidates_the_entry(venv: Path, env: dict[str, str]) -> None:
    scan(str(venv), env=env)
    link = venv / "bin" / "python-new"
    link.symlink_to(sys.executable)
    link.rename(venv / "bin" / "python")
    assert cached(venv, env) is None


def latent_result(strict: bool) -> ScanResult:
    latent = Conflict(
        kind=Kind.LATENT, object="/x/ext.so", message="m", version="GLIBC_2.34", severity=Severity.WARNING
    )
    return ScanResult(
        target=Target(kind="generic", spec="/x/app", executable="/x/app"),
        graph=nx.DiGraph(),
        strict_graph=nx.DiGraph() if strict else None,
        conflicts=(latent,),
        glibc=GlibcInfo(None, None, None),
        stdenv=None,
    )


def test_a_strict_scan_exits_1_on_latent_conflicts() -> None:
    assert latent_result(strict=True).exit_code == 1


def test_warnings_alone_exit_0_without_strict() -> None:
    assert latent_result(strict=False).exit_code == 0


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("elf32", Kind.WRONG_ELF, "wrong ELF class: ELFCLASS32"),
        ("huge_phnum", Kind.UNREADABLE, "cannot read file data"),  # its program headers run past the end
        ("truncated_header", Kind.UNREADABLE, "file too short"),
    ],
)
def test_an_extension_file_the_loader_refuses_is_reported_in_its_words(
    synthetic: Synthetic, env: dict[str, str], name: str, kind: Kind, reason: str
) -> None:
    path = str(getattr(synthetic, name))
    result = synthetic_scan(synthetic, getattr(synthetic, name), env)
    (conflict,) = [c for c in result.errors if c.object == path]
    assert (conflict.kind, conflict.message) == (kind, f"{path}: {reason}")
