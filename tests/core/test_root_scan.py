"""``scan --root DIR``: a program inside an unpacked image, as the loader inside it sees it.

- Every program of a Debian trixie arm64 root file system (the aarch64 lab's): the objects the scan
  predicts at start-up are exactly those its own loader lists under qemu (``-L ROOT``,
  ``LD_TRACE_LOADED_OBJECTS``), path for path as seen inside; its python3.13 maps exactly the predicted
  objects after importing its extensions.
- The x86-64 lab copied under a root directory gives the same edges and conflicts as the lab itself.
- The command line: inside paths plus a ``root`` key in JSON, ``fix --root`` refused in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.model import Role
from glibc_doctor.core.process import simulate
from glibc_doctor.core.scan import scan
from glibc_doctor.core.sysroot import Sysroot
from glibc_doctor.lab.arm64 import Arm64Lab, qemu_path
from glibc_doctor.lab.build import Lab

pytestmark = pytest.mark.lab


def _programs(root: Path) -> list[str]:
    """Every dynamically linked program in ``usr/bin`` (inside paths; links to them left out)."""
    found = []
    for entry in sorted(os.scandir(root / "usr/bin"), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False) and read_elf(entry.path).interpreter:
            found.append(f"/usr/bin/{entry.name}")
    return found


def _listed(root: Path, program: str) -> set[str]:
    """What the image's own loader lists for ``program`` (run under qemu with ``-L root``)."""
    run = subprocess.run(
        [qemu_path(), "-L", str(root), f"{root}{program}"],
        env={"LD_TRACE_LOADED_OBJECTS": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, (program, run.stderr)
    listed = set()
    for line in run.stdout.splitlines():
        words = line.split()
        if "=>" in words:
            listed.add(words[words.index("=>") + 1])
        elif words and words[0].startswith("/"):
            listed.add(words[0])
    return listed


def _startup(root: Sysroot, program: str) -> set[str]:
    """The objects the model predicts at start-up (no extension), the program itself left out."""
    result = scan(program, root=root.dir, use_cache=False, env={})
    graph = simulate(replace(result.target, extensions=()), env={}, root=root)
    return {node for node, data in graph.nodes(data=True) if data["role"] != Role.MISSING} - {program}


def test_every_program_of_an_arm64_image_loads_what_its_own_loader_lists(arm64_lab: Arm64Lab) -> None:
    root = Sysroot.at(str(arm64_lab.rootfs))
    programs = _programs(arm64_lab.rootfs)
    assert len(programs) > 50  # coreutils, bash, python3.13, dpkg …
    with ThreadPoolExecutor(max_workers=4) as pool:
        listed = dict(zip(programs, pool.map(lambda p: _listed(arm64_lab.rootfs, p), programs), strict=True))
    differ = {p: (_startup(root, p), listed[p]) for p in programs if _startup(root, p) != listed[p]}
    assert differ == {}
    assert "/lib/ld-linux-aarch64.so.1" in listed["/usr/bin/bash"]


def test_the_images_python_maps_what_the_scan_predicts_for_its_extensions(arm64_lab: Arm64Lab) -> None:
    root = Sysroot.at(str(arm64_lab.rootfs))
    python = next(p for p in _programs(arm64_lab.rootfs) if p.startswith("/usr/bin/python3."))
    result = scan(python, root=root.dir, use_cache=False, env={})
    modules = sorted(
        {ext.name for ext in result.target.extensions if ext.name in ("_ssl", "_hashlib", "_ctypes")}
    )
    assert modules
    code = f"import {', '.join(modules)}; print(open('/proc/self/maps').read())"
    run = subprocess.run(
        [qemu_path(), "-L", root.dir, root.host(python), "-c", code],
        env={},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    mapped = {line.split(None, 5)[5] for line in run.stdout.splitlines() if len(line.split(None, 5)) == 6}
    mapped_inside = {root.inside(path) for path in mapped if path.startswith(root.dir + "/")}
    wanted = {ext.path for ext in result.target.extensions if ext.name in modules}
    graph = simulate(
        replace(result.target, extensions=tuple(e for e in result.target.extensions if e.path in wanted)),
        env={},
        root=root,
    )
    predicted = {root.realpath(node) for node, data in graph.nodes(data=True) if data["role"] != Role.MISSING}
    assert predicted == {p for p in mapped_inside if read_elf(root.host(p)).ok}


def _mirror(path: str, root: Path) -> None:
    """Copy ``path`` of this machine into ``root`` at the same place, symlinks on the way kept."""
    parts = Path(path).parts[1:]
    here, there = Path("/"), root
    for index, part in enumerate(parts):
        here, there = here / part, there / part
        if here.is_symlink():
            if not there.is_symlink():
                there.parent.mkdir(parents=True, exist_ok=True)
                there.symlink_to(os.readlink(here))
            target = os.readlink(here)
            rest = "/".join(parts[index + 1 :])
            _mirror(os.path.normpath(os.path.join(str(here.parent), target, rest)), root)
            return
    if not there.exists():
        there.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(here, there)


def _scan_json(*args: str) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LD_", "PYTHON"))}
    run = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "scan", *args, "--json", "--no-cache"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    document: dict[str, object] = json.loads(run.stdout)
    return document


def test_the_x86_64_lab_copied_under_a_root_has_the_same_edges_and_conflicts(
    lab: Lab, tmp_path: Path
) -> None:
    image = tmp_path / "image"
    shutil.copytree(lab.store, image / str(lab.store).lstrip("/"), symlinks=True)
    shutil.copytree(lab.site_packages, image / str(lab.site_packages).lstrip("/"), symlinks=True)
    args = (str(lab.python), "--ext", str(lab.site_packages))
    plain = _scan_json(*args)
    for obj in plain["objects"]:  # type: ignore[attr-defined]
        if not str(obj["path"]).startswith((str(lab.root), "not-found:")):
            _mirror(str(obj["path"]), image)  # the machine's libstdc++ and libgcc_s that ext_cxx loads
    _mirror("/etc/ld.so.cache", image)
    rooted = _scan_json("--root", str(image), *args)
    assert rooted["root"] == str(image.resolve())
    assert rooted["edges"] == plain["edges"]
    assert [(c["kind"], c["object"], c["version"]) for c in rooted["conflicts"]] == [  # type: ignore[attr-defined]
        (c["kind"], c["object"], c["version"])
        for c in plain["conflicts"]  # type: ignore[attr-defined]
    ]
    assert rooted["glibc"] == plain["glibc"]


def test_a_root_scan_speaks_in_paths_inside_the_image(arm64_lab: Arm64Lab) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LD_", "PYTHON"))}
    argv = [
        sys.executable,
        "-m",
        "glibc_doctor.tui",
        "scan",
        "--root",
        str(arm64_lab.rootfs),
        "bash",
        "--json",
    ]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["root"] == str(arm64_lab.rootfs)
    assert document["interpreter"] == "/usr/bin/bash"
    assert document["glibc"]["loader"] == "/lib/ld-linux-aarch64.so.1"
    assert all(
        obj["path"].startswith("/") and str(arm64_lab.rootfs) not in obj["path"]
        for obj in document["objects"]
    )
    assert {obj["path"] for obj in document["objects"]} >= {"/lib/aarch64-linux-gnu/libc.so.6"}


def test_a_program_of_an_image_without_root_is_refused_with_the_way_to_scan_it(arm64_lab: Arm64Lab) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "scan", str(arm64_lab.rootfs / "usr/bin/bash")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 2
    assert "aarch64" in run.stderr
    assert "--root DIR" in run.stderr


def test_fix_with_root_is_refused_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "glibc_doctor.tui",
            "fix",
            "--root",
            str(tmp_path),
            "/usr/bin/python3",
            "--yes",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("glibc-doctor: fix does not work with --root")
    assert len(run.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["scan", "--root", "/nonexistent-root", "python3"], ["--root", "/nonexistent-root"]]
)
def test_a_missing_root_is_one_line(args: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 2
    assert "/nonexistent-root" in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_a_venv_inside_an_image_follows_its_absolute_links_and_home_inside(
    arm64_lab: Arm64Lab, tmp_path: Path
) -> None:
    """A container's ``/app/.venv``: ``bin/python3`` links to ``/usr/bin/python3.13`` and pyvenv.cfg says
    ``home = /usr/bin``, both absolute: they are the image's, not this machine's."""
    image = tmp_path / "image"
    shutil.copytree(arm64_lab.rootfs, image, symlinks=True)
    python = next(p for p in _programs(image) if p.startswith("/usr/bin/python3."))
    version = python.rsplit("python", 1)[1]
    venv = image / "app/.venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python3").symlink_to(python)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}.0\n")
    site = venv / f"lib/python{version}/site-packages"
    site.mkdir(parents=True)
    tag = version.replace(".", "")
    source = tmp_path / "plugin.c"
    source.write_text("int absent(void);\nint PyInit_plugin(void) { return absent(); }\n")
    library = tmp_path / "libabsent.so"
    (tmp_path / "absent.c").write_text("int absent(void) { return 0; }\n")
    compiler = shutil.which("aarch64-linux-gnu-gcc") or "aarch64-linux-gnu-gcc"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, tmp_path / "absent.c"], check=True)
    plugin = site / f"plugin.cpython-{tag}-aarch64-linux-gnu.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", plugin, source, f"-L{tmp_path}", "-labsent"], check=True
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LD_", "PYTHON"))}
    run = subprocess.run(
        [sys.executable, "-m", "glibc_doctor.tui", "scan", "--root", str(image), "/app/.venv", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    document = json.loads(run.stdout)
    target = document["target"]
    assert (target["kind"], target["environment"], target["executable"]) == ("python", "/app/.venv", python)
    plugin_inside = f"/app/.venv/lib/python{version}/site-packages/{plugin.name}"
    assert plugin_inside in [ext["path"] for ext in target["extensions"]]
    missing = [(c["kind"], c["object"], c["library"]) for c in document["conflicts"]]
    assert ("not-found", plugin_inside, "libabsent.so") in missing
