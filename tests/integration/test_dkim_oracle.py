"""DKIM oracle: signatures made by `relance dkim-sign` checked by a verifier
relance did not write (Debian's python3-dkim), with the public key given
locally instead of from DNS (../shared/MAIL-SERVERS.md, "The DKIM oracle").

Keys come from `openssl genpkey` (RSA-2048 and Ed25519). Messages: ASCII,
non-ASCII (RFC 2047 headers, quoted-printable and 8-bit bodies), with and
without an HTML alternative, with threading headers. A tampered body or
Subject, an added From and the wrong key must each fail verification, and
`--print-dns` must publish the same key that openssl derives.

Environment: RELANCE_BIN (the binary under test)."""
import base64
import os
import subprocess
import sys
import tempfile

try:
    import dkim
except ImportError:
    print("python3-dkim is missing: apt-get install python3-dkim python3-nacl", file=sys.stderr)
    sys.exit(1)  # a missing oracle is a failure, not a skip

RELANCE = os.path.abspath(os.environ.get("RELANCE_BIN", "build/relance"))
DOMAIN = "acme.example"
SELECTOR = "s2024"

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(args, stdin=None):
    return subprocess.run([RELANCE] + args, input=stdin, capture_output=True, timeout=60)


def genkey(tmp, kind):
    path = os.path.join(tmp, f"{kind}.pem")
    if kind == "rsa":
        cmd = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path]
    else:
        cmd = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", path]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def txt_record(path, kind):
    """The DKIM TXT record for the key at path, derived with openssl only."""
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    if kind == "rsa":
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    # RFC 8463: the raw 32-byte key, which ends the 44-byte SubjectPublicKeyInfo
    assert len(der) == 44
    return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])


def dnsfunc_for(record, selector=SELECTOR, domain=DOMAIN):
    want = f"{selector}._domainkey.{domain}".encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        return record if name.rstrip(b".") == want else None
    return dnsfunc


def verifies(message, dnsfunc):
    """dkim.verify, with a verifier exception (e.g. a key of the wrong
    type) counted as a failed verification."""
    try:
        return dkim.verify(message, dnsfunc=dnsfunc)
    except Exception as e:  # python3-dkim raises for some mismatches
        print(f"     (verifier: {type(e).__name__}: {e})")
        return False


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


MESSAGES = {
    "ascii": crlf("""From: Alice Martin <alice@acme.example>
To: bob@corp.example
Subject: Quick question about your follow-ups
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <k3j4h5g6f7d8s9a0@acme.example>
List-Unsubscribe: <mailto:alice@acme.example?subject=unsubscribe>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hi Bob,

Short one: how do you handle follow-ups today?
.a line starting with a dot
trailing spaces   \t

Alice


"""),
    "non-ascii": crlf("""From: =?UTF-8?Q?Am=C3=A9lie_Dupr=C3=A9?= <amelie@acme.example>
To: =?UTF-8?Q?Zo=C3=AB?= <zoe@corp.example>
Subject: =?UTF-8?Q?Re=3A_Caf=C3=A9_et_croissants_=E2=80=94_une_tr=C3=A8s_l?=
 =?UTF-8?Q?ongue_ligne_d=27objet_qui_doit_=C3=AAtre_pli=C3=A9e_proprement_?=
 =?UTF-8?B?8J+agCDml6XmnKzoqp4=?=
Date: Wed, 15 Nov 2023 09:30:00 +0100
Message-ID: <m2@acme.example>
In-Reply-To: <m1@acme.example>
References: <m0@acme.example> <m1@acme.example>
List-Unsubscribe: <mailto:amelie@acme.example?subject=unsubscribe>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Bonjour Zo=C3=AB,

Je voulais revenir vers vous =C3=A0 propos de notre =C3=A9change. Cette lig=
ne est assez longue pour n=C3=A9cessiter un retour =C3=A0 la ligne doux.
trailing space=20
"""),
    "8bit-body": crlf("""From: Alice <alice@acme.example>
To: bob@corp.example
Subject: 8bit
Date: Wed, 15 Nov 2023 09:30:00 +0100
Message-ID: <m3@acme.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Ça marche très bien, 日本語 and emoji 🚀 in the   body\t\twith  tabs.
"""),
    "html-threaded": crlf("""From: Alice Martin <alice@acme.example>
To: Bob <bob@corp.example>
Subject: Re: Quick question about your follow-ups
Date: Fri, 17 Nov 2023 10:00:00 +0000
Message-ID: <m4@acme.example>
In-Reply-To: <k3j4h5g6f7d8s9a0@acme.example>
References: <k3j4h5g6f7d8s9a0@acme.example>
List-Unsubscribe: <mailto:alice@acme.example?subject=unsubscribe>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_relance_0123456789abcdef01234567"

--=_relance_0123456789abcdef01234567
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Just bumping this, Bob. =C3=80 bient=C3=B4t.
--=_relance_0123456789abcdef01234567
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Just bumping this, Bob. =C3=80 bient=C3=B4t.</p>
--=_relance_0123456789abcdef01234567--
"""),
    "empty-body": crlf("""From: alice@acme.example
To: bob@corp.example
Subject: empty
Date: Fri, 17 Nov 2023 10:00:00 +0000
Message-ID: <m5@acme.example>

"""),
}


def sign(key, message, extra=()):
    r = run(["dkim-sign", "--key", key, "--domain", DOMAIN, "--selector", SELECTOR, *extra], stdin=message)
    if r.returncode != 0:
        raise AssertionError(f"dkim-sign failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r.stdout


def tamper_subject(signed):
    i = signed.index(b"\r\nSubject:") + len(b"\r\nSubject:")
    return signed[:i] + b" X" + signed[i:]


def tamper_body(signed):
    i = signed.index(b"\r\n\r\n") + 4
    if i >= len(signed):
        return signed + b"extra\r\n"
    return signed[:i] + bytes([signed[i] ^ 1]) + signed[i + 1:]


def main():
    if not os.access(RELANCE, os.X_OK):
        print(f"RELANCE_BIN={RELANCE} is not an executable", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        keys = {kind: genkey(tmp, kind) for kind in ("rsa", "ed25519")}
        records = {kind: txt_record(path, kind) for kind, path in keys.items()}
        for kind, key in keys.items():
            dns = dnsfunc_for(records[kind])
            other = dnsfunc_for(records["ed25519" if kind == "rsa" else "rsa"])
            for name, message in MESSAGES.items():
                signed = sign(key, message)
                label = f"{kind} {name}"
                check(signed.startswith(b"DKIM-Signature: v=1; a=" +
                                        (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256")),
                      f"{label}: signature header first")
                check(signed.endswith(message), f"{label}: message unchanged after the signature")
                check(verifies(signed, dns), f"{label}: verifies")
                check(not verifies(tamper_body(signed), dns), f"{label}: tampered body fails")
                check(not verifies(tamper_subject(signed), dns), f"{label}: tampered Subject fails")
                check(not verifies(b"From: mallory@evil.example\r\n" + signed, dns),
                      f"{label}: an added From fails")
                check(not verifies(signed, other), f"{label}: the other key fails")
                # what a receiving MTA does: prepend trace headers
                check(verifies(b"Received: from x by y; Tue, 14 Nov 2023 22:13:21 +0000\r\n" + signed, dns),
                      f"{label}: still verifies below a Received header")
            for name in ("non-ascii", "html-threaded"):
                signed = sign(key, MESSAGES[name])
                hdr = signed[:signed.index(b"\tb=")]
                h = b"".join(hdr.split()).split(b"h=")[1].split(b";")[0].lower().split(b":")
                for field in (b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
                              b"in-reply-to", b"references"):
                    check(field in h, f"{kind} {name}: h= signs {field.decode()}")
                check(h.count(b"from") == 2, f"{kind} {name}: From over-signed")

            # LF line ends in, CRLF out, still valid
            lf = MESSAGES["ascii"].replace(b"\r\n", b"\n")
            signed = sign(key, lf)
            check(b"\n" not in signed.replace(b"\r\n", b""), f"{kind}: LF input comes out as CRLF")
            check(verifies(signed, dns), f"{kind}: LF input verifies")

            # message from a file argument instead of stdin
            path = os.path.join(tmp, "msg.eml")
            with open(path, "wb") as f:
                f.write(MESSAGES["html-threaded"])
            r = run(["dkim-sign", "--key", key, "--domain", DOMAIN, "--selector", SELECTOR, path])
            check(r.returncode == 0 and verifies(r.stdout, dns), f"{kind}: message from a file")

            # the DNS record relance prints is the one openssl derives
            r = run(["dkim-sign", "--print-dns", "--key", key, "--selector", SELECTOR, "--domain", DOMAIN])
            out = r.stdout.decode().strip()
            prefix = f"{SELECTOR}._domainkey.{DOMAIN} IN TXT "
            check(r.returncode == 0 and out.startswith(prefix), f"{kind}: --print-dns names the record")
            strings = [s for s in out[len(prefix):].split('"') if s.strip()]
            check(all(len(s) <= 255 for s in strings), f"{kind}: TXT strings within 255")
            check("".join(strings).encode() == records[kind], f"{kind}: --print-dns publishes the key")
            check(b"PRIVATE" not in r.stdout + r.stderr, f"{kind}: --print-dns shows no private key")

        # refusals
        r = run(["dkim-sign", "--domain", DOMAIN, "--selector", SELECTOR], stdin=MESSAGES["ascii"])
        check(r.returncode == 2, "no --key is a usage error")
        ec = os.path.join(tmp, "ec.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", ec], check=True, capture_output=True)
        with open(ec, "rb") as f:
            ec_body = f.read().split(b"\n")[1]
        r = run(["dkim-sign", "--key", ec, "--domain", DOMAIN, "--selector", SELECTOR], stdin=MESSAGES["ascii"])
        check(r.returncode == 1 and b"RSA or Ed25519" in r.stderr, "an EC key is refused with a reason")
        check(ec_body not in r.stdout + r.stderr, "the refused key is not echoed")
        r = run(["dkim-sign", "--key", keys["rsa"], "--domain", "bad domain", "--selector", SELECTOR],
                stdin=MESSAGES["ascii"])
        check(r.returncode == 1 and r.stdout == b"", "a bad domain is refused")
        r = run(["dkim-sign", "--key", keys["rsa"], "--domain", DOMAIN, "--selector", SELECTOR],
                stdin=b"Subject: no from\r\n\r\nbody\r\n")
        check(r.returncode == 1 and b"From" in r.stderr, "a message without From is refused")
        r = run(["dkim-sign", "--help"])
        check(r.returncode == 0 and b"--print-dns" in r.stdout, "dkim-sign --help")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all DKIM oracle checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
