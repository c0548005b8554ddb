"""ZODB 5 clients through zeoraid: tests/python/zeo5_client_session.py
runs with the ZEO 5 environment's python (ZEO 5.4.1 / ZODB 5.8.1,
.venv-zeo5, made by scripts/python-env) against a real array of two
members: both ZEO 6.2, then ZEO 6.2 beside ZEO 5.4.1. It must end with
"OK <tid>" and exit 0; afterwards the members hold that last transaction
and are identical (records and blob files, conformance.mirror)."""

import subprocess
from pathlib import Path

import pytest

from conformance import mirror
from conformance.cluster import ClusterSet, zeo5_python, zeoprobe

SESSION = Path(__file__).resolve().parent / "zeo5_client_session.py"
SESSION_TIMEOUT = 120  # seconds for the whole client session
VERSION_TIMEOUT = 30   # seconds for a python to say its ZEO version


def zeo_version(python):
    return subprocess.run(
        [str(python), "-c",
         "import importlib.metadata as m; print(m.version('ZEO'))"],
        capture_output=True, text=True, check=True,
        timeout=VERSION_TIMEOUT).stdout.strip()


@pytest.fixture
def clusters(tmp_path):
    clusters = ClusterSet("zeoraid-2", tmp_path)
    yield clusters
    clusters.stop()


@pytest.mark.parametrize("zeo5_members", [(), ("m2",)],
                         ids=["zeo6-members", "zeo6-and-zeo5-member"])
def test_zodb5_client_session_through_zeoraid(clusters, zeo5_members):
    python = zeo5_python()
    assert zeo_version(python) == "5.4.1"
    cluster = clusters.start(zeo5_members=zeo5_members)
    for member in cluster.members:
        want = "5.4.1" if member.name in zeo5_members else "6.2"
        assert zeo_version(member.python) == want, member.name

    host, port = cluster.addr
    run = subprocess.run([str(python), str(SESSION), f"{host}:{port}"],
                         capture_output=True, text=True,
                         timeout=SESSION_TIMEOUT)
    report = (f"exit {run.returncode}\n--- stdout ---\n{run.stdout}"
              f"--- stderr ---\n{run.stderr}\n{clusters.describe_logs()}")
    assert run.returncode == 0, report
    lines = run.stdout.splitlines()
    assert lines[0] == "ZEO 5.4.1 ZODB 5.8.1", report
    assert "commits, blob, invalidations, undo, history, pack: OK" \
        in run.stdout, report
    assert lines[-1].startswith("OK "), report
    last_tid = lines[-1].split()[1]

    for member in cluster.members:
        status = zeoprobe.ruok(member.addr, 5.0)
        assert status["1"]["last-transaction"] == last_tid, (member.name,
                                                             status)
    mirror.wait_identical(cluster.member_addrs)
