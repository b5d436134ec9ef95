"""Build real ELF objects with the machine's gcc for tests: shared libraries, extensions, programs.

Every fixture of the test suite is compiled here from C source, never committed as a binary.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


def compile_elf(
    out: Path,
    source: str,
    *,
    shared: bool = True,
    soname: str | None = None,
    libs: Sequence[str | Path] = (),
    rpath: Sequence[str] = (),
    runpath: Sequence[str] = (),
    version_script: str | None = None,
    extra: Sequence[str] = (),
    cxx: bool = False,
    nostdlib: bool = False,
) -> Path:
    """Compile ``source`` to ``out`` and return ``out``.

    ``libs`` are paths of shared objects to link against (they become DT_NEEDED by their soname) or
    ``-l`` flags. ``rpath`` entries become DT_RPATH (``--disable-new-dtags``), ``runpath`` entries
    DT_RUNPATH (give one or the other: the linker writes one tag kind per object). ``version_script``
    is the text of a linker version script (it makes ``.gnu.version_d``). ``nostdlib`` links without
    libc (a fake libc itself).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".cc" if cxx else ".c"
    src = out.with_name(out.name + suffix)
    src.write_text(source)
    argv: list[str] = ["g++" if cxx else "gcc", "-o", str(out), str(src), "-fPIC", "-O0"]
    if shared:
        argv.append("-shared")
    if nostdlib:
        argv += ["-nostdlib", "-nostartfiles"]
    if soname:
        argv.append(f"-Wl,-soname,{soname}")
    if version_script is not None:
        script = out.with_name(out.name + ".map")
        script.write_text(version_script)
        argv.append(f"-Wl,--version-script,{script}")
    if rpath:
        argv += ["-Wl,--disable-new-dtags", "-Wl,-rpath," + ":".join(rpath)]
    if runpath:
        argv += ["-Wl,--enable-new-dtags", "-Wl,-rpath," + ":".join(runpath)]
    for lib in libs:
        lib_text = str(lib)
        if lib_text.startswith("-"):
            argv.append(lib_text)
        else:
            argv += [f"-L{Path(lib_text).parent}", f"-l:{Path(lib_text).name}"]
    argv += list(extra)
    subprocess.run(argv, check=True, capture_output=True, text=True)
    return out


I386_LOADER = "/lib/ld-linux.so.2"  # the i386 loader that gcc-multilib (libc6-i386) installs


@functools.cache
def builds_i386_programs() -> bool:
    """Whether ``gcc -m32`` links a real i386 program here (gcc-multilib) and its loader is installed."""
    if not os.path.exists(I386_LOADER):
        return False
    with tempfile.TemporaryDirectory() as scratch:
        try:
            compile_elf(
                Path(scratch) / "probe", "int main(void) { return 0; }\n", shared=False, extra=["-m32"]
            )
        except subprocess.CalledProcessError:
            return False
    return True
