"""A ZEO 5 client session through zeoraid (not part of the test command:
it needs ZEO 5 in a virtualenv of its own). Run against an array whose
zeoraid listens on ZEORAID_ADDR (default 127.0.0.1:8100, the quick
start's):

    python3 -m venv /tmp/zeo5 && /tmp/zeo5/bin/pip install ZEO==5.4.1 ZODB==5.8.1
    /tmp/zeo5/bin/python scripts/manual/zeo5_client.py

Last run (2026-11-27, ZEO 5.4.1 / ZODB 5.8.1 client, zeoraid over two ZEO
6.2 members): commits, a blob, invalidations between two DBs, undo,
history and pack all worked, and the members compared identical
(`python -m conformance.mirror`).
"""
import os
import ZEO, ZODB, transaction, pkg_resources, tempfile
from ZEO.ClientStorage import ClientStorage
from ZODB.blob import Blob
from persistent.mapping import PersistentMapping

host, port = os.environ.get("ZEORAID_ADDR", "127.0.0.1:8100").rsplit(":", 1)
ADDR = (host, int(port))
print("ZEO", pkg_resources.get_distribution("ZEO").version, "ZODB", pkg_resources.get_distribution("ZODB").version)
def db():
    return ZODB.DB(ClientStorage(ADDR, blob_dir=tempfile.mkdtemp(), shared_blob_dir=False, wait_timeout=10))
a, b = db(), db()
ca, cb = a.open(), b.open()
ca.root()["m"] = PersistentMapping(x=1)
ca.root()["blob"] = Blob(b"blob data via zeo 5")
transaction.commit()
cb.sync(); assert cb.root()["m"]["x"] == 1
with cb.root()["blob"].open() as f: assert f.read() == b"blob data via zeo 5"
ca.root()["m"]["x"] = 2; transaction.commit()
cb.sync(); assert cb.root()["m"]["x"] == 2, "invalidation seen"
info = a.undoLog(0, 10); a.undo(info[0]["id"]); transaction.commit()
cb.sync(); assert cb.root()["m"]["x"] == 1, "undo through zeoraid"
hist = a.history(ca.root()["m"]._p_oid, 10); assert len(hist) >= 2
a.pack(); print("commits, blob, invalidations, undo, history, pack: OK", len(list(a.storage.iterator())), "transactions")
a.close(); b.close()
