"""The management plane of zeoraid with real ZEO clients and
real runzeo members, through the daemon binary:

  test_raid_calls_through_client_storage
      the gocept.zeoraid management calls as old tooling makes them,
      through ClientStorage._call: raid_status, raid_details,
      raid_disable('m2') and the status after it, raid_reload; the HTTP
      endpoint agrees; raid_recover('m2') brings it back (with
      zeo_admin_calls = "all").
  test_mutating_raid_calls_refused_by_default
      without zeo_admin_calls, raid_disable through ClientStorage._call is
      refused with an error naming the setting; the member stays optimal.
  test_disable_under_clientstorage_write_load
      4 ZODB writers (ClientStorage + DB) commit while m2 is disabled
      through POST /members/m2/disable: no writer sees an error, every
      acknowledged commit is on m1, m2 is degraded "disabled by operator",
      holds exactly the commits up to its last transaction and gets no
      more writes (its lastTransaction stays while m1's advances).
  test_ctl_with_the_config_file
      `zeoraid ctl --config zeoraid.toml` finds the endpoint from the
      daemon's own config: status (exit 0, then 1), details --json,
      disable, reload.

Every wait is bounded and polls; a failure carries zeoraid's log tail.
"""

import json
import subprocess
import time

import pytest
from ZEO.ClientStorage import ClientStorage

from conformance.cluster import zeoraid_binary
# The cluster, its diagnostics and the write workload of the failure tests.
from conformance import workload
from test_failures import (  # noqa: F401  (raid is a fixture)
    COMMITS, CONNECT_TIMEOUT, FAULT_AFTER, STORAGE, WORKLOAD_TIMEOUT,
    WRITERS, bounded, check_members_hold, commit_change, degraded, raid,
    read_values, with_logs)

HTTP_TIMEOUT = 20   # seconds for one HTTP request or ctl run


# -- the HTTP endpoint ------------------------------------------------------

def ctl(*args):
    return subprocess.run(
        [str(zeoraid_binary()), "ctl", "--timeout", str(HTTP_TIMEOUT), *args],
        capture_output=True, text=True, timeout=HTTP_TIMEOUT + 10)


def member_last_transaction(raid, name):
    """The member's own lastTransaction (runzeo's ruok, asked directly)."""
    from conformance.cluster import zeoprobe
    member = raid.cluster.member(name)
    return bytes.fromhex(
        zeoprobe.ruok(member.addr, 5.0)[STORAGE]["last-transaction"])


# -- the tests ----------------------------------------------------------------

@with_logs
def test_raid_calls_through_client_storage(raid):
    # The mutating calls over ZEO need zeo_admin_calls = "all" (the
    # default answers only raid_status and raid_details).
    raid.start(2, zeo_admin_calls="all")
    storage = raid.storage()

    def call(*args):
        return bounded(lambda: storage._call(*args), f"_call{args}")

    assert call("raid_status") == "optimal"
    assert call("raid_details") == {"m1": "optimal", "m2": "optimal"}
    assert call("raid_disable", "m2") == "disabled 'm2'"
    assert call("raid_status") == "degraded"
    assert call("raid_details") == {
        "m1": "optimal", "m2": "failed: disabled by operator"}
    # The last optimal member cannot be disabled: an error with the reason.
    with pytest.raises(Exception) as info:
        call("raid_disable", "m1")
    assert "refused" in str(info.value), repr(info.value)
    # Recovering a member that does not exist: an error naming it.
    with pytest.raises(Exception) as info:
        call("raid_recover", "nobody")
    assert "nobody" in str(info.value), repr(info.value)
    reloaded = call("raid_reload")
    assert reloaded.startswith("reloaded: added [], removed [], "), reloaded

    # The client goes on working, and HTTP says the same.
    db = raid.db()
    commit_change(db, "after-disable", 1)
    code, status = raid.http("GET", "/status")
    assert code == 200
    assert status == {
        "status": "degraded",
        "summary": "degraded: 1 of 2 members optimal (m2 disabled)"}
    code, details = raid.http("GET", "/details")
    assert code == 200
    m2 = [m for m in details["members"] if m["name"] == "m2"][0]
    assert (m2["kind"], m2["reason"]) == ("disabled", "disabled by operator")
    # Every commit so far came after the disable (the DB's root, ours).
    assert m2["lag_transactions"] == details["commits"] == 2, details
    # /actors shows both client sessions (ClientStorage and the DB's).
    code, actors = raid.http("GET", "/actors")
    assert code == 200
    assert len(actors["sessions"]) >= 2, actors["sessions"]
    assert all(s["snapshot"]["registered"] for s in actors["sessions"]), \
        actors["sessions"]

    # raid_recover brings the disabled member back: recovering, then optimal.
    assert call("raid_recover", "m2") == "recovering 'm2' from 'm1'"
    deadline = time.monotonic() + 30
    while call("raid_status") != "optimal":
        assert time.monotonic() < deadline, call("raid_details")
        time.sleep(0.05)
    assert call("raid_details") == {"m1": "optimal", "m2": "optimal"}


@with_logs
def test_mutating_raid_calls_refused_by_default(raid):
    raid.start(2)
    storage = raid.storage()
    assert bounded(lambda: storage._call("raid_status"), "raid_status") \
        == "optimal"
    with pytest.raises(Exception) as info:
        bounded(lambda: storage._call("raid_disable", "m2"), "raid_disable")
    assert "zeo_admin_calls" in str(info.value), repr(info.value)
    assert bounded(lambda: storage._call("raid_details"), "raid_details") \
        == {"m1": "optimal", "m2": "optimal"}


@with_logs
def test_disable_under_clientstorage_write_load(raid):
    raid.start(2)
    load = workload.Workload(raid.addr, WRITERS, COMMITS, WORKLOAD_TIMEOUT,
                             wait_timeout=CONNECT_TIMEOUT)
    load.wait_acked(FAULT_AFTER)
    code, answer = raid.http("POST", "/members/m2/disable")
    assert code == 200, answer
    assert answer == {"member": "m2", "message": "m2 disabled"}
    acked = load.finish()  # no writer saw an error

    status = raid.wait_status(degraded("m2"), "m2 degraded")
    m2 = raid.member_status("m2", status)
    assert (m2["kind"], m2["reason"]) == ("disabled", "disabled by operator")
    assert m2["connected"], m2
    assert status["status"] == "degraded", status

    # Nothing lost: m1 holds every acknowledged commit.
    check_members_hold(raid, ["m1"], acked)
    # m2 holds the commits up to its last transaction, none after it,
    # and most of the workload came after it.
    last_2 = member_last_transaction(raid, "m2")
    assert last_2 < acked[-1][0]
    after = [(tid, values) for tid, values in acked if tid > last_2]
    assert len(after) >= len(acked) - FAULT_AFTER - len(load.writers), (
        f"m2 got {len(acked) - len(after)} of {len(acked)} commits")
    storage = ClientStorage(raid.cluster.member("m2").addr, storage=STORAGE,
                            read_only=True, wait_timeout=CONNECT_TIMEOUT)
    try:
        for tid, values in acked:
            for oid, value in values.items():
                if tid <= last_2:
                    got = workload.record_state(storage.loadSerial(oid, tid))["value"]
                    assert got == value, (oid.hex(), tid.hex(), got, value)
                else:
                    with pytest.raises(Exception):
                        storage.loadSerial(oid, tid)
    finally:
        storage.close()
    # It stays put while m1 advances.
    last_1 = member_last_transaction(raid, "m1")
    commit_change(raid.db(), "one-more", 1)
    assert member_last_transaction(raid, "m1") > last_1
    assert member_last_transaction(raid, "m2") == last_2


@with_logs
def test_ctl_with_the_config_file(raid):
    raid.start(2)
    conf = str(raid.cluster.front.dir / "zeoraid.toml")

    run = ctl("--config", conf, "status")
    assert run.returncode == 0, (run.stdout, run.stderr)
    line, perfdata = run.stdout.rstrip("\n").split(" | ")
    assert line == "ZEORAID OK - optimal: 2 of 2 members optimal"
    assert "optimal_members=2" in perfdata, perfdata
    code, ready = raid.http("GET", "/readyz")
    assert (code, ready["ready"]) == (200, True)

    run = ctl("--config", conf, "disable", "m1")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout == "m1 disabled\n"
    run = ctl("--config", conf, "status")
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert run.stdout.startswith("ZEORAID WARNING - degraded"), run.stdout
    run = ctl("--config", conf, "--json", "details")
    assert run.returncode == 1, (run.stdout, run.stderr)
    details = json.loads(run.stdout)
    assert [(m["name"], m["state"]) for m in details["members"]] == [
        ("m1", "degraded"), ("m2", "optimal")]
    run = ctl("--config", conf, "reload")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout.startswith("reload applied: added -; removed -"), \
        run.stdout

    # The array keeps serving through m2.
    commit_change(raid.db(), "k", "v")
    assert read_values(raid, ["k"]) == {"k": "v"}
    assert raid.status()["status"] == "degraded"
