"""What a container asks of relance as it starts (issue 22; deploy/Dockerfile,
deploy/k8s/):

- sequences applied as serve starts (RELANCE_APPLY_SEQUENCES=1, from
  RELANCE_SEQUENCES_DIR, /etc/relance/sequences in the image): two replicas
  started together both apply a folder of sequences under the migration
  lock: one creates them, the other finds them unchanged, no version is
  doubled, both become ready; a folder with a bad file keeps serve from
  starting (exit 1) and names the file, and nothing is applied;
- the connection string from a file (DATABASE_URL_FILE, a mounted secret):
  used when DATABASE_URL is not set, never printed; an unreadable one is
  an error that names the variable and the file."""
import os

import harness
from harness import relance


def test_replicas_starting_together_apply_the_mounted_sequences_once(db, tmp, serve, check):
    folder = os.path.join(tmp, "sequences")
    os.mkdir(folder)
    for name in ("one", "two", "three"):
        harness.sequence(folder, "two_step", name=name, pool="main")
    env = {"DATABASE_URL": db.url(), "RELANCE_TRANSPORT": "capture", "RELANCE_STATE_DIR": tmp,
           "RELANCE_APPLY_SEQUENCES": "1", "RELANCE_SEQUENCES_DIR": folder}
    a, b = serve(env), serve(env)
    a.wait_status("/readyz", 200)
    b.wait_status("/readyz", 200)
    check.eq(db.psql("SELECT s.name, count(v.*) FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                     "GROUP BY s.name ORDER BY s.name"), [["one", "1"], ["three", "1"], ["two", "1"]],
             "each sequence applied once: one version each")
    logs = a.output() + b.output()
    check.eq(logs.count("one: created"), 1, "one replica created them")
    check.eq(logs.count("one: unchanged"), 1, "the other found them unchanged")
    check.eq((a.stop(), b.stop()), (0, 0), "both exit 0 on SIGTERM")


def test_a_bad_mounted_sequence_keeps_serve_from_starting(db, tmp, serve):
    folder = os.path.join(tmp, "sequences")
    os.mkdir(folder)
    with open(os.path.join(folder, "bad.yaml"), "w") as f:
        f.write("name: bad\nsender_pool: main\nschedule:\n  window: \"25:00-26:00\"\nsteps: []\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_TRANSPORT": "capture", "RELANCE_STATE_DIR": tmp,
           "RELANCE_APPLY_SEQUENCES": "1", "RELANCE_SEQUENCES_DIR": folder}
    s = serve(env)
    rc = s.proc.wait(timeout=30)
    out = s.output()
    assert rc == 1, out
    assert "bad.yaml:" in out and "not applied (RELANCE_APPLY_SEQUENCES=1)" in out, out
    assert db.psql("SELECT count(*) FROM sequences") == [["0"]]


def test_the_connection_string_comes_from_a_mounted_file(db, tmp, serve):
    path = os.path.join(tmp, "database-url")
    with open(path, "w") as f:
        f.write(db.url() + "\n")
    env = {"DATABASE_URL_FILE": path, "RELANCE_TRANSPORT": "capture", "RELANCE_STATE_DIR": tmp}
    r = relance("migrate", "--status", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    s = serve(env)
    s.wait_status("/readyz", 200)
    assert s.stop() == 0
    r = relance("config", env={"DATABASE_URL_FILE": os.path.join(tmp, "missing")})
    assert r.returncode == 1 and "DATABASE_URL_FILE" in r.stderr and "missing" in r.stderr, r.stdout + r.stderr
