"""``syncd sandbox serve`` in a process of its own, for benchmarks and end-to-end tests.

A sandbox in the measuring process would share its CPU and its GIL; in its own process it
behaves like the remote service it stands for.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from types import TracebackType
from typing import Self

_SETTING_LINE = re.compile(r"^(SYNCD_[A-Z_]+)=(.*)$")
_LAST_SETTING = "SYNCD_LWA_CLIENT_SECRET"


class ExternalSandbox:
    """Starts ``syncd sandbox serve --port 0 ARGS…`` and collects the settings it prints.

    Use as a context manager; leaving it sends SIGTERM and waits for the process.
    """

    def __init__(self, *args: str) -> None:
        self.args = args
        self.settings: dict[str, str] = {}
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "syncd", "sandbox", "serve", "--port", "0", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**env, "LANG": "C.UTF-8", "LANGUAGE": "en"},
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            match = _SETTING_LINE.match(line.strip())
            if match:
                self.settings[match.group(1)] = match.group(2)
            if _LAST_SETTING in self.settings:
                return self
        self._process.wait(timeout=10)
        raise RuntimeError(f"syncd sandbox serve exited with {self._process.returncode}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        self.returncode = self._process.wait(timeout=10)
