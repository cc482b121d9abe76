"""deploy/up with the user's own DATABASE_URL: the database is migrated
and served, and the example sequences are not applied to it (they are
for the private demo cluster only). Before, the three examples landed in
the user's database. Without a configuration it runs with transport
capture and says where the messages go.

deploy/up builds with cmake before anything else; here it runs from a
copy of the checkout's deploy/ and sequences/ whose build/relance is the
binary under test, with a cmake on PATH that does nothing, so the test
takes seconds rather than a full release build. deploy/deps is the real
one (it only checks that the packages are installed). The case stops
deploy/up with SIGTERM once it says it is serving."""
import os
import shutil
import signal
import subprocess
import time

import harness


def test_examples_stay_out_of_the_users_database(db, tmp):
    top = os.path.join(tmp, "checkout")
    shutil.copytree(os.path.join(harness.SOURCE, "deploy"), os.path.join(top, "deploy"))
    shutil.copytree(os.path.join(harness.SOURCE, "sequences"), os.path.join(top, "sequences"))
    os.makedirs(os.path.join(top, "build"))
    os.symlink(harness.RELANCE, os.path.join(top, "build", "relance"))
    stubs = os.path.join(tmp, "stubs")
    os.makedirs(stubs)
    with open(os.path.join(stubs, "cmake"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(stubs, "cmake"), 0o755)

    env = harness.relance_env({"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": os.path.join(tmp, "state"),
                               "RELANCE_HTTP_LISTEN": f"127.0.0.1:{harness.free_port()}"})
    env["PATH"] = stubs + ":" + env["PATH"]
    log = os.path.join(tmp, "up.log")
    with open(log, "wb") as out:
        p = subprocess.Popen(["sh", os.path.join(top, "deploy", "up")], env=env, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and p.poll() is None:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if "relance: serving on" in text:
                break
            time.sleep(0.1)
        assert "relance: serving on" in text, f"deploy/up reaches serve: {text}"
        assert db.psql("SELECT count(*) FROM sequences") == [["0"]], \
            f"no example sequence is applied to the user's database: {text}"
        # no configuration: a dry run that says so, not a service that sends nothing silently
        assert "relance: no configuration (relance.yaml): nothing is sent, messages are written to" in text, text
        assert harness.wait_until(lambda: os.path.isdir(os.path.join(tmp, "state", "capture", "new")), 10), \
            f"serve runs with transport capture: its Maildir is made: {text}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
        rc = p.wait(timeout=30)
    assert rc == 0, "deploy/up stops cleanly on SIGTERM"
