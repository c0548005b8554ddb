"""runzeo for a RelStorage member of a zeoraid array:
`python contrib/relstorage/runzeo.py -C zeo.conf` (the Python environment
of ZEO and RelStorage; the same configuration file as runzeo's).

ZEO's runzeo, with one difference in how its server sends an error:
RelStorage 4.3's POSKeyError (`relstorage.interfaces.POSKeyError`, what
its `load`, `loadBefore` and `getTid` raise for an object that does not
exist) carries RelStorage's cache, connection and adapter objects in its
`extra` attribute. A ZEO 6 server sends an exception as its class name
and `__dict__`, cannot pickle those, and answers
`ValueError("Couldn't pickle response")` instead: a client of a plain
runzeo serving RelStorage never gets a POSKeyError (so `ZODB.DB()` on an
empty RelStorage fails: it creates the root object when loading it raises
POSKeyError). Seen with the `runzeo-pg` and `runzeo-sqlite` targets,
without zeoraid.

Behind zeoraid that is worse than behind a plain server: reads go to the
members in turn, so the same missing object gets a POSKeyError from a
FileStorage member and a ValueError from a RelStorage member. So a
RelStorage member runs this instead of runzeo: it sends the error as
ZODB's own POSKeyError with the oid, exactly what a FileStorage member
sends (README.md, "Members"). The tests start their RelStorage members
with it (tests/python/conformance/cluster.py).
"""

import sys


def _reduce_relstorage_poskeyerror(reduce_exception):
    from relstorage.interfaces import POSKeyError

    def reduce(exc):
        if isinstance(exc, POSKeyError):
            return "ZODB.POSException.POSKeyError", exc.args[:1]
        return reduce_exception(exc)
    return reduce


def main(argv):
    import ZEO.asyncio.server
    import ZEO.runzeo
    ZEO.asyncio.server.reduce_exception = _reduce_relstorage_poskeyerror(
        ZEO.asyncio.server.reduce_exception)
    ZEO.runzeo.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
