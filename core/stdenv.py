"""The stdenv glibc: the glibc the user's compiler gives to what it builds.

``pip install`` and ``gem install`` link new extensions with the user's compiler, so the glibc that
compiler links against is the one a patched interpreter must load. We find it the way the compiler
does: link a tiny probe and read what the linker wrote (a Nix cc-wrapper adds ``-dynamic-linker`` and
``-rpath`` flags; the probe sees exactly those). ``--glibc DIR`` overrides the probe.

The probe costs a compile, so its answer is cached under ``$XDG_CACHE_HOME/glibc-doctor`` keyed by
what could change it (the compiler's real path and mtime, ``PATH``, ``CC``, ``NIX_CC``) and checked
against the stat of the files it found: ``ensure`` must be fast when nothing moved.

A 32-bit x86 target's stdenv is the i386 glibc the same compiler links with ``-m32`` (gcc-multilib;
a Nix cc-wrapper's ``nix-support/dynamic-linker-m32``): ``elf_class=32`` asks for it. A target of
another architecture (an aarch64 store checked on an x86-64 machine) asks with ``machine``: its stdenv
is what that architecture's cross compiler links (``aarch64-linux-gnu-gcc``), as ``cc`` would on the
machine itself; ``machine=0`` is this machine's own.
"""

from __future__ import annotations

import marshal
import os

from glibc_doctor.core.errors import StdenvError

# ``ensure``'s no-op (core/uptodate.py) asks this module for the cached fingerprint before anything else
# is imported: the standard library's os and marshal only at the top (pathlib, typing, collections.abc
# and json, which imports re, each cost more than the whole answer: the probe cache is a marshal file).
# mypy treats this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from glibc_doctor.core.model import StdenvInfo

LOADER_NAME = "ld-linux-x86-64.so.2"
LOADER_NAMES = {64: LOADER_NAME, 32: "ld-linux.so.2"}
EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183  # core.model's, without importing it on the fast path
AARCH64_LOADER = "ld-linux-aarch64.so.1"
# The GNU triplet of each machine a cross compiler may build for (``aarch64-linux-gnu-gcc``).
TRIPLETS = {EM_X86_64: "x86_64-linux-gnu", EM_AARCH64: "aarch64-linux-gnu"}
_UNAME_MACHINES = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64, "i686": EM_386, "i386": EM_386}
LIBC_NAME = "libc.so.6"
LIBSTDCXX_NAME = "libstdc++.so.6"
CACHE_FORMAT = 3
CACHE_FILE = "stdenv.marshal"  # the probe's answers, keyed by what could change them
PROBE_TIMEOUT = 60.0

# Where a distribution's ld.so looks when nothing else says (Debian x86-64 order); used only when the
# probe's own RPATH/RUNPATH and its loader's directory do not hold libc.so.6.
_DEFAULT_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
_DEFAULT_DIRS_32 = (
    "/lib32",
    "/usr/lib32",
    "/lib/i386-linux-gnu",
    "/usr/lib/i386-linux-gnu",
    "/lib",
    "/usr/lib",
)
_GLIBC_SUBDIRS = ("", "lib", "lib64", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib64")
_GLIBC_SUBDIRS_32 = ("", "lib", "lib32", "lib/i386-linux-gnu", "usr/lib/i386-linux-gnu", "usr/lib32")
_GLIBC_SUBDIRS_AARCH64 = ("", "lib", "lib64", "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu")


def host_machine() -> int:
    """This machine's e_machine (``os.uname``), 0 when unknown."""
    return _UNAME_MACHINES.get(os.uname().machine, 0)


def cross_machine(machine: int, elf_class: int = 64) -> int:
    """``machine`` when it needs a cross compiler here, else 0 (this machine's own, or its i386 ABI)."""
    host = host_machine()
    if machine in (0, host) or (machine == EM_386 and elf_class == 32 and host == EM_X86_64):
        return 0
    return machine


class Compiler:
    """The compiler command (``$CC`` may carry flags) and the real file it runs.

    A plain class, not a dataclass: ``ensure``'s no-op path finds the compiler (to key the probe
    cache) and must not pay for importing ``dataclasses``.
    """

    __slots__ = ("argv", "name", "real_path")

    def __init__(self, argv: tuple[str, ...], real_path: str, name: str) -> None:
        self.argv = argv
        self.real_path = real_path
        self.name = name


def find_stdenv(
    glibc_dir: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    elf_class: int = 64,
    machine: int = 0,
) -> StdenvInfo:
    """The stdenv glibc: ``glibc_dir`` when given, else what a probe link with the user's compiler says.

    ``elf_class=32`` is the i386 stdenv (a probe with ``-m32``); ``machine`` another architecture's
    (its cross compiler's probe, or ``glibc_dir`` holding its loader). Raises StdenvError with one line
    when neither gives a loader and a libc.
    """
    environ = dict(os.environ if env is None else env)
    cross = cross_machine(machine, elf_class)
    compiler = find_compiler(environ, cross)
    key = _request_key(glibc_dir, compiler, environ, elf_class, cross)
    entry = _cached_entry(key, glibc_dir, environ) if key is not None else None
    if entry is not None:
        return _from_entry(entry)
    if glibc_dir is not None:
        info = stdenv_from_dir(glibc_dir, environ, elf_class, cross)
    elif compiler is None:
        nix = stdenv_from_nix_cc(environ, elf_class) if not cross else None
        if nix is not None:
            return nix
        if cross:
            name = f"{TRIPLETS[cross]}-gcc" if cross in TRIPLETS else f"a compiler for e_machine {cross}"
            raise StdenvError(
                f"no {name} found: cannot tell which glibc new extensions of that architecture use "
                "(install its cross compiler, or give --glibc DIR)"
            )
        raise StdenvError("no C compiler found ($CC, cc, gcc): cannot tell which glibc new extensions use")
    else:
        info = probe_stdenv(compiler, environ, elf_class, cross)
    if key is not None:
        _store_cached(key, info, environ)
    return info


def cached_fingerprint(
    glibc_dir: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    elf_class: int = 64,
    machine: int = 0,
) -> str | None:
    """The stdenv's fingerprint from the probe cache when it is still valid, else None.

    ``ensure``'s no-op path: a JSON file and a few stat calls, no record types, no ELF, no compiler.
    """
    environ = os.environ if env is None else env
    cross = cross_machine(machine, elf_class)
    key = _request_key(glibc_dir, find_compiler(environ, cross), environ, elf_class, cross)
    entry = _cached_entry(key, glibc_dir, environ) if key is not None else None
    fingerprint = entry.get("fingerprint") if entry is not None else None
    return fingerprint if isinstance(fingerprint, str) else None


def fingerprint_inputs(
    glibc_dir: str | None, env: Mapping[str, str], elf_class: int = 64, machine: int = 0
) -> list[str] | None:
    """The files and directories whose change can change ``cached_fingerprint(glibc_dir, env, elf_class)``.

    Beside the environment's own values (the caller compares those): every ``PATH`` directory (a
    compiler appearing in any of them can change which one is found), the compiler's real file, the
    ``--glibc`` directory, and the files the cached answer names (loader, libc, libstdc++), each with
    the directories of the links on its way (a Nix profile switch moves a link, not a file)
    (``core/hookstate.py`` watches them for the shell hook). None when a shell could not watch it: a
    relative ``PATH`` entry (it depends on the working directory), or a candidate that is there but
    not executable (a ``chmod +x`` changes no mtime).
    """
    from glibc_doctor.core.hookstate import existing_ancestor, link_dirs, watch_file

    cross = cross_machine(machine, elf_class)
    compiler = find_compiler(env, cross)
    key = _request_key(glibc_dir, compiler, env, elf_class, cross)
    entry = _cached_entry(key, glibc_dir, env) if key is not None else None
    if entry is None:
        return None
    watched: list[str] = []
    names = {"cc", "gcc", *(env.get("CC", "").split()[:1])} if not cross else {_cross_gcc(cross)}
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        if not directory.startswith("/"):
            return None
        links, real = link_dirs(existing_ancestor(directory))
        watched += [*links, real]
        candidates = [os.path.join(directory, name) for name in names if "/" not in name]
        if any(os.path.exists(c) and not os.access(c, os.X_OK) for c in candidates):
            return None
    if compiler is not None:
        watched += watch_file(compiler.argv[0])
    if glibc_dir is not None:
        watched += watch_file(glibc_dir)
    for name in ("loader", "libc", "libstdcxx"):
        path = entry.get(name)
        if isinstance(path, str):
            watched += watch_file(path)
    return watched


def _request_key(
    glibc_dir: str | None,
    compiler: Compiler | None,
    env: Mapping[str, str],
    elf_class: int = 64,
    cross: int = 0,
) -> str | None:
    abi = (" -m32" if elf_class == 32 else "") + (f" machine={cross}" if cross else "")
    if glibc_dir is not None:
        return _cache_key(compiler, env, f"--glibc {os.path.realpath(glibc_dir)}{abi}")
    return _cache_key(compiler, env, abi) if compiler is not None else None


def _abi_flags(elf_class: int) -> tuple[str, ...]:
    return ("-m32",) if elf_class == 32 else ()


def stdenv_from_dir(
    glibc_dir: str, env: Mapping[str, str], elf_class: int = 64, machine: int = 0
) -> StdenvInfo:
    """The glibc in ``glibc_dir`` (its lib directory, or a prefix holding ``lib``/``lib64``; ``lib32``
    and the i386 directories for ``elf_class=32``, the aarch64 ones for ``machine`` aarch64)."""
    from pathlib import Path

    root = Path(glibc_dir)
    if not root.is_dir():
        raise StdenvError(f"--glibc {glibc_dir}: not a directory")
    aarch64 = machine == EM_AARCH64 or (not machine and host_machine() == EM_AARCH64)
    known = _GLIBC_SUBDIRS_32 if elf_class == 32 else _GLIBC_SUBDIRS_AARCH64 if aarch64 else _GLIBC_SUBDIRS
    lib_dir = next((root / sub for sub in known if (root / sub / LIBC_NAME).exists()), None)
    if lib_dir is None:
        raise StdenvError(f"--glibc {glibc_dir}: no {LIBC_NAME} in it or in its lib directories")
    name = AARCH64_LOADER if aarch64 else LOADER_NAMES[elf_class]
    subdirs = (str(lib_dir.relative_to(root)), *known)
    loader = next((root / sub / name for sub in subdirs if (root / sub / name).exists()), None)
    if loader is None:
        raise StdenvError(f"--glibc {glibc_dir}: no {name} next to its {LIBC_NAME}")
    libstdcxx = _libstdcxx_for(
        find_compiler(env, machine), env, prefer_dir=str(lib_dir), flags=_abi_flags(elf_class)
    )
    return make_stdenv(str(loader), str(lib_dir / LIBC_NAME), libstdcxx, f"--glibc {glibc_dir}", elf_class)


def stdenv_from_nix_cc(env: Mapping[str, str], elf_class: int = 64) -> StdenvInfo | None:
    """The loader a Nix cc-wrapper names in ``$NIX_CC/nix-support/dynamic-linker`` (``-m32``: in
    ``dynamic-linker-m32``, which a multilib wrapper writes), when there is one."""
    nix_cc = env.get("NIX_CC")
    if not nix_cc:
        return None
    marker = os.path.join(
        nix_cc, "nix-support", "dynamic-linker-m32" if elf_class == 32 else "dynamic-linker"
    )
    try:
        with open(marker, encoding="utf-8") as handle:
            loader = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    libc = os.path.join(os.path.dirname(loader), LIBC_NAME)
    if not loader or not os.path.exists(libc):
        return None
    return make_stdenv(loader, libc, None, f"$NIX_CC {nix_cc}", elf_class)


def _cross_gcc(machine: int) -> str:
    return f"{TRIPLETS.get(machine, 'unknown')}-gcc"


def find_compiler(env: Mapping[str, str], cross: int = 0) -> Compiler | None:
    """``$CC`` (split like a shell would), else ``cc``, else ``gcc``, found on the env's PATH; for a
    ``cross`` machine its cross compiler (``aarch64-linux-gnu-gcc``): ``$CC`` builds for this one."""
    search_path = env.get("PATH", os.defpath)
    choices: list[list[str]] = []
    if cross:
        choices.append([_cross_gcc(cross)])
    elif env.get("CC", "").strip():
        import shlex

        choices.append(shlex.split(env["CC"]))
    if not cross:
        choices += [["cc"], ["gcc"]]
    for argv in choices:
        found = which(argv[0], search_path) if "/" not in argv[0] else argv[0]
        if found and os.access(found, os.X_OK):
            return Compiler((found, *argv[1:]), os.path.realpath(found), argv[0])
    return None


def which(name: str, search_path: str) -> str | None:
    """``shutil.which`` without importing shutil (and its compression modules) on the fast path."""
    for directory in search_path.split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def probe_stdenv(
    compiler: Compiler, env: Mapping[str, str], elf_class: int = 64, cross: int = 0
) -> StdenvInfo:
    """Link a tiny program with ``compiler`` (``-m32`` for the i386 stdenv) and read which loader and
    libc the linker gave it. A cross compiler's probe names the loader as the target machine has it
    (``/lib/ld-linux-aarch64.so.1``); here its files are the cross toolchain's, which the compiler
    finds (``-print-file-name``)."""
    import tempfile
    from pathlib import Path

    from glibc_doctor.core.elf import read_elf

    with tempfile.TemporaryDirectory(prefix="glibc-doctor-probe-") as scratch:
        source = Path(scratch) / "probe.c"
        source.write_text("int main(void) { return 0; }\n")
        binary = Path(scratch) / "probe"
        flags = _abi_flags(elf_class)
        _run_compiler([*compiler.argv, *flags, "-o", str(binary), str(source)], env, compiler.name)
        facts = read_elf(str(binary))
        if not facts.ok or facts.interpreter is None:
            raise StdenvError(f"the probe linked by {compiler.name} has no program interpreter (static?)")
        interpreter = facts.interpreter
        if cross and not os.path.exists(interpreter):
            interpreter, libc = _cross_files(compiler, env, interpreter)
        else:
            libc = resolve_libc(interpreter, facts.rpath, facts.runpath, str(binary), elf_class)
    if libc is None:
        raise StdenvError(f"cannot find the {LIBC_NAME} that the probe linked by {compiler.name} would load")
    source_text = f"probe: {' '.join([compiler.name, *flags])}"
    if env.get("NIX_CC"):
        source_text += f" ($NIX_CC {env['NIX_CC']})"
    libstdcxx = _libstdcxx_for(compiler, env, prefer_dir=None, flags=flags)
    return make_stdenv(interpreter, libc, libstdcxx, source_text, elf_class)


def _cross_files(compiler: Compiler, env: Mapping[str, str], interpreter: str) -> tuple[str, str | None]:
    """The cross toolchain's copies of the probe's loader and libc.so.6 (``-print-file-name``)."""
    found: list[str | None] = []
    for name in (os.path.basename(interpreter), LIBC_NAME):
        printed = _run_compiler([*compiler.argv, f"-print-file-name={name}"], env, compiler.name).strip()
        found.append(
            os.path.normpath(printed) if os.path.isabs(printed) and os.path.exists(printed) else None
        )
    if found[0] is None:
        raise StdenvError(f"{compiler.name} links {interpreter}, which neither this machine nor it has")
    return found[0], found[1]


def _run_compiler(argv: Sequence[str], env: Mapping[str, str], name: str) -> str:
    import subprocess  # only when probing: ``ensure``'s fast path never runs anything

    try:
        done = subprocess.run(
            list(argv), env=dict(env), capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise StdenvError(f"the compiler {name} could not run: {error}") from error
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StdenvError(f"the compiler {name} failed to link a probe: {first}")
    return done.stdout


def resolve_libc(
    interpreter: str, rpath: str | None, runpath: str | None, origin_file: str, elf_class: int = 64
) -> str | None:
    """The libc.so.6 the probe's loader would map, through its RPATH/RUNPATH and the loader's dirs.

    The loader model of ``core.loader`` is used when it is available (it knows the ld.so's own
    default directories and cache); otherwise the probe's search path, then the loader's own
    directory (a Nix glibc searches only its lib dir), then the usual distribution directories.
    """
    resolved = _resolve_with_loader_model(interpreter, origin_file)
    if resolved is not None:
        return resolved
    origin = os.path.dirname(origin_file)
    tags = runpath if runpath else rpath
    dirs = [
        entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for entry in (tags or "").split(":")
    ]
    dirs = [entry for entry in dirs if entry]
    dirs.append(os.path.dirname(os.path.realpath(interpreter)))
    dirs += _DEFAULT_DIRS_32 if elf_class == 32 else _DEFAULT_DIRS
    return next(
        (os.path.join(d, LIBC_NAME) for d in dirs if os.path.exists(os.path.join(d, LIBC_NAME))), None
    )


def _resolve_with_loader_model(interpreter: str, probe: str) -> str | None:
    try:
        from glibc_doctor.core.elf import read_elf
        from glibc_doctor.core.loader import Loader, loader_config
    except ImportError:
        return None
    try:
        config = loader_config(interpreter, {})
        facts = read_elf(probe)
        resolution = Loader(config).resolve(LIBC_NAME, facts, (facts,))
    except Exception:  # noqa: BLE001 - a model that cannot answer falls back to the plain search
        return None
    path: str | None = resolution.path
    return path


def _libstdcxx_for(
    compiler: Compiler | None, env: Mapping[str, str], prefer_dir: str | None, flags: tuple[str, ...] = ()
) -> str | None:
    """The libstdc++.so.6 of the stdenv: next to its libc when it has one, else what the compiler links."""
    if prefer_dir is not None and os.path.exists(os.path.join(prefer_dir, LIBSTDCXX_NAME)):
        return os.path.join(prefer_dir, LIBSTDCXX_NAME)
    candidates: list[tuple[str, ...]] = []
    if compiler is not None:
        candidates.append(compiler.argv)
    gxx = which("g++", env.get("PATH", os.defpath))
    if gxx:
        candidates.append((gxx,))
    for argv in candidates:
        try:
            printed = _run_compiler(
                [*argv, *flags, f"-print-file-name={LIBSTDCXX_NAME}"], env, argv[0]
            ).strip()
        except StdenvError:
            continue
        if os.path.isabs(printed) and os.path.exists(printed):
            return os.path.normpath(printed)
    return None


def make_stdenv(
    loader: str, libc: str, libstdcxx: str | None, source: str, elf_class: int = 64
) -> StdenvInfo:
    """Assemble the record: release from the libc, lib dirs (glibc first), fingerprint of the files."""
    from glibc_doctor.core.elf import glibc_release, read_elf
    from glibc_doctor.core.model import StdenvInfo

    lib_dirs = [os.path.dirname(libc)]
    if libstdcxx is not None and os.path.dirname(libstdcxx) not in lib_dirs:
        lib_dirs.append(os.path.dirname(libstdcxx))
    return StdenvInfo(
        version=glibc_release(libc),
        loader=loader,
        libc=libc,
        lib_dirs=tuple(lib_dirs),
        source=source,
        fingerprint=fingerprint((loader, libc, libstdcxx)),
        libstdcxx=libstdcxx,
        elf_class=elf_class,
        machine=read_elf(loader).machine or EM_X86_64,
    )


def fingerprint(paths: Sequence[str | None]) -> str:
    """sha256 over the real path and build-id of each file: what "the stdenv changed" means."""
    import hashlib

    from glibc_doctor.core.elf import read_elf

    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            digest.update(b"-\n")
            continue
        real = os.path.realpath(path)
        build_id = read_elf(real).build_id or _content_hash(real)
        digest.update(f"{real}\0{build_id}\n".encode())
    return digest.hexdigest()


def _content_hash(path: str) -> str:
    """Stand-in for a missing build-id: the file's bytes say whether it changed."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return "unreadable"


# --- the probe cache ------------------------------------------------------------------------------


def cache_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME", os.path.expanduser("~")), ".cache")
    return os.path.join(base, "glibc-doctor")


def _cache_key(compiler: Compiler | None, env: Mapping[str, str], extra: str = "") -> str:
    try:
        mtime = os.stat(compiler.real_path).st_mtime_ns if compiler is not None else 0
    except OSError:
        mtime = 0
    real = compiler.real_path if compiler is not None else "-"
    argv = " ".join(compiler.argv) if compiler is not None else "-"
    parts = [str(CACHE_FORMAT), extra, real, str(mtime), argv]
    parts += [env.get(name, "") for name in ("PATH", "CC", "NIX_CC", "NIX_LDFLAGS", "LDFLAGS")]
    return "\0".join(parts)  # a plain key: hashing it would cost an import on the fast path


def _file_stamp(path: str | None) -> list[int] | None:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return [-1, -1]
    return [stat.st_size, stat.st_mtime_ns]


def _stamps(info: StdenvInfo) -> list[list[int] | None]:
    return [_file_stamp(path) for path in (info.loader, info.libc, info.libstdcxx)]


def _cached_entry(key: str, glibc_dir: str | None, env: Mapping[str, str]) -> dict[str, object] | None:
    """The cached answer for ``key`` when the files it names are unchanged (a few stat calls)."""
    try:
        with open(os.path.join(cache_dir(env), CACHE_FILE), "rb") as handle:
            entry = marshal.load(handle)[key]
        files = [entry["loader"], entry["libc"], entry["libstdcxx"]]
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(entry, dict) or [_file_stamp(path) for path in files] != entry.get("stamps"):
        return None
    if glibc_dir is not None and entry.get("source") != f"--glibc {glibc_dir}":
        return None
    return entry


def _from_entry(entry: Mapping[str, object]) -> StdenvInfo:
    from glibc_doctor.core.model import StdenvInfo

    dirs = entry["lib_dirs"]
    return StdenvInfo(
        version=_opt_str(entry["version"]),
        loader=str(entry["loader"]),
        libc=str(entry["libc"]),
        lib_dirs=tuple(str(d) for d in dirs) if isinstance(dirs, list) else (),
        source=str(entry["source"]),
        fingerprint=str(entry["fingerprint"]),
        libstdcxx=_opt_str(entry["libstdcxx"]),
        elf_class=32 if entry.get("elf_class") == 32 else 64,
        machine=int(str(entry.get("machine", EM_X86_64))),
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _store_cached(key: str, info: StdenvInfo, env: Mapping[str, str]) -> None:
    """Remember the probe's answer; a cache that cannot be written only costs the next probe."""
    directory = cache_dir(env)
    path = os.path.join(directory, CACHE_FILE)
    try:
        with open(path, "rb") as handle:
            data = marshal.load(handle)
        if not isinstance(data, dict) or len(data) > 32:
            data = {}
    except (OSError, EOFError, ValueError, TypeError):
        data = {}
    data[key] = {**info.as_json(), "stamps": _stamps(info)}
    try:
        os.makedirs(directory, exist_ok=True)
        temporary = os.path.join(directory, f".stdenv.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            marshal.dump(data, handle)
        os.replace(temporary, path)
    except OSError:
        return
