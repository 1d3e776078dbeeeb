"""The systemd side of the daemon: the variables systemd sets for a service.

This module is the only place that reads ``CREDENTIALS_DIRECTORY``; everything here is a
no-op outside systemd.
"""

from __future__ import annotations

import os
from pathlib import Path


def credentials_directory() -> Path | None:
    """Return the folder where systemd placed the service's ``LoadCredential=`` files."""
    value = os.environ.get("CREDENTIALS_DIRECTORY")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None
