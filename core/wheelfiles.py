"""What a wheel installs into site-packages, and a private copy of the part the loader and importer read.

pip installs the members of a wheel's root, and those of ``{name}-{version}.data/purelib/`` and
``.data/platlib/``, into site-packages (the other ``.data`` schemes go to ``bin/``, ``include/``, the
prefix: nothing an ``import`` loads). To decide as the interpreter would which of them are extension
modules (``core/targets/pymodules.py``: a name, a suffix, ``PyInit_``) and what each links to (vendored
``*.libs/`` reached through ``$ORIGIN`` RPATHs), the shared objects are extracted where they would be
installed, under a private site-packages directory; the Python files the finder needs to tell packages
from namespaces (``__init__.py``, a ``foo.py`` beside ``foo/``) are laid out as empty files, and only in
the directories on the way to a shared object. Nothing else is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from glibc_doctor.core.elf import is_library_name
from glibc_doctor.core.errors import WheelError
from glibc_doctor.core.wheeltags import WheelName
from glibc_doctor.core.wheelzip import WheelZip

_PLACED_SCHEMES = ("purelib/", "platlib/")  # the .data schemes that land in site-packages
_PYTHON_FILES = (".py", ".pyc")
_HEADER = re.compile(r"^(?P<key>[A-Za-z0-9-]+):[ \t]*(?P<value>.*)$")


@dataclass(frozen=True, slots=True)
class WheelInfo:
    """A wheel's identity: its metadata name and version, its tags (file name, and WHEEL's ``Tag:``)."""

    path: str
    filename: WheelName
    name: str  # METADATA ``Name``, else the file name's
    version: str
    dist_info: str  # "foo-1.0.dist-info"
    wheel_tags: tuple[str, ...]  # the ``Tag:`` lines of .dist-info/WHEEL
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Layout:
    """The members laid out under ``site`` (a private directory shaped like site-packages)."""

    site: str
    members: dict[str, str]  # path under ``site`` -> the member name in the wheel
    libraries: tuple[str, ...]  # the extracted shared objects (paths under ``site``)

    def member(self, path: str) -> str | None:
        """The member a path of the process graph is (found as ``…/numpy/core/../../numpy.libs/…``
        through ``$ORIGIN``: normalised, since nothing under ``site`` is a link)."""
        return self.members.get(os.path.normpath(path))


def read_info(archive: WheelZip, filename: WheelName) -> WheelInfo:
    """The ``.dist-info`` directory, its METADATA name and version and its WHEEL tags."""
    dist_info = _dist_info(archive, filename)
    notes: list[str] = []
    metadata = _headers(archive, f"{dist_info}/METADATA")
    wheel = _headers(archive, f"{dist_info}/WHEEL")
    if not metadata:
        notes.append(f"{dist_info}/METADATA is missing: name and version from the file name")
    tags = tuple(value for key, value in wheel if key == "tag")
    values = dict(metadata)
    listed = set(tags)
    if tags and not {str(tag) for tag in filename.tags} <= listed:
        notes.append(f"the file name's tags ({filename.tag_text}) are not all in {dist_info}/WHEEL")
    return WheelInfo(
        path=archive.path,
        filename=filename,
        name=values.get("name") or filename.distribution,
        version=values.get("version") or filename.version,
        dist_info=dist_info,
        wheel_tags=tags,
        notes=tuple(notes),
    )


def _dist_info(archive: WheelZip, filename: WheelName) -> str:
    """The one ``*.dist-info`` directory at the root (the one named for the wheel, when several)."""
    found = sorted({name.split("/", 1)[0] for name in archive.names() if "/" in name} - {""})
    candidates = [name for name in found if name.endswith(".dist-info")]
    if not candidates:
        raise WheelError(f"{archive.path}: no .dist-info directory (not a wheel)")
    named = [name for name in candidates if _names_wheel(name, filename)]
    return (named or candidates)[0]


def _names_wheel(dist_info: str, filename: WheelName) -> bool:
    name, _, version = dist_info.removesuffix(".dist-info").rpartition("-")
    return _canonical(name) == _canonical(filename.distribution) and version == filename.version


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _headers(archive: WheelZip, member: str) -> list[tuple[str, str]]:
    """``Key: value`` lines up to the first blank line (RFC 822 style), keys lower-cased."""
    if member not in archive.members:
        return []
    found: list[tuple[str, str]] = []
    for line in archive.text(member).splitlines():
        if not line.strip():
            break
        match = _HEADER.match(line)
        if match is not None:
            found.append((match["key"].lower(), match["value"].strip()))
    return found


def install_path(member: str, info: WheelInfo) -> str | None:
    """Where pip puts ``member`` relative to site-packages; None for what goes elsewhere (scripts, data,
    headers) and for the directories' own entries."""
    data = f"{info.dist_info.removesuffix('.dist-info')}.data/"
    path = member
    if member.startswith(data):
        rest = member[len(data) :]
        scheme = next((s for s in _PLACED_SCHEMES if rest.startswith(s)), None)
        if scheme is None:
            return None
        path = rest[len(scheme) :]
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return "/".join(parts) or None


def lay_out(archive: WheelZip, info: WheelInfo, site: str) -> Layout:
    """Extract the wheel's shared objects into ``site`` where pip would install them, with empty
    stand-ins for the Python files beside them (see the module's docstring)."""
    placed = {path: member for member in archive.names() if (path := install_path(member, info))}
    libraries = sorted(path for path in placed if is_library_name(path))
    archive.reserve([placed[path] for path in libraries])
    on_the_way = {_parent(parent) for path in libraries for parent in _ancestors(path)}
    stand_ins = sorted(
        path for path in placed if path.endswith(_PYTHON_FILES) and _parent(path) in on_the_way
    )
    members: dict[str, str] = {}
    for path in libraries:
        dest = _destination(site, path, archive)
        try:
            archive.extract(placed[path], dest)
        except OSError as error:
            reason = error.strerror or str(error)
            raise WheelError(f"{archive.path}: {placed[path]}: cannot be laid out ({reason})") from None
        members[dest] = placed[path]
    for path in stand_ins:
        dest = _destination(site, path, archive)
        _touch(dest, archive, placed[path])
        members[dest] = placed[path]
    return Layout(site, members, tuple(dest for dest, _ in members.items() if is_library_name(dest)))


def _ancestors(path: str) -> list[str]:
    """``a/b/c.so`` -> [``a/b/c.so``, ``a/b``, ``a``]: each directory the finder walks through."""
    found = [path]
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        found.append(path)
    return found


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _destination(site: str, path: str, archive: WheelZip) -> str:
    """The file's path under ``site``, its directories made (ours, so no link can be on the way)."""
    dest = os.path.join(site, *path.split("/"))
    try:
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
    except OSError as error:
        raise WheelError(f"{archive.path}: {path}: cannot be laid out ({error.strerror or error})") from None
    return dest


def _touch(dest: str, archive: WheelZip, member: str) -> None:
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise WheelError(
            f"{archive.path}: {member}: cannot be laid out ({error.strerror or error})"
        ) from None
    os.close(fd)
