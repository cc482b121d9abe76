"""Test harness: starts real servers on 127.0.0.1 for relance's integration
tests, and tears them down even when a test fails.

- Database: one test's database, a copy of the migrated template in the
  run's cluster (tests/pgcluster.py; tests/integration/conftest.py hands
  them out as fixtures).
- Postgres: a private cluster (initdb + pg_ctl) for a test that stops or
  reconfigures the server itself.
- relance(): runs the binary under test (RELANCE_BIN) with only the
  environment the test gives it (relance_env).
- Serve: a `relance serve` process in the background with helpers to wait
  for /readyz and to stop it with a signal.
- sequence() and pool_config(): the sequences and configurations that
  tests/fixtures/ holds, filled in for one test.

Only Python's standard library is used (Debian's python3)."""
import atexit
import json
import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pgcluster

RELANCE = os.path.abspath(os.environ.get("RELANCE_BIN", "build/relance"))
SOURCE = os.environ.get("RELANCE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_cleanups = []


def at_exit(fn):
    """Registers fn to run when the test ends, however it ends."""
    _cleanups.append(fn)


def _cleanup():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep tearing down the rest
            print(f"cleanup: {e}", file=sys.stderr)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


free_port = pgcluster.free_port


def pg_bindir():
    return pgcluster.bindir()


def wait_until(fn, timeout, step=0.2):
    """Calls fn until it returns something true or timeout seconds pass;
    returns its last value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


def parsed(raw):
    """An RFC 5322 message (bytes) as an email.message.EmailMessage."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def short_tempdir(prefix):
    """A temp dir with a short path (unix socket paths must fit 108 bytes)
    that an unprivileged server user can reach."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    at_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


class Postgres(pgcluster.Cluster):
    """A private cluster with an empty database 'relance', stopped when the
    test ends: for a test that stops, restarts or reconfigures the server
    itself, which it must not do to the run's shared cluster."""

    def __init__(self):
        made = pgcluster.Cluster.create(short_tempdir("rpg"))
        self.__dict__.update(made.__dict__)
        at_exit(self.stop)
        self.psql("CREATE DATABASE relance", db="postgres")

    def _run(self, argv, check=True):
        return self.run(argv, check)

    def url(self, db="relance"):
        return super().url(db)

    def psql(self, sql, db="relance", check=True):
        return super().psql(sql, db, check)


class Database:
    """One test's database in a shared cluster: a copy of the migrated
    template (or empty), dropped when the test ends. psql(), url() and port
    as Postgres has them."""

    _count = 0

    def __init__(self, cluster, migrated=True):
        Database._count += 1
        self.cluster = cluster
        self.port = cluster.port
        self.name = f"t{os.getpid()}_{Database._count}_{os.urandom(2).hex()}"
        cluster.create_database(self.name, pgcluster.TEMPLATE if migrated else None)

    def url(self, db=None):
        return self.cluster.url(db or self.name)

    def psql(self, sql, db=None, check=True):
        return self.cluster.psql(sql, db or self.name, check)

    def drop(self):
        self.cluster.drop_database(self.name)


# What relance under test receives besides what the test sets: a fixed
# PATH, a HOME of its own (serve keeps its state under it, libpq reads
# ~/.pgpass there) and one locale. Nothing else of the caller's: not
# relance's settings (RELANCE_*, DATABASE_URL), not libpq's (PG*), not the
# harness's own knobs (HARNESS_VARS, read here and never passed on), so
# what a user exported cannot change a result. The sanitizers' options are
# the one exception: they decide how a sanitizer report ends the run.
HARNESS_VARS = {"RELANCE_BIN", "RELANCE_SOURCE_DIR", "RELANCE_TEST_LOG_DIR", "RELANCE_TEST_PG",
                "RELANCE_TEST_DURATIONS", "RELANCE_FUZZ_SECONDS", "RELANCE_TEST_CONTACTS", "RELANCE_TEST_SPEED",
                "RELANCE_SCHEDULE_SEED", "CLASSIFY_CORPUS_VERBOSE"}
SANITIZER_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")
_home = []


def relance_home():
    """The empty HOME every relance of this process runs with."""
    if not _home:
        _home.append(short_tempdir("rhome"))
    return _home[0]


def relance_env(extra=None):
    """The whole environment of a relance the harness starts: the minimum
    above, then extra (what the test sets)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": relance_home(), "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in SANITIZER_VARS if k in os.environ})
    env.update(extra or {})
    return env


def relance(*args, env=None, input=None, timeout=120, cwd=None, raw=False):
    """Runs the relance binary; returns CompletedProcess (text, or bytes
    with raw=True: text mode would turn CRLF into LF)."""
    r = subprocess.run([RELANCE, *args], env=relance_env(env), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, cwd=cwd)
    if not raw:
        r.stdout = r.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
        r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def http_get(url, timeout=5):
    """Returns (status, parsed JSON or text); status 0 when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        status = e.code
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


# Every Serve started in this process, for the sanitizer check after each
# test (conftest's sanitizer_reports): a report in a serve's log fails the
# test even when nothing else looked at that log.
SERVES = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", "runtime error:")


class Serve:
    """A `relance serve` in the background."""

    def __init__(self, env, args=(), preexec_fn=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        e = relance_env(env)
        e["RELANCE_HTTP_LISTEN"] = f"127.0.0.1:{self.port}"
        # RELANCE_TEST_LOG_DIR keeps each serve's whole log, for a run to
        # be studied after it failed
        keep = os.environ.get("RELANCE_TEST_LOG_DIR")
        if keep:
            os.makedirs(keep, exist_ok=True)
            self.log = tempfile.NamedTemporaryFile(mode="w+", dir=keep, prefix="serve-", suffix=".log", delete=False)
        else:
            self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([RELANCE, *args, "serve"], env=e, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=preexec_fn)
        self.checked = False
        SERVES.append(self)
        at_exit(self.kill)

    def sanitizer_report(self):
        """The first lines of a sanitizer's report in the log, or None."""
        out = self.output()
        for mark in SANITIZER_MARKS:
            i = out.find(mark)
            if i >= 0:
                return out[max(0, i - 200):i + 3000]
        return None

    def get(self, path):
        return http_get(self.base + path)

    def wait_status(self, path, status, timeout=20):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"relance serve exited {self.proc.returncode}:\n{self.output()}")
            last = self.get(path)
            if last[0] == status:
                return last
            time.sleep(0.1)
        raise AssertionError(f"{path} did not become {status} within {timeout}s (last: {last})\n{self.output()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


class Checks:
    """Soft checks for a scenario that establishes many facts from one
    run: each failed check is recorded with what was expected, the test
    goes on to report the others, and any failure fails it (the pytest
    fixture `check`)."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failures.append(what + (f"\n     {detail}" if detail else ""))
            print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, what, f"got {got!r}, want {want!r}")

    @property
    def failed(self):
        return len(self.failures)


# ---- the shared sequences and configurations of tests/fixtures/

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _fill(path, values):
    import string
    with open(os.path.join(FIXTURES, path)) as f:
        lines = [ln for ln in f.read().splitlines(keepends=True) if not ln.startswith("#")]
    return string.Template("".join(lines)).substitute(values)


def dkim_key(directory, domain, alg="RSA", selector="s1"):
    """A new DKIM key for domain (openssl genpkey: RSA-2048 or ED25519) in
    directory, and its DNS record as `relance dkim-sign --print-dns` prints
    it, read back as the TXT value a resolver gives python3-dkim:
    (key path, record bytes)."""
    key = os.path.join(directory, f"{domain}.pem")
    args = ["openssl", "genpkey", "-algorithm", alg, "-out", key]
    if alg.upper() == "RSA":
        args += ["-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(args, check=True, capture_output=True)
    r = relance("dkim-sign", "--print-dns", "--key", key, "--domain", domain, "--selector", selector)
    assert r.returncode == 0, f"dkim record for {domain}: {r.stderr}"
    # 's1._domainkey.D IN TXT "v=DKIM1; ..." "..."' -> the TXT value
    record = "".join(r.stdout.split("TXT", 1)[1].replace('"', " ").split()).replace("v=DKIM1;", "v=DKIM1; ")
    return key, record.encode()


def sequence(directory, fixture="two_step", name="s", pool="main", wait="1h", steps="", extra=""):
    """Writes tests/fixtures/sequences/<fixture>.yaml as sequence name of
    pool into directory; returns its path. For custom_steps, steps are the
    YAML lines of the steps list."""
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(_fill(f"sequences/{fixture}.yaml",
                      {"name": name, "pool": pool, "wait": wait, "steps": steps.rstrip("\n"), "extra": extra}))
    return path


def account(ms, email, password_env="PW", **extra):
    """One pool account (tests/fixtures/config/smtp_account.yaml) sending
    through MailServers ms; extra keys (daily_limit=5, ...) are added as
    they are."""
    more = "".join(f"  {k}: {v}\n" for k, v in extra.items())
    return _fill("config/smtp_account.yaml", {"email": email, "submission_port": ms.submission_port,
                                               "password_env": password_env, "ca_file": ms.ca_file, "extra": more})


def pool_config(directory, pools, name="relance.yaml"):
    """Writes a configuration with pools ({pool: [account(...), ...]})
    into directory; returns its path."""
    out = ["pools:\n"]
    for pool, accounts in pools.items():
        out.append(f"  {pool}:\n    accounts:\n")
        for a in accounts:
            out.append("".join(f"      {ln}" for ln in a.splitlines(keepends=True) if ln.strip()))
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("".join(out))
    return path


SENDER = ("sender@acme.example", "pw")


def one_sender(ms, db, directory, name, fixture="one_step", steps="", wait="1h"):
    """What most sending tests start from: SENDER alone in pool 'main' of a
    configuration, sending through MailServers ms (which must know SENDER),
    and the sequence fixture applied as name in database db. Returns the
    environment relance needs to run against them."""
    email, password = SENDER
    config = pool_config(directory, {"main": [account(ms, email, "PW")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config, "PW": password}
    seq = sequence(directory, fixture, name=name, pool="main", steps=steps, wait=wait)
    r = relance("apply", seq, env=env)
    if r.returncode != 0:
        raise AssertionError(f"apply {seq}: {r.stdout + r.stderr}")
    return env
