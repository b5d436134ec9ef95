"""``python -m glibc_doctor.tui``: the same command line as ``glibc-doctor``."""

import sys

from glibc_doctor.tui.cli import main

sys.exit(main())
