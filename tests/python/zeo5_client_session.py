"""A ZODB 5 application's session through zeoraid, run by
test_zeo5_client.py with the ZEO 5 environment's python (ZEO 5.4.1 /
ZODB 5.8.1, scripts/requirements-zeo5.txt):

    .venv-zeo5/bin/python tests/python/zeo5_client_session.py HOST:PORT

Two databases, each with a blob cache of its own (not shared with the
server): commits, a blob, invalidations (the second database sees each
commit through the callback zeoraid forwards), undo, history and pack.
Prints the client's versions first and, last, "OK <last tid in hex>";
exits non-zero on the first failed check.
"""
import importlib.metadata
import sys
import tempfile
import time

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZEO.ClientStorage import ClientStorage
from ZODB.blob import Blob

INVALIDATION_TIMEOUT = 20  # seconds for a commit to reach the other database

host, port = sys.argv[1].rsplit(":", 1)
ADDR = (host, int(port))
print("ZEO", importlib.metadata.version("ZEO"),
      "ZODB", importlib.metadata.version("ZODB"))


def db():
    return ZODB.DB(ClientStorage(ADDR, blob_dir=tempfile.mkdtemp(),
                                 shared_blob_dir=False, wait_timeout=30))


def seen(db, tid):
    """The invalidation of tid reached db: its storage's last transaction
    moves only with the callbacks zeoraid forwards."""
    deadline = time.monotonic() + INVALIDATION_TIMEOUT
    while db.storage.lastTransaction() < tid:
        assert time.monotonic() < deadline, f"no invalidation for {tid.hex()}"
        time.sleep(0.02)


def commit():
    transaction.commit()
    return a.lastTransaction()


a, b = db(), db()
tm_b = transaction.TransactionManager()
ca, cb = a.open(), b.open(tm_b)
ca.root()["m"] = PersistentMapping(x=1)
ca.root()["blob"] = Blob(b"blob data via zeo 5")
seen(b, commit())
cb.sync()
assert cb.root()["m"]["x"] == 1
with cb.root()["blob"].open() as f:
    assert f.read() == b"blob data via zeo 5"
ca.root()["m"]["x"] = 2
seen(b, commit())
cb.sync()
assert cb.root()["m"]["x"] == 2, "invalidation seen"
info = a.undoLog(0, 10)
a.undo(info[0]["id"])
seen(b, commit())
cb.sync()
assert cb.root()["m"]["x"] == 1, "undo through zeoraid"
hist = a.history(ca.root()["m"]._p_oid, 10)
assert len(hist) >= 2, hist
a.pack()
print("commits, blob, invalidations, undo, history, pack: OK",
      len(list(a.storage.iterator())), "transactions")
print("OK", a.lastTransaction().hex())
a.close()
b.close()
