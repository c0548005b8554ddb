"""runzeo for a RelStorage member: `python relstorage_member.py -C conf`.

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
FileStorage member and a ValueError from a RelStorage member. The suite
is about zeoraid, so its RelStorage members send the error as ZODB's own
POSKeyError with the oid, exactly what a FileStorage member sends. A
deployment of RelStorage behind ZEO needs the same (README.md, Members).
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
