"""The installed ``glibc-doctor`` command, run as a real process: formats, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from glibc_doctor.tui.cli.main import one_line
from glibc_doctor.tui.cli.report import home_path

from tests.gcc import compile_elf
from tests.synthetic import Synthetic

DOCTOR = str(Path(sys.executable).with_name("glibc-doctor"))


def run(
    *args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCTOR, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The user's environment with a private result cache, without loader variables of the test runner."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "XDG_CACHE"))}
    return {**clean, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("glibc-doctor: ")
    assert "Traceback" not in result.stderr


# --- help -------------------------------------------------------------------------------------------


def test_help_teaches_with_examples_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "glibc-doctor scan" in result.stdout
    assert "exit codes" in result.stdout


def test_scan_help_lists_every_output_format() -> None:
    result = run("scan", "--help")
    assert result.returncode == 0
    for fmt in ("text", "json", "mermaid", "dot", "graphml"):
        assert fmt in result.stdout


def test_python_dash_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "glibc-doctor scan" in result.stdout


# --- usage and input errors: one line, exit 2 ---------------------------------------------------------


def test_scan_without_a_target_is_a_usage_error(env: dict[str, str]) -> None:
    assert_one_line_error(run("scan", env=env))


def test_an_unknown_format_is_a_usage_error(env: dict[str, str], synthetic: Synthetic) -> None:
    assert_one_line_error(run("scan", synthetic.app, "--format", "svg", env=env))


def test_an_unknown_command_is_a_usage_error(env: dict[str, str]) -> None:
    assert_one_line_error(run("frobnicate", "--now", env=env))


def test_a_missing_target_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    assert_one_line_error(run("scan", tmp_path / "nothing-here", env=env))


@pytest.mark.parametrize("name", ["text", "empty", "garbage_after_magic", "truncated_header"])
def test_a_target_that_is_not_a_usable_elf_is_one_line_and_exit_2(
    env: dict[str, str], synthetic: Synthetic, name: str
) -> None:
    assert_one_line_error(run("scan", getattr(synthetic, name), env=env))


@pytest.mark.parametrize("name", ["symlink_loop", "dangling"])
def test_a_broken_link_as_target_is_one_line_and_exit_2(
    env: dict[str, str], synthetic: Synthetic, name: str
) -> None:
    assert_one_line_error(run("scan", getattr(synthetic, name), env=env))


def test_an_unreadable_target_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "python3"
    os.mkfifo(fifo)
    assert_one_line_error(run("scan", fifo, env=env))


def test_explain_with_an_empty_message_is_a_usage_error(env: dict[str, str]) -> None:
    assert_one_line_error(run("explain", "-", env=env, stdin=""))


# --- scan formats and exit codes -----------------------------------------------------------------------


def scan(s: Synthetic, ext: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run("scan", s.app, "--ext", ext, *args, env=env)


def test_scan_json_has_the_stable_keys(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--json", env=env)
    document = json.loads(result.stdout)
    assert {"target", "interpreter", "glibc", "stdenv", "objects", "edges", "conflicts"} <= set(document)
    assert {"version", "libc", "loader"} <= set(document["glibc"])
    assert {"path", "role", "soname", "needed", "rpath", "runpath", "requires", "defines"} <= set(
        document["objects"][0]
    )
    assert {"from", "to", "needed", "via"} <= set(document["edges"][0])


def test_scan_json_reports_every_missing_version_and_exits_1(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--json", env=env)
    assert result.returncode == 1
    conflicts = json.loads(result.stdout)["conflicts"]
    missing = [(c["object"], c["version"]) for c in conflicts if c["kind"] == "missing-version"]
    assert missing == [
        (str(synthetic.ext_needs_238), "GLIBC_2.34"),
        (str(synthetic.ext_needs_238), "GLIBC_2.38"),
    ]
    assert json.loads(result.stdout)["glibc"]["version"] == "2.31"


def test_a_clean_process_exits_0(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = scan(synthetic, synthetic.ext_clean, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert [c for c in json.loads(result.stdout)["conflicts"] if c["severity"] == "error"] == []


def test_the_text_report_names_the_glibc_the_broken_extension_and_the_fix(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--glibc", str(synthetic.new_glibc), env=env)
    assert result.returncode == 1
    out = result.stdout
    assert "glibc 2.31" in out
    assert synthetic.ext_needs_238.name in out
    assert "GLIBC_2.38" in out
    assert "strlcpy" in out
    assert (
        f"glibc-doctor fix {synthetic.app} --ext {synthetic.ext_needs_238} --glibc {synthetic.new_glibc}"
        in out
    )


def test_the_text_report_says_when_the_stdenv_is_too_old_to_help(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--glibc", str(synthetic.old_glibc), env=env)
    assert "no: needs 2.38 > stdenv 2.31" in result.stdout
    assert "run  glibc-doctor fix" not in result.stdout


def test_the_verbose_text_report_adds_the_load_tree_and_every_record(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--verbose", env=env)
    assert "Load tree" in result.stdout
    assert "missing-version GLIBC_2.34" in result.stdout
    assert "pthread_create" in result.stdout


def test_mermaid_output_is_a_flowchart_with_the_conflict_marked(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--format", "mermaid", env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert any(line.strip().startswith("classDef conflict") for line in lines)
    assert any(line.strip().startswith("class ") and line.strip().endswith(" conflict") for line in lines)


def test_dot_output_is_a_digraph(synthetic: Synthetic, env: dict[str, str]) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--format", "dot", env=env)
    assert result.stdout.startswith("digraph process {")
    assert result.stdout.rstrip().endswith("}")
    assert "color=red" in result.stdout


def test_graphml_output_reads_back_with_networkx(
    synthetic: Synthetic, env: dict[str, str], tmp_path: Path
) -> None:
    result = scan(synthetic, synthetic.ext_needs_238, "--format", "graphml", env=env)
    path = tmp_path / "g.graphml"
    path.write_text(result.stdout)
    graph = nx.read_graphml(path)
    assert graph.nodes[str(synthetic.ext_needs_238)]["conflict"] == "true"


def test_a_repeated_json_scan_is_answered_from_the_cache_without_networkx(
    synthetic: Synthetic, env: dict[str, str]
) -> None:
    first = scan(synthetic, synthetic.ext_needs_238, "--json", env=env)
    second = scan(synthetic, synthetic.ext_needs_238, "--json", env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert (second.stdout, second.returncode) == (first.stdout, first.returncode)
    assert "networkx" not in second.stderr
    assert "glibc_doctor.core.scancache" in second.stderr


def test_no_cache_scans_again(synthetic: Synthetic, env: dict[str, str]) -> None:
    scan(synthetic, synthetic.ext_needs_238, "--json", env=env)
    again = scan(
        synthetic,
        synthetic.ext_needs_238,
        "--json",
        "--no-cache",
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert "networkx" in again.stderr


# --- --env: the scanned process's LD_LIBRARY_PATH and LD_PRELOAD -------------------------------------------


@pytest.fixture
def needs_env_lib(tmp_path: Path) -> tuple[Path, Path]:
    """A program needing libenv.so, which only LD_LIBRARY_PATH (the returned directory) can find.

    Both sit in directories of their own: the first scan creates the result cache in ``tmp_path``, and
    a directory the scan depends on that changed just before its entry was written never validates it
    (the cache's racy-timestamp rule), so ``tmp_path`` itself must not be one."""
    lib = compile_elf(
        tmp_path / "envdir" / "libenv.so", "int env_f(void) { return 1; }\n", soname="libenv.so"
    )
    program = compile_elf(
        tmp_path / "bin" / "prog",
        "int env_f(void);\nint main(void) { return env_f() - 1; }\n",
        shared=False,
        libs=[lib],
    )
    return program, lib.parent


def edges_of(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    return {e["needed"]: (e["to"], e["via"]) for e in json.loads(result.stdout)["edges"]}


def test_env_gives_the_scanned_process_an_ld_library_path(
    needs_env_lib: tuple[Path, Path], env: dict[str, str]
) -> None:
    program, directory = needs_env_lib
    assert run("scan", program, "--json", env=env).returncode == 1  # not found without it
    result = run("scan", program, "--json", "--env", f"LD_LIBRARY_PATH={directory}", env=env)
    assert result.returncode == 0, result.stderr
    assert edges_of(result)["libenv.so"] == (f"{directory}/libenv.so", "ld_library_path")


def test_a_cached_scan_is_kept_apart_from_one_with_another_env(
    needs_env_lib: tuple[Path, Path], env: dict[str, str]
) -> None:
    program, directory = needs_env_lib
    with_env = ("--json", "--env", f"LD_LIBRARY_PATH={directory}")
    first = run("scan", program, *with_env, env=env)
    again = run("scan", program, *with_env, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert "networkx" not in again.stderr  # answered from the cache
    assert (again.stdout, again.returncode) == (first.stdout, 0)
    assert run("scan", program, "--json", env=env).returncode == 1


def test_env_with_an_empty_value_unsets_the_callers_variable(
    needs_env_lib: tuple[Path, Path], env: dict[str, str]
) -> None:
    program, directory = needs_env_lib
    caller = {**env, "LD_LIBRARY_PATH": str(directory)}
    assert run("scan", program, "--json", env=caller).returncode == 0
    assert run("scan", program, "--json", "--env", "LD_LIBRARY_PATH=", env=caller).returncode == 1


@pytest.mark.parametrize("setting", ["CC=clang", "LD_PRELOAD", "PATH=/bin"])
def test_env_of_anything_but_the_loaders_variables_is_one_line_and_exit_2(
    synthetic: Synthetic, env: dict[str, str], setting: str
) -> None:
    assert_one_line_error(run("scan", synthetic.app, "--env", setting, env=env))


# --- explain ---------------------------------------------------------------------------------------------

MESSAGE = (
    "ImportError: /nix/store/abc-glibc-2.31/lib/libc.so.6: version `GLIBC_2.38' not found "
    "(required by /srv/app/lib/python3.9/site-packages/_psycopg.so)"
)


def test_explain_a_message_argument_prints_the_cause_and_exits_1(env: dict[str, str]) -> None:
    result = run("explain", MESSAGE, env=env)
    assert result.returncode == 1
    assert "GLIBC_2.38" in result.stdout
    assert "glibc 2.31" in result.stdout
    assert "glibc-doctor fix" in result.stdout


def test_explain_reads_the_message_from_stdin(env: dict[str, str]) -> None:
    result = run("explain", "-", env=env, stdin=f"Traceback (most recent call last):\n{MESSAGE}\n")
    assert result.returncode == 1
    assert "GLIBC_2.38" in result.stdout


def test_explain_json_lists_the_parsed_message(env: dict[str, str]) -> None:
    result = run("explain", "--json", MESSAGE, env=env)
    document = json.loads(result.stdout)
    assert [m["version"] for m in document["messages"]] == ["GLIBC_2.38"]
    assert document["scan"] is None


def test_explain_text_without_a_loader_error_exits_0(env: dict[str, str]) -> None:
    result = run("explain", "everything is fine", env=env)
    assert result.returncode == 0
    assert "No loader error" in result.stdout


@pytest.mark.lab
def test_explain_on_a_real_lab_error_scans_the_venv_it_names(lab: object, env: dict[str, str]) -> None:
    from glibc_doctor.lab.build import Lab

    assert isinstance(lab, Lab)
    lab_env = {**lab.environ(), "XDG_CACHE_HOME": env["XDG_CACHE_HOME"]}
    failed = subprocess.run(
        [str(lab.venv_python), "-c", "import ext_pthread"],
        capture_output=True,
        text=True,
        env=lab_env,
        check=False,
    )
    result = run("explain", "-", env=lab_env, stdin=failed.stderr)
    assert result.returncode == 1
    assert f"scan of {home_path(str(lab.venv))}" in result.stdout
    assert "ext_strlcpy" in result.stdout  # a conflict ld.so never got to name


# --- a running process ----------------------------------------------------------------------------------


def test_the_verbose_text_report_of_a_running_process_shows_every_object_it_maps(env: dict[str, str]) -> None:
    result = run("scan", "--pid", os.getpid(), "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    objects = [o for o in json.loads(result.stdout)["objects"] if o["role"] != "missing"]
    text = run("scan", "--pid", os.getpid(), "--verbose", env=env)
    assert "Traceback" not in text.stderr
    names = {Path(o["path"]).name for o in objects}
    assert all(name in text.stdout for name in names)


def test_a_tui_target_path_that_does_not_exist_is_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert_one_line_error(run(tmp_path / "no-venv-here", env=env))


def test_ensure_quiet_is_answered_without_heavy_imports(env: dict[str, str], tmp_path: Path) -> None:
    quiet_env = {**env, "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONPROFILEIMPORTTIME": "1"}
    result = run("ensure", "--quiet", env=quiet_env)
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"networkx", "rich", "textual", "elftools"}


# --- hostile bytes: newlines in paths, input and file names that are not UTF-8 ------------------------------


def run_bytes(
    *args: str | Path | bytes, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, bytes, str]:
    """Run with a strict UTF-8 stdin/stdout (what a real ``en_US.UTF-8`` locale gives Python)."""
    completed = subprocess.run(
        [DOCTOR, *(os.fsencode(arg) if not isinstance(arg, bytes) else arg for arg in args)],
        capture_output=True,
        env={**env, "PYTHONIOENCODING": "utf-8:strict"},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    return completed.returncode, completed.stdout, completed.stderr.decode("utf-8", "replace")


def test_one_line_escapes_control_characters_and_bytes_that_were_not_utf8() -> None:
    assert one_line("/tmp/evil\nname\x1b[31m caf\udce9 é") == "/tmp/evil\\nname\\x1b[31m caf\\xe9 é"


def test_an_error_naming_a_path_with_a_newline_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = run("scan", tmp_path / "evil\nname", env=env)
    assert_one_line_error(result)
    assert "evil\\nname" in result.stderr


def test_explain_reads_stdin_that_is_not_utf8_under_a_strict_decoder(env: dict[str, str]) -> None:
    code, stdout, stderr = run_bytes("explain", "-", env=env, stdin=b"\xff\xfe\xe9 " + MESSAGE.encode())
    assert "Traceback" not in stderr
    assert (code, b"GLIBC_2.38" in stdout) == (1, True)


@pytest.fixture
def latin1_extension(synthetic: Synthetic, tmp_path: Path) -> Path:
    """A plugin dir holding an extension whose file name is Latin-1 (``caf\\xe9.so``), not UTF-8."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    with open(os.fsencode(plugins) + b"/caf\xe9.so", "wb") as out:
        out.write(synthetic.ext_needs_238.read_bytes())
    return plugins


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("text", b"caf\xe9"), ("mermaid", b"caf\\xe9"), ("dot", b"caf\\\\xe9")],
    ids=["text-as-the-bytes", "mermaid-escaped", "dot-escaped-then-quoted"],
)
def test_a_file_name_that_is_not_utf8_prints_under_a_strict_encoder(
    synthetic: Synthetic, env: dict[str, str], latin1_extension: Path, fmt: str, name: bytes
) -> None:
    code, stdout, stderr = run_bytes(
        "scan", synthetic.app, "--ext", latin1_extension, "--format", fmt, "--no-cache", env=env
    )
    assert "Traceback" not in stderr
    assert (code, name in stdout) == (1, True)
