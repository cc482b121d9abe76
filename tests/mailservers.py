"""Real mail servers on 127.0.0.1 for relance's integration tests.

MailServers starts a private Postfix (`postfix -c DIR start`) and a private
Dovecot (`dovecot -c FILE`) in a short temp dir, as ../shared/MAIL-SERVERS.md
describes, and tears both down when the test ends however it ends:

- Postfix, three SMTP listeners: `smtp_port` (MX-style: any recipient, no
  AUTH, STARTTLS offered), `submission_port` (STARTTLS and AUTH required),
  `smtps_port` (implicit TLS, AUTH required). AUTH is Dovecot's
  (smtpd_sasl_type = dovecot); every accepted message goes to Dovecot's
  LMTP, which stores it in a Maildir per address (catch-all: any address at
  any domain has a mailbox).
- Dovecot IMAP: `imap_port` (STARTTLS offered) and `imaps_port`, with
  special-use folders Sent (\\Sent) and Junk (\\Junk) created for every
  user. stop_imap()/start_imap() take Dovecot away and bring it back on the
  same ports; reset_uidvalidity() makes a mailbox's UIDVALIDITY change.
  imap_logins() and imap_bytes_out() read Dovecot's log.
- Users (for AUTH and IMAP login) come from a passwd-file: the `users`
  argument or add_user(); the file is re-read by Dovecot, so users may be
  added while the servers run.
- A private CA and a server certificate for 127.0.0.1 and localhost;
  clients trust `ca_file`.
- Failure simulation: `reject_domains` answers RCPT for a domain with the
  given reply (check_recipient_access), `bounce_domains` are accepted and
  then bounced with an RFC 3464 DSN to the envelope sender (error:
  transport). Failed logins are not penalised (no anvil auth penalty, no
  auth failure delay, no smtpd error sleep), so a wrong-password test does
  not slow the tests after it.
- OAuth2: with `oauth2_introspection_url`, Dovecot's IMAP logins (and so
  Postfix's AUTH) also accept XOAUTH2 and OAUTHBEARER, checking each bearer
  token against that RFC 7662 introspection endpoint (POST token=..., an
  `active: true` answer whose `username` is the login); passwords keep
  working for PLAIN and LOGIN. tests/oauth_server.py provides such an
  endpoint; imap_login_methods() tells how each IMAP login was made.
- Other IMAP servers' ways: `imap_capability` (a string) replaces what
  Dovecot advertises after login (leave out SPECIAL-USE and LIST-EXTENDED
  to look like Courier); `special_use=False` creates no Sent and Junk
  folders and flags none, and make_folder() creates a plain folder
  ("Sent Items") as a Maildir folder would be. With log_imap_commands,
  imap_commands() tells which commands (with their arguments) each IMAP
  session sent.

Only Python's standard library; must run as root (Postfix needs it)."""
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness

# The failures most tests want; pass them explicitly to MailServers.
STANDARD_REJECTS = {
    "bad.example": "550 5.1.1 User unknown",
    "slow.example": "450 4.2.1 Try later",
    "blocked.example": "554 5.7.1 Rejected for policy reasons",
}
STANDARD_BOUNCES = ["gone.example"]

HOSTNAME = "mx.relance-test.example"


def _backdate(path):
    # Postfix waits for a "hot" main.cf (less than a second old).
    old = time.time() - 10
    os.utime(path, (old, old))


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    _backdate(path)


def _run(argv, what):
    # Output goes through a file, not a pipe: a daemon that inherits the
    # pipe would keep it open and make us wait for its end.
    with tempfile.TemporaryFile(mode="w+") as out:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        text = out.read()
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(argv)}):\n{text}")
    return text


def _pid_alive(pid):
    """True while pid runs (a zombie waiting for init to reap it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill_group(pid, timeout=5):
    """SIGKILLs the process group led by pid and waits for the leader to go."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + timeout
    while time.time() < deadline and _pid_alive(pid):
        time.sleep(0.02)


def _listening(port):
    """True when something listens on 127.0.0.1:port. Reads /proc/net/tcp
    rather than connecting, so that probes never show up as connections in
    the servers' logs."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[1] == want and fields[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def _wait_listening(port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _listening(port):
            return True
        time.sleep(0.02)
    return False


class MailServers:
    def __init__(self, users=(), reject_domains=None, bounce_domains=(), start=True, oauth2_introspection_url=None,
                 imap_capability=None, special_use=True, log_imap_commands=False):
        if os.geteuid() != 0:
            raise RuntimeError("MailServers needs root (a private Postfix instance)")
        self.users = {}
        for email, password in users:
            self.add_user(email, password)
        self.reject_domains = dict(reject_domains or {})
        self.bounce_domains = list(bounce_domains)
        self.oauth2_introspection_url = oauth2_introspection_url
        self.imap_capability = imap_capability
        self.special_use = special_use
        self.log_imap_commands = log_imap_commands
        self.dir = harness.short_tempdir("rms")
        self.pf = os.path.join(self.dir, "pf")
        self.dv = os.path.join(self.dir, "dv")
        self.mail = os.path.join(self.dir, "mail")
        self.tls = os.path.join(self.dir, "tls")
        self.ca_file = os.path.join(self.tls, "ca.crt")
        self.maillog = os.path.join(self.pf, "maillog")
        self.dovecot_log = os.path.join(self.dv, "log")
        self.smtp_port = harness.free_port()
        self.submission_port = harness.free_port()
        self.smtps_port = harness.free_port()
        self.imap_port = harness.free_port()
        self.imaps_port = harness.free_port()
        self._postfix_pid = None
        self._dovecot_pid = None
        self._started = False
        mail_pw = pwd.getpwnam("mail")
        self._mail_uid, self._mail_gid = mail_pw.pw_uid, mail_pw.pw_gid
        harness.at_exit(self.stop)
        if start:
            self.start()

    # ---- users and mailboxes

    def add_user(self, email, password):
        """A login for AUTH and IMAP. Any address receives mail without one."""
        if ":" in email or ":" in password or "\n" in email + password:
            raise ValueError("':' and newlines cannot appear in a passwd-file entry")
        self.users[email.lower()] = password
        if getattr(self, "_started", False):
            self._write_passwd()

    def maildir(self, email):
        local, _, domain = email.lower().rpartition("@")
        return os.path.join(self.mail, domain, local, "Maildir")

    def messages(self, email):
        """Raw bytes of every message in the INBOX (new/ and cur/), oldest first."""
        md = self.maildir(email)
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    files.append((os.stat(p).st_mtime, n, p))
                except FileNotFoundError:
                    pass  # moved new/ -> cur/ by IMAP meanwhile
        out = []
        for _, _, p in sorted(files):
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
        return out

    def folder_files(self, email, folder="INBOX"):
        """Paths of the message files of a folder (new/ and cur/)."""
        md = self.maildir(email)
        if folder != "INBOX":
            md = os.path.join(md, "." + folder.replace("/", "."))
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
            except FileNotFoundError:
                pass
        return out

    def flags(self, path):
        """The Maildir flags of a message file ("" for none; "S" is \\Seen)."""
        base = os.path.basename(path)
        return base.split(":2,", 1)[1] if ":2," in base else ""

    def find_file(self, email, needle, folder="INBOX"):
        """The current path of the message whose bytes contain needle (it
        moves from new/ to cur/ when a client selects the folder)."""
        if isinstance(needle, str):
            needle = needle.encode()
        for p in self.folder_files(email, folder):
            try:
                with open(p, "rb") as f:
                    if needle in f.read():
                        return p
            except FileNotFoundError:
                pass
        return None

    def wait_for(self, email, n, timeout=10):
        """Waits until email's INBOX holds at least n messages; returns them."""
        deadline = time.time() + timeout
        while True:
            msgs = self.messages(email)
            if len(msgs) >= n or time.time() >= deadline:
                return msgs
            time.sleep(0.05)

    def deliver(self, email, raw):
        """Puts raw (bytes) into email's INBOX as if it had been received."""
        if isinstance(raw, str):
            raw = raw.encode()
        md = self.maildir(email)
        self._make_maildir(md)
        name = f"{time.time():.6f}.relance{os.getpid()}_{os.urandom(4).hex()}.{HOSTNAME}"
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.chown(tmp, self._mail_uid, self._mail_gid)
        os.rename(tmp, os.path.join(md, "new", name))
        return os.path.join(md, "new", name)

    def make_folder(self, email, folder):
        """Creates folder (a name without special-use, "Sent Items") in
        email's mailbox, as Maildir++ stores it (".Sent Items")."""
        self._make_maildir(os.path.join(self.maildir(email), "." + folder.replace("/", ".")))

    def _make_maildir(self, md):
        # Every directory from the mail root down belongs to the mail user,
        # as if Dovecot had made it.
        rel = os.path.relpath(md, self.mail)
        path = self.mail
        for part in rel.split(os.sep) + [None]:
            if part is not None:
                path = os.path.join(path, part)
                targets = [path]
            else:
                targets = [os.path.join(md, s) for s in ("tmp", "new", "cur")]
            for t in targets:
                if not os.path.isdir(t):
                    os.mkdir(t, 0o700)
                    os.chown(t, self._mail_uid, self._mail_gid)

    # ---- logs

    def imap_logins(self, email=None):
        """IMAP logins seen in Dovecot's log (of one user when email)."""
        users = re.findall(r"imap-login: (?:Info: )?Login: user=<([^>]*)>", self.dovecot_log_text())
        return len([u for u in users if email is None or u.lower() == email.lower()])

    def imap_login_methods(self, email):
        """The SASL mechanism of each of email's IMAP logins in Dovecot's
        log, oldest first ("PLAIN", "XOAUTH2", ...)."""
        found = re.findall(r"imap-login: (?:Info: )?Login: user=<([^>]*)>, method=([A-Z0-9-]+)",
                           self.dovecot_log_text())
        return [m for u, m in found if u.lower() == email.lower()]

    def imap_bytes_out(self, email=None):
        """Bytes Dovecot sent over the IMAP sessions that have ended."""
        total = 0
        for user, out in re.findall(r"imap\(([^)]*)\).*?Disconnected.*?\bout=(\d+)", self.dovecot_log_text()):
            if email is None or user.lower() == email.lower():
                total += int(out)
        return total

    def imap_commands(self, email=None):
        """The IMAP commands (name and arguments, as the client sent them) of
        email's sessions, oldest first; needs log_imap_commands=True."""
        found = re.findall(r"imap\(([^)]*)\)\S*: Debug: Command finished: ([^\n]*)", self.dovecot_log_text())
        return [c.rstrip() for u, c in found if email is None or u.lower() == email.lower()]

    def smtp_log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def count_connections(self):
        """smtpd connections from 127.0.0.1 seen so far, on all listeners."""
        return len(re.findall(r"/smtpd\[\d+\]: connect from [^\s\[]*\[127\.0\.0\.1\]", self.smtp_log()))

    def wait_log(self, pattern, timeout=5):
        """Waits until the Postfix log matches the regex; returns the match or None."""
        deadline = time.time() + timeout
        while True:
            m = re.search(pattern, self.smtp_log())
            if m or time.time() >= deadline:
                return m
            time.sleep(0.05)

    def dovecot_log_text(self):
        try:
            with open(self.dovecot_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ---- configuration

    def _write_passwd(self):
        path = os.path.join(self.dv, "passwd")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            for email, password in sorted(self.users.items()):
                f.write(f"{email}:{{PLAIN}}{password}::::::\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)

    def _make_certs(self):
        os.makedirs(self.tls, exist_ok=True)
        t = self.tls
        ca_key, ca_crt = os.path.join(t, "ca.key"), self.ca_file
        key, csr, crt = os.path.join(t, "server.key"), os.path.join(t, "server.csr"), os.path.join(t, "server.crt")
        ext = os.path.join(t, "ext.cnf")
        with open(ext, "w") as f:
            f.write("basicConstraints = CA:FALSE\n"
                    "keyUsage = digitalSignature, keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
              "-days", "30", "-subj", "/CN=relance test CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "making the test CA")
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
              "-subj", "/CN=localhost"], "making the server key")
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
              "-out", crt, "-days", "30", "-extfile", ext], "signing the server certificate")
        for p in (ca_key, key):
            os.chmod(p, 0o600)
        os.chmod(ca_crt, 0o644)
        os.chmod(crt, 0o644)

    def _dovecot_oauth2(self):
        """The oauth2 passdb's settings (dovecot-oauth2.conf.ext)."""
        return f"""# generated by tests/mailservers.py
introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""

    def _dovecot_conf(self):
        dv, tls = self.dv, self.tls
        mechanisms, passdb_mechs, oauth2_passdb = "plain login", "", ""
        if self.oauth2_introspection_url:
            mechanisms = "plain login xoauth2 oauthbearer"
            passdb_mechs = "  mechanisms = plain login\n"
            oauth2_passdb = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                             f"  args = {dv}/dovecot-oauth2.conf.ext\n}}\n")
        folders = ""
        if self.special_use:
            folders = ("  mailbox Sent {\n    special_use = \\Sent\n    auto = subscribe\n  }\n"
                       "  mailbox Junk {\n    special_use = \\Junk\n    auto = subscribe\n  }\n")
        capability = f"imap_capability = {self.imap_capability}\n" if self.imap_capability is not None else ""
        if self.log_imap_commands:
            capability += "log_debug = event=imap_command_finished\n"
        return f"""# generated by tests/mailservers.py
base_dir = {dv}/run
state_dir = {dv}/state
instance_name = relance-{os.path.basename(self.dir)}
log_path = {self.dovecot_log}
info_log_path = {self.dovecot_log}
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{tls}/server.crt
ssl_key = <{tls}/server.key
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_username_format = %Lu
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
{folders}}}
{capability}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dv}/passwd
{passdb_mechs}}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={self.mail}/%d/%n allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@relance-test.example
}}
"""

    def _postfix_main(self):
        pf, dv, tls = self.pf, self.dv, self.tls
        return f"""# generated by tests/mailservers.py
compatibility_level = 3.6
queue_directory = {self.dir}/q
data_directory = {self.dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.maillog}
maillog_file_prefixes = /tmp
myhostname = {HOSTNAME}
mydomain = relance-test.example
myorigin = relance-test.example
mydestination =
relay_domains =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtputf8_enable = no
biff = no
default_transport = lmtp:unix:{dv}/run/lmtp
relay_transport = lmtp:unix:{dv}/run/lmtp
transport_maps = texthash:{pf}/transport
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access texthash:{pf}/rcpt_access, permit
submission_relay_restrictions = permit_sasl_authenticated, reject
submission_client_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dv}/run/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_tls_cert_file = {tls}/server.crt
smtpd_tls_key_file = {tls}/server.key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_auth_rate_limit = 0
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_host_lookup = native
delay_warning_time = 0
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
notify_classes =
"""

    def _postfix_master(self):
        return f"""# generated by tests/mailservers.py
127.0.0.1:{self.smtp_port} inet n - n - - smtpd
127.0.0.1:{self.submission_port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=$submission_client_restrictions
  -o smtpd_relay_restrictions=$submission_relay_restrictions
127.0.0.1:{self.smtps_port} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=$submission_client_restrictions
  -o smtpd_relay_restrictions=$submission_relay_restrictions
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

    def _write_postfix_maps(self):
        lines = [f"{d} {reply}\n" for d, reply in sorted(self.reject_domains.items())]
        _write(os.path.join(self.pf, "rcpt_access"), "".join(lines))
        lines = [f"{d} error:5.1.1 mailbox unavailable (simulated bounce)\n" for d in self.bounce_domains]
        _write(os.path.join(self.pf, "transport"), "".join(lines))

    def _configure(self):
        for d in (self.pf, self.dv, os.path.join(self.dv, "run"), os.path.join(self.dv, "state")):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        # Postfix makes its queue's subdirectories; the two tops are ours,
        # outside the config dir (postfix-script wants all in it root's).
        pf_pw = pwd.getpwnam("postfix")
        for d, owner in ((os.path.join(self.dir, "q"), (0, 0)),
                         (os.path.join(self.dir, "data"), (pf_pw.pw_uid, pf_pw.pw_gid))):
            os.makedirs(d, exist_ok=True)
            os.chown(d, *owner)
            os.chmod(d, 0o755)
        os.makedirs(self.mail, exist_ok=True)
        os.chown(self.mail, self._mail_uid, self._mail_gid)
        os.chmod(self.mail, 0o755)
        self._make_certs()
        self._write_passwd()
        _write(os.path.join(self.dv, "dovecot.conf"), self._dovecot_conf())
        if self.oauth2_introspection_url:
            _write(os.path.join(self.dv, "dovecot-oauth2.conf.ext"), self._dovecot_oauth2())
        _write(os.path.join(self.pf, "main.cf"), self._postfix_main())
        _write(os.path.join(self.pf, "master.cf"), self._postfix_master())
        self._write_postfix_maps()

    # ---- start and stop

    def start(self):
        if self._started:
            return self
        self._configure()
        self._started = True
        self._start_dovecot()
        self.start_smtp()
        for port in (self.imap_port, self.imaps_port):
            if not _wait_listening(port, 10):
                raise RuntimeError(f"Dovecot is not listening on {port}:\n{self.dovecot_log_text()}")
        return self

    def _start_dovecot(self):
        conf = os.path.join(self.dv, "dovecot.conf")
        pidfile = os.path.join(self.dv, "run", "master.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)  # stale: it would block the start
        _run(["dovecot", "-c", conf], "starting Dovecot")
        deadline = time.time() + 10
        while time.time() < deadline:
            pid = _read_pid(pidfile)
            if pid and os.path.exists(os.path.join(self.dv, "run", "auth-postfix")) and \
                    os.path.exists(os.path.join(self.dv, "run", "lmtp")):
                self._dovecot_pid = pid
                return
            time.sleep(0.02)
        raise RuntimeError(f"Dovecot did not start:\n{self.dovecot_log_text()}")

    def start_smtp(self):
        """Starts (or restarts after stop_smtp) the Postfix instance."""
        pidfile = os.path.join(self.dir, "q", "pid", "master.pid")
        # Before postlogd runs, Postfix programs write maillog_file
        # themselves, and postsuper does so as mail_owner: after a kill
        # that left a half-written queue file, its warning about it could
        # not open the root-owned log and the restart failed ("open
        # logfile: Permission denied", one test_crash run in several).
        pf_pw = pwd.getpwnam("postfix")
        if not os.path.exists(self.maillog):
            open(self.maillog, "a").close()
        os.chown(self.maillog, pf_pw.pw_uid, pf_pw.pw_gid)
        os.chmod(self.maillog, 0o600)
        try:
            _run(["postfix", "-c", self.pf, "start"], "postfix start")
        except RuntimeError as e:
            chk = subprocess.run(["postfix", "-c", self.pf, "check"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            raise RuntimeError(f"{e}\npostfix check:\n{chk.stdout}\nlog:\n{self.smtp_log()[-3000:]}")
        deadline = time.time() + 10
        while time.time() < deadline:
            pid = _read_pid(pidfile)
            if pid and _pid_alive(pid):
                self._postfix_pid = pid
                break
            time.sleep(0.02)
        for port in (self.smtp_port, self.submission_port, self.smtps_port):
            if not _wait_listening(port, 10):
                raise RuntimeError(f"Postfix is not listening on {port}:\n{self.smtp_log()[-3000:]}")

    def stop_smtp(self):
        """Kills Postfix at once (connections drop, listeners close)."""
        pid = self._postfix_pid or _read_pid(os.path.join(self.dir, "q", "pid", "master.pid"))
        _kill_group(pid)
        self._postfix_pid = None

    def stop_imap(self):
        """Kills Dovecot at once: IMAP connections drop, the ports close
        (delivery and SMTP AUTH stop too until start_imap)."""
        _kill_group(self._dovecot_pid or _read_pid(os.path.join(self.dv, "run", "master.pid")))
        self._dovecot_pid = None

    def start_imap(self):
        """Starts Dovecot again on the same ports."""
        self._start_dovecot()
        for port in (self.imap_port, self.imaps_port):
            if not _wait_listening(port, 10):
                raise RuntimeError(f"Dovecot is not listening on {port}:\n{self.dovecot_log_text()}")

    def reset_uidvalidity(self, email):
        """Makes email's INBOX get a new UIDVALIDITY (and renumbered UIDs), as
        a restored or rebuilt mailbox does: Dovecot stops, its UID list and
        indexes go, Dovecot starts again."""
        self.stop_imap()
        md = self.maildir(email)
        for n in os.listdir(md):
            if n == "dovecot-uidlist" or n.startswith("dovecot.index"):
                os.unlink(os.path.join(md, n))
        time.sleep(1.1)  # UIDVALIDITY is a time in seconds: make it differ
        self.start_imap()

    def stop(self):
        if not self._started:
            return
        self.stop_smtp()
        _kill_group(self._dovecot_pid or _read_pid(os.path.join(self.dv, "run", "master.pid")))
        self._dovecot_pid = None
        self._started = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

