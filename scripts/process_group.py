"""Stop a server that a project script started in its own process group, by the PID it recorded.

The scripts that start servers on loopback (kafka_broker.py, postgres_server.py) start each in a new session
(``start_new_session=True``), so its PID is also its process group's id, and write that PID to a file under the
server's state directory. ``stop`` signals the whole group, waits, escalates to SIGKILL, and removes the file.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def stop(pid_file: Path, first: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
    """Send ``first`` to the process group recorded in ``pid_file``, SIGKILL after ``grace`` seconds; no file, or
    a group already gone, is a no-op. Returns once the group's leader has died (its ports and locks are free)."""
    if not pid_file.is_file():
        return
    try:
        pid = int(pid_file.read_text())
    except ValueError:  # written when the disk was full, say: nothing to signal, and nothing better to go by
        pid_file.unlink()
        return
    stop_pid(pid, first, grace)
    pid_file.unlink(missing_ok=True)


def stop_pid(pid: int, first: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
    """``stop`` for a process group known by its leader's PID."""
    try:
        os.killpg(pid, first)
    except ProcessLookupError:
        return
    if not gone(pid, grace):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        gone(pid, 10.0)


def gone(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for process group ``pid`` to end; whether it has."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


def alive(pid: int) -> bool:
    """Whether the group's leader still runs; a dead one this process started is reaped."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:  # not our child
        pass
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie left for another parent to reap counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(probe, timeout: float, pids=()) -> bool:
    """Poll ``probe`` once a second until it answers truthy (True), ``timeout`` seconds pass, or one of the process
    groups ``pids`` (the servers being waited for) has ended (False). A probe that raises OSError or ValueError (not
    listening yet; an answer not ready, such as an empty body) has not answered yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return True
        except (OSError, ValueError):
            pass
        if not all(alive(pid) for pid in pids):
            return False
        time.sleep(1)
    return False
