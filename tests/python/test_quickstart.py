"""scripts/quickstart, the README's first command, end to end (with
members on free ports and a temporary run dir instead of 9001/9002 and
run/, so it does not collide with a quickstart someone is running)."""

import json
import os
import signal
import socket
import subprocess
import sys

from conftest import ROOT, SCRIPTS, free_port, stop_group, wait_for, zeoprobe

COMMIT = """
import sys, ZEO
addrs = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in sys.argv[1:])]
db = ZEO.DB(addrs if len(addrs) > 1 else addrs[0], wait_timeout=30)
with db.transaction() as conn:
    conn.root()["x"] = 1
print(db.lastTransaction().hex())
db.close()
"""


def start_quickstart(tmp_path, members, listen=None, ha=None):
    """`ha`: the zeoraids of `--ha` as (name, client address, HTTP address)."""
    env = dict(os.environ)
    env["ZEORAID_QUICKSTART_MEMBERS"] = " ".join(
        f"{name}={addr}" for name, addr in members)
    env["ZEORAID_QUICKSTART_LISTEN"] = listen or f"127.0.0.1:{free_port()}"
    env["ZEORAID_QUICKSTART_RUN_DIR"] = str(tmp_path / "run")
    # The debug build `cargo test` made; the quick start itself builds release.
    env["ZEORAID_BIN"] = str(ROOT / "target" / "debug" / "zeoraid")
    args = []
    if ha:
        args = ["--ha"]
        env["ZEORAID_QUICKSTART_ZEORAIDS"] = " ".join(
            f"{name}={client},{http}" for name, client, http in ha)
        env["ZEORAID_QUICKSTART_ETCD"] = \
            f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    out = open(tmp_path / "quickstart.out", "w+")
    proc = subprocess.Popen(
        ["bash", str(SCRIPTS / "quickstart"), *args], cwd=ROOT, env=env,
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    return proc, tmp_path / "quickstart.out"


def test_quickstart_runs_an_array_until_ctrl_c(tmp_path):
    members = [("m1", f"127.0.0.1:{free_port()}"),
               ("m2", f"127.0.0.1:{free_port()}")]
    zeoraid = f"127.0.0.1:{free_port()}"
    proc, out = start_quickstart(tmp_path, members, zeoraid)
    try:
        wait_for(lambda: "ready; press Ctrl-C" in out.read_text()
                 or proc.poll() is not None, 120, "quickstart ready")
        text = out.read_text()
        assert proc.poll() is None, text
        for name, addr in members:
            assert f"member {name} ready on {addr}" in text
            assert (tmp_path / "run" / name / "blobs").is_dir()
            probed = zeoprobe("ruok", addr)
            assert probed.returncode == 0, probed.stderr
        assert f"zeoraid ready on {zeoraid}" in text
        assert "array: optimal" in text
        # A real ZODB client commits through zeoraid; both members have it.
        committed = subprocess.run(
            [sys.executable, "-c", COMMIT, zeoraid],
            capture_output=True, text=True, timeout=60)
        assert committed.returncode == 0, committed.stderr
        for _, addr in members:
            status = json.loads(zeoprobe("ruok", addr).stdout)
            assert status["1"]["last-transaction"] == committed.stdout.strip()
        raid = json.loads(zeoprobe("ruok", zeoraid).stdout)["1"]["raid"]
        assert raid["status"] == "optimal"
        assert [m["state"] for m in raid["members"]] == ["optimal", "optimal"]

        # Ctrl-C: the terminal sends SIGINT to the whole process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        text = out.read_text()
        assert "stopped" in text, text
        assert "exited on its own" not in text, text
        for name, addr in members + [("zeoraid", zeoraid)]:
            assert zeoprobe("port-free", addr).returncode == 0, \
                f"{name} still listens on {addr}"
            assert not (tmp_path / "run" / name / "runzeo.pid").exists()
    finally:
        stop_group(proc)


def test_quickstart_refuses_a_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        proc, out = start_quickstart(
            tmp_path, [("m1", f"127.0.0.1:{free_port()}"), ("m2", taken)])
        try:
            rc = proc.wait(timeout=120)
        finally:
            stop_group(proc)
    text = out.read_text()
    assert rc != 0
    assert f"{taken} (member m2) is already in use" in text
    assert "ready; press" not in text


def test_quickstart_ha_runs_three_zeoraids_and_a_client_given_every_address_commits(tmp_path):
    members = [("m1", f"127.0.0.1:{free_port()}"),
               ("m2", f"127.0.0.1:{free_port()}")]
    zeoraids = [(f"zr{i}", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
                for i in (1, 2, 3)]
    proc, out = start_quickstart(tmp_path, members, ha=zeoraids)
    try:
        wait_for(lambda: "ready; press Ctrl-C" in out.read_text()
                 or proc.poll() is not None, 120, "quickstart --ha ready")
        text = out.read_text()
        assert proc.poll() is None, text
        assert "etcd ready on" in text
        listing = ", ".join(f"('127.0.0.1', {client.rsplit(':', 1)[1]})"
                            for _, client, _ in zeoraids)
        assert f"clients: ClientStorage([{listing}])" in text, text
        conf = (tmp_path / "run" / "m1" / "zeo.conf").read_text()
        assert "transaction-timeout" not in conf, "ZEO 6.2's timeout wedges the lock"
        serving = [client for _, client, _ in zeoraids
                   if zeoprobe("ruok", client).returncode == 0]
        assert len(serving) == 1, f"{serving} serve clients\n{text}"
        committed = subprocess.run(
            [sys.executable, "-c", COMMIT, *[c for _, c, _ in zeoraids]],
            capture_output=True, text=True, timeout=60)
        assert committed.returncode == 0, committed.stderr
        for _, addr in members:
            status = json.loads(zeoprobe("ruok", addr).stdout)
            assert status["1"]["last-transaction"] == committed.stdout.strip()

        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        text = out.read_text()
        assert "stopped" in text, text
        for name, client, http in zeoraids:
            for addr in (client, http):
                assert zeoprobe("port-free", addr).returncode == 0, \
                    f"{name} still listens on {addr}"
    finally:
        stop_group(proc)
