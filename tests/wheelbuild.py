"""Real wheels with C extensions, built by this machine's gcc, and the real pip that installs them.

For one CPython (the lab's python3.9 hard-wired to glibc 2.31, or the python running the tests), the
wheels a user's pip cache holds after ``pip install`` built them from source with today's compiler:

- ``pthreadpkg``: ``pthreadpkg/_core`` starts a thread: ``pthread_create@GLIBC_2.34``;
- ``strlcpypkg``: ``strlcpypkg/_core`` calls ``strlcpy@GLIBC_2.38`` (linked against the lab's glibc 2.41);
- ``cleanpkg``: ``cleanpkg/_core`` needs nothing newer than glibc 2.2.5;
- ``vendoredpkg``: as auditwheel makes them: ``vendoredpkg/_core`` finds ``libhelper-1a2b3c4d.so`` through
  its ``$ORIGIN/../vendoredpkg.libs`` RPATH, and the helper needs ``GLIBC_2.34``;
- ``purepkg``: Python only (``py3-none-any``);
- ``manylinuxpkg``: ``pthreadpkg``'s module again, tagged ``manylinux_2_34_x86_64`` (which pip gives an
  interpreter only when its process loads glibc >= 2.34).

Each is zipped by hand as a wheel (``.dist-info/METADATA``, ``WHEEL``, ``RECORD`` with sha256 digests).
``pip_cache_of`` files them as pip's wheel cache does (``wheels/<aa>/<bb>/<cc>/<rest of a hash>/``).

The real pip (``pip_install``) runs *in the interpreter under test* from a pip wheel on ``sys.path``:
the ensurepip wheel of the python running the tests, else Debian's ``/usr/share/python-wheels``. Its tag
selection (``get_supported``) then asks that interpreter's own glibc (``confstr``). Debian's python3.9
ships ``distutils`` in another package, so pip is told to use ``sysconfig`` (``sysconfig._PIP_USE_SYSCONFIG``,
the switch pip documents for distributors).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from glibc_doctor.lab.build import Lab

from tests.gcc import compile_elf
from tests.realimport import MARK, PYTHON_PROBE

_MODULE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
{includes}
{body}
static PyMethodDef methods[] = {{{{"run", run, METH_NOARGS, ""}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods}};
PyMODINIT_FUNC PyInit__core(void) {{ return PyModule_Create(&module); }}
"""

_PTHREAD = """\
static void *answer(void *arg) { *(long *)arg = 42; return NULL; }
static PyObject *run(PyObject *self, PyObject *args) {
    long result = 0;
    pthread_t thread;
    if (pthread_create(&thread, NULL, answer, &result) != 0 || pthread_join(thread, NULL) != 0)
        return PyErr_Format(PyExc_OSError, "pthread_create failed");
    return PyLong_FromLong(result);
}
"""

_STRLCPY = """\
size_t strlcpy(char *dst, const char *src, size_t size);
static PyObject *run(PyObject *self, PyObject *args) {
    char buffer[4];
    strlcpy(buffer, "glibc", sizeof buffer);
    return PyUnicode_FromString(buffer);
}
"""

_CLEAN = """\
static PyObject *run(PyObject *self, PyObject *args) { return PyLong_FromSize_t(strlen("clean")); }
"""

_VENDORED = """\
long helper_answer(void);
static PyObject *run(PyObject *self, PyObject *args) { return PyLong_FromLong(helper_answer()); }
"""

_HELPER = """\
#include <pthread.h>
static void *answer(void *arg) { *(long *)arg = 42; return 0; }
long helper_answer(void) {
    long result = 0;
    pthread_t thread;
    if (pthread_create(&thread, 0, answer, &result) != 0 || pthread_join(thread, 0) != 0) return -1;
    return result;
}
"""

HELPER_SONAME = "libhelper-1a2b3c4d.so"


@dataclass(frozen=True, slots=True)
class PythonFor:
    """The CPython a set of wheels is built for: its headers, tags and extension suffix."""

    version: str  # "3.9"
    include: tuple[Path, ...]

    @property
    def tag(self) -> str:
        return "cp" + self.version.replace(".", "")

    @property
    def suffix(self) -> str:
        return f".cpython-{self.version.replace('.', '')}-x86_64-linux-gnu.so"


def machine_python() -> PythonFor:
    """The python running the tests (its base installation's headers)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    include = Path(sysconfig.get_paths()["include"])
    return PythonFor(version, (include,))


@dataclass(frozen=True, slots=True)
class BuiltWheels:
    """The wheel files of one build, by package name."""

    python: PythonFor
    files: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.files[name]


def build_test_wheels(python: PythonFor, out: Path, newer_libc: Path) -> BuiltWheels:
    """Compile the modules for ``python`` and zip them into wheels under ``out``.

    ``newer_libc`` is a glibc >= 2.38 ``libc.so.6`` (the lab's trixie one) that ``strlcpy`` binds to.
    """
    build = out / "build"
    includes = [f"-I{path}" for path in python.include]
    pthread = _MODULE.format(includes="#include <pthread.h>", body=_PTHREAD)
    strlcpy = _MODULE.format(includes="", body=_STRLCPY)
    clean = _MODULE.format(includes="#include <string.h>", body=_CLEAN)
    modules = {
        "pthreadpkg": compile_elf(build / "pthread.so", pthread, extra=includes),
        "strlcpypkg": compile_elf(
            build / "strlcpy.so", strlcpy, extra=[*includes, "-Wl,--no-as-needed", str(newer_libc)]
        ),
        "cleanpkg": compile_elf(build / "clean.so", clean, extra=includes),
    }
    helper = compile_elf(build / HELPER_SONAME, _HELPER, soname=HELPER_SONAME)
    modules["vendoredpkg"] = compile_elf(
        build / "vendored.so",
        _MODULE.format(includes="", body=_VENDORED),
        libs=[helper],
        rpath=["$ORIGIN/../vendoredpkg.libs"],
        extra=includes,
    )
    tag = f"{python.tag}-{python.tag}-linux_x86_64"
    files: dict[str, Path] = {}
    for name, module in modules.items():
        members = {
            f"{name}/__init__.py": b"from ._core import run\n",
            f"{name}/_core{python.suffix}": module.read_bytes(),
        }
        if name == "vendoredpkg":
            members[f"vendoredpkg.libs/{HELPER_SONAME}"] = helper.read_bytes()
        files[name] = make_wheel(out, name, "1.0", tag, members)
    files["purepkg"] = make_wheel(out, "purepkg", "1.0", "py3-none-any", {"purepkg/__init__.py": b"X = 1\n"})
    manylinux = {
        "manylinuxpkg/__init__.py": b"from ._core import run\n",
        f"manylinuxpkg/_core{python.suffix}": modules["pthreadpkg"].read_bytes(),
    }
    files["manylinuxpkg"] = make_wheel(
        out, "manylinuxpkg", "1.0", f"{python.tag}-{python.tag}-manylinux_2_34_x86_64", manylinux
    )
    return BuiltWheels(python, files)


def make_wheel(out: Path, name: str, version: str, tag: str, members: Mapping[str, bytes]) -> Path:
    """A wheel as build backends write it: the members, then METADATA, WHEEL and RECORD."""
    out.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    purelib = "true" if tag.endswith("-any") else "false"
    tags = "".join(f"Tag: {tag}\n" for tag in _expanded(tag))
    files = {
        **members,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: glibc-doctor-tests\nRoot-Is-Purelib: {purelib}\n{tags}"
        ).encode(),
    }
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    wheel = out / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist_info}/RECORD", record)
    return wheel


def _expanded(tag: str) -> list[str]:
    python, abi, platform = tag.split("-")
    return [f"{p}-{a}-{s}" for p in python.split(".") for a in abi.split(".") for s in platform.split(".")]


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pip_cache_of(cache: Path, wheels: list[Path]) -> Path:
    """``cache`` laid out as pip's: each wheel in ``wheels/<aa>/<bb>/<cc>/<rest of a hash>/`` (the hash
    of its name, as pip hashes the link it built the wheel from), and an ``http-v2/`` pip would have."""
    for wheel in wheels:
        digest = hashlib.sha224(wheel.name.encode()).hexdigest()
        place = cache / "wheels" / digest[:2] / digest[2:4] / digest[4:6] / digest[6:]
        place.mkdir(parents=True, exist_ok=True)
        (place / wheel.name).write_bytes(wheel.read_bytes())
        (place / "origin.json").write_text(json.dumps({"url": f"file:///src/{wheel.name}"}))
    (cache / "http-v2" / "a").mkdir(parents=True, exist_ok=True)
    (cache / "http-v2" / "a" / "entry").write_bytes(b"not a wheel")
    return cache


# --- the real pip and the real import ---------------------------------------------------------------


def pip_wheel() -> Path | None:
    """A pip wheel to run in another interpreter: the ensurepip one of this python, or Debian's (a
    trusted wheel of the standard library's own, unpacked by ``zipfile``)."""
    import ensurepip

    bundled = Path(ensurepip.__file__).parent / "_bundled"
    found = sorted(glob.glob(str(bundled / "pip-*.whl"))) + sorted(
        glob.glob("/usr/share/python-wheels/pip-*.whl")
    )
    return Path(found[-1]) if found else None


_PIP = """\
import runpy, sys, sysconfig
sysconfig._PIP_USE_SYSCONFIG = True
sys.path.insert(0, sys.argv[1])
sys.argv = ["pip", *sys.argv[2:]]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""

_TAGS = """\
import sys, sysconfig
sysconfig._PIP_USE_SYSCONFIG = True
sys.path.insert(0, sys.argv[1])
from pip._internal.utils.compatibility_tags import get_supported
print("\\n".join(str(tag) for tag in get_supported()))
"""


def pip_install(
    python: Path, pip: Path, wheels: list[Path], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``pip install --no-index --no-deps`` of the wheel files, run by ``python`` itself."""
    argv = [str(python), "-c", _PIP, str(pip), "install", "--no-index", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--no-compile", *map(str, wheels)]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=240, check=False)


def pip_supported_tags(python: Path, pip: Path, env: Mapping[str, str]) -> list[str]:
    """What ``python``'s own pip accepts, best first (``get_supported``: what it selects wheels by)."""
    argv = [str(python), "-c", _TAGS, str(pip)]
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=120, check=True)
    return done.stdout.split()


@dataclass(frozen=True, slots=True)
class Imported:
    imported: bool
    mapped: bool
    error: str


def real_imports(
    python: Path, modules: Mapping[str, Path], env: Mapping[str, str], cwd: Path
) -> dict[str, Imported]:
    """Import each module by its name in ``python`` (``tests/realimport.py``'s probe): did the import
    succeed, and did the loader keep the file mapped (its own verdict on the file)."""
    pairs = json.dumps([(name, str(path)) for name, path in modules.items()])
    cwd.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [str(python), "-I", "-c", PYTHON_PROBE, pairs],
        capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout.rsplit(MARK, 1)[1])
    by_path = {str(path): name for name, path in modules.items()}
    return {
        by_path[path]: Imported(row["imported"], row["mapped"], row["error"]) for path, row in rows.items()
    }


def new_venv(base: Path, where: Path, env: Mapping[str, str]) -> Path:
    """``base -m venv --without-pip where``: an empty venv of that interpreter."""
    subprocess.run(
        [str(base), "-m", "venv", "--without-pip", str(where)], check=True, env=dict(env), timeout=120
    )
    return where


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0]


def installed_modules(venv: Path, names: tuple[str, ...], files: tuple[str, ...]) -> dict[str, Path]:
    """Module name -> the file pip installed it as (the check's ``module_files`` under site-packages)."""
    site = site_packages(venv)
    return {name: site / file for name, file in zip(names, files, strict=True)}


def environ_without(names: tuple[str, ...], base: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if base is None else base
    return {key: value for key, value in source.items() if key not in names}


# --- session fixtures (registered in tests/conftest.py) -------------------------------------------------


def lab_python(lab: Lab) -> PythonFor:
    """The lab's python3.9 (Debian bullseye's headers in its store entry)."""
    store = lab.python_store
    return PythonFor("3.9", (store / "include" / "python3.9", store / "include"))


@pytest.fixture(scope="session")
def lab_test_wheels(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> BuiltWheels:
    """The test wheels built for the lab's python3.9 (glibc 2.31)."""
    return build_test_wheels(
        lab_python(lab), tmp_path_factory.mktemp("lab-wheels"), lab.glibc_new_lib / "libc.so.6"
    )


@pytest.fixture(scope="session")
def machine_test_wheels(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> BuiltWheels:
    """The test wheels built for the python running the tests (its headers must be installed)."""
    python = machine_python()
    if not all((path / "Python.h").is_file() for path in python.include[:1]):
        pytest.skip(f"no Python.h for Python {python.version} here")
    out = tmp_path_factory.mktemp("machine-wheels")
    return build_test_wheels(python, out, lab.glibc_new_lib / "libc.so.6")


@pytest.fixture(scope="session")
def pip_to_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip, unpacked from a wheel into a directory another interpreter puts on its path (unpacked, its
    bytecode is written once and reused; from the zip every run would compile pip again)."""
    found = pip_wheel()
    if found is None:
        pytest.skip("no pip wheel (ensurepip's or /usr/share/python-wheels) to run in the lab python")
    unpacked = tmp_path_factory.mktemp("pip")
    with zipfile.ZipFile(found) as archive:
        archive.extractall(unpacked)
    return unpacked
