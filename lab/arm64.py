"""The aarch64 lab: the real-glibc reproduction of ``lab/build.py`` for arm64, run under qemu-user.

Many who hit the glibc conflict are on arm64. This lab lets an x86-64 machine (or CI) show the same
thing with Debian's arm64 packages: bullseye's glibc 2.31 and python3.9 hard-wired Nix-style with
patchelf (PT_INTERP is the store's ``ld-linux-aarch64.so.1``, DT_RUNPATH the store's directories),
trixie's glibc 2.41 as a second glibc, and extensions built by the cross compiler
``aarch64-linux-gnu-gcc`` (the "stdenv", glibc 2.36 here) that need ``GLIBC_2.34``/``GLIBC_2.38``.
qemu's user-mode emulator (``qemu-aarch64-static``) runs the real arm64 ld.so and python as the oracle:
no binfmt_misc is needed, every program is run as ``qemu-aarch64-static PROG``.

It also unpacks a small Debian trixie arm64 root file system (libc6, coreutils, bash, python3-minimal
and what they depend on, ``dpkg-deb -x``) with its ``etc/ld.so.cache`` made by its own ``ldconfig``
under qemu: ``scan --root`` is checked against its loader on every program of its ``usr/bin``.

Layout (``cache_dir``, ``$GLIBC_DOCTOR_LAB_ARM64`` or ``$XDG_CACHE_HOME/glibc-doctor/lab-arm64``) as
the x86-64 lab's: ``debs/<suite>/`` (kept), ``apt/<suite>/``, ``builds/<id>/`` (never moved), ``lab``
(a symlink swapped atomically), ``lab.lock``.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from glibc_doctor.core.errors import LabError
from glibc_doctor.lab import build as x86
from glibc_doctor.lab.build import LabProgress

ARM64_RECIPE = "1"
TRIPLET = "aarch64-linux-gnu"
LOADER_NAME = "ld-linux-aarch64.so.1"
PY_SUFFIX = ".cpython-39-aarch64-linux-gnu.so"
CROSS_GCC = "aarch64-linux-gnu-gcc"
QEMU_NAMES = ("qemu-aarch64-static", "qemu-aarch64")
PAGE_SIZE = "65536"  # an aarch64 kernel may have 64 KiB pages: every patched PT_LOAD stays 64 KiB aligned

PYTHON_PACKAGES = ("python3.9-minimal", "libpython3.9-minimal", "libpython3.9-stdlib")
PYTHON_DEV_PACKAGES = ("libpython3.9-dev",)
DEPS_PACKAGES = (
    "zlib1g",
    "libexpat1",
    "libssl1.1",
    "libffi7",
    "libbz2-1.0",
    "liblzma5",
    "libmpdec3",
    "libsqlite3-0",
    "libuuid1",
    "libcrypt1",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libdb5.3",
    "libgdbm6",
    "libgdbm-compat4",
    "libnsl2",
    "libtirpc3",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libkrb5support0",
    "libcom-err2",
    "libkeyutils1",
)
# The root file system: these and everything they depend on (apt-cache depends, in the lab's apt).
ROOTFS_SEEDS = ("libc6", "libc-bin", "coreutils", "bash", "python3-minimal")

SUITE_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": ("libc6", "libgcc-s1", *PYTHON_PACKAGES, *PYTHON_DEV_PACKAGES, *DEPS_PACKAGES),
    "trixie": ("libc6",),
}
PYTHON_SMOKE = (
    "import ssl, sqlite3, ctypes, json, decimal, lzma, bz2, zlib, hashlib, uuid\n" + x86.THREAD_EXIT_PROBE
)


@dataclass(frozen=True, slots=True)
class Arm64Lab:
    """Where everything of one built aarch64 lab is (absolute real paths inside ``root``)."""

    root: Path
    recipe: str
    store: Path
    glibc_old_lib: Path  # bullseye's glibc 2.31 (``ld-linux-aarch64.so.1``, ``libc.so.6`` …)
    glibc_new_lib: Path  # trixie's glibc 2.41
    deps_lib: Path
    python: Path  # ``<python_store>/bin/python3.9``, PT_INTERP: glibc 2.31's loader
    python_store: Path
    venv: Path
    venv_python: Path  # ``<venv>/bin/python3.9`` (a symlink to ``python``)
    site_packages: Path
    rootfs: Path  # Debian trixie arm64: libc6, coreutils, bash, python3-minimal (+ etc/ld.so.cache)
    extensions: dict[str, Path] = field(hash=False)

    @property
    def cache_dir(self) -> Path:
        return self.root.parent.parent

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment to run lab programs in (no PYTHON*/LD_*/… of the caller)."""
        source = os.environ if base is None else base
        return {key: value for key, value in source.items() if not x86.FOREIGN_ENV.match(key)}

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run an arm64 program of the lab under qemu (``argv[0]`` is the program)."""
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [qemu_path(), *argv], capture_output=True, text=True, check=False, **kwargs
        )

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "extensions":
                data[name] = {key: str(path) for key, path in value.items()}
            else:
                data[name] = str(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Arm64Lab:
        kwargs: dict[str, object] = {}
        for name in cls.__dataclass_fields__:
            value = data[name]
            if name == "recipe":
                kwargs[name] = str(value)
            elif name == "extensions":
                kwargs[name] = {str(k): Path(str(v)) for k, v in x86._as_dict(value).items()}
            else:
                kwargs[name] = Path(str(value))
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> Arm64Lab | None:
        """The lab built in ``cache_dir`` if complete and of this recipe, else None (no ELF read)."""
        cache_dir = default_cache_dir() if cache_dir is None else cache_dir
        try:
            lab = cls.from_json(json.loads((cache_dir / "lab" / "lab.json").read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        needed = [lab.python, lab.venv_python, lab.rootfs, *lab.extensions.values()]
        return lab if lab.recipe == ARM64_RECIPE and all(path.exists() for path in needed) else None


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$GLIBC_DOCTOR_LAB_ARM64``, else ``$XDG_CACHE_HOME/glibc-doctor/lab-arm64``."""
    env = os.environ if env is None else env
    if env.get("GLIBC_DOCTOR_LAB_ARM64"):
        return Path(env["GLIBC_DOCTOR_LAB_ARM64"])
    cache_home = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "glibc-doctor" / "lab-arm64"


def qemu_path() -> str:
    """qemu's aarch64 user-mode emulator on PATH; LabError when there is none."""
    for name in QEMU_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise LabError("the aarch64 lab needs qemu-aarch64-static (apt-get install qemu-user-static)")


def ensure_arm64_lab(cache_dir: Path | None = None, cancel: threading.Event | None = None) -> Arm64Lab:
    """The aarch64 lab in ``cache_dir``: the built one when valid, else built now. Raises LabError."""
    cache_dir = (default_cache_dir() if cache_dir is None else cache_dir).absolute()
    lab = Arm64Lab.load(cache_dir)
    if lab is not None:
        return lab
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = (cache_dir / "lab.lock").open("a")
    except OSError as error:
        raise LabError(f"cannot use {cache_dir} for the aarch64 lab: {error.strerror or error}") from error
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab = Arm64Lab.load(cache_dir)
        if lab is not None:
            return lab
        for event in _build_locked(cache_dir.resolve(), cancel):
            if isinstance(event.lab, Arm64Lab):
                return event.lab
    raise LabError("the aarch64 lab build was cancelled")


@dataclass(slots=True)
class _Build:
    cache_dir: Path
    root: Path
    tools: dict[str, str] = field(default_factory=dict)
    debs: dict[str, dict[str, Path]] = field(default_factory=dict)
    rootfs_debs: list[Path] = field(default_factory=list)
    entries: dict[str, Path] = field(default_factory=dict)
    extensions: dict[str, Path] = field(default_factory=dict)

    @property
    def unpacked(self) -> Path:
        return self.root / "unpacked"

    @property
    def site_packages(self) -> Path:
        return self.root / "venv" / "lib" / "python3.9" / "site-packages"


def _build_locked(cache_dir: Path, cancel: threading.Event | None) -> Iterator[LabProgress]:
    builds = cache_dir / "builds"
    builds.mkdir(exist_ok=True)
    build = _Build(cache_dir, builds / f"{_recipe_hash()[:8]}-{secrets.token_hex(4)}")
    build.root.mkdir()
    total = len(STEPS) + 1
    try:
        for done, (name, step) in enumerate(STEPS):
            if cancel is not None and cancel.is_set():
                shutil.rmtree(build.root, ignore_errors=True)
                return
            yield LabProgress(name, done, total)
            x86._run_step(name, step, build)  # type: ignore[arg-type]
        lab = x86._run_step("activate", _activate, build)  # type: ignore[arg-type]
    except BaseException:
        shutil.rmtree(build.root, ignore_errors=True)
        raise
    x86._remove_old_builds(builds, keep=build.root)
    yield LabProgress("aarch64 lab ready", total, total, lab)  # type: ignore[arg-type]


def _check_tools(build: _Build) -> None:
    for tool in ("apt-get", "apt-cache", "dpkg-deb", CROSS_GCC):
        path = shutil.which(tool)
        if path is None:
            hint = " (apt-get install gcc-aarch64-linux-gnu)" if tool == CROSS_GCC else ""
            raise LabError(f"the aarch64 lab needs {tool}, which is not on PATH{hint}")
        build.tools[tool] = path
    build.tools["qemu"] = qemu_path()
    build.tools["patchelf"] = x86.find_patchelf()


def _apt(build: _Build, suite: str) -> list[str]:
    return x86._apt_options(build.cache_dir / "apt" / suite, suite, x86.mirror_uri(), arch="arm64")


def _download(build: _Build) -> None:
    """The lab's packages of each suite, and the root file system's closure (trixie), into ``debs/``."""
    updated: set[str] = set()
    rootfs = _rootfs_packages(build, updated)
    wanted = {suite: list(packages) for suite, packages in SUITE_PACKAGES.items()}
    for suite, packages in wanted.items():
        deb_dir = build.cache_dir / "debs" / suite
        deb_dir.mkdir(parents=True, exist_ok=True)
        every = sorted(set(packages) | (set(rootfs) if suite == "trixie" else set()))
        missing = [package for package in every if x86._cached_deb(deb_dir, package) is None]
        if missing:
            _update(build, suite, updated)
            x86._run_apt(
                [*_apt(build, suite), "download", *missing], cwd=deb_dir, what=f"{suite} arm64 packages"
            )
        build.debs[suite] = {}
        for package in every:
            deb = x86._cached_deb(deb_dir, package)
            if deb is None:
                raise LabError(f"apt-get download did not leave {package}_*.deb in {deb_dir}")
            build.debs[suite][package] = deb
    build.rootfs_debs = [build.debs["trixie"][package] for package in rootfs]


def _update(build: _Build, suite: str, updated: set[str]) -> None:
    if suite not in updated:
        deb_dir = build.cache_dir / "debs" / suite
        x86._run_apt([*_apt(build, suite), "update"], cwd=deb_dir, what=f"the {suite} arm64 package index")
        updated.add(suite)


def _rootfs_packages(build: _Build, updated: set[str]) -> list[str]:
    """The root file system's packages: the seeds and their Depends/Pre-Depends, recursively, as
    apt-cache resolves them (remembered in ``debs/trixie/rootfs.txt``: a rebuild asks nothing)."""
    listing = build.cache_dir / "debs" / "trixie" / "rootfs.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    if listing.exists():
        return listing.read_text().split()
    _update(build, "trixie", updated)
    argv = [a.replace(build.tools["apt-get"], build.tools["apt-cache"], 1) for a in _apt(build, "trixie")[:1]]
    argv += _apt(build, "trixie")[1:]
    flags = ["--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"]
    flags += ["--no-replaces", "--no-enhances"]
    output = x86._run([*argv, "depends", *flags, *ROOTFS_SEEDS], "resolve the arm64 root file system")
    names = sorted(
        {line.strip() for line in output.splitlines() if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", line)}
    )
    listing.write_text("\n".join(names) + "\n")
    return names


def _extract(build: _Build) -> None:
    groups = {
        "glibc-old": [build.debs["bullseye"][p] for p in ("libc6", "libgcc-s1")],
        "glibc-new": [build.debs["trixie"]["libc6"]],
        "python": [build.debs["bullseye"][p] for p in PYTHON_PACKAGES],
        "python-dev": [build.debs["bullseye"][p] for p in PYTHON_DEV_PACKAGES],
        "deps": [build.debs["bullseye"][p] for p in DEPS_PACKAGES],
    }
    jobs = []
    for group, debs in groups.items():
        (build.unpacked / group).mkdir(parents=True)
        jobs += [(deb, build.unpacked / group) for deb in debs]
    rootfs = build.root / "rootfs"
    rootfs.mkdir()
    jobs += [(deb, rootfs) for deb in build.rootfs_debs]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(
            pool.map(
                lambda job: x86._run(["dpkg-deb", "-x", str(job[0]), str(job[1])], f"unpack {job[0].name}"),
                jobs,
            )
        )
    for group in groups:
        x86._fix_absolute_links(build.unpacked / group)


def _entry(build: _Build, name: str) -> Path:
    entry = build.entries[name] = x86.new_store_entry(build.root, build.debs, _recipe_hash(), name)
    return entry


def _store(build: _Build) -> None:
    """glibc 2.31, 2.41, the bullseye libraries and python3.9 as store entries (the x86-64 lab's shape)."""
    entry = functools.partial(_entry, build)
    x86.store_glibcs(build.unpacked, TRIPLET, LOADER_NAME, entry, "arm64 ")
    x86.store_deps(build.unpacked, TRIPLET, entry)
    x86.store_python(build.unpacked, TRIPLET, entry)


def _patch_store(build: _Build) -> None:
    """Hard-wire python and every library to the store, with 64 KiB page alignment kept."""
    glibc = build.entries["glibc-2.31"] / "lib"
    deps = build.entries["bullseye-deps"] / "lib"
    python = build.entries["python3.9"]
    runpath = f"{glibc}:{deps}"
    _patchelf(build, python / "bin/python3.9", ["--set-interpreter", str(glibc / LOADER_NAME)], runpath)
    for tree in (deps, python / "lib"):
        for elf in x86._elf_files(tree):
            _patchelf(build, elf, [], runpath)
    for member in ("libc.so.6", "libpthread.so.0"):  # their dlopen("libgcc_s.so.1") searches this
        _patchelf(build, (glibc / member).resolve(), [], str(glibc))


def _patchelf(build: _Build, elf: Path, extra: list[str], runpath: str) -> None:
    argv = [build.tools["patchelf"], "--page-size", PAGE_SIZE, *extra, "--set-rpath", runpath, str(elf)]
    x86._run(argv, f"patchelf {elf.name}")


def _make_venv(build: _Build) -> None:
    """What ``python -m venv --without-pip`` writes, made here (running venv under qemu costs seconds)."""
    python = build.entries["python3.9"] / "bin/python3.9"
    venv = build.root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python3.9").symlink_to(python)
    (venv / "bin/python3").symlink_to("python3.9")
    (venv / "bin/python").symlink_to("python3.9")
    (venv / "include").mkdir()
    build.site_packages.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {python.parent}\ninclude-system-site-packages = false\nversion = 3.9.2\n"
    )


def _compile_extensions(build: _Build) -> None:
    """The extensions, cross-compiled as a user's ``pip install`` on an arm64 machine would build them."""
    python = build.entries["python3.9"]
    includes = ["-I", str(python / "include/python3.9"), "-I", str(python / "include")]
    new_libc = build.entries["glibc-2.41"] / "lib"
    recipes: dict[str, list[str]] = {
        "ext_pthread": [],
        "ext_clean": [],
        # Link against trixie's libc.so.6 first: strlcpy binds to strlcpy@GLIBC_2.38.
        "ext_strlcpy": ["-Wl,--no-as-needed", str(new_libc / "libc.so.6")],
    }
    for name, extra in recipes.items():
        source = x86._source(build, name)  # type: ignore[arg-type]
        out = build.site_packages / f"{name}{PY_SUFFIX}"
        argv = [
            build.tools[CROSS_GCC],
            "-shared",
            "-fPIC",
            "-O1",
            *includes,
            "-o",
            str(out),
            str(source),
            *extra,
        ]
        x86._run(argv, f"cross-compile {name}")
        build.extensions[name] = out


def _compile_stdlib(build: _Build) -> None:
    """Byte-compile the stdlib once under qemu, so every later run starts fast and writes nothing."""
    python = build.entries["python3.9"] / "bin/python3.9"
    stdlib = build.entries["python3.9"] / "lib/python3.9"
    argv = [build.tools["qemu"], str(python), "-m", "compileall", "-q", "-j0", str(stdlib)]
    x86._run(argv, "byte-compile the arm64 stdlib under qemu", env=x86._clean_env())


def _make_rootfs_cache(build: _Build) -> None:
    """The root file system's ``etc/ld.so.cache``, written by its own (static) ldconfig under qemu, as
    the package's postinst does in a real image. Without the privilege to chroot it is left out."""
    rootfs = build.root / "rootfs"
    ldconfig = next((p for p in (rootfs / "usr/sbin/ldconfig", rootfs / "sbin/ldconfig") if p.exists()), None)
    if ldconfig is None:
        raise LabError("the arm64 root file system has no ldconfig (libc-bin)")
    (rootfs / "etc").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        x86._run([build.tools["qemu"], str(ldconfig), "-r", str(rootfs)], "run ldconfig -r under qemu")


def _verify(build: _Build) -> None:
    python = build.entries["python3.9"] / "bin/python3.9"
    env = x86._clean_env()
    x86._run([build.tools["qemu"], str(python), "-c", PYTHON_SMOKE], "run the arm64 python3.9", env=env)
    probe = "import ext_clean; print(ext_clean.length('abc'))"
    venv_python = build.root / "venv/bin/python3.9"
    clean = x86._run(
        [build.tools["qemu"], str(venv_python), "-c", probe], "import ext_clean (arm64)", env=env
    )
    if clean.strip() != "3":
        raise LabError(f"ext_clean.length('abc') returned {clean.strip()!r} in the arm64 venv, not 3")


def _activate(build: _Build) -> Arm64Lab:
    shutil.rmtree(build.unpacked)
    python = build.entries["python3.9"]
    lab = Arm64Lab(
        root=build.root,
        recipe=ARM64_RECIPE,
        store=build.root / "store",
        glibc_old_lib=build.entries["glibc-2.31"] / "lib",
        glibc_new_lib=build.entries["glibc-2.41"] / "lib",
        deps_lib=build.entries["bullseye-deps"] / "lib",
        python=python / "bin/python3.9",
        python_store=python,
        venv=build.root / "venv",
        venv_python=build.root / "venv/bin/python3.9",
        site_packages=build.site_packages,
        rootfs=build.root / "rootfs",
        extensions=dict(build.extensions),
    )
    (build.root / "lab.json").write_text(json.dumps(lab.as_json(), indent=2) + "\n")
    link = build.cache_dir / "lab"
    temporary = build.cache_dir / f".lab-{secrets.token_hex(4)}"
    temporary.symlink_to(os.path.relpath(build.root, build.cache_dir))
    os.replace(temporary, link)
    return lab


def _recipe_hash() -> str:
    return hashlib.sha256(f"arm64:{ARM64_RECIPE}:{SUITE_PACKAGES}:{ROOTFS_SEEDS}".encode()).hexdigest()


STEPS: tuple[tuple[str, Callable[[_Build], None]], ...] = (
    ("check tools", _check_tools),
    ("download Debian arm64 packages", _download),
    ("unpack packages", _extract),
    ("store: glibc 2.31 and 2.41, libraries, python3.9", _store),
    ("patchelf: hard-wire to glibc 2.31", _patch_store),
    ("byte-compile the python stdlib under qemu", _compile_stdlib),
    ("venv of the lab python", _make_venv),
    ("cross-compile extensions", _compile_extensions),
    ("ld.so.cache of the root file system", _make_rootfs_cache),
    ("verify the lab python under qemu", _verify),
)
