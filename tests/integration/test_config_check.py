"""`relance config` runs the checks `relance serve` makes at start and
lists every problem at once: unset password_env, unreadable password_file,
unset oauth2 variables, URLs of the wrong scheme (smtp: http:// would defer
every message forever), DKIM key files that do not load. One line each,
naming the account or domain and the setting, never a secret's value;
exit 1. serve refuses the same configuration, except a secret it cannot
read, which pauses that account (test_account_secret.py). No servers are needed: the
checks run before anything connects."""
import os
import subprocess

import harness

SECRET = "s3cret-never-shown"


def write(tmp, text):
    path = os.path.join(tmp, "relance.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def account(email, **settings):
    lines = [f"      - email: {email}"]
    settings.setdefault("smtp", "smtps://mail.example:465")
    lines += [f"        {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def dkim_key(tmp):
    path = os.path.join(tmp, "dkim.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def problems(r):
    return [line for line in r.stderr.splitlines() if line.startswith("relance: config error: ")]


def test_every_problem_at_once(tmp):
    cfg = write(tmp, "http: {listen: 127.0.0.1:1}\npools:\n  p:\n    accounts:\n"
                + account("unset@a.example", password_env="RT_UNSET_PW")
                + account("http@a.example", smtp="http://mail.example", password_env="RT_PW")
                + account("imaphttp@a.example", imap="http://mail.example", password_env="RT_PW")
                + account("file@a.example", password_file=os.path.join(tmp, "nope"))
                + account("oauth@a.example", auth="xoauth2",
                          oauth2="{token_url: https://t.example/token, client_id: c, refresh_token_env: RT_UNSET_RT}")
                + account("both@a.example", imap="imaps://mail.example", password_env="RT_UNSET_BOTH")
                + account("fine@a.example", imap="imaps://mail.example", password_env="RT_PW")
                + "dkim:\n  a.example: {selector: s1, key_file: " + os.path.join(tmp, "missing.pem") + "}\n"
                + f"  b.example: {{selector: s1, key_file: {dkim_key(tmp)}}}\n")
    r = harness.relance("--config", cfg, "config", env={"RT_PW": SECRET}, timeout=10)
    assert r.returncode == 1, r.stderr
    found = problems(r)
    want = [
        ("unset@a.example", "RT_UNSET_PW (password_env) is not set"),
        ("http@a.example", "smtp must be an smtp:// (STARTTLS) or smtps:// URL"),
        ("imaphttp@a.example", "imap must be an imap:// (STARTTLS) or imaps:// URL"),
        ("file@a.example", "cannot read password_file"),
        ("oauth@a.example", "RT_UNSET_RT (oauth2.refresh_token_env) is not set"),
        ("both@a.example", "RT_UNSET_BOTH (password_env) is not set"),
        ("a.example", "missing.pem"),
    ]
    for who, what in want:
        assert any(who in line and what in line for line in found), (who, what, r.stderr)
    # one line each: the password both logins lack is named once
    assert len(found) == len(want), r.stderr
    assert not any("fine@" in line or "b.example" in line for line in found), r.stderr
    assert "7 problems" in r.stderr
    assert SECRET not in r.stdout + r.stderr
    # the settings are still shown
    assert "fine@a.example" in r.stdout


def test_a_good_configuration_passes(tmp):
    cfg = write(tmp, "pools:\n  p:\n    accounts:\n"
                + account("fine@a.example", imap="imaps://mail.example", password_env="RT_PW")
                + account("relay@a.example", smtp="smtp://relay.example:25", auth="none", imap_auth="password",
                          password_file=os.path.join(tmp, "pw"))
                + f"dkim:\n  a.example: {{selector: s1, key_file: {dkim_key(tmp)}}}\n")
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(SECRET + "\n")
    r = harness.relance("--config", cfg, "config", env={"RT_PW": SECRET}, timeout=10)
    assert r.returncode == 0, r.stderr
    assert problems(r) == []
    assert SECRET not in r.stdout + r.stderr


def test_serve_refuses_an_http_smtp_url(tmp):
    cfg = write(tmp, f"http: {{listen: 127.0.0.1:{harness.free_port()}}}\nstate_dir: {tmp}/state\n"
                "database_url: postgresql://nobody@127.0.0.1:1/none\npools:\n  p:\n    accounts:\n"
                + account("http@a.example", smtp="http://mail.example", password_env="RT_PW"))
    r = harness.relance("--config", cfg, "serve", env={"RT_PW": SECRET}, timeout=10)
    assert r.returncode == 1, r.stderr
    assert "http@a.example: smtp must be an smtp:// (STARTTLS) or smtps:// URL" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_a_fractional_duration_says_so(tmp):
    cfg = write(tmp, "pools:\n  p:\n    accounts:\n" + account("a@a.example", watch_interval="0.5s"))
    r = harness.relance("--config", cfg, "config", timeout=10)
    assert r.returncode == 1
    assert "'watch_interval': fractions are not supported in duration '0.5s'" in r.stderr, r.stderr
    assert "missing unit" not in r.stderr
