"""Refusals and crashes beyond versions, predicted by a scan and then watched for real under each glibc.

Every case is an object built by gcc (``tests/refusal_objects.py``, plus glibc libraries of one build
pulled into a process of another), loaded with dlopen() by a tiny program (``tests/dlopener.py``) under
the lab's glibc 2.31, the machine's glibc and the lab's glibc 2.41: what ``scan`` predicts for each
object (refused with ld.so's message, a crash, or it loads) must be what the real loader does, and
``explain`` must read each real refusal message as the kind of trouble the scan predicted. The
lab's python3.9 then shows the issue's own case: an extension with DT_RELR crashing on import.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from glibc_doctor.core.analysis import loader_setting
from glibc_doctor.core.explain import explain
from glibc_doctor.core.model import Conflict, Effect, Kind, Severity
from glibc_doctor.core.refusals import static_area
from glibc_doctor.core.scan import ScanResult, scan
from glibc_doctor.lab.build import PY_SUFFIX, Lab

from tests.dlopener import Outcome, build_dlopener, run_dlopener
from tests.gcc import compile_elf
from tests.refusal_objects import RefusalObjects, python_module, tls_source

pytestmark = pytest.mark.lab

GLIBCS = ("2.31", "system", "2.41")


@pytest.fixture(scope="module")
def dlopeners(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dlopeners")
    libs = {"2.31": lab.glibc_old_lib, "system": None, "2.41": lab.glibc_new_lib}
    return {name: build_dlopener(root / f"dlopen-{name}", lib) for name, lib in libs.items()}


@pytest.fixture(scope="module")
def mixed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Per glibc build: objects whose RPATH pulls that build's libpthread or libresolv into any process."""
    root = tmp_path_factory.mktemp("mixed")
    builds = {"2.31": lab.glibc_old_lib, "system": _system_lib_dir(), "2.41": lab.glibc_new_lib}
    objects: dict[str, list[Path]] = {}
    for build, directory in builds.items():
        for library in ("libpthread.so.0", "libresolv.so.2"):
            out = root / f"uses_{library.split('.')[0]}_{build}.so"
            link = ["-Wl,--no-as-needed", f"-L{directory}", f"-l:{library}", "-Wl,--disable-new-dtags"]
            source = "int uses(void) { return 1; }\n"
            objects.setdefault(build, []).append(
                compile_elf(out, source, extra=[*link, f"-Wl,-rpath,{directory}"])
            )
    return objects


def _system_lib_dir() -> Path:
    libc = Path(
        subprocess.run(["gcc", "-print-file-name=libc.so.6"], capture_output=True, text=True).stdout.strip()
    )
    return libc.resolve().parent


# --- the prediction and the comparison ---------------------------------------------------------------


def predicted(result: ScanResult, path: Path) -> tuple[str, list[Conflict]]:
    """What the scan says dlopen() does with ``path``: refused, crash or loaded, with its error records
    (those on the object itself and on what it pulls in)."""
    records = [
        conflict
        for conflict in result.conflicts
        if conflict.severity == Severity.ERROR
        and (conflict.object == str(path) or str(path) in conflict.chain)
    ]
    effects = {conflict.effect for conflict in records}
    if Effect.REFUSED in effects:
        return "refused", records
    if Effect.CRASH in effects:
        return "crash", records
    return "loaded", records


def explains(message: str, records: list[Conflict]) -> bool:
    """Is the real dlerror text one of the predicted refusals? ld.so names the first problem it meets;
    for a missing private symbol, the first one it binds (the record lists them all)."""
    for record in records:
        if record.effect != Effect.REFUSED:
            continue
        if message == record.message:
            return True
        private = re.fullmatch(r"(\S+): undefined symbol: (\S+), version GLIBC_PRIVATE", message)
        if record.kind == Kind.MIXED_GLIBC and private and private[2] in record.symbols:
            return private[1] == record.object
    return False


def explained_as_predicted(message: str, records: list[Conflict]) -> bool:
    """``glibc-doctor explain`` on the real text names the kind of trouble the scan predicted."""
    kinds = {str(record.kind) for record in records}
    if Kind.MIXED_GLIBC in kinds:
        kinds |= {"undefined-symbol", "missing-version"}
    found = {str(message.kind) for message in explain(message).messages}
    return bool(found) and found <= kinds


def disagreements(result: ScanResult, outcomes: list[Outcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        effect, records = predicted(result, Path(outcome.path))
        refused = effect == "refused"
        if effect != outcome.effect or (
            refused
            and not (explains(outcome.message, records) and explained_as_predicted(outcome.message, records))
        ):
            said = [f"{c.kind}/{c.effect}: {c.message}" for c in records] or ["loads"]
            lines.append(
                f"{Path(outcome.path).name}: real {outcome.effect} {outcome.message!r}; predicted {said}"
            )
    return lines


def compare(
    program: Path, objects: list[Path], env: dict[str, str] | None = None
) -> tuple[ScanResult, list[Outcome]]:
    outcomes = run_dlopener(program, objects, env)
    result = scan(str(program), ext=tuple(str(path) for path in objects), env=env or {}, use_cache=False)
    assert disagreements(result, outcomes) == []
    return result, outcomes


# --- each glibc, every object ----------------------------------------------------------------------


@pytest.mark.parametrize("glibc", GLIBCS)
def test_every_object_loads_or_is_refused_as_predicted(
    glibc: str, dlopeners: dict[str, Path], refusal_objects: RefusalObjects
) -> None:
    objects = [path for path in refusal_objects.all if path != refusal_objects.relr_crash]
    result, outcomes = compare(dlopeners[glibc], objects)
    assert {outcome.effect for outcome in outcomes} == {"loaded", "refused"}  # the run exercised both
    kinds = {c.kind for c in result.errors}
    assert {Kind.STATIC_TLS, Kind.WRONG_ELF} <= kinds
    if glibc == "2.41":
        assert {Kind.EXEC_STACK, Kind.DT_RELR} <= kinds
    if glibc == "2.31":
        assert Kind.MISSING_VERSION in kinds  # GLIBC_ABI_DT_RELR of the marked object


@pytest.mark.parametrize("glibc", GLIBCS)
def test_a_glibc_library_of_another_build_is_predicted_and_named(
    glibc: str, dlopeners: dict[str, Path], mixed: dict[str, list[Path]]
) -> None:
    """One process per object: a failed dlopen() unloads what it mapped, which the simulation does not."""
    for build, objects in mixed.items():
        if build == glibc:
            continue
        for path in objects:
            result, _ = compare(dlopeners[glibc], [path])
            (record,) = [c for c in result.conflicts if c.kind == Kind.MIXED_GLIBC]
            assert " a library of glibc " in record.message
            assert record.message.endswith(" process")


@pytest.mark.parametrize("glibc", GLIBCS)
def test_dt_relr_without_the_marker_crashes_exactly_where_predicted(
    glibc: str, dlopeners: dict[str, Path], refusal_objects: RefusalObjects
) -> None:
    result, (outcome,) = compare(dlopeners[glibc], [refusal_objects.relr_crash])
    if outcome.effect == "crash":
        (record,) = [c for c in result.errors if c.kind == Kind.DT_RELR]
        assert record.min_glibc == "2.36"
        assert any("pack-relative-relocs" in fix for fix in record.fixes)
    assert (outcome.effect == "crash") == (glibc == "2.31")


@pytest.mark.parametrize("glibc", GLIBCS)
def test_the_static_tls_limit_is_predicted_to_the_byte(
    glibc: str, dlopeners: dict[str, Path], tmp_path: Path
) -> None:
    """The largest initial-exec block the model says fits loads; 16 bytes more is refused."""
    program = dlopeners[glibc]
    probe = scan(str(program), env={}, use_cache=False)
    free = static_area(probe.graph, loader_setting(probe.graph, probe.glibc)).free
    largest = free // 16 * 16
    fits = compile_elf(tmp_path / "fits.so", tls_source(largest), extra=["-O1"])
    over = compile_elf(tmp_path / "over.so", tls_source(largest + 16), extra=["-O1"])
    for path, expected in ((fits, "loaded"), (over, "refused")):
        _, (outcome,) = compare(program, [path])
        assert outcome.effect == expected


@pytest.mark.parametrize("glibc", GLIBCS)
def test_a_preloaded_object_gets_its_static_tls_whatever_its_size(
    glibc: str, dlopeners: dict[str, Path], refusal_objects: RefusalObjects
) -> None:
    big = refusal_objects.tls_big
    _, (outcome,) = compare(dlopeners[glibc], [big], env={"LD_PRELOAD": str(big)})
    assert outcome.effect == "loaded"
    refused, _ = compare(dlopeners[glibc], [big])
    (record,) = [c for c in refused.errors if c.kind == Kind.STATIC_TLS]
    assert f"LD_PRELOAD={big}" in record.fixes[0]


def test_the_optional_static_tls_tunable_it_suggests_makes_the_object_load(
    dlopeners: dict[str, Path], refusal_objects: RefusalObjects
) -> None:
    result, _ = compare(dlopeners["2.41"], [refusal_objects.tls_big])
    (record,) = [c for c in result.errors if c.kind == Kind.STATIC_TLS]
    (tunable,) = re.findall(r"GLIBC_TUNABLES=(\S+)", " ".join(record.fixes))
    _, (outcome,) = compare(dlopeners["2.41"], [refusal_objects.tls_big], env={"GLIBC_TUNABLES": tunable})
    assert outcome.effect == "loaded"


# --- the case: a DT_RELR extension in the lab's python3.9 (glibc 2.31) -------------------------


def test_a_dt_relr_extension_crashes_python_3_9_as_the_scan_predicts(lab: Lab, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    shutil.copytree(lab.venv, venv, symlinks=True)
    site = venv / "lib" / "python3.9" / "site-packages"
    built = python_module(lab.python_store, tmp_path / "build", "ext_relr", ["-Wl,-z,pack-relative-relocs"])
    extension = site / built.name
    shutil.copy2(built, extension)
    run = subprocess.run(
        [str(venv / "bin" / "python3.9"), "-c", "import ext_relr"],
        env=lab.environ(),
        capture_output=True,
        timeout=60,
    )
    assert run.returncode < 0  # killed by a signal (SIGSEGV) while importing
    result = scan(str(venv), env=lab.environ(), use_cache=False)
    (record,) = [c for c in result.errors if c.object == str(extension)]
    assert (record.kind, record.effect, record.min_glibc) == (Kind.DT_RELR, Effect.CRASH, "2.36")
    assert any("pack-relative-relocs" in fix for fix in record.fixes)


TLS_MODULE = """
#include <Python.h>
__thread char buffer[65536] __attribute__((tls_model("initial-exec")));
static PyObject *touch(PyObject *self, PyObject *args) { buffer[0] = 1; Py_RETURN_NONE; }
static PyMethodDef methods[] = {{"touch", touch, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext_tls", NULL, -1, methods};
PyMODINIT_FUNC PyInit_ext_tls(void) { return PyModule_Create(&module); }
"""


def test_a_python_extension_with_64_kb_of_static_tls_imports_when_preloaded_as_advised(
    lab: Lab, tmp_path: Path
) -> None:
    """The libgomp/jemalloc case in a real python: refused on import, loads once preloaded."""
    venv = tmp_path / "venv"
    shutil.copytree(lab.venv, venv, symlinks=True)
    includes = [f"-I{lab.python_store / 'include' / 'python3.9'}", f"-I{lab.python_store / 'include'}"]
    built = compile_elf(tmp_path / "build" / f"ext_tls{PY_SUFFIX}", TLS_MODULE, extra=includes)
    extension = Path(shutil.copy2(built, venv / "lib" / "python3.9" / "site-packages"))
    python = [str(venv / "bin" / "python3.9"), "-c", "import ext_tls; ext_tls.touch()"]
    refused = subprocess.run(python, env=lab.environ(), capture_output=True, text=True, timeout=60)
    assert f"{extension}: cannot allocate memory in static TLS block" in refused.stderr
    result = scan(str(venv), env=lab.environ(), use_cache=False)
    (record,) = [c for c in result.errors if c.object == str(extension)]
    assert record.message == f"{extension}: cannot allocate memory in static TLS block"
    preload = {"LD_PRELOAD": re.findall(r"LD_PRELOAD=(\S+)", record.fixes[0])[0]}
    loaded = subprocess.run(python, env={**lab.environ(), **preload}, capture_output=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    preloaded = scan(str(venv), env={**lab.environ(), **preload}, use_cache=False)
    assert not [c for c in preloaded.errors if c.object == str(extension)]
