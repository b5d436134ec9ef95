"""Hostile and broken wheels, made byte by byte: what ``core/wheelzip.py`` must refuse in one line.

Each builder writes a file named like a real wheel (``evil-1.0-py3-none-any.whl``) so that only
its content is wrong. The zip structures are patched where ``zipfile`` would refuse to write them: the
central directory's sizes and flags, extra entries pointing at one member's data (the overlapping zip
bomb), a ZIP64 end record claiming a billion members.
"""

from __future__ import annotations

import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

NAME = "evil-1.0-py3-none-any.whl"  # pip would take it for any Python: only its content is wrong
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"
_DIST = "evil-1.0.dist-info"


def _wheel(path: Path, members: dict[str, bytes], *, infos: list[zipfile.ZipInfo] = ()) -> Path:  # type: ignore[assignment]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in infos:
            archive.writestr(info, b"x")
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{_DIST}/METADATA", b"Name: evil\nVersion: 1.0\n\n")
        archive.writestr(f"{_DIST}/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n")
    return path


def _typed(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def _patch_central(path: Path, member: str, field: str, value: int) -> Path:
    """Set one field of ``member``'s central directory entry: ``flags``, ``compressed`` or ``size``."""
    data = bytearray(path.read_bytes())
    at = data.find(_CENTRAL + b"")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        name = bytes(data[at + 46 : at + 46 + name_len]).decode()
        if name == member:
            offset = {"flags": 8, "compressed": 20, "size": 24}[field]
            fmt = "<H" if field == "flags" else "<I"
            struct.pack_into(fmt, data, at + offset, value)
            path.write_bytes(bytes(data))
            return path
        at = data.find(_CENTRAL, at + 4)
    raise AssertionError(f"{member} not in {path}")


def absolute(path: Path) -> Path:
    return _wheel(path, {"/tmp/glibc-doctor-evil.so": b"\x7fELF"})


def dotdot(path: Path) -> Path:
    return _wheel(path, {"evil/../../../glibc-doctor-escaped.so": b"\x7fELF"})


def symlink(path: Path) -> Path:
    return _wheel(path, {}, infos=[_typed("evil/_core.cpython-39-x86_64-linux-gnu.so", stat.S_IFLNK | 0o777)])


def fifo(path: Path) -> Path:
    return _wheel(path, {}, infos=[_typed("evil/pipe.so", stat.S_IFIFO | 0o644)])


def duplicate(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name": that is the point
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/_core.so", b"first")
            archive.writestr("evil/_core.so", b"second")
            archive.writestr(f"{_DIST}/METADATA", b"Name: evil\nVersion: 1.0\n\n")
    return path


def ratio_bomb(path: Path) -> Path:
    """8 MiB of zeros in about 8 KiB: inflates a thousand times."""
    return _wheel(path, {"evil/_core.cpython-39-x86_64-linux-gnu.so": bytes(8 << 20)})


def overlap_bomb(path: Path) -> Path:
    """One deflated member, and forty more central directory entries pointing at its data."""
    _wheel(path, {"evil/aaa.so": bytes(1 << 16)})
    data = bytearray(path.read_bytes())
    eocd = data.rfind(_EOCD)
    entries, size, start = struct.unpack_from("<HII", data, eocd + 10)
    central = bytes(data[start : start + size])
    first = central.find(_CENTRAL)
    name_len, extra_len, comment_len = struct.unpack_from("<HHH", central, first + 28)
    entry = central[first : first + 46 + name_len + extra_len + comment_len]
    copies = b""
    for index in range(40):
        name = f"evil/b{index:02}.so".encode()
        assert len(name) == name_len
        copies += entry[:46] + name + entry[46 + name_len :]
    new_central = central + copies
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHI", tail, 8, entries + 40, entries + 40, len(new_central))
    path.write_bytes(bytes(data[:start]) + new_central + bytes(tail))
    return path


def size_lie_smaller(path: Path) -> Path:
    """The central directory says 10 bytes; the data inflates to 4 KiB (the CRC is of all of it)."""
    _wheel(path, {"evil/_core.so": b"\x7fELF" + bytes(range(256)) * 16})
    return _patch_central(path, "evil/_core.so", "size", 10)


def size_lie_larger(path: Path) -> Path:
    """The central directory says 1 MiB; the data inflates to 4 KiB."""
    _wheel(path, {"evil/_core.so": b"\x7fELF" + bytes(range(256)) * 16})
    return _patch_central(path, "evil/_core.so", "size", 1 << 20)


def encrypted(path: Path) -> Path:
    _wheel(path, {"evil/_core.so": b"\x7fELF"})
    return _patch_central(path, "evil/_core.so", "flags", 0x1)


def billion_members(path: Path) -> Path:
    """A ZIP64 end record that claims 10^9 members: refused before the directory is parsed."""
    _wheel(path, {"evil/_core.so": b"\x7fELF"})
    data = bytearray(path.read_bytes())
    eocd = data.rfind(_EOCD)
    _, size, start = struct.unpack_from("<HII", data, eocd + 10)
    record_at = eocd
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, size, start)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1)
    tail = bytearray(data[eocd:])
    struct.pack_into("<HH", tail, 8, 0xFFFF, 0xFFFF)
    path.write_bytes(bytes(data[:eocd]) + record + locator + bytes(tail))
    return path


def huge_directory(path: Path) -> Path:
    """An end record whose central directory is 2 GB long."""
    _wheel(path, {"evil/_core.so": b"\x7fELF"})
    data = bytearray(path.read_bytes())
    eocd = data.rfind(_EOCD)
    struct.pack_into("<I", data, eocd + 12, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    return path


def truncated(path: Path) -> Path:
    _wheel(path, {"evil/_core.so": bytes(range(256)) * 64})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_data(path: Path) -> Path:
    """The deflate stream of the shared object overwritten with noise (its headers intact)."""
    _wheel(path, {"evil/_core.so": bytes(range(256)) * 64})
    data = bytearray(path.read_bytes())
    start = data.find(b"evil/_core.so") + len("evil/_core.so")
    for offset in range(start + 4, start + 200):
        data[offset] = (data[offset] * 7 + 13) & 0xFF
    path.write_bytes(bytes(data))
    return path


def not_a_zip(path: Path) -> Path:
    path.write_text("this is not a zip file\n")
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def no_dist_info(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/_core.so", b"\x7fELF")
    return path


def file_and_directory(path: Path) -> Path:
    return _wheel(path, {"evil/a.so": b"\x7fELF", "evil/a.so/b.so": b"\x7fELF"})


# name -> (builder, words the one-line error must hold)
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "absolute": (absolute, "an absolute path"),
    "dotdot": (dotdot, "a '..' component"),
    "symlink": (symlink, "a symlink"),
    "fifo": (fifo, "a device, FIFO or socket entry"),
    "duplicate": (duplicate, "appears twice"),
    "ratio_bomb": (ratio_bomb, "inflates"),
    "overlap_bomb": (overlap_bomb, "overlaps the next one"),
    "size_lie_smaller": (size_lie_smaller, "cannot be read"),
    "size_lie_larger": (size_lie_larger, "declares"),
    "encrypted": (encrypted, "encrypted"),
    "billion_members": (billion_members, "1,000,000,000 members"),
    "huge_directory": (huge_directory, "central directory of"),
    "truncated": (truncated, "not"),
    "corrupt_data": (corrupt_data, "cannot be read"),
    "not_a_zip": (not_a_zip, "not a zip file"),
    "empty": (empty, "not a zip file"),
    "no_dist_info": (no_dist_info, "no .dist-info"),
    "file_and_directory": (file_and_directory, "cannot be laid out"),
}


def make(kind: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    builder, _ = HOSTILE[kind]
    return builder(directory / NAME)
