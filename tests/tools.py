"""External programs some tests need (prometheus, promtool): skipped locally, required in CI."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def require_tool(name: str) -> str:
    """Path of ``name``; skip the test without it, except in CI (CI=true) where that fails:
    .ci/run installs it, so a missing tool there means the suite silently proves less."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} not found on PATH (Debian/Ubuntu: apt-get install -y prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run this test")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port free right now (a server started soon after will almost surely get it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
