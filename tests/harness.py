"""Test harness: starts real servers on 127.0.0.1 for relance's integration
tests, and tears them down even when a test fails.

- Postgres: a throwaway cluster (initdb + pg_ctl) in a temp dir on a free
  port. As root the server runs as the 'postgres' user (PostgreSQL refuses
  to run as root).
- relance(): runs the binary under test (RELANCE_BIN) with an environment.
- Serve: a `relance serve` process in the background with helpers to wait
  for /readyz and to stop it with a signal.

Only Python's standard library is used (Debian's python3)."""
import atexit
import glob
import json
import email
import email.policy
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql-15)")


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


class Postgres:
    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = short_tempdir("rpg")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(["initdb", "-D", self.data, "-U", "relance", "-A", "trust", "--no-sync", "-E", "UTF8",
                   "--locale", "C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nmax_connections = 100\n")
        at_exit(self.stop)
        self.start()
        self.psql("CREATE DATABASE relance", db="postgres")

    def _run(self, argv, check=True):
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout}")
        return r

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "30", "start"])

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def url(self, db="relance"):
        return f"postgresql://relance@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="relance", check=True):
        """Runs sql; returns the rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url(db),
                            "-f", "-"], input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def new_database(self, name):
        self.psql(f"CREATE DATABASE {name}", db="postgres")
        return self.url(name)


# The harness's own knobs; every other RELANCE_* is one of relance's
# settings (README's table) and, like DATABASE_URL and libpq's PG*, is the
# caller's, never the test's: exported in the shell that runs the suite it
# must not change a result.
HARNESS_VARS = {"RELANCE_BIN", "RELANCE_SOURCE_DIR", "RELANCE_TEST_LOG_DIR"}


def base_env():
    """os.environ without relance's and libpq's settings: the environment
    every relance a test starts begins from."""
    return {k: v for k, v in os.environ.items()
            if not ((k.startswith("RELANCE_") and k not in HARNESS_VARS) or k == "DATABASE_URL"
                    or k.startswith("PG"))}


def relance(*args, env=None, input=None, timeout=120, cwd=None, raw=False):
    """Runs the relance binary; returns CompletedProcess (text, or bytes
    with raw=True: text mode would turn CRLF into LF)."""
    e = base_env()
    e.update(env or {})
    r = subprocess.run([RELANCE, *args], env=e, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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


class Serve:
    """A `relance serve` in the background."""

    def __init__(self, env, args=(), preexec_fn=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        e = base_env()
        e.update(env)
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
        at_exit(self.kill)

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


class Check:
    """Collects failures so one run reports them all; exit code 1 if any."""

    def __init__(self, name):
        self.name = name
        self.failed = 0
        self.passed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, what, f"got {got!r}, want {want!r}")

    def done(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        _cleanup()
        sys.exit(1 if self.failed else 0)
