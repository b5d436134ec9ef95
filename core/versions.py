"""Symbol version names as ordered values.

ld.so compares version *names* only (a need is met when the provider defines the exact string), but people
reason in releases: "this extension needs glibc 2.38, the loaded glibc is 2.34". ``VersionName`` splits a
name like ``GLIBC_2.38`` or ``GLIBCXX_3.4.30`` into its family and a numeric tuple so that ``2.9 < 2.10``
and the newest need of a family can be picked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^(?P<family>[A-Za-z_][A-Za-z0-9_]*?)_(?P<number>\d+(?:\.\d+)*)$")


@dataclass(frozen=True, slots=True, order=True)
class VersionName:
    """A symbol version such as ``GLIBC_2.38``: ``family`` ``GLIBC``, ``number`` ``(2, 38)``.

    Names without a number (``GLIBC_PRIVATE``, ``Base``) have an empty ``number``; they sort first.
    """

    family: str
    number: tuple[int, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> VersionName:
        match = _NAME.match(text)
        if match is None:
            return cls(text, (), text)
        number = tuple(int(part) for part in match["number"].split("."))
        return cls(match["family"], number, text)

    @property
    def release(self) -> str:
        """The dotted number (``2.38``), or the whole name where there is none."""
        return ".".join(str(part) for part in self.number) if self.number else self.text

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True, order=True)
class GlibcVersion:
    """A glibc release, ordered numerically: ``GlibcVersion(2, 9) < GlibcVersion(2, 10)``."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> GlibcVersion:
        """Parse ``2.38``, ``GLIBC_2.38`` or ``2.38.1`` (the third part is ignored)."""
        digits = text.removeprefix("GLIBC_")
        parts = digits.split(".")
        if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ValueError(f"not a glibc version: {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def newest(names: list[str] | tuple[str, ...], family: str) -> VersionName | None:
    """The highest numbered version of ``family`` among ``names``, or None."""
    candidates = [VersionName.parse(name) for name in names]
    numbered = [name for name in candidates if name.family == family and name.number]
    return max(numbered, default=None)


# Versions that name an ABI feature of the loader rather than symbols: the linker adds a need for one
# when the object uses the feature, so that an older ld.so refuses it by name instead of mis-running it
# (glibc's elf/Versions, sysdeps/x86/Versions, sysdeps/x86_64/Versions, sysdeps/i386/Versions).
ABI_MARKERS: dict[str, GlibcVersion] = {
    "GLIBC_ABI_DT_RELR": GlibcVersion(2, 36),  # DT_RELR packed relative relocations (-z pack-relative-relocs)
    # Added after 2.42 (the 2.43 development tree): TLS descriptors, x86-64 PLT rewriting.
    "GLIBC_ABI_GNU2_TLS": GlibcVersion(2, 43),
    "GLIBC_ABI_GNU_TLS": GlibcVersion(2, 43),
    "GLIBC_ABI_DT_X86_64_PLT": GlibcVersion(2, 43),
}


def min_glibc_for(names: list[str] | tuple[str, ...]) -> GlibcVersion | None:
    """The oldest glibc release that defines every ``GLIBC_x.y`` and ``GLIBC_ABI_*`` in ``names``.

    glibc release 2.N defines ``GLIBC_2.N`` when it added symbols in that release; a need for
    ``GLIBC_2.34`` is met by 2.34 and later. ``GLIBC_ABI_DT_RELR`` came with 2.36 (``ABI_MARKERS``).
    """
    top = newest(names, "GLIBC")
    releases = [ABI_MARKERS[name] for name in names if name in ABI_MARKERS]
    if top is not None and len(top.number) >= 2:
        releases.append(GlibcVersion(top.number[0], top.number[1]))
    return max(releases, default=None)


def glibc_release_of(version: str) -> GlibcVersion | None:
    """The release that introduced one version name (``GLIBC_2.38`` -> 2.38, the DT_RELR marker ->
    2.36), or None for a name of another family or without a release (``GLIBC_PRIVATE``)."""
    return min_glibc_for([version])
