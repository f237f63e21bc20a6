"""Stopping a server started in its own process group (with its children)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the process group of ``process`` (when it leads one: started with
    ``start_new_session``; else the process alone), SIGKILL it if it has not ended within
    ``timeout`` seconds."""
    if process.poll() is not None:
        return
    try:
        leader = os.getpgid(process.pid) == process.pid

        def send(sig: int) -> None:
            if leader:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)

        send(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait(timeout=timeout)
    except ProcessLookupError:  # pragma: no cover - already gone
        pass
