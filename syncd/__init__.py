"""syncd keeps a seller's own order and warehouse database in step with Amazon's SP-API."""

from __future__ import annotations

__version__ = "0.1.0"
