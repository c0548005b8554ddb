"""Fixtures of the conformance suite (see README.md)."""

import pytest

from . import postgres
from .base import clusters_for_test
from .cluster import member_kinds, selected_targets
from .member_storage import RELSTORAGE_PG


@pytest.fixture(scope="session", autouse=True)
def postgres_server():
    """The PostgreSQL server of RelStorage members (postgres.py), when a
    selected target has one: started before the first test (not inside
    one: test_blobs.py runs some tests without root's CAP_DAC_OVERRIDE,
    which the server's directory, owned by `nobody`, would need), stopped
    and its directory removed when the session ends."""
    if any(RELSTORAGE_PG in member_kinds(t) for t in selected_targets()):
        postgres.server()
    yield
    postgres.stop_server()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item, so that fixtures can tell in
    # their teardown whether the test failed (and then print server logs).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(params=selected_targets())
def target(request):
    """The target name, for plain pytest tests: one run per selected
    target."""
    return request.param


@pytest.fixture
def clusters(request, target, tmp_path):
    """A ClusterSet of `target` for one plain pytest test; the test starts
    the clusters it needs. Mirrors are checked and every process stopped
    after the test."""
    with clusters_for_test(request, target, tmp_path) as cs:
        yield cs
