"""Third-party judges from npm, for the tests: install(package, version)
installs a pinned release into a temporary folder (once per process,
removed at exit, never into the project) and returns the folder, whose
node_modules node finds when a script runs there.

Every package is pinned exactly, and must run on Debian 12's own Node.js
18 (deploy/deps test installs nodejs and npm): a new release can bring
rules or engines of its own. overrides pins transitive packages whose
newest releases ask for a newer Node.js.

Standard library only."""
import atexit
import json
import os
import shutil
import subprocess
import tempfile

_installed = {}


def install(package, version, overrides=None):
    key = (package, version)
    if key in _installed:
        return _installed[key]
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found: {package} needs Node.js and npm (deploy/deps test)")
    prefix = tempfile.mkdtemp(prefix="relance-npm-")
    atexit.register(shutil.rmtree, prefix, True)
    with open(os.path.join(prefix, "package.json"), "w") as f:
        json.dump({"name": "relance-test-tool", "private": True, "dependencies": {package: version},
                   "overrides": overrides or {}}, f)
    r = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error",
                        "--no-save"], capture_output=True, text=True, timeout=600, cwd=prefix)
    if r.returncode != 0 or not os.path.isdir(os.path.join(prefix, "node_modules", package)):
        raise RuntimeError(f"npm install {package}@{version} failed ({r.returncode}):\n"
                           f"{r.stdout[-1500:]}{r.stderr[-1500:]}")
    _installed[key] = prefix
    return prefix
