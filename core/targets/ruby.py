"""Ruby: the archdir, the gem extension directories and the feature names ``require`` uses."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from glibc_doctor.core.elf import defines_symbol
from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.targets.files import dynamic_needed, program_name
from glibc_doctor.core.targets.scripts import WrapperPaths
from glibc_doctor.core.targets.walk import Walk, explicit_extensions, module_name, walked_target

RUBY_NAME = re.compile(r"^ruby(?P<version>\d+\.\d+)?$")


LIBRUBY = re.compile(r"^libruby(?:-(?P<v1>\d+\.\d+)(?:\.\d+)?)?\.so(?:\.(?P<v2>\d+\.\d+))?")


def _ruby_version(executable: str, needed: Sequence[str], prefix: str) -> str | None:
    for name in needed:
        match = LIBRUBY.match(name)
        if match and (match["v1"] or match["v2"]):
            return match["v1"] or match["v2"]
    match = RUBY_NAME.match(program_name(executable))
    if match and match["version"]:
        return match["version"]
    try:
        names = sorted(os.listdir(os.path.join(prefix, "lib", "ruby")))
    except OSError:
        return None
    versions = [name[:-2] for name in names if re.fullmatch(r"\d+\.\d+\.0", name)]
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")), default=None)


def _ruby_roots(prefix: str, abi: str, gem_paths: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(directory, naming)`` pairs: archdirs name by relative path; gem trees strip their own prefix."""
    roots: list[tuple[str, str]] = []
    lib_ruby = os.path.join(prefix, "lib", "ruby")
    for sub in (abi, os.path.join("site_ruby", abi), os.path.join("vendor_ruby", abi)):
        base = os.path.join(lib_ruby, sub)
        if os.path.isdir(base):
            roots += [
                (os.path.join(base, n), "arch")
                for n in sorted(os.listdir(base))
                if n.startswith("x86_64-linux")
            ]
    multiarch = os.path.join(prefix, "lib", "x86_64-linux-gnu")  # Debian's archdir and vendor archdir
    roots.append((os.path.join(multiarch, "ruby", abi), "arch"))
    roots.append((os.path.join(multiarch, "ruby", "vendor_ruby", abi), "arch"))
    local = os.path.join(prefix, "local") if prefix == "/usr" else prefix
    roots.append((os.path.join(local, "lib", "x86_64-linux-gnu", "site_ruby"), "arch"))
    gem_homes = [
        *gem_paths,
        os.path.join(lib_ruby, "gems", abi),
        os.path.join(multiarch, "rubygems-integration", abi),
    ]
    if prefix == "/usr":
        gem_homes.append(os.path.join("/var/lib/gems", abi))
    for home in gem_homes:
        roots += _gem_home_roots(home)
    return [(path, naming) for path, naming in roots if os.path.isdir(path)]


def _gem_home_roots(home: str) -> list[tuple[str, str]]:
    """A gem home's compiled extensions and each installed gem's ``lib``."""
    roots = [(os.path.join(home, "extensions"), "extensions")]
    gems = os.path.join(home, "gems")
    if os.path.isdir(gems):
        roots += [(os.path.join(gems, n, "lib"), "arch") for n in sorted(os.listdir(gems))]
    return roots


def _ruby_feature_name(path: str, root: str, naming: str) -> str:
    """What ``require`` names: ``json/ext/parser``; gem extension trees drop ``ARCH/ABI/GEM-VER/``."""
    name = module_name(path, root, "/")
    if naming == "extensions":
        parts = name.split("/")
        return "/".join(parts[3:]) if len(parts) > 3 else name
    return name


def resolve_ruby(
    spec: str, real: str, ext: Sequence[str], notes: Sequence[str] = (), extra: WrapperPaths | None = None
) -> Target:
    needed = dynamic_needed(real)
    caller = next((name for name in needed if LIBRUBY.match(name)), None)
    prefix = os.path.dirname(os.path.dirname(real))
    version = _ruby_version(real, needed, prefix)
    walk = Walk()
    extensions: list[Extension] = []
    all_notes = list(notes)
    if version is None:
        all_notes.append(f"no Ruby library directory found under {prefix}; name extension dirs with --ext")
    else:
        gem_paths = extra.gem_paths if extra else ()
        for root, naming in _ruby_roots(prefix, f"{version}.0", gem_paths):
            start = len(walk.found)
            walk.walk(root, lambda name: name.endswith(".so"))
            for path, _ in walk.found[start:]:
                if is_feature(path):
                    extensions.append(Extension(path, _ruby_feature_name(path, root, naming), caller))
    extensions += explicit_extensions(ext, walk, caller, lambda p, r: module_name(p, r, "/"))
    examined = [path for path, _ in walk.found]
    return walked_target("ruby", spec, real, walk, extensions, all_notes + walk.notes, examined=examined)


def is_feature(path: str) -> bool:
    """Whether ``require`` can load ``path`` as a feature: it exports ``Init_<base name>`` (dln.c calls
    it after dlopen()). A library that only sits on the load path (one an FFI gem opens by its path, one
    a gem vendors for its extension) does not; a file that cannot be read as ELF is kept, so the scan
    says what is wrong with it."""
    return defines_symbol(path, "Init_" + os.path.basename(path).split(".", 1)[0]) is not False
