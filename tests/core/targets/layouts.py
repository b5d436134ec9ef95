"""Real directory layouts for the target tests: venvs, pythons, rubies, pyenv roots, made in tmp dirs
around real shared objects built by gcc (tests/core/targets/conftest.py builds them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from tests.gcc import compile_elf

BASE_PREFIX = sys.base_prefix
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_TAG = f"{sys.version_info.major}{sys.version_info.minor}"
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
BASE_PYTHON = os.path.realpath(os.path.join(BASE_PREFIX, "bin", f"python{PY_VERSION}"))

EXTENSION_SOURCE = """
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&def); }
"""


def needed_of(path: str) -> list[str]:
    """DT_NEEDED read by pyelftools: the reference the tests compare against."""
    with open(path, "rb") as handle:
        for segment in ELFFile(handle).iter_segments():
            if isinstance(segment, DynamicSegment):
                return [str(getattr(tag, "needed", "")) for tag in segment.iter_tags("DT_NEEDED")]
    return []


def with_inits(plain_so: Path) -> Path:
    """The shared object beside ``plain_so`` that exports the init functions of the layouts' modules."""
    return plain_so.with_name("inits.so")


def make_venv(root: Path, plain_so: Path, *, system_site: bool = False, key: str = "version") -> Path:
    """A venv laid out as ``python -m venv`` does, pointing at this machine's real base Python."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    value = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    (venv / "pyvenv.cfg").write_text(
        f"home = {BASE_PREFIX}/bin\n"
        f"include-system-site-packages = {'true' if system_site else 'false'}\n"
        f"{key} = {value}\n"
    )
    (venv / "bin" / "python3").symlink_to(os.path.join(BASE_PREFIX, "bin", "python3"))
    (venv / "bin" / "python").symlink_to("python3")
    site = venv / "lib" / f"python{PY_VERSION}" / "site-packages"
    for relative, source in (
        (f"psycopg2/_psycopg.cpython-{PY_TAG}-x86_64-linux-gnu.so", plain_so),
        ("cffi_backend.abi3.so", plain_so),
        ("pkg/sub/_speedups.so", with_inits(plain_so)),
    ):
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, site / relative)
    return venv


def site_of(venv: Path) -> Path:
    return venv / "lib" / f"python{PY_VERSION}" / "site-packages"


def make_pyenv(root: Path) -> Path:
    """A pyenv root: a bash shim ``shims/python3``, a ``version`` file, and that version's python."""
    (root / "shims").mkdir(parents=True)
    (root / "shims" / "python3").write_text(
        '#!/usr/bin/env bash\nexec "$PYENV_ROOT/libexec/pyenv" exec "$0"\n'
    )
    (root / "shims" / "python3").chmod(0o755)
    (root / "version").write_text("3.11.7\n")
    (root / "versions" / "3.11.7" / "bin").mkdir(parents=True)
    (root / "versions" / "3.11.7" / "bin" / "python3").symlink_to(BASE_PYTHON)
    return root / "shims" / "python3"


def make_fake_python(root: Path, plain_so: Path, *, shared: bool) -> Path:
    """A gcc-built ``python3.9`` in a prefix with the ``os.py`` landmark, lib-dynload and site-packages."""
    lib = root / "lib" / "python3.9"
    (lib / "lib-dynload").mkdir(parents=True)
    (lib / "os.py").write_text("")
    (lib / "site-packages" / "numpy" / "core").mkdir(parents=True)
    shutil.copy(plain_so, lib / "lib-dynload" / "_ssl.cpython-39-x86_64-linux-gnu.so")
    shutil.copy(
        plain_so, lib / "site-packages" / "numpy" / "core" / "_multiarray.cpython-39-x86_64-linux-gnu.so"
    )
    libs: list[Path] = []
    if shared:
        libs.append(
            compile_elf(
                root / "lib" / "libpython3.9.so.1.0",
                "int Py_Main(void){return 0;}\n",
                soname="libpython3.9.so.1.0",
            )
        )
    main = (
        "int Py_Main(void);\nint main(void){return Py_Main();}\n" if shared else "int main(void){return 0;}\n"
    )
    return compile_elf(root / "bin" / "python3.9", main, shared=False, libs=libs)


def make_fake_ruby(root: Path, plain_so: Path) -> Path:
    """A gcc-built ruby linked to ``libruby.so.3.1`` with an archdir, a gem extension and a gem lib."""
    abi = root / "lib" / "ruby" / "3.1.0"
    gems = root / "lib" / "ruby" / "gems" / "3.1.0"
    for relative in (
        abi / "x86_64-linux" / "etc.so",
        gems / "extensions" / "x86_64-linux" / "3.1.0" / "json-2.6.1" / "json" / "ext" / "parser.so",
        gems / "gems" / "nokogiri-1.15.0" / "lib" / "nokogiri" / "nokogiri.so",
    ):
        relative.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(with_inits(plain_so), relative)
    libruby = compile_elf(
        root / "lib" / "libruby.so.3.1", "int ruby_init(void){return 0;}\n", soname="libruby.so.3.1"
    )
    main = "int ruby_init(void);\nint main(void){return ruby_init();}\n"
    return compile_elf(root / "bin" / "ruby", main, shared=False, libs=[libruby])


def run_as_nobody(call: str, prepare: Callable[[Path], None] | None = None) -> str:
    """Run ``call`` (on targets' functions) as user ``nobody`` with the system python; return what it
    printed: the TargetError's message. Root reads everything, so permission errors need another user."""
    python, setpriv = "/usr/bin/python3", shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to become another user")
    shim = Path(tempfile.mkdtemp(prefix="gd-nobody-"))
    try:
        shim.chmod(0o755)
        (shim / "glibc_doctor").mkdir(mode=0o755)
        (shim / "glibc_doctor" / "core").symlink_to(Path(__file__).resolve().parents[3] / "core")
        if prepare is not None:
            prepare(shim)
        code = (
            f"import sys; sys.path.insert(0, {str(shim)!r}); shim = {str(shim)!r}\n"
            "from glibc_doctor.core.targets import resolve_target, target_from_pid\n"
            "from glibc_doctor.core.errors import TargetError\n"
            f"try:\n    {call}\nexcept TargetError as error:\n    print(error)\n"
        )
        argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", code]
        return subprocess.run(argv, capture_output=True, text=True, cwd="/").stdout.strip()
    finally:
        shutil.rmtree(shim)


def wait_until_mapped(pid: int, name: str) -> None:
    """ld.so maps libraries before main(): wait (briefly) until ``name`` shows in /proc/PID/maps."""
    deadline = time.monotonic() + 10
    while name not in Path(f"/proc/{pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
