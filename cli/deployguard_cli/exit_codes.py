"""The exit codes of every ``deployguard`` command, in one place.

0 the thing checked passed (or there was nothing to do), 1 findings (it is not fit to ship, or the
operator declined), 2 the command could not run, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_ERROR: Final = 2
EXIT_INTERRUPTED: Final = 130
