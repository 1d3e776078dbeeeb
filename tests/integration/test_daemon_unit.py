"""The systemd unit: systemd's own checks, its key settings, and syncd under its W^X rule."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from syncd.crypto import generate_key
from tests.crash_support import read_events
from tests.integration.daemon_support import (
    NotifyListener,
    add_account,
    daemon_environment,
    has,
    stop_daemon,
    wait_until,
)

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd.service"
INSTALLED_SYNCD = "/opt/syncd/venv/bin/syncd"
MAX_EXPOSURE = 1.5  # systemd-analyze security's overall score for the unit, out of 10
US = "ATVPDKIKX0DER"


def _settings(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into section -> key -> every value, in order (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def _runnable_copy(tmp_path: Path) -> Path:
    """Copy the unit with ExecStart pointing at this virtualenv's ``syncd`` script.

    ``systemd-analyze verify`` rejects a unit whose ExecStart binary is missing, and
    /opt/syncd exists only on an installed server.
    """
    syncd = Path(sys.executable).parent / "syncd"
    if not syncd.is_file():
        pytest.skip(f"no syncd script beside {sys.executable}; install the package first")
    copy = tmp_path / "syncd.service"
    copy.write_text(
        UNIT.read_text(encoding="utf-8").replace(INSTALLED_SYNCD, str(syncd)), encoding="utf-8"
    )
    return copy


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return found


def test_unit_passes_systemd_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    copy = _runnable_copy(tmp_path)

    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_unit_exposure_stays_low(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    copy = _runnable_copy(tmp_path)

    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )

    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    match = re.search(r"Overall exposure level for syncd\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_unit_key_settings() -> None:
    unit = _settings(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]

    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == [f"{INSTALLED_SYNCD} run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]
    assert int(unit["Unit"]["StartLimitBurst"][0]) > 1
    assert "StartLimitIntervalSec" in unit["Unit"]
    assert service["User"] == ["syncd"]
    assert service["StateDirectory"] == ["syncd"]
    assert service["WorkingDirectory"] == ["/var/lib/syncd"]
    # The env file is read by syncd itself, so that a reload reads its changes.
    assert service["Environment"] == ["SYNCD_ENV_FILE=/etc/syncd/syncd.env"]
    assert "EnvironmentFile" not in service
    credentials = [value.split(":", 1)[0] for value in service["LoadCredential"]]
    assert credentials == ["SYNCD_LWA_CLIENT_SECRET", "SYNCD_ENCRYPTION_KEY"]
    # WatchdogSec leaves room for two pings at the heartbeat's pace.
    assert service["WatchdogSec"] == ["60s"]
    assert service["TimeoutStopSec"] == ["120s"]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
    }.items():
        assert service[key] == [value], key
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


PR_SET_MDWE = 65  # prctl option of Linux 6.3 and later
PR_MDWE_REFUSE_EXEC_GAIN = 1
# Turns on the kernel's W^X rule (what MemoryDenyWriteExecute= enforces) and becomes syncd;
# the rule survives execve.
_UNDER_MDWE = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    print("this kernel has no PR_SET_MDWE (Linux 6.3 or later has it)", file=sys.stderr)
    sys.exit(77)
os.execv(sys.executable, [sys.executable, "-m", "syncd", "run"])
"""


def test_mdwe_rule_refuses_writable_code() -> None:
    # The daemon test means something only if the rule still applies after execve.
    probe = _UNDER_MDWE.replace(
        'os.execv(sys.executable, [sys.executable, "-m", "syncd", "run"])',
        'os.execv(sys.executable, [sys.executable, "-c", "import mmap; '
        'mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"])',
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )

    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later has it)")
    assert result.returncode == 1
    assert "PermissionError" in result.stderr


SKIP_STATUS = 77  # exit status of a wrapper whose confinement this machine cannot apply


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_confined(
    command: list[str], database_url: str, sandbox_factory: Any, tmp_path: Path
) -> tuple[int, list[dict[str, Any]], bytes]:
    """Run ``command`` (which becomes ``syncd run``) until an orders run, then SIGTERM it.

    Returns the exit status, the JSON log events and a scrape of the metrics endpoint.
    Skips the test when the command exits with status 77 (the confinement is unavailable).
    """
    shop = sandbox_factory(speed=1000, orders_per_marketplace=20)
    key = generate_key()
    add_account(database_url, key, "confined-na", "na", US)
    metrics_port = _free_port()
    log = tmp_path / "daemon.log"
    with (
        NotifyListener(str(tmp_path / "notify")) as listener,
        log.open("w", encoding="utf-8") as stream,
    ):
        env = daemon_environment(
            database_url,
            shop,
            key,
            NOTIFY_SOCKET=listener.address,
            SYNCD_METRICS_PORT=str(metrics_port),
        )
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stream,
            text=True,
        )
        try:
            try:
                listener.wait_for(has("READY"), timeout=60)
            except AssertionError:
                if process.poll() == SKIP_STATUS:
                    reason = log.read_text(encoding="utf-8").strip() or "confinement unavailable"
                    pytest.skip(reason.splitlines()[-1])
                raise
            wait_until(
                lambda: "orders_run_finished" in [e["event"] for e in read_events(log)],
                60,
                "an orders run",
            )
            with socket.create_connection(("127.0.0.1", metrics_port), timeout=10) as conn:
                conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                scraped = b""
                while chunk := conn.recv(65536):
                    scraped += chunk
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        finally:
            stop_daemon(process)
    return code, read_events(log), scraped


def test_daemon_runs_without_writable_executable_memory(
    migrated_database_url: str, sandbox_factory: Any, tmp_path: Path
) -> None:
    command = [sys.executable, "-c", _UNDER_MDWE]

    code, events, scraped = _run_confined(command, migrated_database_url, sandbox_factory, tmp_path)

    finished = next(e for e in events if e["event"] == "orders_run_finished")
    assert finished["result"] == "succeeded"
    assert b"200 OK" in scraped.split(b"\r\n", 1)[0]
    assert b"syncd_" in scraped
    assert code == 0


# Loads the unit's system-call filter with libseccomp (Debian package python3-seccomp, for the
# system Python) and becomes ``syncd run`` under it. The allowed set is what systemd-analyze
# expands @system-service to, less @privileged and @resources. Any other call fails with
# EPERM, as SystemCallErrorNumber=EPERM makes it.
_UNDER_SYSCALL_FILTER = """
import errno, os, subprocess, sys
try:
    import seccomp
except ImportError:
    print("python3-seccomp is not installed for the system Python", file=sys.stderr)
    sys.exit(77)

def expand(group, seen):
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                names |= expand(item, seen)
        else:
            names.add(item)
    return names

allowed = expand("@system-service", set()) - expand("@privileged", set())
allowed -= expand("@resources", set())
rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in sorted(allowed):
    try:
        rules.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError):
        pass  # a call of another architecture, such as arm_fadvise64_64
rules.load()
os.execv(sys.argv[1], [sys.argv[1], "-m", "syncd", "run"])
"""
SYSTEM_PYTHON = "/usr/bin/python3"


def test_daemon_runs_under_syscall_filter(
    migrated_database_url: str, sandbox_factory: Any, tmp_path: Path
) -> None:
    _systemd_analyze()
    if not Path(SYSTEM_PYTHON).is_file():
        pytest.skip(f"{SYSTEM_PYTHON} is missing; it loads the filter with python3-seccomp")
    command = [SYSTEM_PYTHON, "-c", _UNDER_SYSCALL_FILTER, sys.executable]

    code, events, scraped = _run_confined(command, migrated_database_url, sandbox_factory, tmp_path)

    finished = next(e for e in events if e["event"] == "orders_run_finished")
    assert finished["result"] == "succeeded"
    assert b"200 OK" in scraped.split(b"\r\n", 1)[0]
    assert code == 0
