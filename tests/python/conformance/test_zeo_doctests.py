"""ZEO's client doctests that need nothing but a running server.

ZEO/tests/testZEO.py and its .test files run these with
`forker.setUp`, whose `start_server()` starts an in-process ZEO server.
Here `start_server()` starts a fresh cluster of the test's target instead
(`stop_server` checks its mirror, then stops it). Only doctests that call
`start_server` with no server options (or only a Unix socket path as
`port`) are run (MODULE_DOCTESTS,
FILE_DOCTESTS, and testZEO.MultiprocessingTests, whose body calls
forker.setUp itself); what is left out and why is in README.md.
"""

import doctest
import os
import re

import pytest
import ZODB.tests.util
import zope.testing.setupstack
from ZEO.tests import forker
from ZEO.tests import testZEO
from zope.testing import renormalizing

from . import relstorage_exclusions
from .base import check_mirrors, run_case

# The output normalisation of testZEO.test_suite, unchanged.
PATTERNS = [
    (re.compile(r"'start': '[^\n]+'"), 'start'),
    (re.compile(r"'last-transaction': '[0-9a-f]+'"),
     'last-transaction'),
    (re.compile("ZODB.POSException.ConflictError"), "ConflictError"),
    (re.compile("ZODB.POSException.POSKeyError"), "POSKeyError"),
    (re.compile("ZEO.Exceptions.ClientStorageError"),
     "ClientStorageError"),
    (re.compile("ZEO.Exceptions.ClientDisconnected"),
     "ClientDisconnected"),
    (re.compile(r"\[Errno \d+\]"), '[Errno N]'),
    (re.compile(r"loads=\d+\.\d+"), 'loads=42.42'),
]

# testZEO's module doctests that talk to a plain server.
MODULE_DOCTESTS = [
    "tpc_finish_error",
    "test_prefetch",
    "history_over_zeo",
    "open_convenience",
    "client_asyncore_thread_has_name",
    "close_client_storage_w_invalidations",
    "convenient_to_pass_port_to_client_and_ZEO_dot_client",
    "invalidate_client_cache_entry_on_server_commit_error",
    "gracefully_handle_abort_while_storing_many_blobs",
    "can_use_empty_string_for_local_host_on_client",
    "unix_domain_sockets",
]

# ZEO's doctest files that talk to a plain server.
FILE_DOCTESTS = [
    "client-config.test",
    "zeo_blob_cache.test",
]

# start_server() arguments that only say where the in-process server keeps
# its files; ours have a FileStorage and a blob directory of their own.
IGNORED = {"path", "blob_dir", "suicide", "debug"}

_running = {}


def setUp(test):
    """forker.setUp, with start_server backed by our clusters."""
    ZODB.tests.util.setUp(test)
    clusters = _running["clusters"]

    def start_server(storage_conf=None, zeo_conf=None, port=None,
                     keep=False, addr=None, protocol=None, **kw):
        options = {k: v for k, v in kw.items() if k not in IGNORED}
        # A str port is a Unix socket path (unix_domain_sockets), relative
        # to the doctest's directory, not the front's.
        path = os.path.abspath(port) if isinstance(port, str) else None
        if path:
            port = None
        if storage_conf or zeo_conf or port or keep or addr or protocol \
                or options:
            raise NotImplementedError(
                "conformance start_server: only a default server, or one "
                "on a Unix socket path")
        cluster = clusters.start(f"server{len(clusters.clusters) + 1}",
                                 addr=path)
        return cluster.addr, cluster

    def stop_server(cluster):
        check_mirrors([cluster])
        cluster.stop()

    test.globs.update(
        start_server=start_server, stop_server=stop_server,
        wait_until=forker.wait_until, wait_connected=forker.wait_connected,
        wait_disconnected=forker.wait_disconnected)


def _cases():
    checker = renormalizing.RENormalizing(PATTERNS)
    module = doctest.DocTestSuite(
        testZEO, setUp=setUp, tearDown=zope.testing.setupstack.tearDown,
        checker=checker)
    files = doctest.DocFileSuite(
        *FILE_DOCTESTS, package="ZEO.tests", setUp=setUp,
        tearDown=zope.testing.setupstack.tearDown, checker=checker)
    cases = {}
    for case in list(module) + list(files):
        name = case.id().split(".")[-1]
        if case in list(files) or name in MODULE_DOCTESTS:
            cases[name] = case
    missing = set(MODULE_DOCTESTS) - set(cases)
    assert not missing, f"doctests not found in ZEO.tests.testZEO: {missing}"
    # A TestCase whose body calls forker.setUp(self) and then
    # self.globs['start_server'](); run with our setUp in its place.
    cases["MultiprocessingTests.test_work_with_multiprocessing"] = \
        testZEO.MultiprocessingTests("test_work_with_multiprocessing")
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_zeo_doctest(clusters, target, name, monkeypatch):
    relstorage_exclusions.skip_if_excluded(
        target, f"test_zeo_doctest[{name}]")
    _running["clusters"] = clusters
    monkeypatch.setattr(forker, "setUp", setUp)
    try:
        run_case(CASES[name])
    finally:
        _running.clear()

