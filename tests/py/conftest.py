"""Starts the real valthree binary for redis-py tests."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    path = os.environ.get("VALTHREE_BIN") or str(ROOT / "target" / "debug" / "valthree")
    if not Path(path).exists():
        pytest.fail(f"valthree binary not found at {path}: build it first (./scripts/test does)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.log = open(tmp / f"valthree-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [binary(), "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(tmp / "data"), *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"valthree exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("valthree did not start listening")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def server_with_password(tmp_path):
    s = Server(tmp_path, "--requirepass", "hunter2")
    yield s
    s.stop()
