"""Put a verified build into use, atomically, and keep what is needed to undo it.

A venv is retargeted: its ``bin/python*`` links and the ``pyvenv.cfg`` lines that name the
interpreter's directory move to the build (each written as a new file or link, then ``os.replace``d,
so a reader sees the old state or the new one, never half). A bare interpreter gets a stable profile
path, ``profiles/NAME/bin``, a symlink swapped to the current build. The returned ``Activation``
record holds the previous state; ``undo`` restores it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from glibc_doctor.core.errors import PatchError

_CFG_KEYS = ("home", "executable", "base-executable", "command", "base-prefix", "base-exec-prefix")


@dataclass(frozen=True, slots=True)
class LinkChange:
    """A symlink set to ``new``; ``old`` is the link text before (None: it did not exist, or it was
    a file: then ``backup`` holds that file, a hard link made before the swap)."""

    path: str
    old: str | None
    new: str
    backup: str | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    """What an activation changed: links swapped and, for a venv, its pyvenv.cfg before and after."""

    kind: str  # venv or profile
    links: tuple[LinkChange, ...]
    cfg_path: str | None = None
    cfg_old: str | None = None
    cfg_new: str | None = None
    hints: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> list[str]:
        paths = [link.path for link in self.links]
        return paths + ([self.cfg_path] if self.cfg_path else [])

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "links": [
                {"path": link.path, "old": link.old, "new": link.new, "backup": link.backup}
                for link in self.links
            ],
            "cfg_path": self.cfg_path,
            "cfg_old": self.cfg_old,
            "cfg_new": self.cfg_new,
            "hints": list(self.hints),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Activation:
        links = data.get("links")
        return cls(
            kind=str(data["kind"]),
            links=tuple(
                LinkChange(str(item["path"]), item.get("old"), str(item["new"]), item.get("backup"))
                for item in (links if isinstance(links, list) else [])
                if isinstance(item, dict)
            ),
            cfg_path=_opt(data.get("cfg_path")),
            cfg_old=_opt(data.get("cfg_old")),
            cfg_new=_opt(data.get("cfg_new")),
            hints=tuple(str(hint) for hint in _as_list(data.get("hints"))),
        )


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def swap_symlink(path: str, target: str) -> None:
    """Point ``path`` at ``target`` atomically: a new link beside it, renamed over it."""
    temporary = f"{path}.glibc-doctor-{os.getpid()}"
    try:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(target, temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise PatchError(f"cannot switch {path}: {error.strerror}") from error


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as a new file renamed over the old one (mode kept)."""
    temporary = f"{path}.glibc-doctor-{os.getpid()}"
    try:
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
        Path(temporary).write_text(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        raise PatchError(f"cannot write {path}: {error.strerror}") from error


def activate_venv(venv: str, current_root: str, new_root: str, interpreter: str | None = None) -> Activation:
    """Retarget the venv's python links and pyvenv.cfg from ``current_root`` to ``new_root``.

    A venv made with ``--copies`` holds the old interpreter as a file: it becomes a link to the
    build's (``interpreter`` when the build has no file of that name), the file kept for rollback.
    """
    bin_dir = os.path.join(venv, "bin")
    changes = []
    for name in sorted(os.listdir(bin_dir)):
        path = os.path.join(bin_dir, name)
        if not name.startswith("python") or name.startswith("python-"):
            continue
        if not os.path.islink(path):
            copied = _copied_interpreter(path, new_root, interpreter)
            if copied is not None:
                changes.append(copied)
            continue
        old = os.readlink(path)
        new = _moved(old, current_root, new_root)
        real = os.path.realpath(path)
        sibling = os.path.dirname(os.path.normpath(os.path.join(bin_dir, old))) == os.path.normpath(bin_dir)
        if new == old and not sibling and real != old:
            new = _moved(real, current_root, new_root)
            new = old if new == real else new
        if new != old:
            changes.append(LinkChange(path, old, new))
    cfg_path = os.path.join(venv, "pyvenv.cfg")
    try:
        cfg_old = Path(cfg_path).read_text()
    except OSError as error:
        raise PatchError(f"cannot read {cfg_path}: {error.strerror}") from error
    cfg_new = retarget_cfg(cfg_old, current_root, new_root)
    if not changes and cfg_new == cfg_old:
        raise PatchError(f"{venv} does not point into {current_root}: nothing to retarget")
    for change in changes:
        if change.backup is not None:
            _keep_backup(change.path, change.backup)
        swap_symlink(change.path, change.new)
    if cfg_new != cfg_old:
        write_atomic(cfg_path, cfg_new)
    return Activation("venv", tuple(changes), cfg_path, cfg_old, cfg_new)


def _copied_interpreter(path: str, new_root: str, interpreter: str | None) -> LinkChange | None:
    """A LinkChange replacing a copied ELF interpreter by a link into the build, or None."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"\x7fELF":
                return None
    except OSError:
        return None
    same_name = os.path.join(new_root, "bin", os.path.basename(path))
    target = same_name if os.path.exists(same_name) else interpreter
    if target is None:
        return None
    backup = os.path.join(os.path.dirname(path), f".glibc-doctor-orig.{os.path.basename(path)}")
    return LinkChange(path, None, target, backup)


def _keep_backup(path: str, backup: str) -> None:
    """Keep the copied interpreter under ``backup`` (a hard link: the swap then replaces the name)."""
    try:
        if os.path.lexists(backup):
            os.unlink(backup)
        os.link(path, backup)
    except OSError as error:
        raise PatchError(f"cannot keep {path} for rollback: {error.strerror}") from error


def retarget_cfg(text: str, current_root: str, new_root: str) -> str:
    """pyvenv.cfg with the interpreter's paths moved; other lines unchanged."""
    lines = []
    for line in text.splitlines(keepends=True):
        key, sep, value = line.partition("=")
        if sep and key.strip() in _CFG_KEYS:
            body = value.strip()
            if key.strip() == "command":
                moved = body.replace(current_root, new_root)
            else:
                moved = _moved(body, current_root, new_root)
                if moved == body and os.path.realpath(body) != body:
                    real = os.path.realpath(body)
                    moved = (
                        _moved(real, current_root, new_root)
                        if _moved(real, current_root, new_root) != real
                        else body
                    )
            line = line.replace(body, moved, 1) if body else line
        lines.append(line)
    return "".join(lines)


def activate_profile(profile_dir: str, new_root: str) -> Activation:
    """``profile_dir/bin`` -> a generation dir of links to ``new_root/bin/*``: a PATH entry that
    always runs the current build.

    The generation holds one symlink per executable (not a link to the build's ``bin`` itself) because
    interpreters find their prefix by resolving the symlink of their own file, never of a directory.
    """
    os.makedirs(profile_dir, exist_ok=True)
    link = os.path.join(profile_dir, "bin")
    old = os.readlink(link) if os.path.islink(link) else None
    if os.path.exists(link) and old is None:
        raise PatchError(f"{link} exists and is not a symlink; remove it to let glibc-doctor manage it")
    generation = _generation(profile_dir, new_root)
    swap_symlink(link, os.path.basename(generation))
    hint = f'export PATH="{link}:$PATH"'
    return Activation("profile", (LinkChange(link, old, os.path.basename(generation)),), hints=(hint,))


def _generation(profile_dir: str, new_root: str) -> str:
    """``profile_dir/gen-<hash of the build>``: links to every entry of the build's bin (made once)."""
    name = "gen-" + hashlib.sha256(new_root.encode()).hexdigest()[:12]
    generation = os.path.join(profile_dir, name)
    if os.path.isdir(generation):
        return generation
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=profile_dir)
    bin_dir = os.path.join(new_root, "bin")
    try:
        for entry in sorted(os.listdir(bin_dir)):
            os.symlink(os.path.join(bin_dir, entry), os.path.join(staging, entry))
        os.chmod(staging, 0o755)
        os.rename(staging, generation)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.isdir(generation):
            return generation
        raise PatchError(f"cannot make the profile {generation}: {error.strerror}") from error
    return generation


def undo(activation: Activation) -> None:
    """Restore what ``activation`` changed (links back to their old text, pyvenv.cfg as it was)."""
    for change in activation.links:
        if change.backup is not None and os.path.exists(change.backup):
            os.replace(change.backup, change.path)
            continue
        if change.old is None:
            if os.path.islink(change.path):
                os.unlink(change.path)
            continue
        swap_symlink(change.path, change.old)
    if activation.cfg_path is not None and activation.cfg_old is not None:
        write_atomic(activation.cfg_path, activation.cfg_old)


def _moved(path: str, old_root: str, new_root: str) -> str:
    if path == old_root or path.startswith(old_root.rstrip("/") + "/"):
        return new_root + path[len(old_root) :]
    return path
