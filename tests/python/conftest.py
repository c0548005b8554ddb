"""Shared fixtures for the pytest side of the tests (run by scripts/test
with the project venv's python)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    """Poll predicate every 50 ms until it is true; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def zeoprobe(*args, timeout=60):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "zeoprobe"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout)


def stop_group(proc, timeout=15):
    """End a process started with start_new_session=True, and everything
    it started, by its process group id; SIGTERM first, SIGKILL after
    timeout."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


@pytest.fixture
def runzeo(tmp_path):
    """Start a runzeo on a free loopback port; yields (addr, proc)."""
    procs = []

    def start():
        port = free_port()
        addr = f"127.0.0.1:{port}"
        conf = tmp_path / f"zeo-{port}.conf"
        conf.write_text(
            f"<zeo>\n  address {addr}\n</zeo>\n"
            f"<filestorage 1>\n  path {tmp_path}/data-{port}.fs\n"
            "</filestorage>\n")
        log = open(tmp_path / f"runzeo-{port}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ZEO.runzeo", "-C", str(conf)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        procs.append(proc)
        return addr, proc

    yield start
    for proc in procs:
        stop_group(proc)
