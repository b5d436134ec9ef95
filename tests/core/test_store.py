"""The store: manifests, lock, status, rollback, gc, the ensure fast path and the shell hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from glibc_doctor.core import store
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.patch.activate import activate_venv
from glibc_doctor.core.patch.manifest import BuildRecord, Manifest
from glibc_doctor.core.stdenv import find_stdenv


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CC", "NIX_CC", "GLIBC_DOCTOR_FAULT")}
    environ.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return environ


def _record(
    package: str, fingerprint: str = "f" * 64, activation: dict[str, object] | None = None
) -> BuildRecord:
    return BuildRecord(package, f"{package}/bin/python3.9", fingerprint, {"version": "2.36"}, (), activation)


def _manifest(env: dict[str, str], name: str = "venv", **changes: object) -> Manifest:
    packages = store.packages_dir(env)
    manifest = Manifest(
        id=f"{name}-0000abcd",
        kind="python",
        spec=f"/work/{name}",
        ext=(),
        environment=f"/work/{name}",
        source_package="/store/aaaa-python3.9",
        source_interpreter="/store/aaaa-python3.9/bin/python3.9",
        glibc_dir=None,
        current=_record(str(packages / "python3.9-current")),
    )
    return replace(manifest, **changes)  # type: ignore[arg-type]


def test_a_manifest_survives_its_json(env: dict[str, str]) -> None:
    manifest = _manifest(env, previous=_record("/p/old"), remaining=({"object": "x", "reason": "r"},))
    store.save_manifest(manifest, env)
    assert store.load_manifests(env) == [manifest]


def test_a_damaged_manifest_is_skipped(env: dict[str, str]) -> None:
    store.save_manifest(_manifest(env), env)
    (store.manifests_dir(env) / "broken.json").write_text("{not json")
    assert [m.id for m in store.load_manifests(env)] == ["venv-0000abcd"]


def test_manifests_are_written_atomically_without_leftovers(env: dict[str, str]) -> None:
    store.save_manifest(_manifest(env), env)
    store.save_manifest(_manifest(env), env)
    assert [p.name for p in store.manifests_dir(env).iterdir()] == ["venv-0000abcd.json"]


def test_gc_keeps_current_and_previous_and_removes_the_rest(env: dict[str, str]) -> None:
    packages = store.packages_dir(env)
    for name in ("python3.9-current", "python3.9-previous", "python3.9-old", ".staging-python3.9-x"):
        (packages / name / "bin").mkdir(parents=True)
    store.save_manifest(_manifest(env, previous=_record(str(packages / "python3.9-previous"))), env)
    removed = store.gc(env)
    assert sorted(os.path.basename(path) for path in removed) == [".staging-python3.9-x", "python3.9-old"]
    assert sorted(p.name for p in packages.iterdir()) == ["python3.9-current", "python3.9-previous"]


def test_gc_keeps_the_glibc_views_that_kept_builds_name_and_removes_the_rest(env: dict[str, str]) -> None:
    views = store.views_dir(env)
    for name in ("aaaa000000000000", "bbbb000000000000", "cccc000000000000", ".staging-dddd-x"):
        (views / name / "lib").mkdir(parents=True)
    current = replace(
        _record(str(store.packages_dir(env) / "python3.9-current")), view=str(views / "aaaa000000000000")
    )
    previous = replace(_record("/p/previous"), view=str(views / "bbbb000000000000"))
    store.save_manifest(_manifest(env, current=current, previous=previous), env)
    removed = store.gc(env)
    assert sorted(os.path.basename(path) for path in removed) == [".staging-dddd-x", "cccc000000000000"]
    assert sorted(p.name for p in views.iterdir()) == ["aaaa000000000000", "bbbb000000000000"]


def test_a_manifest_names_the_glibc_view_of_its_build(env: dict[str, str]) -> None:
    manifest = _manifest(env, current=replace(_record("/p/current"), view="/d/glibc/aaaa000000000000"))
    store.save_manifest(manifest, env)
    (loaded,) = store.load_manifests(env)
    assert loaded.current.view == "/d/glibc/aaaa000000000000"


def test_gc_removes_a_build_whose_directories_are_read_only(env: dict[str, str]) -> None:
    stale = store.packages_dir(env) / "python3.9-old" / "lib"
    stale.mkdir(parents=True)
    (stale / "x").write_text("x")
    stale.chmod(0o555)
    store.gc(env)
    assert not stale.exists()


def _venv(tmp_path: Path, source: str) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3.9").symlink_to(f"{source}/bin/python3.9")
    (venv / "pyvenv.cfg").write_text(f"home = {source}/bin\n")
    return venv


def test_rollback_without_a_previous_build_restores_the_original_and_forgets_the_fix(
    env: dict[str, str], tmp_path: Path
) -> None:
    venv = _venv(tmp_path, "/store/aaaa-python3.9")
    build = str(store.packages_dir(env) / "python3.9-current")
    activation = activate_venv(str(venv), "/store/aaaa-python3.9", build)
    store.save_manifest(
        _manifest(env, spec=str(venv), current=_record(build, activation=activation.as_json())), env
    )
    message = store.rollback(str(venv), env)
    assert "back to the original" in message
    assert os.readlink(venv / "bin" / "python3.9") == "/store/aaaa-python3.9/bin/python3.9"
    assert store.load_manifests(env) == []


def test_rollback_with_a_previous_build_switches_back_to_it(env: dict[str, str], tmp_path: Path) -> None:
    packages = store.packages_dir(env)
    venv = _venv(tmp_path, str(packages / "python3.9-previous"))
    activation = activate_venv(
        str(venv), str(packages / "python3.9-previous"), str(packages / "python3.9-current")
    )
    previous = _record(str(packages / "python3.9-previous"))
    current = _record(str(packages / "python3.9-current"), activation=activation.as_json())
    store.save_manifest(_manifest(env, spec=str(venv), current=current, previous=previous), env)
    store.rollback(str(venv), env)
    assert os.readlink(venv / "bin" / "python3.9") == f"{packages}/python3.9-previous/bin/python3.9"
    (manifest,) = store.load_manifests(env)
    assert manifest.current == previous
    assert manifest.previous is None


def test_rollback_of_an_unknown_target_is_one_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(PatchError, match="no fix recorded"):
        store.rollback("/nowhere", env)


def test_status_says_stale_when_the_stdenv_fingerprint_changed(env: dict[str, str]) -> None:
    store.save_manifest(_manifest(env), env)
    (entry,) = store.status(env)
    assert entry.up_to_date is False


def test_status_says_up_to_date_when_the_fingerprint_matches(env: dict[str, str]) -> None:
    fingerprint = find_stdenv(env=env).fingerprint
    store.save_manifest(_manifest(env, current=_record("/p/current", fingerprint)), env)
    (entry,) = store.status(env)
    assert entry.up_to_date is True


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_ensure_with_nothing_fixed_does_not_even_probe_the_compiler(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "empty-bin").mkdir()
    code = (
        "from glibc_doctor.core import store; import sys; "
        "print(store.ensure().checked, 'glibc_doctor.core.elf' in sys.modules)"
    )
    assert _python(code, {**env, "PATH": str(tmp_path / "empty-bin")}) == "0 False"


def test_ensure_with_an_up_to_date_manifest_does_no_elf_work(env: dict[str, str]) -> None:
    fingerprint = find_stdenv(env=env).fingerprint  # warms the probe cache, as a first `fix` does
    store.save_manifest(_manifest(env, current=_record("/p/current", fingerprint)), env)
    code = (
        "from glibc_doctor.core import store; import sys; r = store.ensure(); "
        "print(r.checked, len(r.rebuilt), 'glibc_doctor.core.elf' in sys.modules)"
    )
    assert _python(code, env) == "1 0 False"


def test_the_store_lock_serialises_processes(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    holder = (
        "import time; from glibc_doctor.core import store\n"
        f"with store.locked():\n    open({str(log)!r}, 'a').write('A-start\\n'); time.sleep(0.6)\n"
        f"    open({str(log)!r}, 'a').write('A-end\\n')\n"
    )
    waiter = (
        "from glibc_doctor.core import store\n"
        f"with store.locked():\n    open({str(log)!r}, 'a').write('B\\n')\n"
    )
    first = subprocess.Popen([sys.executable, "-c", holder], env=env)
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.Popen([sys.executable, "-c", waiter], env=env)
    assert first.wait(timeout=20) == 0
    assert second.wait(timeout=20) == 0
    assert log.read_text().splitlines() == ["A-start", "A-end", "B"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_hook_runs_ensure_quietly(shell: str) -> None:
    assert "glibc-doctor ensure --quiet" in store.hook_snippet(shell)


def test_the_bash_hook_is_valid_bash_and_idempotent(tmp_path: Path) -> None:
    script = store.hook_snippet("bash") * 2 + 'echo "$PROMPT_COMMAND"\n'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "_glibc_doctor_ensure"


def test_an_unknown_shell_is_refused() -> None:
    with pytest.raises(PatchError, match="unknown shell"):
        store.hook_snippet("tcsh")


def test_the_manifest_id_is_readable_and_stable() -> None:
    assert store.manifest_id("/home/me/project/.venv", ".venv") == store.manifest_id(
        "/home/me/project/.venv", ".venv"
    )
    assert store.manifest_id("/a/.venv", ".venv").startswith(".venv-")
    assert json.dumps(store.manifest_id("/a b/ü", "ü x")).isascii()


def test_the_hook_command_prints_the_snippet(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "hook", "zsh"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == store.hook_snippet("zsh")


def test_ensure_on_an_empty_store_says_so_and_succeeds(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0 fixed target(s), all up to date"


def test_the_entry_point_answers_a_no_op_ensure_without_the_parser_or_the_records(
    env: dict[str, str],
) -> None:
    code = (
        "import sys; from glibc_doctor.tui.cli import main; code = main(['ensure', '--quiet']); "
        "heavy = ('argparse', 'pathlib', 'typing', 'rich', 'glibc_doctor.core.model', "
        "'glibc_doctor.core.store'); "
        "print(code, [name for name in heavy if name in sys.modules])"
    )
    assert _python(code, env) == "0 []"


def test_a_second_no_op_ensure_answers_from_the_last_verdict_without_json(env: dict[str, str]) -> None:
    fingerprint = find_stdenv(env=env).fingerprint
    store.save_manifest(_manifest(env, current=_record("/p/current", fingerprint)), env)
    past = time.time_ns() - 10 * 10**9
    for path in (store.manifests_dir(env), *store.manifests_dir(env).iterdir()):
        os.utime(path, ns=(past, past))
    code = (
        "import sys; from glibc_doctor.tui.cli import main; main(['ensure', '--quiet']); "
        "print(main(['ensure']), 'json' in sys.modules)"
    )
    assert _python(code, env).splitlines()[-1] == "0 True"  # the first one read the manifests
    code = "import sys; from glibc_doctor.tui.cli import main; print(main(['ensure']), 'json' in sys.modules)"
    assert _python(code, env).splitlines() == ["1 fixed target(s), all up to date", "0 False"]


def test_a_no_op_back_in_a_known_environment_reads_no_json(env: dict[str, str]) -> None:
    """Switching between two environments (a venv activated, then not) leaves the verdict of the other
    one each time: the manifests then come from their marshal digest, the stdenv from its probe cache."""
    fingerprint = find_stdenv(env=env).fingerprint
    store.save_manifest(_manifest(env, current=_record("/p/current", fingerprint)), env)
    code = "import sys; from glibc_doctor.tui.cli import main; print(main(['ensure']), 'json' in sys.modules)"
    elsewhere = {**env, "PATH": env["PATH"] + ":/nonexistent"}
    assert _python(code, env).splitlines()[-1] == "0 True"  # the first read the manifest's JSON
    assert _python(code, elsewhere).splitlines()[-1] == "0 True"  # a new PATH: the compiler probed again
    assert _python(code, env).splitlines() == ["1 fixed target(s), all up to date", "0 False"]
    store.save_manifest(_manifest(env, "other", current=_record("/p/other", fingerprint)), env)
    assert _python(code, elsewhere).splitlines() == ["2 fixed target(s), all up to date", "0 True"]


def test_gc_removes_profile_generations_of_removed_builds_but_not_the_one_in_use(env: dict[str, str]) -> None:
    from glibc_doctor.core.patch.activate import activate_profile

    packages = store.packages_dir(env)
    for name in ("python3.9-current", "python3.9-old"):
        (packages / name / "bin").mkdir(parents=True)
        (packages / name / "bin" / "python3.9").write_text("")
    profile = store.profiles_dir(env) / "python3.9"
    activate_profile(str(profile), str(packages / "python3.9-old"))
    activate_profile(str(profile), str(packages / "python3.9-current"))
    store.save_manifest(_manifest(env), env)
    store.gc(env)
    generations = [p.name for p in profile.iterdir() if p.name.startswith("gen-")]
    assert len(generations) == 1
    assert os.path.realpath(profile / "bin" / "python3.9") == str(
        packages / "python3.9-current" / "bin" / "python3.9"
    )


def test_a_target_pinned_by_rollback_is_left_alone_by_ensure(env: dict[str, str]) -> None:
    store.save_manifest(_manifest(env, pinned=True), env)
    report = store.ensure(env)
    assert report.checked == 1
    assert report.rebuilt == ()
    assert report.failed == ()
