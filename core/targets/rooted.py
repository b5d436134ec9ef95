"""A target inside a ``--root`` directory: found as the programs inside it would find it.

The user names the program as the image knows it (``/usr/bin/python3``, or ``python3`` on the image's
own PATH); it is resolved on this machine through the root (``core/sysroot.py``: absolute symlinks stay
inside), then every path of the resulting ``Target`` is turned back into a path inside the root, the
form the loader model and the scan's JSON use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from glibc_doctor.core.errors import TargetError
from glibc_doctor.core.model import Extension, Target
from glibc_doctor.core.sysroot import Sysroot, resolving_in
from glibc_doctor.core.targets.resolve import resolve_target

# The PATH of a login shell inside a Debian-like image (``/etc/profile``'s root PATH).
IMAGE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def inside_spec(spec: str, root: Sysroot) -> str:
    """The inside path ``spec`` names: absolute as it is, relative from ``/``, a bare name on the image's
    PATH (the first directory holding it, as a shell inside would pick)."""
    if "/" in spec:
        return os.path.normpath("/" + spec.lstrip("/"))
    for directory in IMAGE_PATH:
        candidate = f"{directory}/{spec}"
        if os.path.isfile(root.host(candidate)):
            return candidate
    raise TargetError(f"{spec}: not found on the PATH of {root.dir} ({':'.join(IMAGE_PATH)})")


def resolve_in_root(spec: str, ext: Sequence[str], root: Sysroot) -> Target:
    """``resolve_target`` for a program inside ``root``; the Target's paths are inside paths."""
    inside = inside_spec(spec, root)
    host = root.host(inside)
    if not os.path.lexists(host):
        raise TargetError(f"{inside}: no such file inside {root.dir}")
    host_ext = [root.host(inside_spec(path, root)) if "/" in path else path for path in ext]
    with resolving_in(root):  # any architecture; absolute names in files are taken inside the root
        target = resolve_target(host, host_ext)
    return _inside_target(target, spec, root)


def _inside_target(target: Target, spec: str, root: Sysroot) -> Target:
    extensions = tuple(
        Extension(root.inside(extension.path), extension.name, extension.caller)
        for extension in target.extensions
    )
    notes = tuple(note.replace(root.dir + "/", "/") for note in target.notes)
    return replace(
        target,
        spec=spec,
        executable=root.inside(target.executable),
        extensions=extensions,
        environment=root.inside(target.environment) if target.environment else None,
        searched_dirs=tuple(root.inside(path) for path in target.searched_dirs),
        notes=notes,
    )
