"""Wheel file names and the tags an interpreter's pip selects (PEP 425, 427, 600), without ``packaging``.

pip installs a wheel only when one of the tags in its file name is among the interpreter's supported
tags (``packaging.tags.sys_tags``). For CPython on glibc Linux those are, in pypa/packaging's order:

- ``cp39-cp39-P``, ``cp39-abi3-P``, ``cp39-none-P``, then ``cp38-abi3-P`` … ``cp32-abi3-P`` (no abi3 for a
  free-threaded build), then ``py39-none-P``, ``py3-none-P``, ``py38-none-P`` … ``py30-none-P``, then
  ``cp39-none-any``, ``py39-none-any``, ``py3-none-any`` …;
- for every platform ``P`` of ``_linux_platforms``: ``manylinux_2_Y_<arch>`` for Y from the glibc the
  interpreter's process *loads* (``os.confstr("CS_GNU_LIBC_VERSION")``) down to 2.5 (x86_64, i686) or
  2.17 (other architectures), with the legacy aliases ``manylinux2014`` (2.17), ``manylinux2010`` (2.12)
  and ``manylinux1`` (2.5) beside their versions, then ``linux_<arch>``.

That glibc is the one the scan says the process loads (a python hard-wired to glibc 2.31 is offered no
``manylinux_2_34`` wheel, whatever the system's glibc). The python version, the ABI flags (``d``, ``t``,
``m``) and the architecture come from the interpreter's own ``EXTENSION_SUFFIXES`` (its SOABI) and ELF
header, read from its binary. A ``_manylinux`` module in the interpreter's path can veto manylinux tags
at run time; that is code, which a static reading does not run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from glibc_doctor.core.errors import WheelError

_WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?"
    r"-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$"
)
_MANYLINUX = re.compile(r"^manylinux_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_TAG = re.compile(r"^(?P<legacy>manylinux1|manylinux2010|manylinux2014)_(?P<arch>.+)$")
_SOABI = re.compile(r"^\.cpython-(?P<digits>\d)(?P<minor>\d+)(?P<flags>[a-z]*)-(?P<triplet>[^.]+)\.so$")
_CPYTHON = re.compile(r"^cp(?P<major>\d)(?P<minor>\d+)$")
_PY = re.compile(r"^py(?P<major>\d)(?P<minor>\d*)$")
_OLD_GLIBC_ARCHS = frozenset({"x86_64", "i686"})  # manylinux tags down to 2.5; others from 2.17
ARCH_OF_TRIPLET = {"x86_64": "x86_64", "i386": "i686", "i686": "i686", "aarch64": "aarch64"}


@dataclass(frozen=True, slots=True, order=True)
class Tag:
    """One (python, abi, platform) triple: ``cp39-cp39-manylinux_2_17_x86_64``."""

    interpreter: str
    abi: str
    platform: str

    def __str__(self) -> str:
        return f"{self.interpreter}-{self.abi}-{self.platform}"


@dataclass(frozen=True, slots=True)
class WheelName:
    """What a wheel's file name says: ``{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl``."""

    distribution: str
    version: str
    build: str | None
    tag_text: str  # "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64", as in the name
    tags: tuple[Tag, ...]  # the compressed sets expanded


def parse_wheel_name(filename: str) -> WheelName:
    """The parts of a wheel file name (PEP 427); compressed tag sets (``a.b``) are expanded.

    Raises ``WheelError`` for a name pip would refuse as "not a valid wheel filename".
    """
    match = _WHEEL_NAME.match(filename)
    if match is None:
        raise WheelError(f"{filename}: not a wheel file name (name-version-python-abi-platform.whl)")
    tags = tuple(
        sorted(
            Tag(python, abi, platform)
            for python in match["python"].split(".")
            for abi in match["abi"].split(".")
            for platform in match["platform"].split(".")
        )
    )
    tag_text = f"{match['python']}-{match['abi']}-{match['platform']}"
    return WheelName(match["name"], match["version"], match["build"], tag_text, tags)


@dataclass(frozen=True, slots=True)
class InterpreterTags:
    """The facts pip's tag list is made of, for one interpreter and the glibc its process loads."""

    python: tuple[int, int]  # (3, 9)
    abi: str  # "cp39", "cp313t", "cp39d"
    arch: str  # "x86_64", "i686", "aarch64"
    glibc: tuple[int, int] | None  # the loaded glibc release; None: no manylinux tag applies
    source: str  # where the facts were read ("SOABI .cpython-39-x86_64-linux-gnu.so of …/python3.9")

    @property
    def free_threaded(self) -> bool:
        return self.abi.rstrip("dm").endswith("t")

    def platforms(self) -> list[str]:
        """``_linux_platforms``: manylinux tags newest first (with their legacy aliases), then linux_."""
        found: list[str] = []
        if self.glibc is not None and self.glibc[0] == 2:
            floor = 5 if self.arch in _OLD_GLIBC_ARCHS else 17
            for minor in range(self.glibc[1], floor - 1, -1):
                found.append(f"manylinux_2_{minor}_{self.arch}")
                legacy = next((name for name, version in _LEGACY.items() if version == (2, minor)), None)
                if legacy is not None:
                    found.append(f"{legacy}_{self.arch}")
        found.append(f"linux_{self.arch}")
        return found

    def supported(self) -> list[Tag]:
        """Every tag this interpreter's pip accepts, best first (``cpython_tags`` + ``compatible_tags``)."""
        return list(_supported(self))

    def _cpython_tags(self, platforms: list[str]) -> Iterator[Tag]:
        major, minor = self.python
        interpreter = f"cp{major}{minor}"
        abis = [self.abi]
        if self.abi.endswith("d") and (major, minor) >= (3, 8):
            abis.append(self.abi[:-1])  # a debug build also takes its non-debug ABI
        abi3 = (major, minor) >= (3, 2) and not self.free_threaded
        for abi in [*abis, *(["abi3"] if abi3 else []), "none"]:
            yield from (Tag(interpreter, abi, platform) for platform in platforms)
        if abi3:
            for older in range(minor - 1, 1, -1):
                yield from (Tag(f"cp{major}{older}", "abi3", platform) for platform in platforms)
        pythons = [f"py{major}{minor}", f"py{major}", *(f"py{major}{m}" for m in range(minor - 1, -1, -1))]
        for python in pythons:
            yield from (Tag(python, "none", platform) for platform in platforms)
        yield Tag(interpreter, "none", "any")
        yield from (Tag(python, "none", "any") for python in pythons)

    def selects(self, tags: Iterable[Tag]) -> bool:
        supported = _supported_set(self)
        return any(tag in supported for tag in tags)

    def accepts_python(self, tags: Iterable[Tag]) -> bool:
        """Whether one tag's python and ABI fit this interpreter, whatever its platform says."""
        pairs = self._any_tags()
        return any(Tag(tag.interpreter, tag.abi, "any") in pairs for tag in tags)

    def why_not(self, wheel: WheelName) -> str | None:
        """Why pip would not select this wheel for the interpreter, in words; None when it would."""
        if self.selects(wheel.tags):
            return None
        platforms = set(self.platforms()) | {"any"}
        python_ok = [tag for tag in wheel.tags if Tag(tag.interpreter, tag.abi, "any") in self._any_tags()]
        if not python_ok:
            return self._python_words(wheel.tags)
        return self._platform_words(sorted({tag.platform for tag in python_ok} - platforms))

    def _any_tags(self) -> frozenset[Tag]:
        """The (python, abi) pairs this interpreter accepts, with the platform set to ``any``."""
        return _python_pairs(self)

    def _python_words(self, tags: tuple[Tag, ...]) -> str:
        mine = f"{self.python[0]}.{self.python[1]}"
        first = tags[0]
        cpython = _CPYTHON.match(first.interpreter)
        if first.abi == "abi3" and cpython is not None:
            built = f"{cpython['major']}.{cpython['minor']}"
            if self.free_threaded:
                return f"abi3 ({built}+) does not load in a free-threaded Python {mine}"
            return f"for the stable ABI of Python {built}+, not {mine}"
        if cpython is not None:
            built = f"{cpython['major']}.{cpython['minor']}"
            if built == mine:
                return f"for the ABI {first.abi}, not {self.abi}"
            return f"for CPython {built} ({first.interpreter}), not {mine}"
        py = _PY.match(first.interpreter)
        if py is not None:
            return f"for Python {py['major']}{'.' + py['minor'] if py['minor'] else ''}, not {mine}"
        return f"for another Python implementation ({first.interpreter}-{first.abi})"

    def _platform_words(self, platforms: list[str]) -> str:
        glibc = f"{self.glibc[0]}.{self.glibc[1]}" if self.glibc else "no glibc"
        for platform in platforms:
            needed = manylinux_glibc(platform)
            arch = platform_arch(platform)
            if needed is not None and arch == self.arch:
                return f"{platform} needs glibc {needed[0]}.{needed[1]}, the process loads {glibc}"
        for platform in platforms:
            arch = platform_arch(platform)
            if platform.startswith("musllinux_"):
                return f"for musl libc ({platform}), not glibc"
            if arch is not None and arch != self.arch:
                return f"for {arch} ({platform}), not {self.arch}"
        return f"for another platform ({', '.join(platforms) or '?'})"


@functools.lru_cache(maxsize=8)
def _supported(tags: InterpreterTags) -> tuple[Tag, ...]:
    """``supported()`` once per interpreter: a check asks it for every wheel (about a thousand tags)."""
    return tuple(dict.fromkeys(tags._cpython_tags(tags.platforms())))


@functools.lru_cache(maxsize=8)
def _supported_set(tags: InterpreterTags) -> frozenset[Tag]:
    return frozenset(_supported(tags))


@functools.lru_cache(maxsize=8)
def _python_pairs(tags: InterpreterTags) -> frozenset[Tag]:
    return frozenset(Tag(tag.interpreter, tag.abi, "any") for tag in tags._cpython_tags(["any"]))


def manylinux_glibc(platform: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag requires (``manylinux2014_x86_64`` -> (2, 17))."""
    match = _MANYLINUX.match(platform)
    if match is not None:
        return int(match["major"]), int(match["minor"])
    legacy = _LEGACY_TAG.match(platform)
    return _LEGACY[legacy["legacy"]] if legacy is not None else None


def platform_arch(platform: str) -> str | None:
    """The architecture part of a Linux platform tag (``manylinux_2_17_aarch64`` -> ``aarch64``)."""
    for pattern in (_MANYLINUX, _LEGACY_TAG):
        match = pattern.match(platform)
        if match is not None:
            return match["arch"]
    for prefix in ("linux_", "musllinux_"):
        if platform.startswith(prefix):
            rest = platform[len(prefix) :]
            if prefix == "musllinux_":
                parts = rest.split("_", 2)
                return parts[2] if len(parts) == 3 else None
            return rest
    return None


def interpreter_tags(
    suffixes: Iterable[str], version: str | None, arch: str | None, glibc: str | None, source: str
) -> InterpreterTags | None:
    """The tag facts from the interpreter's extension suffixes (its SOABI), else its version.

    ``arch`` is the ELF machine's name in tags (``x86_64``); ``glibc`` the release the process loads.
    None when neither the SOABI nor the version says which Python this is.
    """
    loaded = _release(glibc)
    for suffix in suffixes:
        match = _SOABI.match(suffix)
        if match is not None:
            python = (int(match["digits"]), int(match["minor"]))
            triplet_arch = ARCH_OF_TRIPLET.get(match["triplet"].split("-")[0])
            abi = f"cp{python[0]}{python[1]}{match['flags']}"
            found = arch or triplet_arch or "x86_64"
            return InterpreterTags(python, abi, found, loaded, f"SOABI {suffix[1:-3]} of {source}")
    release = _release(version)
    if release is None:
        return None
    flags = "m" if release < (3, 8) else ""
    abi = f"cp{release[0]}{release[1]}{flags}"
    return InterpreterTags(release, abi, arch or "x86_64", loaded, f"Python {version} (assumed ABI)")


def _release(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None
