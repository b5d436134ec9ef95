"""The real-glibc lab: Debian packages of other releases assembled into a Nix-like store (``build.py``).

Not part of the engine: nothing in ``glibc_doctor.core`` imports it; ``glibc-doctor demo``
and the tests use it.
"""
