"""explain() on loader errors as they really appear: captured from the real loader where this machine can
produce them (gcc-built objects, this Python, the lab's glibc 2.31 interpreters), pasted text otherwise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from glibc_doctor.core.explain import (
    NO_MESSAGE,
    MessageKind,
    explain,
    min_gcc_for,
    parse_messages,
    target_for_path,
)

from tests.budget import cpu_budget
from tests.gcc import compile_elf

EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))
INCLUDE = sysconfig.get_paths()["include"]
MACHINE_GLIBC = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # type: ignore[union-attr]

MODULE = """
#include <Python.h>
%(decl)s
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%(name)s(void) { %(call)s return PyModule_Create(&def); }
"""


def build_module(
    directory: Path, name: str, *, decl: str = "", call: str = "", libs: list[Path] | None = None
) -> Path:
    """A real CPython extension module built by gcc for this Python."""
    source = MODULE % {"name": name, "decl": decl, "call": call}
    return compile_elf(directory / f"{name}{EXT_SUFFIX}", source, extra=[f"-I{INCLUDE}"], libs=libs or [])


def python_error(directory: Path, code: str) -> str:
    """Run this Python with ``directory`` on sys.path and return what it printed on stderr."""
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(directory)!r})\n{code}"],
        capture_output=True,
        text=True,
        cwd=directory,
    )
    assert result.returncode != 0
    return result.stderr


def fake_libc(directory: Path) -> Path:
    """A stub ``libc.so.6`` defining ``GLIBC_2.99``: linking against it makes a real need for 2.99."""
    return compile_elf(
        directory / "stub" / "libc.so.6",
        "int gd_future(void) { return 0; }\n",
        soname="libc.so.6",
        version_script="GLIBC_2.99 { global: gd_future; local: *; };\n",
        nostdlib=True,
    )


@pytest.fixture(scope="module")
def future_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A module that needs GLIBC_2.99, and the ImportError this Python really prints for it."""
    directory = tmp_path_factory.mktemp("future")
    module = build_module(
        directory, "future", decl="int gd_future(void);", call="gd_future();", libs=[fake_libc(directory)]
    )
    return module, python_error(directory, "import future")


@pytest.fixture(scope="module")
def missing_library_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A module whose DT_NEEDED library was deleted, and the real ImportError."""
    directory = tmp_path_factory.mktemp("missing")
    library = compile_elf(
        directory / "libgdmissing.so.1", "int depfn(void){return 1;}\n", soname="libgdmissing.so.1"
    )
    module = build_module(directory, "needsmissing", decl="int depfn(void);", call="depfn();", libs=[library])
    library.unlink()
    return module, python_error(directory, "import needsmissing")


# --- real messages captured here ------------------------------------------------------------------


def test_real_missing_glibc_version_names_provider_version_and_requester(
    future_import: tuple[Path, str],
) -> None:
    module, stderr = future_import
    (message,) = parse_messages(stderr)
    assert (message.kind, message.version, message.library, message.required_by) == (
        MessageKind.MISSING_VERSION,
        "GLIBC_2.99",
        "libc.so.6",
        str(module),
    )
    assert os.path.realpath(message.provider or "") == os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")


def test_real_missing_glibc_version_cause_names_the_loaded_glibc_release(
    future_import: tuple[Path, str],
) -> None:
    _, stderr = future_import
    (finding,) = explain(stderr).findings
    assert f"loaded glibc {MACHINE_GLIBC} from" in finding.cause
    assert "needs GLIBC_2.99" in finding.cause
    assert finding.min_glibc == "2.99"


def test_real_missing_library_import_is_not_found(missing_library_import: tuple[Path, str]) -> None:
    _, stderr = missing_library_import
    (message,) = parse_messages(stderr)
    assert (message.kind, message.library, message.detail) == (
        MessageKind.NOT_FOUND,
        "libgdmissing.so.1",
        "No such file or directory",
    )


def test_traceback_frames_give_the_interpreter_to_scan(missing_library_import: tuple[Path, str]) -> None:
    directory = missing_library_import[0].parent
    stderr = python_error(directory, "import json, importlib\nimportlib.import_module('needsmissing')")
    assert explain(stderr).findings[0].target == os.path.join(
        sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"
    )


def test_real_ctypes_dlopen_failure_is_not_found(tmp_path: Path) -> None:
    stderr = python_error(tmp_path, "import ctypes; ctypes.CDLL('libgdnothere.so.3')")
    (message,) = parse_messages(stderr)
    assert (message.kind, message.library) == (MessageKind.NOT_FOUND, "libgdnothere.so.3")


def test_real_undefined_symbol_import_names_object_and_symbol(tmp_path: Path) -> None:
    module = build_module(tmp_path, "undef", decl="int gd_nosuch(void);", call="gd_nosuch();")
    (message,) = parse_messages(python_error(tmp_path, "import undef"))
    assert (message.kind, message.required_by, message.symbol) == (
        MessageKind.UNDEFINED_SYMBOL,
        str(module),
        "gd_nosuch",
    )


def test_real_ld_so_startup_error_names_the_program(tmp_path: Path) -> None:
    library = compile_elf(tmp_path / "libgdgone.so.1", "int gone(void){return 0;}\n", soname="libgdgone.so.1")
    program = compile_elf(
        tmp_path / "prog", "int gone(void);\nint main(void){return gone();}\n", shared=False, libs=[library]
    )
    library.unlink()
    stderr = subprocess.run([str(program)], capture_output=True, text=True).stderr
    (message,) = parse_messages(stderr)
    assert (message.kind, message.library, message.program) == (
        MessageKind.NOT_FOUND,
        "libgdgone.so.1",
        str(program),
    )
    assert explain(stderr).commands[0] == f"glibc-doctor scan {program}"


def test_real_symbol_lookup_error_at_run_time(tmp_path: Path) -> None:
    library = compile_elf(
        tmp_path / "libgdsym.so.1", "int gd_later(void){return 0;}\n", soname="libgdsym.so.1"
    )
    program = compile_elf(
        tmp_path / "prog",
        "int gd_later(void);\nint main(void){return gd_later();}\n",
        shared=False,
        libs=[library],
        rpath=[str(tmp_path)],
        extra=["-Wl,-z,lazy"],
    )
    compile_elf(library, "int gd_other(void){return 0;}\n", soname="libgdsym.so.1")
    stderr = subprocess.run([str(program)], capture_output=True, text=True).stderr
    (message,) = parse_messages(stderr)
    assert (message.kind, message.symbol, message.program) == (
        MessageKind.UNDEFINED_SYMBOL,
        "gd_later",
        str(program),
    )


def test_real_ld_debug_noise_yields_the_one_error_once(tmp_path: Path) -> None:
    library = compile_elf(
        tmp_path / "libfuture.so",
        "int gd_future(void);\nint lf(void){return gd_future();}\n",
        soname="libfuture.so",
        libs=[fake_libc(tmp_path)],
    )
    program = compile_elf(
        tmp_path / "prog",
        "int lf(void);\nint main(void){return lf();}\n",
        shared=False,
        libs=[library],
        rpath=[str(tmp_path)],
        extra=["-Wl,--allow-shlib-undefined"],
    )
    env = {**os.environ, "LD_DEBUG": "libs,versions"}
    stderr = subprocess.run([str(program)], capture_output=True, text=True, env=env).stderr
    assert "checking for version" in stderr
    (message,) = parse_messages(stderr)
    assert (message.version, message.required_by) == ("GLIBC_2.99", str(library))


def test_real_traceback_with_two_import_errors_gives_both(
    future_import: tuple[Path, str], missing_library_import: tuple[Path, str]
) -> None:
    shutil.copy(future_import[0], missing_library_import[0].parent)
    code = "try:\n    import future\nexcept ImportError:\n    import needsmissing\n"
    stderr = python_error(missing_library_import[0].parent, code)
    assert "During handling of the above exception" in stderr
    assert [m.kind for m in explain(stderr).messages] == [MessageKind.MISSING_VERSION, MessageKind.NOT_FOUND]


def test_real_wrong_elf_class_from_a_32_bit_header(tmp_path: Path) -> None:
    module = build_module(tmp_path, "narrow")
    data = bytearray(module.read_bytes())
    data[4] = 1  # EI_CLASS = ELFCLASS32
    module.write_bytes(bytes(data))
    (message,) = parse_messages(python_error(tmp_path, "import narrow"))
    assert (message.kind, message.detail, message.required_by) == (
        MessageKind.WRONG_ELF,
        "ELFCLASS32",
        str(module),
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"not an elf at all, just text\n" * 10, "invalid ELF header"), (b"", "file too short")],
)
def test_real_unreadable_module_says_why(tmp_path: Path, content: bytes, detail: str) -> None:
    (tmp_path / f"broken{EXT_SUFFIX}").write_bytes(content)
    (message,) = parse_messages(python_error(tmp_path, "import broken"))
    assert (message.kind, message.detail) == (MessageKind.UNREADABLE, detail)


# --- the lab: glibc 2.31 interpreters, real failures ----------------------------------------------


@pytest.mark.lab
def test_lab_python_import_error_is_explained_with_glibc_2_31(lab) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [str(lab.venv_python), "-c", "import ext_pthread"], capture_output=True, text=True, env=lab.environ()
    )
    explanation = explain(result.stderr)
    (finding,) = explanation.findings
    assert "loaded glibc 2.31 from" in finding.cause
    assert (finding.message.version, finding.min_glibc) == ("GLIBC_2.34", "2.34")
    assert finding.target is not None
    assert os.path.realpath(finding.target) == os.path.realpath(lab.venv)
    assert f"glibc-doctor fix {finding.target}" in explanation.commands


@pytest.mark.lab
def test_lab_ruby_load_error_is_explained(lab) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [str(lab.ruby), "-e", 'require "rbext"'], capture_output=True, text=True, env=lab.environ()
    )
    assert "(LoadError)" in result.stderr
    (finding,) = explain(result.stderr).findings
    assert (finding.message.version, finding.message.required_by) == ("GLIBC_2.34", str(lab.ruby_ext))
    assert finding.target is not None
    assert os.path.realpath(finding.target) == os.path.realpath(lab.ruby)


# --- pasted text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("quoted", ["`GLIBC_2.38'", "'GLIBC_2.38'", "‘GLIBC_2.38’"])
def test_every_quoting_style_of_the_version_is_read(quoted: str) -> None:
    text = f"ImportError: /lib/libc.so.6: version {quoted} not found (required by /x/psycopg.so)"
    (message,) = parse_messages(text)
    assert (message.version, message.required_by) == ("GLIBC_2.38", "/x/psycopg.so")


def test_site_packages_path_points_at_its_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "lib" / "python3.12" / "site-packages" / "psycopg").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    module = (
        venv / "lib" / "python3.12" / "site-packages" / "psycopg" / "_psycopg.cpython-312-x86_64-linux-gnu.so"
    )
    provider = "/nix/store/abc-glibc-2.31/lib/libc.so.6"
    text = f"ImportError: {provider}: version 'GLIBC_2.38' not found (required by {module})"
    explanation = explain(text)
    assert explanation.commands == (f"glibc-doctor scan {venv}", f"glibc-doctor fix {venv}")


def test_nix_glibc_release_is_read_from_its_store_path() -> None:
    text = (
        "ImportError: /nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31-74/lib/libc.so.6: version "
        "`GLIBC_2.34' not found (required by /home/u/app/.venv/lib/python3.9/site-packages/x.so)"
    )
    (finding,) = explain(text).findings
    assert finding.cause.startswith("the process loaded glibc 2.31 from /nix/store/")
    assert finding.target == "/home/u/app/.venv"


@pytest.mark.parametrize(
    ("version", "gcc"),
    [
        ("GLIBCXX_3.4.30", "12.1.0"),
        ("CXXABI_1.3.13", "11.1.0"),
        ("GLIBCXX_3.4.29", "11.1.0"),
        ("GCC_12.0.0", "12.0.0"),
    ],
)
def test_libstdcxx_versions_name_the_first_gcc_that_has_them(version: str, gcc: str) -> None:
    text = (
        f"ImportError: /usr/lib/x86_64-linux-gnu/libstdc++.so.6: version `{version}' not found "
        "(required by /opt/conda/lib/python3.10/site-packages/scipy/_lib/_ccallback_c.so)"
    )
    (finding,) = explain(text).findings
    assert (finding.min_gcc, finding.min_glibc) == (gcc, None)
    assert f"GCC {gcc} or newer" in finding.cause


def test_machine_libstdcxx_newest_version_maps_to_its_gcc_major() -> None:
    library = Path("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
    if not library.exists():
        pytest.skip("no system libstdc++")
    names = set(re.findall(rb"GLIBCXX_3\.4\.\d+", library.read_bytes()))
    newest = max(names, key=lambda n: int(n.rsplit(b".", 1)[1])).decode()
    gcc_major = (
        subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip().split(".")[0]
    )
    assert (min_gcc_for(newest) or "").split(".")[0] == gcc_major


def test_relocation_error_with_glibc_private_blames_mixed_glibc_builds() -> None:
    text = (
        "./app: relocation error: /nix/store/x-glibc-2.31/lib/libc.so.6: symbol _dl_exception_create, "
        "version GLIBC_PRIVATE not defined in file ld-linux-x86-64.so.2 with link time reference"
    )
    (finding,) = explain(text).findings
    assert (finding.message.symbol, finding.message.library) == (
        "_dl_exception_create",
        "ld-linux-x86-64.so.2",
    )
    assert "different glibc build" in finding.cause


def test_missing_glibc_private_version_blames_mixed_glibc_builds() -> None:
    text = (
        "python3: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_PRIVATE' not found (required by "
        "/nix/store/y-glibc-2.35/lib/libm.so.6)"
    )
    (finding,) = explain(text).findings
    assert "different glibc build" in finding.cause
    assert finding.min_glibc is None


def test_newer_libc_with_an_older_loader_is_a_loader_mismatch() -> None:
    text = (
        "python3: /nix/store/a-glibc-2.31/lib/ld-linux-x86-64.so.2: version `GLIBC_2.35' not found "
        "(required by /lib/x86_64-linux-gnu/libc.so.6)"
    )
    (finding,) = explain(text).findings
    assert "come from different glibc builds" in finding.cause
    assert finding.min_glibc == "2.35"


def test_ruby_3_load_error_with_internal_frame_points_at_the_gem_ruby() -> None:
    text = (
        "<internal:/usr/lib/ruby/3.1.0/rubygems/core_ext/kernel_require.rb>:85:in `require': libpq.so.5: "
        "cannot open shared object file: No such file or directory - "
        "/var/lib/gems/3.1.0/gems/pg-1.5.4/lib/pg_ext.so (LoadError)"
    )
    (finding,) = explain(text).findings
    assert (finding.message.library, finding.message.required_by) == (
        "libpq.so.5",
        "/var/lib/gems/3.1.0/gems/pg-1.5.4/lib/pg_ext.so",
    )
    assert finding.target == "/usr/bin/ruby"


def test_exec_stack_refusal_of_glibc_2_41_is_explained() -> None:
    text = (
        "ImportError: /venv/lib/python3.13/site-packages/x/_x.so: cannot enable executable stack as "
        "shared object requires: Invalid argument"
    )
    (finding,) = explain(text).findings
    assert finding.message.kind is MessageKind.EXEC_STACK
    assert "-z noexecstack" in finding.cause


# Captured from the real loaders (tests/core/test_refusals_lab.py feeds every live one through explain).
REAL_REFUSALS = {
    MessageKind.DT_RELR: "ImportError: /tmp/refx/relr_libm.so: DT_RELR without GLIBC_ABI_DT_RELR dependency",
    MessageKind.ISA_LEVEL: "OSError: /tmp/refx/isa_v4.so: CPU ISA level is lower than required",
    MessageKind.STATIC_TLS: "ImportError: /tmp/refx/tls4096.so: cannot allocate memory in static TLS block",
}


@pytest.mark.parametrize("kind", list(REAL_REFUSALS))
def test_each_loader_refusal_beyond_versions_is_recognised(kind: MessageKind) -> None:
    (finding,) = explain(REAL_REFUSALS[kind]).findings
    assert finding.message.kind is kind
    assert finding.message.required_by == REAL_REFUSALS[kind].split(": ")[1]


def test_a_static_tls_refusal_suggests_the_preload_and_the_tunable() -> None:
    (finding,) = explain(REAL_REFUSALS[MessageKind.STATIC_TLS]).findings
    assert "LD_PRELOAD=/tmp/refx/tls4096.so" in finding.cause
    assert "glibc.rtld.optional_static_tls" in finding.cause


def test_the_dt_relr_marker_needs_glibc_2_36_and_a_relink() -> None:
    text = (
        "OSError: /nix/store/abc-glibc-2.31/lib/libc.so.6: version `GLIBC_ABI_DT_RELR' not found "
        "(required by /tmp/refx/relr_marker.so)"
    )
    (finding,) = explain(text).findings
    assert finding.min_glibc == "2.36"
    assert "without -z pack-relative-relocs" in finding.cause


def test_a_system_glibc_library_in_an_old_glibc_process_is_named_as_such() -> None:
    text = (
        "/nix/store/abc-glibc-2.31/lib/libc.so.6: version `GLIBC_ABI_DT_RELR' not found "
        "(required by /lib/x86_64-linux-gnu/libresolv.so.2)"
    )
    if not Path("/lib/x86_64-linux-gnu/libresolv.so.2").exists() or MACHINE_GLIBC == "2.31":
        pytest.skip("needs a Debian-style glibc other than 2.31")
    (finding,) = explain(text).findings
    assert f"a library of glibc {MACHINE_GLIBC} in a glibc 2.31 process" in finding.cause


def test_undefined_symbol_with_a_glibc_version_gives_the_minimum_glibc() -> None:
    text = "python3: symbol lookup error: /x/ext.so: undefined symbol: strlcpy, version GLIBC_2.38"
    (finding,) = explain(text).findings
    assert (finding.message.symbol, finding.min_glibc) == ("strlcpy", "2.38")


def test_several_glibc_needs_summarize_to_the_highest_minimum() -> None:
    text = "\n".join(
        f"ImportError: /lib/libc.so.6: version `GLIBC_{v}' not found (required by /x/{v}.so)"
        for v in ("2.34", "2.38", "2.9")
    )
    assert explain(text).min_glibc == "2.38"


def test_existing_paths_named_in_messages_are_reported(future_import: tuple[Path, str]) -> None:
    module, stderr = future_import
    assert str(module) in explain(stderr).paths


def test_a_megabyte_token_near_a_keyword_is_parsed_in_linear_time() -> None:
    with cpu_budget(1.0, "a megabyte token"):
        explanation = explain("x" * 1_000_000 + ": undefined symbol")
    assert explanation.messages == ()


def test_ld_debug_flood_of_a_hundred_thousand_lines_is_fast() -> None:
    noise = "     1234:\tsymbol=foo;  lookup in file=/lib/x86_64-linux-gnu/libc.so.6 [0]\n" * 100_000
    with cpu_budget(3.0, "100000 lines of LD_DEBUG"):
        assert explain(noise).messages == ()


def test_message_quoted_inside_a_repr_is_found() -> None:
    text = "RuntimeError: OSError('libfoo.so.1: cannot open shared object file: No such file or directory')"
    (message,) = parse_messages(text)
    assert (message.library, message.detail) == ("libfoo.so.1", "No such file or directory")


@pytest.mark.parametrize(
    "text",
    ["", "hello world", "Traceback (most recent call last):\nKeyError: 'x'\n", "\x00\x7fELF\x02garbage"],
)
def test_unknown_text_has_no_messages_and_says_what_to_paste(text: str) -> None:
    explanation = explain(text)
    assert (explanation.messages, explanation.summary, explanation.commands) == ((), NO_MESSAGE, ())


def test_message_without_any_path_suggests_diagnose() -> None:
    explanation = explain("OSError: libfoo.so.1: cannot open shared object file: No such file or directory")
    assert "glibc-doctor diagnose -- <the command that failed>" in explanation.commands


def test_debian_dist_packages_points_at_the_system_python() -> None:
    assert target_for_path("/usr/lib/python3/dist-packages/yaml/_yaml.cpython-311-x86_64-linux-gnu.so") == (
        "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "/usr"
    )


def test_explanation_json_carries_the_records(future_import: tuple[Path, str]) -> None:
    data = explain(future_import[1]).as_json()
    assert [m["version"] for m in data["messages"]] == ["GLIBC_2.99"]
    assert data["min_glibc"] == "2.99"
