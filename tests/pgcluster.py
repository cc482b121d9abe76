"""One PostgreSQL cluster for the integration tests, and the template
database every test copies.

A cluster lives in one short directory: data/ (the cluster), log, the unix
socket, and cluster.json (its port and the user the server runs as), so a
second process can attach to a cluster the first one started. As root the
server runs as the 'postgres' user (PostgreSQL refuses to run as root).

The template (TEMPLATE) is a database that `relance migrate` migrated once;
a test's database is a copy of it (CREATE DATABASE ... TEMPLATE), so no
test sees another's rows and none pays for a migration. Making the template
takes a file lock in the cluster's directory: two processes that attach to
one cluster at once make it once. It accepts no connections once made,
since a session on it would make every copy fail.

As a program it is what tests/run uses around ctest:
    python3 tests/pgcluster.py start DIR   initdb, start, make the template
    python3 tests/pgcluster.py stop DIR    stop the server, remove DIR
The tests find the cluster through RELANCE_TEST_PG=DIR (a harness setting:
never passed on to relance). RELANCE_BIN names the relance binary that
makes the template.

Only Python's standard library."""
import fcntl
import glob
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TEMPLATE = "relance_template"
SUPERUSER = "relance"
# The role group whose members must give a password over TCP (scram),
# every other role is trusted: a test of password handling makes its role
# a member rather than editing pg_hba.conf under the others' feet.
PASSWORD_ROLES = "relance_password_roles"


_PORT_LOCKS = "/tmp/relance-test-ports"
_held_ports = []


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port on 127.0.0.1 for a server a test starts, reserved for this
    process until it ends. Asking the kernel for port 0 and closing the
    socket is a race: between the close and the server's bind, a client
    socket (any test's connection to PostgreSQL or SMTP) or another test
    process could take the same port, and the server fails with "Address
    already in use" (one CI run in many did). So ports come from below the
    kernel's ephemeral range, where no client socket is ever numbered, and
    each is claimed with a lock file that every test process honours; the
    lock goes with the process."""
    os.makedirs(_PORT_LOCKS, mode=0o1777, exist_ok=True)
    high = min(_ephemeral_low(), 65536)
    low = max(1024, high - 12000)
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(low, high)
        fd = os.open(os.path.join(_PORT_LOCKS, str(port)), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:  # in use by something outside the tests
            os.close(fd)
            continue
        _held_ports.append(fd)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql-15)")


def tool_env():
    """The environment of the PostgreSQL programs the harness runs (initdb,
    pg_ctl, psql): none of the caller's PG* settings, which would point
    psql at another server or change its session."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


class Cluster:
    """A cluster in self.dir. Cluster.create(dir) makes and starts one,
    Cluster.attach(dir) uses the one another process made."""

    def __init__(self, path):
        self.dir = path
        self.data = os.path.join(path, "data")
        self.log = os.path.join(path, "log")
        self.bindir = bindir()
        self.port = None
        self.user = None

    # ---- life

    @classmethod
    def create(cls, path=None, max_connections=100):
        """initdb in path (a new short temp dir when None) and start."""
        if path is None:
            path = tempfile.mkdtemp(prefix="rpg", dir="/tmp")
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        c = cls(path)
        c.port = free_port()
        if os.geteuid() == 0:
            c.user = "postgres"
            pw = pwd.getpwnam(c.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        c.run(["initdb", "-D", c.data, "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"])
        with open(os.path.join(c.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {c.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{path}'\nfsync = off\nsynchronous_commit = off\n"
                    f"full_page_writes = off\nmax_connections = {max_connections}\n")
        hba = os.path.join(c.data, "pg_hba.conf")
        with open(hba) as f:
            lines = f.read()
        with open(hba, "w") as f:
            f.write(f"host all +{PASSWORD_ROLES} 127.0.0.1/32 scram-sha-256\n" + lines)
        with open(os.path.join(path, "cluster.json"), "w") as f:
            json.dump({"port": c.port, "user": c.user}, f)
        c.start()
        c.psql(f"CREATE ROLE {PASSWORD_ROLES} NOLOGIN", db="postgres")
        return c

    @classmethod
    def attach(cls, path):
        c = cls(path)
        with open(os.path.join(path, "cluster.json")) as f:
            state = json.load(f)
        c.port, c.user = state["port"], state["user"]
        return c

    def run(self, argv, check=True):
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tool_env())
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout}")
        return r

    def start(self):
        self.run(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start"])

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- use

    def url(self, db):
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db, check=True):
        """Runs sql in database db; returns the rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url(db), "-f", "-"],
                           input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_env())
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- databases

    def create_database(self, name, template=TEMPLATE):
        """A new database: a copy of template, or empty when template is None."""
        # FILE_COPY: a small template copies faster as files than through
        # the WAL (about 0.16 s against 0.24 s here), and the checkpoints it
        # costs are cheap with fsync off
        tpl = f" TEMPLATE {template}" if template else " TEMPLATE template0"
        self.psql(f"CREATE DATABASE {name}{tpl} STRATEGY FILE_COPY", db="postgres")

    def drop_database(self, name):
        # FORCE: a relance the test left running must not keep it alive
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", db="postgres", check=False)

    def ensure_template(self, relance_bin, env):
        """Makes TEMPLATE with `relance migrate` unless it exists; safe when
        several processes sharing this cluster ask at once."""
        with open(os.path.join(self.dir, "template.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}'", db="postgres"):
                return
            building = TEMPLATE + "_building"
            self.drop_database(building)
            self.create_database(building, template=None)
            r = subprocess.run([relance_bin, "migrate"], env={**env, "DATABASE_URL": self.url(building)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"relance migrate of the template failed:\n{r.stdout}")
            # the migrating session is gone once relance exited; the rename
            # makes the template visible only when whole
            self.psql(f"ALTER DATABASE {building} RENAME TO {TEMPLATE}; "
                      f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false", db="postgres")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: pgcluster.py start|stop DIR", file=sys.stderr)
        return 2
    path = os.path.abspath(argv[2])
    if argv[1] == "stop":
        if os.path.exists(os.path.join(path, "cluster.json")):
            Cluster.attach(path).destroy()
        else:
            shutil.rmtree(path, ignore_errors=True)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    started = time.monotonic()
    c = Cluster.create(path, max_connections=300)
    try:
        c.ensure_template(harness.RELANCE, harness.relance_env())
    except Exception:
        c.destroy()
        raise
    print(f"pgcluster: PostgreSQL on 127.0.0.1:{c.port}, template migrated "
          f"({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
