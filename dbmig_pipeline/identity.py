"""Who is operating: recorded with every run and every audit row."""
from __future__ import annotations

import getpass


def current_operator() -> str:
    """The OS user running dbmig (containers without a passwd entry give "unknown")."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
