"""The command line as a whole, with no server: every command answers
--help and lists every flag README gives it; usage errors and --help need
neither a configuration nor a database; each command sets up what it
needs and no more (a broken configuration or an unreachable database
stops only the commands that use them)."""
import os
import re

import pytest

import harness
from harness import relance

DEAD_DB = f"postgresql://relance@127.0.0.1:{harness.free_port()}/x?connect_timeout=3"
# a configuration that loads, and a database that is not there
NO_DB = {"DATABASE_URL": DEAD_DB}
SEQUENCES = os.path.join(harness.SOURCE, "sequences")


@pytest.fixture(scope="module")
def broken(module_tmp):
    """Nothing can be set up: the configuration file is missing, the
    database unreachable."""
    return {"RELANCE_CONFIG": os.path.join(module_tmp, "missing.yaml"), "DATABASE_URL": DEAD_DB}


def listed_commands():
    r = relance("--help")
    return r, re.findall(r"^  (\S+)  ", r.stdout.split("\nCommands:\n", 1)[-1], re.M)


@pytest.fixture(scope="module")
def commands():
    r, found = listed_commands()
    assert r.returncode == 0 and len(found) >= 20, f"relance --help lists the commands: {r.stdout}"
    return found


@pytest.fixture(scope="module")
def helps(commands, broken):
    """{command: [(argv, result of `relance argv --help`)]}: each command's
    help, then each of its subcommands', with nothing set up."""
    out = {}
    for cmd in commands:
        h = relance(cmd, "--help", env=broken)
        out[cmd] = [((cmd,), h)]
        if "\nSubcommands:\n" in h.stdout:
            for sub in re.findall(r"^  (\S+)  ", h.stdout.split("\nSubcommands:\n", 1)[1], re.M):
                out[cmd].append(((cmd, sub), relance(cmd, sub, "--help", env=broken)))
    return out


def test_help_lists_the_commands():
    r, found = listed_commands()
    assert r.returncode == 0 and len(found) >= 20, f"relance --help lists the commands: {r.stdout}"


def test_every_command_and_subcommand_answers_help_with_nothing_set_up(helps, check):
    for cmd, results in helps.items():
        (_, h), subs = results[0], results[1:]
        check.ok(h.returncode == 0 and h.stdout.startswith(f"usage: relance {cmd}") and h.stderr == "",
                 f"{cmd} --help: usage on stdout, exit 0, with nothing set up", h.stdout + h.stderr)
        for argv, s in subs:
            check.ok(s.returncode == 0 and s.stdout.startswith(f"usage: relance {' '.join(argv)}"),
                     f"{' '.join(argv)} --help", s.stdout + s.stderr)


def test_each_flag_of_readmes_command_table_is_in_that_commands_help(helps, check):
    help_of = {cmd: "".join(r.stdout for _, r in results) for cmd, results in helps.items()}
    with open(os.path.join(harness.SOURCE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    rows = re.findall(r"^\| `relance ([a-z-]+)([^`]*)`", readme, re.M)
    check.ok(len(rows) >= 15, "README's command table is read", str(rows))
    for cmd, rest in rows:
        check.ok(cmd in help_of, f"README's {cmd} is a command", str(sorted(help_of)))
        for flag in re.findall(r"--[a-z][a-z-]*", rest):
            check.ok(flag in help_of.get(cmd, ""), f"relance {cmd} --help lists {flag}", help_of.get(cmd, ""))


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
    (("contacts", "frob"), "contacts: unknown subcommand 'frob' (import, show, list or export"),
    (("suppress", "list", "x"), "suppress list: unexpected argument 'x'"),
    (("migrate", "--status=yes"), "migrate: --status takes no value"),
    (("serve", "now"), "serve: unexpected argument 'now'"),
    (("--log-format", "xml", "version"), "--log-format must be text or json, not 'xml'"),
]


@pytest.mark.parametrize("args, text", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_a_usage_error_exits_2_before_any_set_up(broken, args, text):
    r = relance(*args, env=broken)
    assert r.returncode == 2 and text in r.stderr and "config error" not in r.stderr \
        and "cannot connect" not in r.stderr, \
        f"relance {' '.join(args)}: a usage error, exit 2, before any set-up: {r.stderr}"


# each command sets up what its entry says, no more

NEEDS_NOTHING = [("version",), ("dkim-sign", "--key", "/nonexistent", "--domain", "a.example", "--selector", "s")]


@pytest.mark.parametrize("args", NEEDS_NOTHING, ids=[a[0] for a in NEEDS_NOTHING])
def test_a_command_that_needs_nothing_runs_with_nothing_set_up(broken, module_tmp, args):
    r = relance(*args, env=broken, cwd=module_tmp)
    assert "config error" not in r.stderr and "cannot connect" not in r.stderr, \
        f"relance {' '.join(args)} needs no configuration nor database: {r.stderr}"


def test_version_exits_0_with_nothing_set_up(broken, module_tmp):
    r = relance("version", env=broken, cwd=module_tmp)
    assert r.returncode == 0, f"version runs with nothing set up: {r.stdout + r.stderr}"


def test_lint_runs_with_no_configuration_and_no_database(module_tmp):
    r = relance("lint", "--", SEQUENCES, env=NO_DB, cwd=module_tmp)
    assert (r.returncode, r.stderr) == (0, ""), f"lint runs with no configuration and no database: {r.stderr}"


def test_lint_reads_a_configuration_that_is_named(broken, module_tmp):
    # for its sender_pool warnings
    r = relance("lint", SEQUENCES, env=broken, cwd=module_tmp)
    assert r.returncode == 1 and "config error" in r.stderr, f"lint reads a configuration that is named: {r.stderr}"


NEEDS_CONFIG = [("config",), ("serve",), ("imap-check", "a@b.example"), ("migrate",), ("stats", "ab")]


@pytest.mark.parametrize("args", NEEDS_CONFIG, ids=[" ".join(a) for a in NEEDS_CONFIG])
def test_a_command_that_needs_the_configuration_stops_on_a_broken_one_in_one_line(broken, args):
    r = relance(*args, env=broken, timeout=30)
    assert r.returncode == 1 and "config error" in r.stderr and r.stderr.count("\n") == 1, \
        f"relance {' '.join(args)} needs the configuration: one line, exit 1: {r.stderr}"


NEEDS_DB = [("migrate",), ("migrate", "--status"), ("stats", "ab"), ("contacts", "list"), ("suppress", "list"),
            ("accounts", "list"), ("enroll", "--sequence", "s", "--where", "true"),
            ("next-send-time", "--timezone=UTC", "--window=09:00-17:00", "--days=mon", "--from=2026-03-02T10:00Z")]


@pytest.mark.parametrize("args", NEEDS_DB, ids=[" ".join(a) for a in NEEDS_DB])
def test_a_command_that_needs_the_database_says_it_cannot_connect(args):
    r = relance(*args, env=NO_DB, timeout=30)
    assert r.returncode == 1 and "cannot connect to the database" in r.stderr, \
        f"relance {' '.join(args)} needs the database: exit 1, says so: {r.stderr}"


def test_config_needs_no_database():
    r = relance("config", env=NO_DB)
    assert r.returncode == 0 and "cannot connect" not in r.stderr, f"config needs no database: {r.stdout + r.stderr}"


def test_preview_of_a_file_reads_no_database():
    example = os.path.join(SEQUENCES, sorted(f for f in os.listdir(SEQUENCES) if f.endswith(".yaml"))[0])
    r = relance("preview", example, "--step", "nope", env=NO_DB)
    assert r.returncode == 1 and "has no step 'nope'" in r.stderr and "cannot connect" not in r.stderr, \
        f"preview of a file reads no database: {r.stderr}"


def test_preview_of_an_applied_sequence_connects():
    r = relance("preview", "applied-name", "--step", "x", env=NO_DB, timeout=30)
    assert r.returncode == 1 and "cannot connect to the database" in r.stderr, \
        f"preview of an applied sequence connects: {r.stderr}"


HELP_AS_FLAG = [(), ("accounts",), ("accounts", "resume"), ("pause",), ("help",)]


@pytest.mark.parametrize("args", HELP_AS_FLAG, ids=[" ".join(a) or "-" for a in HELP_AS_FLAG])
def test_help_command_prints_what_help_flag_prints(broken, args):
    flag = relance(*args, "--help", env=broken)
    word = relance("help", *args, env=broken)
    assert flag.returncode == 0 and flag.stdout.startswith("usage: relance"), f"--help: {flag.stdout + flag.stderr}"
    assert (word.returncode, word.stdout, word.stderr) == (0, flag.stdout, ""), \
        f"relance help {' '.join(args)} is relance {' '.join(args)} --help: {word.stdout + word.stderr}"


def test_help_of_an_unknown_command_is_a_usage_error(broken):
    r = relance("help", "frob", env=broken)
    assert r.returncode == 2 and "unknown command 'frob'" in r.stderr, f"help frob: {r.stderr}"
    r = relance("help", "accounts", "frob", env=broken)
    assert r.returncode == 2 and "unknown subcommand 'frob'" in r.stderr, f"help accounts frob: {r.stderr}"


def test_readmes_command_table_lists_every_command_and_subcommand(helps, check):
    with open(os.path.join(harness.SOURCE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    rows = {}
    # a row may name several commands: `relance pause\|resume\|stop ...`
    for names, rest in re.findall(r"^\| `relance ([a-z-]+(?:\\\|[a-z-]+)*)(.*?) \| ", readme, re.M):
        for cmd in names.split("\\|"):
            rows[cmd] = rows.get(cmd, "") + rest
    for cmd, results in helps.items():
        check.ok(cmd in rows, f"README's command table has relance {cmd}", str(sorted(rows)))
        for argv, _ in results[1:]:
            check.ok(re.search(rf"\b{argv[1]}\b", rows.get(cmd, "")),
                     f"README's row for {cmd} names its subcommand {argv[1]}", rows.get(cmd, ""))
