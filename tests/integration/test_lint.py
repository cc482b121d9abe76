"""`relance lint`: the sequence-file checker, end to end.

Runs the binary (harness.RELANCE) from the repository root
(harness.SOURCE) so that paths in messages are the relative paths
passed in, and checks:
  - every tests/sequences/bad/X.yaml prints exactly X.expected and exits 1;
  - every tests/sequences/warn/X.yaml prints exactly X.expected and exits 0;
  - `relance lint sequences/` passes silently;
  - hostile YAML (alias bomb, deep nesting, huge scalars, invalid UTF-8,
    tabs, NUL bytes) is a clean error, quickly, without a sanitizer report;
  - the command line: --help, no path, a missing path, an empty folder,
    duplicate names across files, the sender_pool warning with a config.
Needs no database. The hostile files and the command line are unittest
cases, which pytest runs as they are.
"""
import os
import subprocess
import tempfile
import time
import unittest

import pytest

import harness

BIN = harness.RELANCE
SRC = harness.SOURCE


def lint(*args, cwd=None, env_extra=None, timeout=60):
    env = harness.relance_env()
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if env_extra:
        env.update(env_extra)
    start = time.monotonic()
    p = subprocess.run([BIN] + list(args), cwd=cwd or SRC, env=env, capture_output=True, timeout=timeout)
    p.elapsed = time.monotonic() - start
    return p


def no_sanitizer_report(test, p):
    err = p.stderr.decode("utf-8", "replace")
    test.assertNotIn("AddressSanitizer", err)
    test.assertNotIn("LeakSanitizer", err)
    test.assertNotIn("runtime error", err)


def quiet_sanitizers(p):
    err = p.stderr.decode("utf-8", "replace")
    assert "AddressSanitizer" not in err and "LeakSanitizer" not in err and "runtime error" not in err, err


def corpus(kind):
    d = os.path.join(SRC, "tests", "sequences", kind)
    return sorted(f for f in os.listdir(d) if f.endswith(".yaml"))


def test_there_are_enough_bad_files():
    assert len(corpus("bad")) >= 25, "at least 25 files in tests/sequences/bad"
    assert corpus("warn"), "files in tests/sequences/warn"


@pytest.mark.parametrize("kind, name", [("bad", n) for n in corpus("bad")] + [("warn", n) for n in corpus("warn")])
def test_a_corpus_file_prints_exactly_its_expected_messages(kind, name):
    """A bad file exits 1, a warning file 0; either prints its .expected."""
    rel = "tests/sequences/%s/%s" % (kind, name)
    with open(os.path.join(SRC, rel[:-5] + ".expected"), encoding="utf-8") as f:
        expected = f.read()
    p = lint("lint", rel)
    quiet_sanitizers(p)
    assert p.stdout.decode("utf-8") == expected
    assert p.stderr.decode("utf-8") == ""
    assert p.returncode == (1 if kind == "bad" else 0)
    lines = expected.splitlines()
    assert lines, "an expected file must not be empty"
    for line in lines:
        assert line.startswith(rel + ":"), line
        assert (": warning: " in line) == (kind == "warn"), line


def test_the_examples_pass():
    p = lint("lint", "sequences/")
    quiet_sanitizers(p)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    examples = [f for f in os.listdir(os.path.join(SRC, "sequences")) if f.endswith((".yaml", ".yml"))]
    assert len(examples) >= 3


def test_all_bad_files_at_once():
    # A folder: files in name order, each file's messages together.
    p = lint("lint", "tests/sequences/bad")
    assert p.returncode == 1
    expected = ""
    for name in corpus("bad"):
        with open(os.path.join(SRC, "tests/sequences/bad", name[:-5] + ".expected"), encoding="utf-8") as f:
            expected += f.read()
    assert p.stdout.decode("utf-8") == expected


GOOD = """name: {name}
sender_pool: {pool}
schedule:
  timezone: Europe/Paris
  window: "09:00-17:00"
steps:
  - id: intro
    subject: Hello {{{{company}}}}
    body: Hi {{{{first_name | there}}}}.
"""


class Hostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def refused(self, name, data, fragment):
        path = self.write(name, data)
        p = lint("lint", path, timeout=30)
        no_sanitizer_report(self, p)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, out)
        self.assertTrue(out.startswith(path + ":"), out)
        self.assertEqual(len(out.splitlines()), 1, out)
        self.assertIn(fragment, out)
        self.assertLess(p.elapsed, 10)
        return p

    def test_billion_laughs(self):
        lines = ['a0: &a0 "lol"']
        for i in range(1, 10):
            prev = "*a%d" % (i - 1)
            lines.append("a%d: &a%d [%s]" % (i, i, ", ".join([prev] * 10)))
        p = self.refused("laughs.yaml", "\n".join(lines) + "\n", "anchors")
        self.assertLess(p.elapsed, 5)

    def test_alias_only(self):
        self.refused("alias.yaml", "name: *x\n", "")

    def test_deep_nesting(self):
        self.refused("deep.yaml", "name: " + "[" * 5000 + "]" * 5000 + "\n", "nesting too deep")
        self.refused("deep-map.yaml", "".join("  " * i + "k%d:\n" % i for i in range(200)), "nesting too deep")

    def test_huge_file(self):
        self.refused("huge.yaml", "name: x\ndescription: " + "a" * (3 << 20) + "\n", "file too large")

    def test_huge_scalar_under_the_file_limit(self):
        body = "x" * 200000
        self.refused("big-body.yaml", GOOD.format(name="big", pool="founders").replace(
            "Hi {{first_name | there}}.", body), "too long")

    def test_many_nodes(self):
        self.refused("wide.yaml", "name: [" + "1," * 300000 + "1]\n", "")

    def test_invalid_utf8(self):
        self.refused("utf8.yaml", GOOD.format(name="u", pool="founders").encode().replace(b"Hello", b"H\xff\xfello"),
                     "invalid UTF-8 (byte 0xFF)")

    def test_tab_indentation(self):
        self.refused("tab.yaml", GOOD.format(name="t", pool="founders").replace("  window", "\twindow"), "tab")

    def test_nul_bytes(self):
        self.refused("nul.yaml", b"name: a\x00b\n", "")

    def test_binary_garbage(self):
        self.refused("garbage.yaml", bytes(range(256)) * 4, "")


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_help(self):
        p = lint("lint", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"usage: relance lint PATH", p.stdout)

    def test_no_path_is_usage(self):
        p = lint("lint")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"usage:", p.stderr)

    def test_unknown_option_is_usage(self):
        p = lint("lint", "--frobnicate", "sequences/")
        self.assertEqual(p.returncode, 2)

    def test_missing_path(self):
        p = lint("lint", "does/not/exist.yaml")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"does/not/exist.yaml", p.stderr)
        self.assertIn(b"No such file", p.stderr)

    def test_missing_path_does_not_stop_the_others(self):
        bad = "tests/sequences/bad/missing-name.yaml"
        p = lint("lint", "nope.yaml", bad)
        self.assertEqual(p.returncode, 1)
        self.assertIn(bad.encode() + b":1:1:", p.stdout)

    def test_empty_folder(self):
        p = lint("lint", self.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no .yaml or .yml files", p.stderr)

    def test_folder_takes_yaml_and_yml_sorted_not_hidden(self):
        self.write("b.yml", GOOD.format(name="b", pool="founders").replace("Europe/Paris", "Nowhere/City"))
        self.write("a.yaml", GOOD.format(name="a", pool="founders").replace("Europe/Paris", "Nowhere/Town"))
        self.write(".hidden.yaml", "garbage: [")
        self.write("notes.txt", "garbage: [")
        p = lint("lint", self.dir)
        lines = p.stdout.decode().splitlines()
        self.assertEqual(p.returncode, 1)
        self.assertEqual([l.split(":")[0] for l in lines],
                         [os.path.join(self.dir, "a.yaml"), os.path.join(self.dir, "b.yml")])

    def test_duplicate_name_across_files(self):
        a = self.write("a.yaml", GOOD.format(name="same", pool="founders"))
        b = self.write("b.yaml", "# the second file\n" + GOOD.format(name="same", pool="founders"))
        p = lint("lint", a, b)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout.decode(),
                         "%s:2:7: duplicate sequence name 'same' (first in %s:1:7)\n" % (b, a))

    def test_sender_pool_warning_needs_a_config(self):
        seq = self.write("s.yaml", GOOD.format(name="pooled", pool="founder"))
        p = lint("lint", seq)
        self.assertEqual((p.returncode, p.stdout), (0, b""))
        cfg = self.write("relance.yaml", "pools:\n  founders:\n    accounts:\n"
                         "      - email: alice@acme.example\n        smtp: smtp://smtp.acme.example:587\n"
                         "        password_env: ALICE_MAIL_PASSWORD\n")
        expected = ("%s:2:14: warning: sender_pool 'founder' is not a pool in the configuration "
                    "(did you mean 'founders'?)\n" % seq)
        p = lint("--config", cfg, "lint", seq)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, expected))
        p = lint("lint", seq, env_extra={"RELANCE_CONFIG": cfg})
        self.assertEqual((p.returncode, p.stdout.decode()), (0, expected))
        good = self.write("g.yaml", GOOD.format(name="pooled2", pool="founders"))
        p = lint("--config", cfg, "lint", good)
        self.assertEqual((p.returncode, p.stdout), (0, b""))

    def test_zone_names_cannot_escape_the_tz_database(self):
        for zone in ["/etc/passwd", "../../../../etc/passwd", "Europe/../../../etc/passwd", "zone1970.tab",
                     "tzdata.zi", "Europe"]:
            with self.subTest(zone=zone):
                path = self.write("z.yaml", GOOD.format(name="z", pool="founders").replace(
                    "Europe/Paris", '"%s"' % zone))
                p = lint("lint", path)
                self.assertEqual(p.returncode, 1)
                self.assertIn(b"unknown time zone", p.stdout)

    def test_zone_names_that_exist(self):
        for zone in ["UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "Asia/Kolkata"]:
            with self.subTest(zone=zone):
                path = self.write("z.yaml", GOOD.format(name="z", pool="founders").replace("Europe/Paris", zone))
                p = lint("lint", path)
                self.assertEqual((p.returncode, p.stdout), (0, b""))

