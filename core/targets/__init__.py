"""What a process will be: the program it execs and the extensions it will dlopen().

The user names a target loosely (``python3``, ``.venv``, ``/usr/bin/ruby``, a plugin host with
``--ext DIR``, a PID); the graph needs it exactly. This module answers statically, the way the
interpreter itself would find its files (CPython's ``getpath`` landmarks, ``pyvenv.cfg``, Ruby's archdir
and gem directories), and never runs the target: a broken interpreter is exactly what we are asked to
look at, and running it may be what fails.

One module per kind of target, behind ``resolve_target`` (``resolve.py``): ``python.py`` (CPython layouts),
``venv.py`` (virtual environments), ``ruby.py`` (ruby and its gems), ``scripts.py`` (wrapper scripts and
shims), ``pid.py`` (a running process), ``detect.py`` (the TUI picker's candidates), ``architecture.py``
(programs this machine cannot model); ``walk.py`` and ``files.py`` hold what they share.
"""

from glibc_doctor.core.targets.architecture import check_runnable_here
from glibc_doctor.core.targets.detect import Candidate, candidates, detect_candidates
from glibc_doctor.core.targets.pid import mapped_files, target_from_pid
from glibc_doctor.core.targets.python import PythonLayout, python_layout
from glibc_doctor.core.targets.resolve import interpreter_kind, resolve_target
from glibc_doctor.core.targets.scripts import WrapperPaths, read_wrapper
from glibc_doctor.core.targets.venv import read_pyvenv_cfg

__all__ = [
    "Candidate",
    "PythonLayout",
    "WrapperPaths",
    "candidates",
    "check_runnable_here",
    "detect_candidates",
    "interpreter_kind",
    "mapped_files",
    "python_layout",
    "read_pyvenv_cfg",
    "read_wrapper",
    "resolve_target",
    "target_from_pid",
]
