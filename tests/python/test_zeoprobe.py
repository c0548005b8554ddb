"""scripts/zeoprobe: the ruok probe used by scripts/quickstart."""

import json
import socket

from conftest import free_port, zeoprobe


def test_wait_and_ruok_against_runzeo(runzeo):
    addr, proc = runzeo()
    waited = zeoprobe("wait", addr, "--pid", proc.pid, "--timeout", 30)
    assert waited.returncode == 0, waited.stderr
    status = json.loads(waited.stdout)
    assert status["1"]["last-transaction"] == "0000000000000000"
    probed = zeoprobe("ruok", addr)
    assert probed.returncode == 0, probed.stderr
    assert json.loads(probed.stdout)["1"]["connections"] == 0
    assert zeoprobe("port-free", addr).returncode == 1


def test_ruok_fails_without_server():
    addr = f"127.0.0.1:{free_port()}"
    probed = zeoprobe("ruok", addr, "--timeout", 2)
    assert probed.returncode == 1
    assert "failed" in probed.stderr


def test_wait_gives_up_when_the_process_is_gone():
    addr = f"127.0.0.1:{free_port()}"
    # pid 2**22 + 1 is above Linux's pid_max limit, so it never exists.
    waited = zeoprobe("wait", addr, "--pid", 2**22 + 1, "--timeout", 30)
    assert waited.returncode == 1
    assert "exited" in waited.stderr


def test_wait_times_out():
    addr = f"127.0.0.1:{free_port()}"
    waited = zeoprobe("wait", addr, "--timeout", 0.5)
    assert waited.returncode == 1
    assert "did not answer" in waited.stderr


def test_port_free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        assert zeoprobe("port-free", taken).returncode == 1
    assert zeoprobe("port-free", f"127.0.0.1:{free_port()}").returncode == 0
