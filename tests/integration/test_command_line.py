"""The command line as a whole, with no server: every command answers
--help and lists every flag README gives it; usage errors and --help need
neither a configuration nor a database; each command sets up what it
needs and no more (a broken configuration or an unreachable database
stops only the commands that use them)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("command_line")
tmp = harness.short_tempdir("rcli")
dead_db = f"postgresql://relance@127.0.0.1:{harness.free_port()}/x?connect_timeout=3"
# nothing can be set up: the configuration file is missing, the database unreachable
broken = {"RELANCE_CONFIG": os.path.join(tmp, "missing.yaml"), "DATABASE_URL": dead_db}
# a configuration that loads, and a database that is not there
no_db = {"DATABASE_URL": dead_db}

r = relance("--help")
commands = re.findall(r"^  (\S+)  ", r.stdout.split("\nCommands:\n", 1)[-1], re.M)
t.ok(r.returncode == 0 and len(commands) >= 20, "relance --help lists the commands", r.stdout)


def helps(cmd):
    """The help of cmd and of each of its subcommands, as one text."""
    h = relance(cmd, "--help", env=broken)
    text = h.stdout
    t.ok(h.returncode == 0 and h.stdout.startswith(f"usage: relance {cmd}") and h.stderr == "",
         f"{cmd} --help: usage on stdout, exit 0, with nothing set up", h.stdout + h.stderr)
    if "\nSubcommands:\n" in h.stdout:
        for sub in re.findall(r"^  (\S+)  ", h.stdout.split("\nSubcommands:\n", 1)[1], re.M):
            s = relance(cmd, sub, "--help", env=broken)
            t.ok(s.returncode == 0 and s.stdout.startswith(f"usage: relance {cmd} {sub}"),
                 f"{cmd} {sub} --help", s.stdout + s.stderr)
            text += s.stdout
    return text


help_of = {cmd: helps(cmd) for cmd in commands}

# README's command table: each flag a row names is in that command's help
with open(os.path.join(harness.SOURCE, "README.md"), encoding="utf-8") as f:
    readme = f.read()
rows = re.findall(r"^\| `relance ([a-z-]+)([^`]*)`", readme, re.M)
t.ok(len(rows) >= 15, "README's command table is read", str(rows))
for cmd, rest in rows:
    t.ok(cmd in help_of, f"README's {cmd} is a command", str(commands))
    for flag in re.findall(r"--[a-z][a-z-]*", rest):
        t.ok(flag in help_of.get(cmd, ""), f"relance {cmd} --help lists {flag}", help_of.get(cmd, ""))

# usage errors come before any set-up: exit 2, one line, with nothing set up
USAGE = [
    (("stats", "--frobnicate", "ab"), "stats: unexpected argument '--frobnicate'"),
    (("stats",), "usage: relance stats"),
    (("next-send-time", "--timezone", "UTC"), "next-send-time: --window is required"),
    (("next-send-time", "--from"), "next-send-time: --from needs a value"),
    (("enroll", "--sequence", "s"), "enroll: give one of --contact, --csv or --where"),
    (("enroll", "--sequence", "s", "--csv", "a.csv", "--where", "true"), "give only one of"),
    (("pause", "--enrollment", "1", "--sequence", "s"), "pause: give only one of"),
    (("contacts", "import"), "usage: relance contacts import"),
    (("contacts", "frob"), "contacts: unknown subcommand 'frob' (import, show or list"),
    (("suppress", "list", "x"), "suppress list: unexpected argument 'x'"),
    (("migrate", "--status=yes"), "migrate: --status takes no value"),
    (("serve", "now"), "serve: unexpected argument 'now'"),
    (("--log-format", "xml", "version"), "--log-format must be text or json, not 'xml'"),
]
for args, text in USAGE:
    r = relance(*args, env=broken)
    t.ok(r.returncode == 2 and text in r.stderr and "config error" not in r.stderr and "cannot connect" not in r.stderr,
         f"relance {' '.join(args)}: a usage error, exit 2, before any set-up", r.stderr)

# each command sets up what its entry says, no more
seq = os.path.join(harness.SOURCE, "sequences")
for args in (("version",), ("dkim-sign", "--key", "/nonexistent", "--domain", "a.example", "--selector", "s")):
    r = relance(*args, env=broken, cwd=tmp)
    t.ok("config error" not in r.stderr and "cannot connect" not in r.stderr,
         f"relance {' '.join(args)} needs no configuration nor database", r.stderr)
t.eq(relance("version", env=broken, cwd=tmp).returncode, 0, "version runs with nothing set up")
# lint reads a configuration only when one is named (for sender_pool warnings)
r = relance("lint", "--", seq, env=no_db, cwd=tmp)
t.eq((r.returncode, r.stderr), (0, ""), "lint runs with no configuration and no database")
r = relance("lint", seq, env=broken, cwd=tmp)
t.ok(r.returncode == 1 and "config error" in r.stderr, "lint reads a configuration that is named", r.stderr)
for args in (("config",), ("serve",), ("imap-check", "a@b.example"), ("migrate",), ("stats", "ab")):
    r = relance(*args, env=broken, timeout=30)
    t.ok(r.returncode == 1 and "config error" in r.stderr and r.stderr.count("\n") == 1,
         f"relance {' '.join(args)} needs the configuration: one line, exit 1", r.stderr)
for args in (("migrate",), ("migrate", "--status"), ("stats", "ab"), ("contacts", "list"), ("suppress", "list"),
             ("accounts", "list"), ("enroll", "--sequence", "s", "--where", "true"),
             ("next-send-time", "--timezone=UTC", "--window=09:00-17:00", "--days=mon", "--from=2026-03-02T10:00Z")):
    r = relance(*args, env=no_db, timeout=30)
    t.ok(r.returncode == 1 and "cannot connect to the database" in r.stderr,
         f"relance {' '.join(args)} needs the database: exit 1, says so", r.stderr)
r = relance("config", env=no_db)
t.ok(r.returncode == 0 and "cannot connect" not in r.stderr, "config needs no database", r.stdout + r.stderr)
# preview of a file needs no database; of an applied sequence, it does
example = os.path.join(seq, sorted(f for f in os.listdir(seq) if f.endswith(".yaml"))[0])
r = relance("preview", example, "--step", "nope", env=no_db)
t.ok(r.returncode == 1 and "has no step 'nope'" in r.stderr and "cannot connect" not in r.stderr,
     "preview of a file reads no database", r.stderr)
r = relance("preview", "applied-name", "--step", "x", env=no_db, timeout=30)
t.ok(r.returncode == 1 and "cannot connect to the database" in r.stderr, "preview of an applied sequence connects",
     r.stderr)

t.done()
