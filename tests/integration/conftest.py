"""pytest fixtures for sesgate's integration tests (see harness.py)."""

import pytest

import harness


@pytest.fixture(scope="session")
def gw(tmp_path_factory):
    """The fake upstream and, unless SESGATE_DIRECT=1, sesgate in front of it."""
    g = harness.start_gateway(tmp_path_factory.mktemp("gateway"))
    yield g
    harness.stop_gateway(g)


@pytest.fixture
def gateway(gw, request):
    """gw with the fake's record and fault rules cleared for this test."""
    if request.node.get_closest_marker("needs_sesgate") and gw.direct:
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    if request.node.get_closest_marker("needs_node") and not harness.js_ready():
        pytest.fail("tests/integration/js/node_modules is missing: run npm ci there (run.sh does)")
    gw.fake.reset()
    return gw


@pytest.fixture(autouse=True)
def fakes_signatures():
    """After every test, every fake upstream started so far has refused no
    signature the test did not take (FakeSES.take_refused) and assert on:
    a retry signed wrongly once and rightly the next time fails here."""
    yield
    for fake in harness.FAKES:
        fake.check_signatures()


# Test files that measure time (the account's rate across processes, clock
# steps, the limiter script's exact spacing) or change the machine (the
# Debian package: dpkg's lock, users, /etc): tests/run runs them alone,
# after the others, which it runs two files at a time.
SERIAL_FILES = {"test_ratelimit.py", "test_bulk_rate.py", "test_scaleout.py", "test_clock.py",
                "test_limit_script.py", "test_deb.py", "test_upstreams.py",
                "test_sentinel.py"}


def pytest_collection_modifyitems(config, items):
    """Mark the tests of SERIAL_FILES serial (pytest.ini)."""
    for item in items:
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)


def pytest_runtest_logreport(report):
    """With $SESGATE_LOG_DIR set, note every skipped test's node id in
    skipped.txt there: under CI=true tests/run fails on a skip it was not
    told to expect."""
    d = harness.log_dir()
    if d and report.skipped:
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "skipped.txt", "a") as f:
            f.write(report.nodeid + "\n")
