"""Reading a wheel as a zip file without trusting it: bounded memory, nothing written outside our directory.

A wheel is a zip archive whose content anybody could have made: a pip cache holds files built on this
machine, but a wheel given on the command line may come from anywhere. Before ``zipfile`` parses the
central directory, its size and entry count are read from the end record (a directory of ten million
entries would be parsed into memory). Then every member is checked as pip would have to install it:

- hostile names: an absolute path, a ``..`` component, a symlink, device or FIFO entry (a wheel holds
  regular files; pip writes a link's target as text, an extractor that honours the mode writes a link);
  two members of one name (which one wins depends on the tool);
- zip bombs: members whose data overlap (one deflate stream counted a thousand times), a declared size
  or compression ratio past the limits, a total past the limits; and while a member is extracted, the
  bytes actually produced are counted against its declared size (``zipfile`` also checks the CRC);
- everything else ``zipfile`` or ``zlib`` raises on a corrupt archive (truncation, bad CRC, unknown
  compression, encryption).

Each failure is one ``WheelError`` line. Members are extracted only on request, streamed in chunks, into
files created with ``O_EXCL | O_NOFOLLOW`` under a directory the caller made (``tempfile.mkdtemp``), at
paths made from checked names only, never through a link.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from types import TracebackType

from glibc_doctor.core.errors import WheelError

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_LOCAL_HEADER = 30  # fixed part of a local file header
_CHUNK = 1 << 20
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    ValueError,
    struct.error,
    UnicodeDecodeError,
    RuntimeError,  # zipfile: "File ... is encrypted, password required"
)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """What a wheel may claim before it is refused as a zip bomb (real wheels stay far below)."""

    members: int = 200_000  # torch holds about 15,000
    directory_bytes: int = 64 << 20  # the central directory zipfile reads into memory
    member_bytes: int = 2 << 30  # the largest real ELF member (libtorch_cuda.so) is under 1.5 GB
    total_bytes: int = 4 << 30  # what one check may extract
    ratio: int = 200  # uncompressed : compressed, for members past ``ratio_floor`` (real .so: 2-10)
    ratio_floor: int = 1 << 20
    text_bytes: int = 1 << 20  # .dist-info/WHEEL and the header of METADATA


LIMITS = ZipLimits()


class _Clock:
    """Nanosecond stamps that never repeat within this process (see ``WheelZip.extract``)."""

    _last = 0
    _lock = threading.Lock()

    @classmethod
    def stamp(cls) -> int:
        with cls._lock:
            cls._last = max(time.time_ns(), cls._last + 1)
            return cls._last


class WheelZip:
    """An open wheel whose members all passed the checks; extract or read them one at a time."""

    def __init__(self, path: str, limits: ZipLimits = LIMITS) -> None:
        self.path = path
        self.limits = limits
        self._file = _open_regular(path)
        try:
            _check_end_record(self._file, path, limits)
            self._zip = zipfile.ZipFile(self._file)
            self.members = _checked_members(self._zip, path, limits)
        except _ZIP_ERRORS as error:
            self._file.close()
            raise WheelError(f"{path}: not a readable zip file ({_reason(error)})") from None
        except BaseException:
            self._file.close()
            raise
        self.extracted = 0

    def __enter__(self) -> WheelZip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def names(self) -> list[str]:
        """The member file names (directory entries left out), in archive order."""
        return list(self.members)

    def size(self, name: str) -> int:
        return self.members[name].file_size

    def text(self, name: str) -> str:
        """The first ``limits.text_bytes`` of a member, as UTF-8 (bad bytes replaced)."""
        try:
            with self._zip.open(self.members[name]) as source:
                data = source.read(self.limits.text_bytes)
        except _ZIP_ERRORS as error:
            raise WheelError(f"{self.path}: {name}: cannot be read ({_reason(error)})") from None
        return data.decode("utf-8", errors="replace")

    def reserve(self, names: list[str]) -> None:
        """Refuse before writing anything when these members together exceed the total limit."""
        total = sum(self.members[name].file_size for name in names)
        if total > self.limits.total_bytes:
            raise WheelError(
                f"{self.path}: its native members declare {total:,} bytes, more than the "
                f"{self.limits.total_bytes:,} a check extracts (a zip bomb?)"
            )

    def extract(self, name: str, dest: str) -> None:
        """Stream member ``name`` into the new file ``dest`` (its directory must exist and be ours).

        The file gets an mtime no other extracted file of this process has: the ELF caches key on
        (device, inode, size, mtime), and a file of a later wheel may reuse the inode of a deleted one.
        """
        info = self.members[name]
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            written = self._copy(info, fd)
            stamp = _Clock.stamp()
            os.utime(fd, ns=(stamp, stamp))
        finally:
            os.close(fd)
        self.extracted += written

    def _copy(self, info: zipfile.ZipInfo, fd: int) -> int:
        written = 0
        try:
            with self._zip.open(info) as source:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size or self.extracted + written > self.limits.total_bytes:
                        raise WheelError(f"{self.path}: {info.filename}: inflates past its declared size")
                    os.write(fd, chunk)
        except _ZIP_ERRORS as error:
            raise WheelError(f"{self.path}: {info.filename}: cannot be read ({_reason(error)})") from None
        if written != info.file_size:
            raise WheelError(
                f"{self.path}: {info.filename}: {written:,} bytes, not the {info.file_size:,} it declares"
            )
        return written


def open_wheel(path: str, limits: ZipLimits = LIMITS) -> WheelZip:
    """The wheel at ``path`` with its members checked; raises ``WheelError`` (one line) otherwise."""
    return WheelZip(path, limits)


def _open_regular(path: str) -> io.BufferedReader:
    """Open without blocking on a FIFO; only a regular file is a wheel."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise WheelError(f"{path}: cannot open: {error.strerror or error}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise WheelError(f"{path}: {what}, not a wheel")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_end_record(handle: io.BufferedReader, path: str, limits: ZipLimits) -> None:
    """The entry count and central directory size from the end record (ZIP64 too), before zipfile
    reads that directory into memory."""
    size = os.fstat(handle.fileno()).st_size
    if size < _EOCD_SIZE:
        raise WheelError(f"{path}: not a zip file ({size} bytes)")
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
    tail = os.pread(handle.fileno(), tail_size, size - tail_size)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise WheelError(f"{path}: not a zip file (no end of central directory record)")
    entries, directory = struct.unpack_from("<HI", tail, at + 10)
    locator = at - 20
    if (
        (entries == 0xFFFF or directory == 0xFFFFFFFF)
        and locator >= 0
        and tail[locator:at][:4] == _EOCD64_LOCATOR
    ):
        (offset,) = struct.unpack_from("<Q", tail, locator + 8)
        record = os.pread(handle.fileno(), 56, offset)
        if len(record) < 56 or record[:4] != _EOCD64:
            raise WheelError(f"{path}: not a readable zip file (a broken ZIP64 end record)")
        entries, directory = struct.unpack_from("<QQ", record, 32)
    if entries > limits.members:
        raise WheelError(f"{path}: {entries:,} members, more than the {limits.members:,} a wheel may hold")
    if directory > limits.directory_bytes:
        raise WheelError(f"{path}: a central directory of {directory:,} bytes (a zip bomb?)")


def _checked_members(archive: zipfile.ZipFile, path: str, limits: ZipLimits) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        _check_name(info, path)
        if info.is_dir():
            continue
        if info.filename in members:
            raise WheelError(f"{path}: the member {info.filename!r} appears twice")
        _check_size(info, path, limits)
        members[info.filename] = info
    _check_overlap(archive, path)
    return members


def _check_name(info: zipfile.ZipInfo, path: str) -> None:
    name = info.filename
    if name.startswith("/") or name.startswith("\\"):
        raise WheelError(f"{path}: hostile member name {name!r} (an absolute path)")
    if ".." in name.replace("\\", "/").split("/"):
        raise WheelError(f"{path}: hostile member name {name!r} (a '..' component)")
    if info.flag_bits & 0x1:
        raise WheelError(f"{path}: the member {name!r} is encrypted")
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise WheelError(f"{path}: hostile member {name!r} (a symlink; wheels hold regular files)")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise WheelError(f"{path}: hostile member {name!r} (a device, FIFO or socket entry)")


def _check_size(info: zipfile.ZipInfo, path: str, limits: ZipLimits) -> None:
    if info.file_size > limits.member_bytes:
        raise WheelError(
            f"{path}: the member {info.filename!r} declares {info.file_size:,} bytes (a zip bomb?)"
        )
    if info.file_size > limits.ratio_floor and info.file_size > limits.ratio * max(info.compress_size, 1):
        ratio = info.file_size // max(info.compress_size, 1)
        raise WheelError(f"{path}: the member {info.filename!r} inflates {ratio:,} times (a zip bomb)")


def _check_overlap(archive: zipfile.ZipFile, path: str) -> None:
    """Each member's data must end before the next member's header: members sharing one compressed
    stream are the overlapping kind of zip bomb. The extent counted is the least it can be (the local
    header's extra field is not read), so an overlap found is certain."""
    infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
    end_of_data = getattr(archive, "start_dir", None)
    for info, after in zip(infos, [*infos[1:], None], strict=True):
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        name_bytes = len(info.orig_filename.encode(encoding, errors="replace"))
        extent = info.header_offset + _LOCAL_HEADER + name_bytes + info.compress_size
        limit = after.header_offset if after is not None else end_of_data
        if limit is not None and extent > limit:
            raise WheelError(f"{path}: the member {info.filename!r} overlaps the next one (a zip bomb)")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
