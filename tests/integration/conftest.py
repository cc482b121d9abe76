"""The integration tests' shared world (pytest fixtures).

- cluster (session): one PostgreSQL for the whole run and, in it, the
  template database `relance migrate` migrated once. tests/run starts it
  before ctest and names it in RELANCE_TEST_PG, so every test file of the
  run shares it; a file run alone (plain pytest, or ctest without
  tests/run) starts a private one and stops it at the end.
- db / module_db: a database of the test's (or the module's) own, a copy of
  the template, dropped when it ends: no test sees another's rows.
  empty_db: one that was never migrated.
- own_postgres: a private cluster with an empty database 'relance', for
  a test that stops, restarts or reconfigures the server, which it must
  not do to the shared one.
- mail (module): Postfix and Dovecot (tests/mailservers.py), with the
  arguments of the module's `pytest.mark.mail(...)`; fresh_mail: the
  same for one test alone (its mailboxes and logs start empty); a module
  that needs other servers defines its own fixture.
- serve: starts `relance serve` (harness.Serve); whatever a test started
  is killed when it ends, and the log of each is shown if it failed.
- check: soft checks (harness.Checks) for a scenario that establishes
  many facts from one run; any failed check fails the test.
- tmp / module_tmp: a short temporary directory for the test (the
  module); unix socket paths must fit 108 bytes.

relance under test gets only the environment the test gives it
(harness.relance_env). RELANCE_TEST_DURATIONS=DIR makes each pytest
process write every case's duration to DIR, for tests/run's summary."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
import pgcluster  # noqa: E402


# ---- PostgreSQL

@pytest.fixture(scope="session")
def cluster():
    if not os.access(harness.RELANCE, os.X_OK):
        pytest.exit(f"no relance binary at {harness.RELANCE}: set RELANCE_BIN (tests/run and ctest do)", 2)
    shared = os.environ.get("RELANCE_TEST_PG")
    if shared:
        c = pgcluster.Cluster.attach(shared)
        c.ensure_template(harness.RELANCE, harness.relance_env())
        yield c
        return
    c = pgcluster.Cluster.create()
    try:
        c.ensure_template(harness.RELANCE, harness.relance_env())
        yield c
    finally:
        c.destroy()


@pytest.fixture
def db(cluster):
    d = harness.Database(cluster)
    yield d
    d.drop()


@pytest.fixture(scope="module")
def module_db(cluster):
    d = harness.Database(cluster)
    yield d
    d.drop()


@pytest.fixture
def empty_db(cluster):
    d = harness.Database(cluster, migrated=False)
    yield d
    d.drop()


@pytest.fixture
def own_postgres():
    pg = harness.Postgres()
    yield pg
    pg.destroy()


# ---- mail servers, relance serve, files

@pytest.fixture(scope="module")
def mail(request):
    marker = request.node.get_closest_marker("mail")
    ms = mailservers.MailServers(**(marker.kwargs if marker else {}))
    yield ms
    ms.stop()


@pytest.fixture
def fresh_mail(request):
    """Like mail, for one test alone: mailboxes and logs start empty."""
    marker = request.node.get_closest_marker("mail")
    ms = mailservers.MailServers(**(marker.kwargs if marker else {}))
    yield ms
    ms.stop()


@pytest.fixture
def serve(request):
    """serve(env, args=(), preexec_fn=None) starts a `relance serve`."""
    started = []
    request.node.relance_serves = started

    def start(env, args=(), preexec_fn=None):
        s = harness.Serve(env, args=args, preexec_fn=preexec_fn)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


@pytest.fixture(autouse=True)
def sanitizer_reports():
    """After each test, a sanitizer report (ASan, LSan, UBSan, TSan) in the
    log of any relance serve started so far fails the test, whether or not
    the test read that log; each report fails one test only."""
    yield
    for s in harness.SERVES:
        if s.checked:
            continue
        report = s.sanitizer_report()
        if report:
            s.checked = True
            pytest.fail(f"a sanitizer reported in relance serve's log:\n{report}", pytrace=False)


@pytest.fixture
def tmp():
    d = harness.short_tempdir("rt")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def module_tmp():
    d = harness.short_tempdir("rt")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def check():
    return harness.Checks()


# ---- reports

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.when == "call":
        chk = item.funcargs.get("check") if hasattr(item, "funcargs") else None
        if chk is not None and chk.failures and rep.passed:
            rep.outcome = "failed"
            rep.longrepr = f"{len(chk.failures)} check(s) failed:\n" + "\n".join(
                f"- {f}" for f in chk.failures)
    if rep.failed:
        for i, s in enumerate(getattr(item, "relance_serves", [])):
            rep.sections.append((f"relance serve #{i + 1} log (last 8000 characters)", s.output()[-8000:]))


_durations = {}


def pytest_runtest_logreport(report):
    d = _durations.setdefault(report.nodeid, [0.0, "passed"])
    d[0] += report.duration
    if report.failed:
        d[1] = "failed"
    elif report.skipped and d[1] == "passed":
        d[1] = "skipped"


def pytest_sessionfinish(session):
    out = os.environ.get("RELANCE_TEST_DURATIONS")
    if not out or not _durations:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"pytest-{os.getpid()}.tsv"), "w") as f:
        for nodeid, (secs, result) in _durations.items():
            f.write(f"{secs:.2f}\t{result}\t{nodeid}\n")
