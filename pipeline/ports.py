"""Free TCP ports on the loopback interface (local Ray dashboards, MLflow servers, tests)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; another process may still take it
    before it is used, so callers bind it soon)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
