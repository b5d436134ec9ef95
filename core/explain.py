"""Explain the loader error text people paste: what failed, why, and what to run next.

People meet glibc conflicts as one line in a traceback (``ImportError: …: version `GLIBC_2.38' not
found (required by …)``), a Ruby ``LoadError``, or an ld.so message before ``main``. ld.so's words are
exact but terse: they name the libc that *was* loaded, not why that one. This module parses every such
line it can find (quoting styles of old and new glibc, ``LD_DEBUG`` noise, several errors in one
traceback) into ``LoaderMessage`` records and says in plain words what happened and which
``glibc-doctor`` command looks deeper. It never raises on text: unknown text is an ``Explanation``
without messages and a sentence saying what to paste instead.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from glibc_doctor.core.elf import glibc_build_release, glibc_release
from glibc_doctor.core.versions import ABI_MARKERS, VersionName, min_glibc_for


class MessageKind(StrEnum):
    """What ld.so (or dlopen) reported; values match ``model.Kind`` where the two overlap."""

    MISSING_VERSION = "missing-version"  # version `GLIBC_2.38' not found (required by …)
    NOT_FOUND = "not-found"  # cannot open shared object file
    UNDEFINED_SYMBOL = "undefined-symbol"  # undefined symbol / relocation error … not defined in file
    WRONG_ELF = "wrong-elf"  # wrong ELF class: ELFCLASS32
    UNREADABLE = "unreadable"  # invalid ELF header, file too short
    EXEC_STACK = "exec-stack"  # cannot enable executable stack (glibc 2.41 refuses it for dlopen)
    DT_RELR = "dt-relr"  # DT_RELR without GLIBC_ABI_DT_RELR dependency (glibc 2.36+)
    ISA_LEVEL = "isa-level"  # CPU ISA level is lower than required (glibc 2.33+)
    STATIC_TLS = "static-tls"  # cannot allocate memory in static TLS block
    PAGE_SIZE = "page-size"  # ELF load command alignment not page-aligned (64 KiB aarch64 kernels)


@dataclass(frozen=True, slots=True)
class LoaderMessage:
    """One loader error as printed: the fields ld.so named, ``raw`` the line it came from.

    ``provider`` is the file that was loaded and lacks ``version`` (``/lib/…/libc.so.6``); ``library``
    the soname or file asked for; ``required_by`` the object that asked; ``program`` the executable
    named at the start of an ld.so message (``./prog: error while loading shared libraries: …``);
    ``detail`` the rest of the reason (``No such file or directory``, ``ELFCLASS32``).
    """

    kind: MessageKind
    provider: str | None = None
    version: str | None = None
    library: str | None = None
    required_by: str | None = None
    symbol: str | None = None
    raw: str = ""
    program: str | None = None
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "provider": self.provider,
            "version": self.version,
            "library": self.library,
            "required_by": self.required_by,
            "symbol": self.symbol,
            "program": self.program,
            "detail": self.detail,
            "raw": self.raw,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One message with its plain-words cause and the oldest glibc (or GCC) release that would do."""

    message: LoaderMessage
    cause: str
    min_glibc: str | None = None
    min_gcc: str | None = None  # for GLIBCXX_/CXXABI_/GCC_ versions: the GCC whose libstdc++ defines it
    target: str | None = None  # what ``glibc-doctor scan`` should look at, when the paths tell

    def as_json(self) -> dict[str, object]:
        return {
            **self.message.as_json(),
            "cause": self.cause,
            "min_glibc": self.min_glibc,
            "min_gcc": self.min_gcc,
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything ``explain`` found in a text: findings in order, a summary, and the next commands.

    ``paths`` are the files the messages name that exist on this machine (the CLI can scan them).
    """

    findings: tuple[Finding, ...]
    summary: str
    commands: tuple[str, ...]
    paths: tuple[str, ...] = ()
    min_glibc: str | None = None

    @property
    def messages(self) -> tuple[LoaderMessage, ...]:
        return tuple(finding.message for finding in self.findings)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.target for f in self.findings if f.target))

    def as_json(self) -> dict[str, object]:
        return {
            "messages": [finding.as_json() for finding in self.findings],
            "summary": self.summary,
            "commands": list(self.commands),
            "paths": list(self.paths),
            "min_glibc": self.min_glibc,
            "targets": list(self.targets),
        }


# ---------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------

_OPEN = "[`'‘\"]"
_CLOSE = "['’\"`]"
# A path or name starts after a blank, a colon, a quote or a bracket, never inside another word: the
# anchor keeps every search linear (an unanchored ``[^\s:]+`` retried at each offset of a 10 kB
# token is quadratic).
_START = "(?<![^\\s:\"'`(\\[=])"
_TOKEN = "[^\\s:\"'`(]+"  # a path or soname: no blanks, colons, quotes or an opening parenthesis
_LD_DEBUG_PREFIX = re.compile(r"^\s*\d+:\s+")
_EXCEPTION_NAME = re.compile(r"^[\w.]*(Error|Exception|Warning)$")

_MISSING_VERSION = re.compile(
    rf"{_START}(?P<provider>{_TOKEN}): (?:error: version lookup error: )?version "
    rf"{_OPEN}(?P<version>[^`'’\"\s]+){_CLOSE} not found \(required by (?P<by>[^)]+)\)"
)
_NOT_FOUND = re.compile(
    rf"{_START}(?P<library>{_TOKEN}): cannot open shared object file: (?P<detail>\w[\w ]*\w)"
    r"(?:\s+-\s+(?P<by>\S+))?"
)
_UNDEFINED = re.compile(
    rf"{_START}(?P<object>{_TOKEN}): undefined symbol: (?P<symbol>[^\s,]+)"
    r"(?:, version (?P<version>[^\s(]+))?"
)
_RELOCATION = re.compile(
    r"relocation error: (?P<object>[^\s:]+): symbol (?P<symbol>[^\s,]+),? version (?P<version>\S+) "
    r"not defined in file (?P<library>\S+?)(?: with link time reference)"
)
_WRONG_ELF = re.compile(rf"{_START}(?P<object>{_TOKEN}): wrong ELF class: (?P<detail>ELFCLASS\d+)")
_UNREADABLE = re.compile(
    rf"{_START}(?P<object>{_TOKEN}): (?P<detail>invalid ELF header|file too short|ELF file OS ABI invalid"
    r"|ELF file version does not match current one"
    r"|ELF file data encoding not little-endian|ELF file data encoding not big-endian)"
)
_EXEC_STACK = re.compile(
    rf"{_START}(?P<object>{_TOKEN}): cannot enable executable stack as shared object requires: "
    r"(?P<detail>[^\n-]{1,500})"
)
_DT_RELR = re.compile(rf"{_START}(?P<object>{_TOKEN}): DT_RELR without GLIBC_ABI_DT_RELR dependency")
_ISA_LEVEL = re.compile(rf"{_START}(?P<object>{_TOKEN}): CPU ISA level is lower than required")
_STATIC_TLS = re.compile(rf"{_START}(?P<object>{_TOKEN}): cannot allocate memory in static TLS block")
_PAGE_SIZE = re.compile(
    rf"{_START}(?P<object>{_TOKEN}): ELF load command (?:alignment|address/offset) not page-aligned"
)


_HEAD_LIMIT = 4096 + 64  # PATH_MAX and the longest marker
_RAW_LIMIT = 2000  # longer lines are quoted around each match only
_RAW_CONTEXT = 200


def _clean_lines(text: str) -> list[str]:
    """Lines without ``LD_DEBUG``'s ``PID:`` prefix or trailing blanks; tabs as spaces."""
    return [_LD_DEBUG_PREFIX.sub("", line).replace("\t", " ").rstrip() for line in text.splitlines()]


def _program_before(line: str, start: int) -> str | None:
    """``./prog`` in ``./prog: error while loading shared libraries: …`` (not ``ImportError``).

    A program path is at most PATH_MAX long: looking further back would copy the whole line for every
    match, quadratic on a megabyte line of repeated messages.
    """
    if start > _HEAD_LIMIT:
        return None
    head = line[:start]
    for marker in (": error while loading shared libraries: ", ": symbol lookup error: ", ": "):
        if head.endswith(marker):
            words = head[: -len(marker)].split()
            if len(words) == 1 and not _EXCEPTION_NAME.match(words[0]) and not words[0].endswith(":"):
                return words[0]
            return None
    return None


def _ld_program(line: str) -> str | None:
    match = re.match(
        r"^(?P<program>\S+): (?:error while loading shared libraries|symbol lookup error|"
        r"relocation error): ",
        line,
    )
    if match and not _EXCEPTION_NAME.match(match["program"].rstrip(":")):
        return match["program"]
    return None


def _clean_by(text: str | None) -> str | None:
    """``required by`` path, normalized (``/a/./b`` -> ``/a/b``); a trailing ``(LoadError)`` dropped."""
    if not text:
        return None
    value = text.strip().removesuffix("(LoadError)").strip()
    return os.path.normpath(value) if value.startswith("/") else value


def _basename(path: str | None) -> str | None:
    return os.path.basename(path) if path else None


Builder = Callable[["re.Match[str]", str | None, str], LoaderMessage]  # (match, program, raw line)


def _missing_version(match: re.Match[str], program: str | None, raw: str) -> LoaderMessage:
    return LoaderMessage(
        MessageKind.MISSING_VERSION,
        provider=match["provider"],
        version=match["version"],
        library=_basename(match["provider"]),
        required_by=_clean_by(match["by"]),
        raw=raw,
        program=program or _program_before(match.string, match.start()),
    )


def _not_found(match: re.Match[str], program: str | None, raw: str) -> LoaderMessage:
    required_by = _clean_by(match["by"]) or program
    detail = match["detail"].strip()
    return LoaderMessage(
        MessageKind.NOT_FOUND, library=match["library"], required_by=required_by, raw=raw, program=program,
        detail=detail,
    )  # fmt: skip


def _relocation(match: re.Match[str], program: str | None, raw: str) -> LoaderMessage:
    return LoaderMessage(
        MessageKind.UNDEFINED_SYMBOL, version=match["version"], library=match["library"],
        required_by=_clean_by(match["object"]), symbol=match["symbol"], raw=raw, program=program,
    )  # fmt: skip


def _undefined(match: re.Match[str], program: str | None, raw: str) -> LoaderMessage:
    return LoaderMessage(
        MessageKind.UNDEFINED_SYMBOL, version=match["version"], required_by=_clean_by(match["object"]),
        symbol=match["symbol"], raw=raw, program=program,
    )  # fmt: skip


def _object_problem(kind: MessageKind) -> Builder:
    """Messages about one file itself (wrong class, not ELF, executable stack): the file and why."""

    def build(match: re.Match[str], program: str | None, raw: str) -> LoaderMessage:
        return LoaderMessage(
            kind, library=_basename(match["object"]), required_by=_clean_by(match["object"]), raw=raw,
            program=program, detail=(match.groupdict().get("detail") or "").strip(),
        )  # fmt: skip

    return build


_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], Builder], ...] = (
    # (words one of which every match contains: a cheap test that skips the regex on LD_DEBUG's lines)
    (("not found (required by",), _MISSING_VERSION, _missing_version),
    (("cannot open shared object file",), _NOT_FOUND, _not_found),
    (("relocation error",), _RELOCATION, _relocation),
    (("undefined symbol",), _UNDEFINED, _undefined),
    (("wrong ELF class",), _WRONG_ELF, _object_problem(MessageKind.WRONG_ELF)),
    (("ELF", "file too short"), _UNREADABLE, _object_problem(MessageKind.UNREADABLE)),
    (("executable stack",), _EXEC_STACK, _object_problem(MessageKind.EXEC_STACK)),
    (("DT_RELR without",), _DT_RELR, _object_problem(MessageKind.DT_RELR)),
    (("CPU ISA level",), _ISA_LEVEL, _object_problem(MessageKind.ISA_LEVEL)),
    (("static TLS block",), _STATIC_TLS, _object_problem(MessageKind.STATIC_TLS)),
    (("not page-aligned",), _PAGE_SIZE, _object_problem(MessageKind.PAGE_SIZE)),
)


def _parse_line(line: str) -> list[LoaderMessage]:
    """Every loader error on one line (a Ruby LoadError line can carry the dlopen text and the file)."""
    patterns = [(pattern, build) for words, pattern, build in _PATTERNS if any(w in line for w in words)]
    if not patterns:
        return []
    program = _ld_program(line)
    raw = line.strip()
    if len(raw) <= _RAW_LIMIT:
        return [build(match, program, raw) for pattern, build in patterns for match in pattern.finditer(line)]
    return [
        build(match, program, _excerpt(line, match))
        for pattern, build in patterns
        for match in pattern.finditer(line)
    ]


def _excerpt(line: str, match: re.Match[str]) -> str:
    """The match with a little context: a record quoting a megabyte "line" whole helps nobody."""
    start = max(0, match.start() - _RAW_CONTEXT)
    end = min(len(line), match.end() + _RAW_CONTEXT, match.start() + _RAW_LIMIT)
    return ("…" if start else "") + line[start:end].strip() + ("…" if end < len(line) else "")


def _key(message: LoaderMessage) -> tuple[object, ...]:
    return (message.kind, message.library, message.version, message.required_by, message.symbol)


def parse_messages(text: str) -> tuple[LoaderMessage, ...]:
    """Every distinct loader error in ``text``, in order of first appearance."""
    seen: dict[tuple[object, ...], LoaderMessage] = {}
    for line in _clean_lines(text):
        for message in _parse_line(line):
            seen.setdefault(_key(message), message)
    return tuple(seen.values())


# ---------------------------------------------------------------------------------------------------
# Plain words
# ---------------------------------------------------------------------------------------------------

# libstdc++'s ABI history (gcc.gnu.org/onlinedocs/libstdc++/manual/abi.html): the first GCC
# release whose libstdc++.so.6 defines each version.
_GLIBCXX_GCC = {
    "3.4.18": "4.8.0", "3.4.19": "4.8.3", "3.4.20": "4.9.0", "3.4.21": "5.1.0", "3.4.22": "6.1.0",
    "3.4.23": "7.1.0", "3.4.24": "7.2.0", "3.4.25": "8.1.0", "3.4.26": "9.1.0", "3.4.27": "9.2.0",
    "3.4.28": "9.3.0", "3.4.29": "11.1.0", "3.4.30": "12.1.0", "3.4.31": "13.1.0", "3.4.32": "13.2.0",
    "3.4.33": "14.1.0",
}  # fmt: skip
_CXXABI_GCC = {
    "1.3.7": "4.8.0", "1.3.8": "4.9.0", "1.3.9": "5.1.0", "1.3.10": "6.1.0", "1.3.11": "7.1.0",
    "1.3.12": "9.1.0", "1.3.13": "11.1.0", "1.3.14": "13.1.0", "1.3.15": "14.1.0",
}  # fmt: skip


def min_gcc_for(version: str) -> str | None:
    """The first GCC whose libstdc++ defines ``GLIBCXX_3.4.30``/``CXXABI_1.3.13``/``GCC_x.y``."""
    name = VersionName.parse(version)
    if name.family == "GLIBCXX":
        return _GLIBCXX_GCC.get(name.release)
    if name.family == "CXXABI":
        return _CXXABI_GCC.get(name.release)
    if name.family == "GCC" and name.number:
        return str(name.release)
    return None


def glibc_release_of(path: str | None) -> str | None:
    """The release of a libc file named in a message, when it exists here or its path says it."""
    return glibc_release(path) if path else None


def _quote(path: str) -> str:
    return shlex.quote(path)


def _glibc_cause(message: LoaderMessage, needed: str) -> str:
    by = message.required_by or "the object being loaded"
    release = glibc_release_of(message.provider) if message.library == "libc.so.6" else None
    loaded = f"glibc {release}" if release else f"a {message.library}"
    return (
        f"the process loaded {loaded} from {message.provider}; {by} was built against a newer glibc and "
        f"needs {message.version}, which that glibc does not define (glibc {needed} or newer does); "
        "the interpreter decides which glibc is loaded (its PT_INTERP loader and RPATH), so the "
        "extension needs an interpreter that loads a newer glibc"
    )


def _private_cause(message: LoaderMessage) -> str:
    by = message.required_by or "an object"
    return (
        f"{by} belongs to a different glibc build{_mixed_words(message.required_by, message.provider)} "
        f"than the {message.library or 'glibc library'} loaded "
        f"from {message.provider or 'elsewhere'}: ld.so, libc, libm, libpthread … must all come from one "
        "build (GLIBC_PRIVATE ties them); something (LD_LIBRARY_PATH, an RPATH, a copied libc) mixes two "
        "glibc installations in one process"
    )


_GLIBC_PART = re.compile(
    r"^(ld-linux[-\w.]*\.so\.\d|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1"
    r"|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libmvec\.so\.1|libnss_\w+\.so\.2)$"
)


def is_glibc_part(path: str | None) -> bool:
    """ld.so, libc, libm, libpthread … : the files of one glibc build, which must not be mixed."""
    return _GLIBC_PART.match(os.path.basename(path or "")) is not None


def _mixed_words(by: str | None, loaded: str | None) -> str:
    """`` (a library of glibc 2.36 in a glibc 2.31 process)`` as far as the releases can be told."""
    theirs = glibc_build_release(by) if by else None
    ours = glibc_build_release(loaded) if loaded else None
    if theirs and ours and theirs != ours:
        return f" (a library of glibc {theirs} in a glibc {ours} process)"
    return f" (a library of glibc {theirs})" if theirs and not ours else ""


def _mismatch_cause(message: LoaderMessage) -> str:
    by = message.required_by
    return (
        f"{by} and {message.provider} come from different glibc builds"
        f"{_mixed_words(by, message.provider)}: {by} needs {message.version} from "
        f"{message.library}, which the {message.provider} loaded here does not define; the loader "
        "(PT_INTERP) and libc must come from one glibc, and something (LD_LIBRARY_PATH, an RPATH, "
        "a copied libc) pulls in a libc of another glibc than the interpreter's loader"
    )


def _marker_cause(message: LoaderMessage, needed: str) -> str:
    """``GLIBC_ABI_DT_RELR``: the object's relocations need a newer loader, not newer symbols."""
    by = message.required_by or "the object being loaded"
    name = os.path.basename(by)
    return (
        f"{by} was linked with -z pack-relative-relocs: its relocations are in the DT_RELR format, which "
        f"ld.so applies from glibc {needed}, and the linker marked it with {message.version} so that an "
        "older loader refuses it instead of crashing; the process loaded an older glibc "
        f"({message.provider}). Relink {name} without -z pack-relative-relocs, or run it with an "
        f"interpreter that loads glibc {needed} or newer"
    )


def _cxx_cause(message: LoaderMessage, gcc: str | None) -> str:
    by = message.required_by or "the object being loaded"
    newer = f"GCC {gcc} or newer" if gcc else "a newer GCC"
    return (
        f"the process loaded {message.library} from {message.provider}, older than the one {by} was "
        f"built with: it needs {message.version} ({newer}); the first object that loads "
        f"{message.library} decides for the whole process (often the interpreter's RPATH or an earlier "
        "import)"
    )


def _missing_version_cause(message: LoaderMessage) -> tuple[str, str | None, str | None]:
    version = message.version or ""
    name = VersionName.parse(version)
    if version == "GLIBC_PRIVATE":
        return _private_cause(message), None, None
    if version in ABI_MARKERS:
        marker = str(ABI_MARKERS[version])
        if is_glibc_part(message.required_by) and is_glibc_part(message.provider):
            return _mismatch_cause(message), marker, None
        return _marker_cause(message, marker), marker, None
    if name.family == "GLIBC":
        needed = min_glibc_for([version])
        shown = str(needed) if needed else None
        if is_glibc_part(message.required_by) and is_glibc_part(message.provider):
            return _mismatch_cause(message), shown, None
        return _glibc_cause(message, shown or version), shown, None
    if name.family in ("GLIBCXX", "CXXABI", "GCC"):
        gcc = min_gcc_for(version)
        return _cxx_cause(message, gcc), None, gcc
    by = message.required_by or "the object being loaded"
    cause = (
        f"the {message.library} loaded from {message.provider} does not define {version}, which {by} "
        f"needs: {by} was built against a newer {message.library} than the one this process finds first"
    )
    return cause, None, None


def _not_found_cause(message: LoaderMessage) -> str:
    by = message.required_by or "the object being loaded"
    if message.detail and message.detail != "No such file or directory":
        return f"{message.library} (needed by {by}) was found but could not be opened: {message.detail}"
    return (
        f"the loader found no {message.library} (needed by {by}) in any directory it searched: the "
        "requester's RPATH/RUNPATH, LD_LIBRARY_PATH, the ld.so cache and the default directories of the "
        "glibc that is loaded; an interpreter with its own glibc (Nix, a bundled runtime) does not read "
        "/etc/ld.so.cache, so libraries installed by the system are invisible to it"
    )


def _undefined_cause(message: LoaderMessage) -> tuple[str, str | None]:
    by = message.required_by or "an object"
    version = message.version or ""
    if version == "GLIBC_PRIVATE":
        return _private_cause(message), None
    if VersionName.parse(version).family == "GLIBC":
        needed = min_glibc_for([version])
        cause = (
            f"{by} uses {message.symbol}@{version}, which the loaded glibc does not define: it was built "
            f"against glibc {needed} or newer and the interpreter loads an older one"
        )
        return cause, str(needed) if needed else None
    return (
        f"{by} refers to {message.symbol}, which no loaded library defines: it was built against a "
        "different version of one of its libraries than the one loaded, or it does not list the library "
        "that defines the symbol in DT_NEEDED",
        None,
    )


def _other_cause(message: LoaderMessage) -> str:
    obj = message.required_by or message.library or "a file"
    if message.kind is MessageKind.WRONG_ELF:
        bits = "32" if message.detail.endswith("32") else "64"
        return (
            f"{obj} is a {bits}-bit ELF file and the process is not: install the build for this architecture"
        )
    if message.kind is MessageKind.EXEC_STACK:
        return (
            f"{obj} asks for an executable stack (PF_X in its PT_GNU_STACK, or no PT_GNU_STACK at all), "
            "which glibc 2.41 and later refuse for dlopen()ed libraries (older loaders made the stack "
            "executable): clear the flag (patchelf --clear-execstack), relink it with -z noexecstack, "
            "or from glibc 2.42 run with GLIBC_TUNABLES=glibc.rtld.execstack=2"
        )
    if message.kind is MessageKind.DT_RELR:
        return (
            f"{obj} has DT_RELR relocations (-z pack-relative-relocs) and needs libc.so.6 versions, but not "
            "the GLIBC_ABI_DT_RELR version that linkers add with them; glibc 2.36 and later refuse it (an "
            "older loader would skip the relocations and crash): relink it with GNU ld 2.38+ or lld 15+, or "
            "without -z pack-relative-relocs"
        )
    if message.kind is MessageKind.ISA_LEVEL:
        return (
            f"{obj} is marked as needing a newer x86-64 level (x86-64-v2, -v3 or -v4: "
            "GNU_PROPERTY_X86_ISA_1_NEEDED) than this CPU supports, and glibc 2.33 and later refuse it "
            "(older glibc loads it and it dies of SIGILL): install a build for this CPU; "
            "`ld.so --help` lists the levels it supports"
        )
    if message.kind is MessageKind.STATIC_TLS:
        return (
            f"{obj} uses the initial-exec TLS model (DF_STATIC_TLS), and its thread-local block does not "
            "fit in what is left of the static TLS surplus (1664 bytes by default) that ld.so keeps for "
            f"objects loaded by dlopen(): preload it (LD_PRELOAD={obj}) so it gets its TLS at start-up, "
            "raise the surplus with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=BYTES (glibc 2.32+), or "
            "rebuild it with -ftls-model=global-dynamic; glibc-doctor scan says how many bytes are missing"
        )
    if message.kind is MessageKind.PAGE_SIZE:
        return (
            f"{obj}'s PT_LOAD segments are aligned below this kernel's page size (an arm64 kernel may run "
            "64 KiB pages, and an object linked with -z max-page-size=4096, or patched by an old patchelf, "
            "cannot be mapped there): install a build linked with -Wl,-z,max-page-size=65536, or run it "
            "on a kernel with 4 KiB pages"
        )
    return (
        f"{obj} is not a shared object this loader can map ({message.detail}): a truncated file, a "
        "linker script, or a file for another system"
    )


def _cause(message: LoaderMessage) -> tuple[str, str | None, str | None]:
    if message.kind is MessageKind.MISSING_VERSION:
        return _missing_version_cause(message)
    if message.kind is MessageKind.NOT_FOUND:
        return _not_found_cause(message), None, None
    if message.kind is MessageKind.UNDEFINED_SYMBOL:
        cause, needed = _undefined_cause(message)
        return cause, needed, None
    return _other_cause(message), None, None


# ---------------------------------------------------------------------------------------------------
# Which target to scan
# ---------------------------------------------------------------------------------------------------

_PYTHON_LIB = re.compile(r"^(?P<prefix>.*?)/lib(?:64)?/python(?P<version>\d+(?:\.\d+)?)/")


def target_for_path(path: str | None) -> str | None:
    """The interpreter or venv a file belongs to: ``VENV/lib/python3.11/site-packages/x.so`` -> VENV."""
    if not path or not path.startswith("/"):
        return None
    python = _PYTHON_LIB.match(path)
    if python and re.search(r"/(site-packages|dist-packages|lib-dynload)/", path):
        return _python_target(python["prefix"] or "/", python["version"])
    ruby = _RUBY_LIB.match(path)
    if ruby:
        prefix = "/usr" if ruby["prefix"] in ("", "/var") else ruby["prefix"]
        return _ruby_target(prefix, ruby["version"])
    return None


_RUBY_LIB = re.compile(
    r"^(?P<prefix>.*?)/lib/(?:x86_64-linux-gnu/)?(?:ruby/(?:gems/|vendor_ruby/|site_ruby/)?|gems/)"
    r"(?P<version>\d+\.\d+)\.\d+/"
)


def _ruby_target(prefix: str, version: str) -> str:
    """``PREFIX/bin/ruby`` or, where only that exists, ``PREFIX/bin/ruby2.7`` (Debian's real name)."""
    for name in ("ruby", f"ruby{version}"):
        candidate = os.path.join(prefix, "bin", name)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(prefix, "bin", "ruby")


def _python_target(prefix: str, version: str) -> str:
    """The venv (``pyvenv.cfg``), else the prefix's ``bin/pythonX.Y``, else the prefix directory itself
    (``scan`` takes a venv or prefix directory; a path from another machine cannot be checked)."""
    if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
        return prefix
    interpreter = os.path.join(
        prefix, "bin", f"python{version}"
    )  # python3 for Debian's python3/dist-packages
    return interpreter if os.path.exists(interpreter) else prefix


def _target_of(message: LoaderMessage) -> str | None:
    for path in (message.required_by, message.provider):
        target = target_for_path(path)
        if target:
            return target
    program = message.program or (message.required_by if message.kind is MessageKind.NOT_FOUND else None)
    if program and "/" in program and target_for_path(program) is None:
        return program
    return None


# ---------------------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------------------

_FIXABLE = {MessageKind.MISSING_VERSION, MessageKind.UNDEFINED_SYMBOL}
NO_MESSAGE = (
    "No loader error found in this text. Paste the whole error, including the line with "
    '"version `…\' not found", "cannot open shared object file" or "undefined symbol", or run the '
    "failing command under glibc-doctor diagnose -- CMD to catch it."
)


def _finding(message: LoaderMessage) -> Finding:
    cause, glibc, gcc = _cause(message)
    return Finding(message=message, cause=cause, min_glibc=glibc, min_gcc=gcc, target=_target_of(message))


_TRACEBACK_FILE = re.compile(r'File "(?P<path>/[^"]+)"|(?P<rb>/[^\s<>:]+?\.rb)>?:\d+:in ')


def target_from_traceback(text: str) -> str | None:
    """The interpreter behind a traceback: its frames' files, site-packages first, else the stdlib."""
    paths = [match["path"] or match["rb"] for match in _TRACEBACK_FILE.finditer(text)]
    for path in paths:
        if re.search(r"/(site-packages|dist-packages)/", path):
            return target_for_path(path)
    for path in paths:
        python = _PYTHON_LIB.match(path)
        if python:
            return _python_target(python["prefix"] or "/", python["version"])
        if _RUBY_LIB.match(path):
            return target_for_path(path)
    return None


def _with_fallback_target(findings: tuple[Finding, ...], fallback: str | None) -> tuple[Finding, ...]:
    if fallback is None:
        return findings
    return tuple(f if f.target else replace(f, target=fallback) for f in findings)


def _commands(findings: tuple[Finding, ...]) -> tuple[str, ...]:
    commands: list[str] = []
    for finding in findings:
        target = _quote(finding.target) if finding.target else "<the interpreter or venv>"
        commands.append(f"glibc-doctor scan {target}")
        if finding.message.kind in _FIXABLE:
            commands.append(f"glibc-doctor fix {target}")
    if not any(finding.target for finding in findings):
        commands.append("glibc-doctor diagnose -- <the command that failed>")
    return tuple(dict.fromkeys(commands))


def _existing_paths(messages: tuple[LoaderMessage, ...]) -> tuple[str, ...]:
    paths: list[str] = []
    for message in messages:
        for path in (message.required_by, message.provider, message.program):
            if path and path.startswith("/") and os.path.exists(path):
                paths.append(path)
    return tuple(dict.fromkeys(paths))


def _summary(findings: tuple[Finding, ...], min_glibc: str | None) -> str:
    count = len(findings)
    first = findings[0].message
    what = f"{count} loader error{'s' if count > 1 else ''}"
    if min_glibc:
        return f"{what}; the extensions need glibc {min_glibc} or newer, and the process loads an older one"
    return f"{what}; the first: {first.kind} {first.library or first.symbol or ''}".rstrip()


def explain(text: str) -> Explanation:
    """Parse ``text`` for loader errors and say what each means and what to run next."""
    messages = parse_messages(text)
    if not messages:
        return Explanation(findings=(), summary=NO_MESSAGE, commands=())
    findings = _with_fallback_target(tuple(_finding(m) for m in messages), target_from_traceback(text))
    needed = [f"GLIBC_{finding.min_glibc}" for finding in findings if finding.min_glibc]
    top = min_glibc_for(needed)
    min_glibc = str(top) if top else None
    return Explanation(
        findings=findings,
        summary=_summary(findings, min_glibc),
        commands=_commands(findings),
        paths=_existing_paths(messages),
        min_glibc=min_glibc,
    )
