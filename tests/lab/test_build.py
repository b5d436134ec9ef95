"""The real-glibc lab reproduces the conflict for real: these tests run the lab's interpreters.

The ``lab`` fixture builds (or reuses) the lab once per session; every assertion here is about what the
real ld.so did when the lab's python3.9 and ruby2.7 (glibc 2.31) loaded extensions that the machine's gcc
built against a newer glibc.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from glibc_doctor.core.errors import LabError
from glibc_doctor.core.scan import ScanResult, scan
from glibc_doctor.lab.build import (
    LAB_RECIPE,
    LOADER_NAME,
    THREAD_EXIT_PROBE,
    Lab,
    LabProgress,
    build_lab,
    default_cache_dir,
    ensure_lab,
    mirror_uri,
)

from tests.budget import cpu_budget
from tests.realimport import assert_scan_is_the_real_import

lab_test = pytest.mark.lab
NOT_FOUND = re.compile(
    r"(?P<provider>\S+): version `(?P<version>[^']+)' not found \(required by (?P<object>[^)]+)\)"
)


def run_python(lab: Lab, code: str, python: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(python or lab.venv_python), "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, env=lab.environ(), timeout=60, check=False)


def run_ruby(lab: Lab, code: str) -> subprocess.CompletedProcess[str]:
    argv = [str(lab.ruby), "-e", code]
    return subprocess.run(argv, capture_output=True, text=True, env=lab.environ(), timeout=60, check=False)


def loader_error(stderr: str) -> dict[str, str]:
    match = NOT_FOUND.search(stderr)
    assert match is not None, stderr
    return match.groupdict()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def dynamic_tags(path: Path) -> tuple[str | None, dict[str, str]]:
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        interp = next(
            (seg.get_interp_name() for seg in elf.iter_segments() if seg["p_type"] == "PT_INTERP"), None
        )
        tags: dict[str, str] = {}
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag in ("DT_RPATH", "DT_RUNPATH"):
                        tags[tag.entry.d_tag] = tag.runpath if tag.entry.d_tag == "DT_RUNPATH" else tag.rpath
        return interp, tags


# --- the reproduction ------------------------------------------------------------------------------


@lab_test
def test_importing_ext_pthread_fails_because_glibc_2_31_lacks_glibc_2_34(lab: Lab) -> None:
    result = run_python(lab, "import ext_pthread")
    error = loader_error(result.stderr)
    assert result.returncode == 1
    assert "ImportError" in result.stderr
    assert error == {
        "provider": str(lab.glibc_old_lib / "libc.so.6"),
        "version": "GLIBC_2.34",
        "object": str(lab.extensions["ext_pthread"]),
    }


@lab_test
def test_importing_ext_strlcpy_fails_on_glibc_2_38_from_the_trixie_link(lab: Lab) -> None:
    result = run_python(lab, "import ext_strlcpy")
    error = loader_error(result.stderr)
    assert (error["version"], error["object"]) == ("GLIBC_2.38", str(lab.extensions["ext_strlcpy"]))
    assert error["provider"] == str(lab.glibc_old_lib / "libc.so.6")


@lab_test
def test_importing_ext_cxx_fails_in_the_machines_libstdcxx_not_in_the_extension(lab: Lab) -> None:
    result = run_python(lab, "import ext_cxx")
    error = loader_error(result.stderr)
    assert Path(error["object"]).name == "libstdc++.so.6"
    assert not error["object"].startswith(str(lab.root))
    assert re.fullmatch(r"GLIBC_2\.3[2-9]", error["version"])
    assert error["provider"] == str(lab.glibc_old_lib / "libc.so.6")


@lab_test
def test_ext_clean_imports_and_runs_in_the_lab_python(lab: Lab) -> None:
    result = run_python(lab, "import ext_clean; print(ext_clean.length('glibc'))")
    assert (result.returncode, result.stdout, result.stderr) == (0, "5\n", "")


@lab_test
def test_requiring_rbext_fails_in_the_lab_ruby_with_glibc_2_34(lab: Lab) -> None:
    result = run_ruby(lab, 'require "rbext"')
    error = loader_error(result.stderr)
    assert "LoadError" in result.stderr
    assert error == {
        "provider": str(lab.glibc_old_lib / "libc.so.6"),
        "version": "GLIBC_2.34",
        "object": str(lab.ruby_ext),
    }


@lab_test
def test_each_failing_extension_loads_once_glibc_2_41_is_preloaded_by_its_own_loader(lab: Lab) -> None:
    # The same files, run by trixie's ld.so with its libc first: the extensions were not broken, the
    # interpreter's glibc was too old. (ext_cxx needs the machine's libstdc++, glibc 2.36 <= 2.41.)
    code = (
        "import ext_pthread, ext_strlcpy, ext_cxx;"
        "print(ext_pthread.run(), ext_strlcpy.copy('overflowing'), ext_cxx.greet('lab'))"
    )
    argv = [str(lab.glibc_new_lib / LOADER_NAME), "--library-path", f"{lab.glibc_new_lib}:{lab.deps_lib}",
            str(lab.venv_python), "-c", code]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=lab.environ(), timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "42 overflo hello, lab\n"), result.stderr


# --- glibc-doctor's prediction against the real loader -----------------------------------------------

# Load every extension of the target, in the target's order, in one real process (as exact mode
# simulates it), and report each failure and the ELF files mapped at the end.
PYTHON_LOADER = r"""
import importlib.util, json, sys
failures = {}
for name, path in json.loads(sys.argv[1]):
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except ImportError as error:
        failures[path] = str(error)
maps = sorted({line.split()[-1] for line in open("/proc/self/maps") if line.split()[-1].startswith("/")})
print(json.dumps({"failures": failures, "maps": maps}))
"""
RUBY_LOADER = r"""
require "json"
failures = {}
JSON.parse(ARGV[0]).each do |path|
  begin
    require path
  rescue LoadError => error
    failures[path] = error.message
  end
end
maps = File.readlines("/proc/self/maps").map { |line| line.split[-1] }.select { |p| p.to_s.start_with?("/") }
puts JSON.generate({"failures" => failures, "maps" => maps.uniq.sort})
"""


@dataclass(frozen=True)
class Reality:
    """What the real process did: extension path -> ld.so's message, and the ELF files it mapped."""

    failures: dict[str, str]
    mapped: frozenset[str]  # real paths


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def load_for_real(lab: Lab, result: ScanResult) -> Reality:
    if result.target.kind == "ruby":
        argv = [str(lab.ruby), "-e", RUBY_LOADER, json.dumps([ext.path for ext in result.target.extensions])]
    else:
        pairs = [(ext.name.rsplit(".", 1)[-1], ext.path) for ext in result.target.extensions]
        argv = [str(lab.venv_python), "-c", PYTHON_LOADER, json.dumps(pairs)]
    run = subprocess.run(argv, capture_output=True, text=True, env=lab.environ(), timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    mapped = frozenset(os.path.realpath(path) for path in data["maps"] if is_elf(path))
    return Reality(data["failures"], mapped)


def predicted_failures(result: ScanResult) -> dict[str, set[tuple[str | None, str | None, str]]]:
    """Extension path -> the (provider, version, object) of every error on its chain."""
    predicted: dict[str, set[tuple[str | None, str | None, str]]] = {}
    for ext in result.target.extensions:
        errors = {(c.provider, c.version, c.object) for c in result.errors if ext.path in c.chain}
        if errors:
            predicted[ext.path] = errors
    return predicted


def predicted_mapped(result: ScanResult) -> frozenset[str]:
    """The graph's objects reachable from the interpreter once the failing extensions are left out."""
    graph = result.graph
    kept = graph.subgraph(set(graph.nodes) - set(predicted_failures(result)))
    root = graph.graph["root"]
    reached = nx.descendants(kept, root) | {root}
    return frozenset(os.path.realpath(node) for node in reached if not node.startswith("not-found:"))


@pytest.fixture(scope="module")
def venv_scan(lab: Lab) -> ScanResult:
    return scan(str(lab.venv), env=lab.environ(), use_cache=False)


@pytest.fixture(scope="module")
def ruby_scan(lab: Lab) -> ScanResult:
    return scan(str(lab.ruby), env=lab.environ(), use_cache=False)  # finds rbext in the vendor archdir


@pytest.fixture(scope="module", params=["python", "ruby"])
def scanned(request: pytest.FixtureRequest, lab: Lab) -> tuple[ScanResult, Reality]:
    result: ScanResult = request.getfixturevalue(f"{'venv' if request.param == 'python' else 'ruby'}_scan")
    return result, load_for_real(lab, result)


@lab_test
def test_the_extensions_the_scan_fails_are_exactly_those_the_real_loader_refuses(
    scanned: tuple[ScanResult, Reality],
) -> None:
    result, reality = scanned
    assert set(predicted_failures(result)) == set(reality.failures)
    assert reality.failures  # the lab exists to fail somewhere


@lab_test
def test_each_real_failure_names_a_version_object_and_libc_the_scan_predicted(
    scanned: tuple[ScanResult, Reality],
) -> None:
    result, reality = scanned
    predicted = predicted_failures(result)
    for path, message in reality.failures.items():
        error = loader_error(message)
        assert (error["provider"], error["version"], error["object"]) in predicted[path], message


@lab_test
def test_the_files_the_scan_predicts_are_the_files_the_real_process_maps(
    scanned: tuple[ScanResult, Reality],
) -> None:
    result, reality = scanned
    assert predicted_mapped(result) == reality.mapped


@lab_test
def test_the_scan_verdict_of_every_extension_is_its_real_import_by_name(
    scanned: tuple[ScanResult, Reality], lab: Lab, tmp_path: Path
) -> None:
    result, _ = scanned
    interpreter = lab.ruby if result.target.kind == "ruby" else lab.venv_python
    real = assert_scan_is_the_real_import(result, interpreter, lab.environ(), tmp_path / "cwd")
    assert [path for path, seen in real.items() if not seen.mapped]  # the lab exists to fail somewhere


@lab_test
def test_the_scan_reports_the_glibc_the_real_interpreter_runs_on(
    scanned: tuple[ScanResult, Reality], lab: Lab
) -> None:
    result, reality = scanned
    assert result.glibc.version == "2.31"
    assert result.glibc.libc is not None
    assert os.path.realpath(result.glibc.libc) in reality.mapped
    assert Path(result.glibc.libc).parent == lab.glibc_old_lib


@lab_test
def test_the_scan_finds_every_missing_version_not_only_the_first_that_ld_so_names(
    venv_scan: ScanResult,
) -> None:
    # ld.so stops at one version per failure; libstdc++.so.6 lacks several from glibc 2.31.
    libstdcxx = {c.version for c in venv_scan.errors if Path(c.object).name == "libstdc++.so.6"}
    assert len(libstdcxx) > 1
    assert all(re.fullmatch(r"GLIBC_2\.3[2-9]", version or "") for version in libstdcxx)


# --- the interpreters are real and hard-wired ------------------------------------------------------


@lab_test
def test_the_lab_python_runs_on_glibc_2_31(lab: Lab) -> None:
    result = run_python(lab, "import os; print(os.confstr('CS_GNU_LIBC_VERSION'))", python=lab.python)
    assert result.stdout == "glibc 2.31\n", result.stderr


@lab_test
def test_the_lab_ruby_runs_on_glibc_2_31(lab: Lab) -> None:
    result = run_ruby(lab, 'require "etc"; puts Etc.confstr(Etc::CS_GNU_LIBC_VERSION)')
    assert result.stdout == "glibc 2.31\n", result.stderr


@lab_test
def test_the_lab_python_has_a_working_stdlib_under_its_store_prefix(lab: Lab) -> None:
    code = "import ssl, sqlite3, ctypes, json, sys; print(sys.prefix); print(ssl.OPENSSL_VERSION)"
    result = run_python(lab, code, python=lab.python)
    prefix, openssl = result.stdout.splitlines()
    assert prefix == str(lab.python_store)
    assert openssl.startswith("OpenSSL 1.1.1")


@lab_test
def test_a_thread_exit_in_the_lab_python_unwinds_through_the_stores_libgcc_s(lab: Lab) -> None:
    result = run_python(lab, THREAD_EXIT_PROBE + "print(libgcc_s)", python=lab.python)
    assert result.stdout == f"{[str(lab.glibc_old_lib / 'libgcc_s.so.1')]}\n", result.stderr


@lab_test
def test_the_lab_ruby_requires_json_from_its_store(lab: Lab) -> None:
    result = run_ruby(
        lab, 'require "json"; puts JSON.generate([1]); puts $LOADED_FEATURES.grep(/parser/).first'
    )
    generated, parser = result.stdout.splitlines()
    assert generated == "[1]"
    assert parser.startswith(str(lab.ruby_store))


@lab_test
def test_the_venv_is_based_on_the_store_python(lab: Lab) -> None:
    result = run_python(
        lab, "import sys, site; print(sys.prefix); print(sys.base_prefix); print(site.getsitepackages()[0])"
    )
    assert result.stdout.splitlines() == [str(lab.venv), str(lab.python_store), str(lab.site_packages)]
    assert lab.venv_python.resolve() == lab.python


@pytest.mark.parametrize("which", ["python", "ruby"])
@lab_test
def test_the_interpreters_are_hard_wired_to_glibc_2_31_with_a_runpath(lab: Lab, which: str) -> None:
    interp, tags = dynamic_tags(getattr(lab, which))
    assert interp == str(lab.glibc_old_lib / LOADER_NAME)
    assert "DT_RPATH" not in tags
    assert str(lab.glibc_old_lib) in tags["DT_RUNPATH"].split(":")


@lab_test
def test_the_glibc_store_entries_hold_a_real_loader_and_libc(lab: Lab) -> None:
    for lib, release in ((lab.glibc_old_lib, "2.31"), (lab.glibc_new_lib, "2.41")):
        assert not (lib / LOADER_NAME).is_symlink()
        assert f"-glibc-{release}" in lib.parent.name
        assert f"release version {release}".encode() in (lib / "libc.so.6").read_bytes()


@lab_test
def test_the_extensions_are_importable_names_in_the_venv_site_packages(lab: Lab) -> None:
    assert sorted(lab.extensions) == ["ext_clean", "ext_cxx", "ext_pthread", "ext_strlcpy"]
    for name, path in lab.extensions.items():
        assert path.parent == lab.site_packages
        assert path.name.startswith(f"{name}.cpython-39-")
    assert lab.ruby_ext.parent == lab.ruby_archdir


# --- the cache ---------------------------------------------------------------------------------------


@lab_test
def test_a_built_lab_is_reloaded_from_its_cache_in_well_under_a_second(lab: Lab) -> None:
    with cpu_budget(1.0, "reloading the lab"):
        again = Lab.load(lab.cache_dir)
    assert again == lab


@lab_test
def test_build_lab_on_a_valid_cache_yields_only_the_finished_lab(lab: Lab) -> None:
    events = list(build_lab(lab.cache_dir))
    assert events == [LabProgress("lab ready", 1, 1, lab)]


@lab_test
def test_the_lab_record_survives_its_json_file(lab: Lab) -> None:
    assert Lab.from_json(json.loads(json.dumps(lab.as_json()))) == lab
    assert (lab.cache_dir / "lab" / "lab.json").is_file()


def copy_downloads(lab: Lab, cache: Path) -> None:
    """A fresh cache that already has the lab's .deb files: a rebuild then needs no network."""
    for deb in (lab.cache_dir / "debs").rglob("*.deb"):
        target = cache / deb.relative_to(lab.cache_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(deb, target)


@lab_test
def test_concurrent_builders_build_once_and_agree_on_the_lab(lab: Lab, tmp_path: Path) -> None:
    copy_downloads(lab, tmp_path)
    code = (
        "import sys; from pathlib import Path; from glibc_doctor.lab.build import ensure_lab;"
        "print(ensure_lab(Path(sys.argv[1])).root)"
    )
    builders = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    roots = {builder.communicate(timeout=240)[0].strip() for builder in builders}
    assert len(roots) == 1
    assert [path.name for path in (tmp_path / "builds").iterdir()] == [Path(roots.pop()).name]
    rebuilt = Lab.load(tmp_path)
    assert rebuilt is not None
    result = run_python(rebuilt, "import ext_pthread")
    assert loader_error(result.stderr)["object"] == str(rebuilt.extensions["ext_pthread"])


@lab_test
def test_a_changed_recipe_makes_the_cached_lab_invalid(lab: Lab, tmp_path: Path) -> None:
    data = lab.as_json()
    write(tmp_path / "lab" / "lab.json", json.dumps(data))
    assert Lab.load(tmp_path) == lab  # the record alone is a valid lab: its files exist
    write(tmp_path / "lab" / "lab.json", json.dumps({**data, "recipe": LAB_RECIPE + "-older"}))
    assert Lab.load(tmp_path) is None


def test_a_corrupt_lab_record_is_no_lab(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.json").write_text('{"root": 1')
    assert Lab.load(tmp_path) is None


# --- failures are one clear line ----------------------------------------------------------------------


def test_a_machine_without_apt_get_is_a_lab_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LabError, match=r"^the lab needs apt-get, which is not on PATH"):
        ensure_lab(tmp_path / "cache")
    assert list((tmp_path / "cache" / "builds").iterdir()) == []


def test_an_unreachable_mirror_is_a_lab_error_naming_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLIBC_DOCTOR_MIRROR", "http://127.0.0.1:9/debian")
    with pytest.raises(
        LabError,
        match=r"^apt-get could not fetch the bullseye package index from http://127\.0\.0\.1:9/debian: ",
    ):
        ensure_lab(tmp_path)
    assert list((tmp_path / "builds").iterdir()) == []


def test_a_cancelled_build_stops_without_a_lab_and_leaves_no_build(tmp_path: Path) -> None:
    cancel = threading.Event()
    events = []
    for event in build_lab(tmp_path, cancel):
        events.append(event)
        cancel.set()
    assert [event.step for event in events] == ["check tools"]
    assert events[-1].lab is None
    assert list((tmp_path / "builds").iterdir()) == []
    with pytest.raises(LabError, match="cancelled"):
        ensure_lab(tmp_path, cancel)


def test_abandoning_a_build_midway_removes_its_directory(tmp_path: Path) -> None:
    events = build_lab(tmp_path)
    assert next(events).step == "check tools"
    events.close()  # what a consumer's exception (Ctrl-C in the demo) does to the generator
    assert list((tmp_path / "builds").iterdir()) == []


# --- where things are --------------------------------------------------------------------------------


def test_the_cache_dir_is_glibc_doctor_lab_first() -> None:
    env = {"GLIBC_DOCTOR_LAB": "/srv/lab", "XDG_CACHE_HOME": "/xdg"}
    assert default_cache_dir(env) == Path("/srv/lab")


def test_the_cache_dir_falls_back_to_xdg_cache_home() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/glibc-doctor/lab")


def test_the_cache_dir_defaults_to_dot_cache_in_home() -> None:
    assert default_cache_dir({}) == Path.home() / ".cache" / "glibc-doctor" / "lab"


@pytest.fixture
def no_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_DOCTOR_MIRROR", raising=False)


@pytest.mark.usefixtures("no_mirror_override")
def test_the_mirror_comes_from_deb822_sources_skipping_security(tmp_path: Path) -> None:
    write(
        tmp_path / "etc/apt/sources.list.d/a.sources",
        "Types: deb\nURIs: http://security.debian.org/debian-security\n",
    )
    write(
        tmp_path / "etc/apt/sources.list.d/b.sources",
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n",
    )
    assert mirror_uri(tmp_path) == "http://mirror.example/debian"


@pytest.mark.usefixtures("no_mirror_override")
def test_the_mirror_comes_from_a_one_line_sources_list(tmp_path: Path) -> None:
    write(
        tmp_path / "etc/apt/sources.list",
        "# deb http://old.example/debian buster main\n"
        "deb [arch=amd64] http://ftp.example/debian bookworm main\n",
    )
    assert mirror_uri(tmp_path) == "http://ftp.example/debian"


@pytest.mark.usefixtures("no_mirror_override")
def test_a_machine_without_sources_uses_deb_debian_org(tmp_path: Path) -> None:
    assert mirror_uri(tmp_path) == "http://deb.debian.org/debian"


def test_glibc_doctor_mirror_overrides_the_machines_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLIBC_DOCTOR_MIRROR", "http://snapshot.example/debian/")
    assert mirror_uri(tmp_path) == "http://snapshot.example/debian"


@lab_test
def test_the_lab_environment_drops_what_would_redirect_loads(lab: Lab) -> None:
    env = lab.environ(
        {"PATH": "/bin", "PYTHONPATH": "/x", "LD_LIBRARY_PATH": "/y", "VIRTUAL_ENV": "/v", "GEM_HOME": "/g"}
    )
    assert sorted(env) == ["PATH", "RUBYLIB"]
    assert env["RUBYLIB"].split(":")[0] == str(lab.ruby_archdir)


def test_an_unwritable_cache_dir_is_a_lab_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LabError, match=r"^cannot use .*/file/lab for the lab: "):
        ensure_lab(blocker / "lab")
