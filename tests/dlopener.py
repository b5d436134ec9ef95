"""A tiny program that dlopen()s each argument under a chosen glibc, to watch the real loader decide.

It is built by the machine's gcc and runs under glibc 2.31 as well as under newer ones: no start files
(its own ``_start``, so no ``__libc_start_main@GLIBC_2.34``), ``dlopen``/``dlerror`` bound to their
``GLIBC_2.2.5`` versions (in libdl.so.2 before glibc 2.34, in libc.so.6 since), and PT_INTERP plus
DT_RPATH set to the chosen glibc (the RPATH of the main program reaches every dlopen()ed object's
dependencies, as a Nix interpreter's does). It loads with RTLD_NOW, as CPython does, and prints one line
per argument: ``loaded PATH`` or ``refused <dlerror text>``. A crash ends it with a signal.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.gcc import compile_elf

LOADER = "ld-linux-x86-64.so.2"
SOURCE = r"""
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".globl _start\n_start:\n xor %ebp,%ebp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");
static void say(const char *word, const char *text) {
    write(1, word, strlen(word)); write(1, text, strlen(text)); write(1, "\n", 1);
}
void start_c(long *stack) {
    int argc = (int) stack[0];
    char **argv = (char **) (stack + 1);
    for (int i = 1; i < argc; i++) {
        if (dlopen(argv[i], RTLD_NOW) != NULL) say("loaded ", argv[i]);
        else say("refused ", dlerror());
    }
    _exit(0);
}
"""


def build_dlopener(out: Path, glibc_lib: Path | None) -> Path:
    """The program, for the glibc in ``glibc_lib`` (its ld.so and libraries), or the machine's (None)."""
    extra = ["-O1", "-fno-stack-protector", "-nostartfiles", "-Wl,--no-as-needed", "-l:libdl.so.2"]
    if glibc_lib is not None:
        extra += [
            f"-Wl,--dynamic-linker={glibc_lib / LOADER}",
            "-Wl,--disable-new-dtags",
            f"-Wl,-rpath,{glibc_lib}",
        ]
    return compile_elf(out, SOURCE, shared=False, extra=extra)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the real loader did with one object: ``loaded``, ``refused`` (with dlerror's text) or
    ``crash`` (the process died of a signal while loading it)."""

    path: str
    effect: str
    message: str = ""


def run_dlopener(
    program: Path, objects: Sequence[Path], env: Mapping[str, str] | None = None
) -> list[Outcome]:
    """Run ``program`` on ``objects``: one outcome per object, in order, up to a crash."""
    argv = [str(program), *(str(path) for path in objects)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=dict(env or {}), check=False)
    outcomes = []
    for path, line in zip(objects, done.stdout.splitlines(), strict=False):
        word, _, text = line.partition(" ")
        outcomes.append(Outcome(str(path), word, text if word == "refused" else ""))
    if done.returncode < 0 and len(outcomes) < len(objects):
        outcomes.append(Outcome(str(objects[len(outcomes)]), "crash", f"signal {-done.returncode}"))
    elif done.returncode != 0:
        raise AssertionError(f"{program} failed ({done.returncode}): {done.stderr}")
    return outcomes
