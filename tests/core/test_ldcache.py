"""ld.so.cache parsing, checked against ldconfig's own listing and against the real loader."""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from glibc_doctor.core.ldcache import (
    NEW_MAGIC,
    OLD_MAGIC,
    X86_64_LIBC6,
    parse_ld_cache,
    read_ld_cache,
)

from tests.gcc import compile_elf

SYSTEM_LOADER = "/lib64/ld-linux-x86-64.so.2"
FORMATS = ("new", "old", "compat")
_LISTING = re.compile(r"^\s+(?P<key>\S+) \((?P<desc>[^)]*)\) => (?P<value>.+)$")

needs_ldconfig = pytest.mark.skipif(shutil.which("ldconfig") is None, reason="no ldconfig here")


def ldconfig_listing(*args: str) -> list[tuple[str, str]]:
    """(key, value) pairs of ``ldconfig -p``, in its order (the file order)."""
    out = subprocess.run(["ldconfig", *args, "-p"], check=True, capture_output=True).stdout.decode(
        "utf-8", "replace"
    )
    pairs = []
    for line in out.splitlines():
        match = _LISTING.match(line)
        if match:
            pairs.append((match["key"], match["value"]))
    return pairs


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chroot-style tree whose library dir sits at the same absolute path inside and outside.

    ``ldconfig -r ROOT`` writes paths as seen inside ROOT and leaves the host's aux cache alone; the
    libraries are copied to ROOT + DIR so that the cache's paths also exist on the host, where the
    real loader opens them.
    """
    base = tmp_path_factory.mktemp("ldcache")
    lib = base / "lib"
    source = "int x(void) { return 7; }\n"
    compile_elf(lib / "libx.so.1", source, soname="libx.so.1")
    compile_elf(lib / "glibc-hwcaps" / "x86-64-v2" / "libx.so.1", source, soname="libx.so.1")
    compile_elf(lib / "liby.so.2", "int y(void) { return 1; }\n", soname="liby.so.2")
    root = base / "root"
    inner = Path(str(root) + str(lib))
    shutil.copytree(lib, inner, symlinks=True)
    (root / "etc").mkdir()
    (root / "etc" / "ld.so.conf").write_text(f"{lib}\n")
    for layout in FORMATS:
        subprocess.run(
            ["ldconfig", "-X", "-r", str(root), "-c", layout, "-C", f"/etc/{layout}.cache"],
            check=True,
            capture_output=True,
        )
    compile_elf(
        base / "prog",
        "int x(void);\nint main(void) { return x(); }\n",
        shared=False,
        libs=[lib / "libx.so.1"],
    )
    return root


@pytest.mark.skipif(not os.path.exists("/etc/ld.so.cache"), reason="no system cache")
@needs_ldconfig
def test_system_cache_lists_what_ldconfig_lists() -> None:
    cache = read_ld_cache("/etc/ld.so.cache")
    assert cache is not None
    assert [(entry.key, entry.value) for entry in cache.entries] == ldconfig_listing()


@pytest.mark.skipif(not os.path.exists("/etc/ld.so.cache"), reason="no system cache")
def test_system_cache_finds_libc_in_the_system_lib_dir() -> None:
    cache = read_ld_cache("/etc/ld.so.cache")
    assert cache is not None
    found = cache.lookup("libc.so.6")
    assert found
    assert os.path.samefile(found[0], os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"))


@needs_ldconfig
@pytest.mark.parametrize("layout", FORMATS)
def test_generated_cache_lists_what_ldconfig_lists(cache_root: Path, layout: str) -> None:
    cache = read_ld_cache(str(cache_root / "etc" / f"{layout}.cache"))
    assert cache is not None
    assert cache.format == layout
    expected = ldconfig_listing("-r", str(cache_root), "-C", f"/etc/{layout}.cache")
    assert [(entry.key, entry.value) for entry in cache.entries] == expected


@needs_ldconfig
def test_new_format_names_the_hwcaps_subdir_of_an_entry(cache_root: Path) -> None:
    cache = read_ld_cache(str(cache_root / "etc" / "new.cache"))
    assert cache is not None
    subdirs = {entry.value: entry.hwcaps for entry in cache.entries_for("libx.so.1")}
    assert set(subdirs.values()) == {"x86-64-v2", None}
    assert all(path.endswith("glibc-hwcaps/x86-64-v2/libx.so.1") for path, sub in subdirs.items() if sub)
    assert cache.generator is not None
    assert "ldconfig" in cache.generator


@needs_ldconfig
def test_unsupported_hwcaps_entries_are_left_out(cache_root: Path) -> None:
    cache = read_ld_cache(str(cache_root / "etc" / "new.cache"))
    assert cache is not None
    assert cache.lookup("libx.so.1", hwcaps=("x86-64-v4",)) == tuple(
        entry.value for entry in cache.entries_for("libx.so.1") if entry.hwcaps is None
    )


@needs_ldconfig
def test_numbers_in_names_compare_by_value_like_libcmp(cache_root: Path) -> None:
    cache = read_ld_cache(str(cache_root / "etc" / "new.cache"))
    assert cache is not None
    assert cache.lookup("liby.so.02") == cache.lookup("liby.so.2") != ()


def _loader_reading(cache_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the system ld.so whose compiled-in cache path points at ``cache_file``.

    The string ``/etc/ld.so.cache`` is replaced in place by a short symlink of at most its length;
    the caller removes the symlink.
    """
    data = Path(SYSTEM_LOADER).read_bytes()
    original = b"/etc/ld.so.cache\0"
    link = f"/tmp/gd{uuid.uuid4().hex[:8]}".encode()
    os.symlink(cache_file, link)
    patched = tmp_path / "ld.so"
    patched.write_bytes(data.replace(original, link + b"\0" * (len(original) - len(link)), 1))
    patched.chmod(0o755)
    return patched, Path(link.decode())


@needs_ldconfig
@pytest.mark.skipif(not os.path.exists(SYSTEM_LOADER), reason="no x86-64 system loader")
@pytest.mark.parametrize("layout", FORMATS)
def test_real_loader_opens_the_first_path_lookup_predicts(
    cache_root: Path, layout: str, tmp_path: Path
) -> None:
    cache_file = cache_root / "etc" / f"{layout}.cache"
    cache = read_ld_cache(str(cache_file))
    assert cache is not None
    predicted = cache.lookup("libx.so.1", hwcaps=("x86-64-v4", "x86-64-v3", "x86-64-v2"))
    loader, link = _loader_reading(cache_file, tmp_path)
    try:
        env = {"LD_DEBUG": "libs", "PATH": os.environ.get("PATH", "")}
        run = subprocess.run(
            [str(loader), str(cache_root.parent / "prog")], env=env, capture_output=True, text=True
        )
    finally:
        link.unlink()
    assert run.returncode == 7, run.stderr
    tried = re.findall(r"trying file=(\S+)", run.stderr.split("find library=libx.so.1", 1)[1])
    assert tried[0] == predicted[0]


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert read_ld_cache(str(tmp_path / "absent")) is None


def test_a_directory_is_none(tmp_path: Path) -> None:
    assert read_ld_cache(str(tmp_path)) is None


def test_a_fifo_is_none_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "cache")
    assert read_ld_cache(str(tmp_path / "cache")) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", OLD_MAGIC, NEW_MAGIC, OLD_MAGIC + b"\0" + struct.pack("<I", 10**6)],
)
def test_garbage_is_none(data: bytes) -> None:
    assert parse_ld_cache(data) is None


def test_a_cache_marked_invalid_by_ldconfig_is_none() -> None:
    header = NEW_MAGIC + struct.pack("<IIB3xI12x", 0, 0, 1, 0)
    assert parse_ld_cache(header) is None


@needs_ldconfig
@pytest.mark.parametrize("layout", FORMATS)
def test_corrupted_caches_never_raise(cache_root: Path, layout: str) -> None:
    data = (cache_root / "etc" / f"{layout}.cache").read_bytes()
    rng = random.Random(layout)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        cut = rng.randrange(len(mutated) + 1)
        result = parse_ld_cache(bytes(mutated[:cut]))
        if result is not None:
            result.lookup("libx.so.1")


def _new_cache(entries: list[tuple[int, str, str]]) -> bytes:
    """Bytes of a new-format cache (little endian) holding ``(flags, key, value)`` entries."""
    strings = bytearray()
    table = []
    header_size = 48 + 24 * len(entries)
    for flags, key, value in entries:
        key_at = header_size + len(strings)
        strings += key.encode() + b"\0"
        value_at = header_size + len(strings)
        strings += value.encode() + b"\0"
        table.append(struct.pack("<iIIIQ", flags, key_at, value_at, 0, 0))
    header = NEW_MAGIC + struct.pack("<IIB3xI12x", len(entries), len(strings), 2, 0)
    return header + b"".join(table) + bytes(strings)


def test_entries_of_another_abi_are_skipped() -> None:
    cache = parse_ld_cache(
        _new_cache([(0x0003, "libq.so.1", "/i386/libq.so.1"), (X86_64_LIBC6, "libq.so.1", "/x64/libq.so.1")])
    )
    assert cache is not None
    assert cache.lookup("libq.so.1") == ("/x64/libq.so.1",)
    assert cache.lookup("libq.so.1", cache_id=0x0003) == ("/i386/libq.so.1",)


def test_plain_elf_entries_are_accepted_by_every_abi() -> None:
    cache = parse_ld_cache(_new_cache([(0x0001, "libp.so", "/any/libp.so")]))
    assert cache is not None
    assert cache.lookup("libp.so") == ("/any/libp.so",)
