"""Real auditwheel-repaired wheels: what the scan lists as extensions is what Python imports by name.

numpy, scipy, Pillow and psycopg2-binary, as pip installs them (``tests/wheels.py``), in a venv of the
lab's python3.9 (hard-wired to glibc 2.31) and of this machine's python. Their vendored libraries
(``numpy.libs/`` …) are no extensions: they are loaded as dependencies of the extensions, through the
extensions' ``$ORIGIN/../…libs`` RPATH. Every listed extension is compared with a real import of its
name (``tests/realimport.py``); on the lab's old glibc the comparison covers real failures too: numpy's
vendored libgfortran needs a libgcc_s.so.1, which only the machine has (auditwheel leaves it out of the
wheel), and that libgcc_s needs a newer glibc than 2.31.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from glibc_doctor.core.analysis import extension_errors
from glibc_doctor.core.model import Role, Via
from glibc_doctor.core.scan import ScanResult, scan
from glibc_doctor.lab.build import Lab

from tests.realimport import assert_scan_is_the_real_import
from tests.wheels import WheelVenv

Scanned = tuple[WheelVenv, ScanResult]


def scanned_venv(venv: WheelVenv) -> Scanned:
    return venv, scan(str(venv.venv), env=venv.env, use_cache=False)


@pytest.fixture(scope="module")
def lab_scan(lab_wheels: WheelVenv) -> Scanned:
    return scanned_venv(lab_wheels)


@pytest.fixture(scope="module")
def machine_scan(machine_wheels: WheelVenv) -> Scanned:
    return scanned_venv(machine_wheels)


@pytest.fixture(scope="module", params=[pytest.param("lab", marks=pytest.mark.lab), pytest.param("machine")])
def wheel_scan(request: pytest.FixtureRequest) -> Scanned:
    scanned: Scanned = request.getfixturevalue(f"{request.param}_scan")
    return scanned


def package_of(venv: WheelVenv, path: str) -> str:
    """``numpy`` for ``…/site-packages/numpy/core/x.so`` and for ``…/site-packages/numpy.libs/y.so``."""
    top = Path(path).relative_to(venv.site_packages).parts[0]
    return top.removesuffix(".libs").replace("psycopg2_binary", "psycopg2")


def test_no_vendored_library_is_listed_as_an_extension(wheel_scan: Scanned) -> None:
    venv, result = wheel_scan
    vendored = {str(path) for path in venv.vendored}
    assert {"numpy", "scipy", "pillow", "psycopg2"} <= {package_of(venv, path) for path in vendored}
    listed = {extension.path for extension in result.target.extensions}
    assert listed & vendored == set()
    assert not [path for path in listed if ".libs/" in path or ".dist-info/" in path]
    own = {package_of(venv, path) for path in listed if path.startswith(str(venv.site_packages))}
    assert {"numpy", "scipy", "PIL", "psycopg2"} <= own


def test_each_vendored_library_is_loaded_through_the_rpath_of_its_own_package(wheel_scan: Scanned) -> None:
    venv, result = wheel_scan
    graph = result.graph
    vendored = {str(path) for path in venv.vendored}
    # ld.so names an object as found: $ORIGIN/../../numpy.libs stays in the name (realpath to compare)
    found = {node: os.path.realpath(node) for node in graph if os.path.realpath(node) in vendored}
    assert {package_of(venv, path) for path in found.values()} >= {"numpy", "scipy", "pillow", "psycopg2"}
    for node, path in found.items():
        assert graph.nodes[node]["role"] is Role.LIBRARY
        for requester, _, edge in graph.in_edges(node, data=True):
            assert edge["via"] in (Via.RPATH, Via.RUNPATH, Via.LOADED), (requester, node, edge["via"])
            if edge["via"] is not Via.LOADED:  # a soname already loaded is reused from any package
                owner = package_of(venv, os.path.realpath(requester)).lower()
                assert owner in (package_of(venv, path), "pil"), (requester, node)


def test_every_listed_extension_is_its_real_import_by_name(wheel_scan: Scanned, tmp_path: Path) -> None:
    venv, result = wheel_scan
    real = assert_scan_is_the_real_import(result, venv.python, venv.env, tmp_path / "cwd")
    if not extension_errors(result.graph, result.conflicts):  # then every import by name succeeds
        assert [path for path, seen in real.items() if not seen.imported] == []


def test_on_this_machines_python_every_wheel_loads_without_order_warnings(machine_scan: Scanned) -> None:
    _, result = machine_scan
    assert result.conflicts == ()  # numpy.libs and scipy.libs hold byte-identical libgfortran copies
    assert extension_errors(result.graph, result.conflicts) == {}


@pytest.mark.lab
def test_numpy_on_glibc_2_31_fails_in_the_libgcc_s_its_vendored_libgfortran_needs(
    lab_scan: Scanned, lab: Lab
) -> None:
    venv, result = lab_scan
    umath = next(e.path for e in result.target.extensions if e.name == "numpy.core._multiarray_umath")
    records = extension_errors(result.graph, result.conflicts)[umath]
    (libgcc_s,) = {c.object for c in records}
    assert Path(libgcc_s).name == "libgcc_s.so.1"
    assert not libgcc_s.startswith(str(lab.root))  # the machine's: the store's is on no search path here
    libs = venv.site_packages / "numpy.libs"
    touched = result.graph.graph["dlopened"][umath]
    (gfortran,) = [node for node in touched if Path(node).resolve().parent == libs and "libgfortran" in node]
    assert result.graph.has_edge(gfortran, libgcc_s)
    assert result.graph.nodes[libgcc_s]["found"].via is Via.CACHE  # the RPATH $ORIGIN has none
