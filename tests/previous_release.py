"""The previous release's relance, for the tests of upgrades.

PREVIOUS_RELEASE is the commit of the last release: the one before the
current line of work. binary() builds it once from the source checkout
(git archive of that commit, cmake RelWithDebInfo without the unit tests,
only the relance target) into a cache beside the binary under test, and
returns the cached binary on every later call, so only the first run pays
for the build (about 20 s on two cores here). A lock file serialises two
tests building it at once.

Move PREVIOUS_RELEASE forward at each release (sql/README.md, "Rolling
upgrades")."""
import fcntl
import os
import shutil
import subprocess
import tempfile

import harness

PREVIOUS_RELEASE = "9b4b299"


def _run(argv, cwd=None):
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout[-4000:]}")
    return r.stdout


def binary():
    """The previous release's relance binary (built on first use)."""
    cache = os.path.join(os.path.dirname(os.path.abspath(harness.RELANCE)), f"previous-release-{PREVIOUS_RELEASE}")
    exe = os.path.join(cache, "relance")
    if os.path.exists(exe):
        return exe
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(exe):  # built while this one waited
            return exe
        # the source dir is a git checkout (in CI too, with its history):
        # without the commit there is no previous release to test against
        try:
            _run(["git", "-C", harness.SOURCE, "cat-file", "-e", PREVIOUS_RELEASE + "^{commit}"])
        except RuntimeError as e:
            raise RuntimeError(f"the previous release ({PREVIOUS_RELEASE}) is not in {harness.SOURCE}'s git "
                               f"history: test from a git checkout with its history\n{e}") from None
        work = tempfile.mkdtemp(prefix="build-", dir=os.path.dirname(cache))
        try:
            src, build = os.path.join(work, "src"), os.path.join(work, "build")
            os.makedirs(src)
            archive = subprocess.Popen(["git", "-C", harness.SOURCE, "archive", PREVIOUS_RELEASE],
                                       stdout=subprocess.PIPE)
            tar = subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout)
            archive.stdout.close()
            if archive.wait() != 0 or tar.returncode != 0:
                raise RuntimeError(f"git archive {PREVIOUS_RELEASE} | tar -x failed")
            _run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DRELANCE_TESTS=OFF"])
            _run(["cmake", "--build", build, "-j2", "--target", "relance"])
            os.makedirs(cache, exist_ok=True)
            shutil.copy2(os.path.join(build, "relance"), exe + ".tmp")
            os.rename(exe + ".tmp", exe)  # only a whole binary is ever found
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return exe


def relance(*args, env=None, timeout=120):
    """Runs the previous release's relance as harness.relance runs this
    one's: the caller's relance and libpq settings left out."""
    return subprocess.run([binary(), *args], env=harness.relance_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


class Serve(harness.Serve):
    """The previous release's `relance serve` in the background."""

    def __init__(self, env, args=()):
        exe = binary()
        saved = harness.RELANCE
        harness.RELANCE = exe  # harness.Serve starts harness.RELANCE
        try:
            super().__init__(env, args)
        finally:
            harness.RELANCE = saved


if __name__ == "__main__":
    print(binary())
