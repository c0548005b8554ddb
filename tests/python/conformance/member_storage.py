"""What a member's runzeo serves: its storage kind and that storage's
ZConfig section.

  filestorage         <filestorage> with a blob directory (the default)
  relstorage-pg       RelStorage on PostgreSQL (a database of its own on the
                      session's server, see postgres.py)
  relstorage-sqlite   RelStorage on SQLite (a data directory of its own)

RelStorage members are history-preserving (`keep-history true`, what
zeoraid's undo, history and recovery need). RelStorage keeps blobs in its
database; behind a ZEO server its `blob-dir` is a cache
(`shared-blob-dir false`) from which the server sends blob files to its
clients (ZEO's `sendBlob`), and into which it reads the files clients
upload before they go into the database.
"""

from . import postgres

FILESTORAGE = "filestorage"
RELSTORAGE_PG = "relstorage-pg"
RELSTORAGE_SQLITE = "relstorage-sqlite"

# The short names used in target names (`zeoraid-fs+pg`).
SHORT_NAMES = {"fs": FILESTORAGE, "pg": RELSTORAGE_PG,
               "sqlite": RELSTORAGE_SQLITE}


def is_relstorage(kind):
    return kind in (RELSTORAGE_PG, RELSTORAGE_SQLITE)


class MemberStorage:
    """One member's storage: the runzeo config section, and the database
    it lives in for as long as the member's data are kept."""

    def __init__(self, kind, dir, name):
        if kind not in SHORT_NAMES.values():
            raise ValueError(f"unknown member storage kind {kind!r}")
        self.kind = kind
        self.dir = dir
        self.database = None
        if kind == RELSTORAGE_PG:
            self.database = postgres.server().create_database(
                f"{dir.parent.name}_{name}")
        elif kind == RELSTORAGE_SQLITE:
            (dir / "sqlite").mkdir(parents=True, exist_ok=True)

    def section(self, storage_name, blob_dir, storage_options=""):
        """The ZConfig storage section (with the `%import` RelStorage's
        sections need). storage_options: extra lines for it (e.g.
        `pack-gc false`, which both storages know)."""
        if self.kind == FILESTORAGE:
            return (f"<filestorage {storage_name}>\n"
                    f"  path {self.dir / 'Data.fs'}\n"
                    f"  blob-dir {blob_dir}\n"
                    f"  {storage_options}\n"
                    f"</filestorage>\n")
        return ("%import relstorage\n"
                f"<relstorage {storage_name}>\n"
                f"  keep-history true\n"
                f"  blob-dir {blob_dir}\n"
                f"  shared-blob-dir false\n"
                f"  {storage_options}\n"
                f"{self._adapter()}"
                f"</relstorage>\n")

    def _adapter(self):
        if self.kind == RELSTORAGE_PG:
            dsn = postgres.server().dsn(self.database)
            return f"  <postgresql>\n    dsn {dsn}\n  </postgresql>\n"
        return (f"  <sqlite3>\n    data-dir {self.dir / 'sqlite'}\n"
                f"  </sqlite3>\n")

    def release(self):
        """The member's data are no longer needed (its runzeo stopped)."""
        if self.database is not None:
            postgres.server().drop_database(self.database)
            self.database = None
