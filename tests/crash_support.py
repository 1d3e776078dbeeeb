"""Pieces shared by the crash harnesses: syncd commands as subprocesses, kills, their logs.

A harness runs syncd the way an operator does, as separate processes against
``syncd sandbox serve`` (see :mod:`syncd.sandbox.external`), and sends SIGKILL to a round's
process after a delay. These helpers start and kill those processes, read the JSON log lines
they wrote, and stand in for a lease's time passing after a kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self

import httpx
from sqlalchemy import Engine, update

from syncd.crypto import generate_key
from syncd.db.engine import create_db_engine
from syncd.db.models import Lease, table_of

_LEASES = table_of(Lease)


@dataclass
class RoundProcess:
    """How one round's syncd process ended."""

    returncode: int
    seconds: float  # from start to exit
    started_at: datetime  # wall clock when the process was started
    killed: bool  # ended by the harness's SIGKILL, not by itself
    timed_out: bool  # still running when the delay (or the timeout) ran out


@dataclass
class KillTiming:
    """Running estimates of process start-up and of the work after it, in seconds.

    A share of the kills is aimed at start-up, the rest uniformly over the work that follows.
    """

    startup: float = 1.0
    work: float = 3.0
    startup_share: float = 0.2

    def draw_delay(self, rng: random.Random) -> float:
        """Draw the seconds after the start at which the next round is killed."""
        if rng.random() < self.startup_share:
            return rng.uniform(0.0, self.startup)
        return self.startup + rng.uniform(0.0, self.work)


class HarnessResult(Protocol):
    """What an error message of a harness names: how far the run came."""

    @property
    def rounds(self) -> Sequence[object]: ...

    @property
    def kills(self) -> int: ...


class HarnessBase:
    """The state every crash harness keeps: seeded randomness, control API, environment, engine.

    Use as a context manager; leaving it closes the control client and the engine.
    Subclasses set ``result`` and ``error_type``.
    """

    error_type: type[AssertionError] = AssertionError
    result: HarnessResult

    def __init__(
        self,
        *,
        seed: int,
        work_dir: Path,
        database_url: str,
        control_url: str,
        env: dict[str, str],
        timing: KillTiming,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.seed = seed
        self.work_dir = work_dir
        self.rng = random.Random(seed)
        self.timing = timing
        self.progress = progress or (lambda _message: None)
        self.control = httpx.Client(base_url=control_url, timeout=60)
        self.env = env
        self.engine: Engine = create_db_engine(database_url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.control.close()
        self.engine.dispose()

    def _syncd(self, *args: str, stdin: str | None = None) -> None:
        """Run one syncd command to its end; raise the harness's error when it fails."""
        completed = run_syncd(self.env, *args, stdin=stdin)
        if completed.returncode != 0:
            raise self._error(
                f"syncd {' '.join(args)} exited with {completed.returncode}: "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )

    def _error(self, message: str) -> AssertionError:
        """Return the harness's error, naming the seed, the progress and the round logs."""
        rounds = len(self.result.rounds)
        return self.error_type(
            f"{message} [seed {self.seed}, after {rounds} rounds and "
            f"{self.result.kills} kills; round logs in {self.work_dir}]"
        )


def command_environment(
    database_url: str, sandbox_settings: Mapping[str, str], settings: Mapping[str, str]
) -> dict[str, str]:
    """Return the environment of the syncd commands, with no SYNCD_ variable from outside.

    The commands log JSON at debug level in English, retry quickly, and use a new encryption
    key and the sandbox's settings. ``settings`` adds or overrides ``SYNCD_*`` values.
    """
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SYNCD_")}
    env.update(sandbox_settings)
    env.update(
        {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_ENCRYPTION_KEY": generate_key(),
            "SYNCD_LOG_FORMAT": "json",
            "SYNCD_LOG_LEVEL": "debug",
            "SYNCD_LANGUAGE": "en",
            "SYNCD_RETRY_BASE_DELAY": "0.05",
            "SYNCD_RETRY_MAX_DELAY": "0.5",
            "LANG": "C.UTF-8",
        }
    )
    env.update(settings)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    return env


def run_syncd(
    env: Mapping[str, str], *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one syncd command to its end and return it, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
        timeout=timeout,
    )


def run_killable(
    args: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    out_path: Path,
    *,
    delay: float | None,
    timeout: float,
    hooks: Sequence[tuple[float, Callable[[], None]]] = (),
) -> RoundProcess:
    """Run ``syncd ARGS…`` and send it SIGKILL after ``delay`` seconds, unless it exits first.

    With ``delay`` None the process runs to its end, and is killed only after ``timeout``.
    Each hook ``(seconds, function)`` is called that many seconds after the start while the
    process is still running, in the order of its time. Standard error (the JSON log) goes to
    ``log_path`` and standard output to ``out_path``.
    """
    limit = timeout if delay is None else delay
    spawned = time.monotonic()
    started_at = datetime.now(UTC)
    with (
        log_path.open("w", encoding="utf-8") as log,
        out_path.open("w", encoding="utf-8") as out,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", *args],
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=dict(env),
        )
        timed_out = False
        for at, hook in sorted(hooks, key=lambda pair: pair[0]):
            if at >= limit or _exited_by(process, spawned, at):
                break
            hook()
        if not _exited_by(process, spawned, limit):
            process.kill()  # SIGKILL to this one process
            timed_out = True
        returncode = process.wait()
    seconds = time.monotonic() - spawned
    # A process that exited by itself just before the signal keeps its own exit status.
    killed = timed_out and returncode == -signal.SIGKILL
    return RoundProcess(returncode, seconds, started_at, killed, timed_out)


def _exited_by(process: subprocess.Popen[Any], spawned: float, moment: float) -> bool:
    """Wait until ``moment`` seconds after ``spawned``; return whether the process has exited."""
    try:
        process.wait(timeout=max(0.0, moment - (time.monotonic() - spawned)))
    except subprocess.TimeoutExpired:
        return False
    return True


def expire_lease(engine: Engine, account_id: int) -> None:
    """Mark a dead process's lease as expired, as the lease's time passing would."""
    expired = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(
            update(_LEASES)
            .where(_LEASES.c.account_id == account_id, _LEASES.c.owner.is_not(None))
            .values(expires_at=expired)
        )


def read_events(path: Path) -> list[dict[str, Any]]:
    """Return the JSON log events a process wrote to ``path``, skipping other lines."""
    events: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill, or a traceback
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events


def plain_lines(path: Path) -> str:
    """Return what the command printed to standard error besides JSON log lines."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "".join(line + "\n" for line in lines if not line.startswith("{"))


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time with ``Z`` or an offset into an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def iso(value: datetime | None) -> str:
    """Format a time for a message; ``none`` for None."""
    return "none" if value is None else value.astimezone(UTC).isoformat()
