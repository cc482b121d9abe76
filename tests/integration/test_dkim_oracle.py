"""DKIM oracle: signatures made by `relance dkim-sign` checked by a verifier
relance did not write (Debian's python3-dkim), with the public key given
locally instead of from DNS (../shared/MAIL-SERVERS.md, "The DKIM oracle").

Keys come from `openssl genpkey` (RSA-2048 and Ed25519). Messages: ASCII,
non-ASCII (RFC 2047 headers, quoted-printable and 8-bit bodies), with and
without an HTML alternative, with threading headers. A tampered body or
Subject, an added From and the wrong key must each fail verification, and
`--print-dns` must publish the same key that openssl derives.

A missing oracle (python3-dkim) is a failure, not a skip."""
import base64
import os
import subprocess

import dkim
import pytest

import harness

DOMAIN = "acme.example"
SELECTOR = "s2024"

def run(args, stdin=None):
    return subprocess.run([harness.RELANCE] + args, input=stdin, capture_output=True, timeout=60,
                          env=harness.relance_env())


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


@pytest.fixture(scope="module")
def keys(module_tmp):
    """{kind: (key path, its TXT record)} for an RSA-2048 and an Ed25519 key."""
    return {kind: (path, txt_record(path, kind))
            for kind, path in ((k, genkey(module_tmp, k)) for k in ("rsa", "ed25519"))}


KINDS = ("rsa", "ed25519")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(MESSAGES))
def test_a_signature_verifies_and_any_tampering_fails(keys, kind, name, check):
    key, record = keys[kind]
    dns = dnsfunc_for(record)
    other = dnsfunc_for(keys["ed25519" if kind == "rsa" else "rsa"][1])
    message = MESSAGES[name]
    signed = sign(key, message)
    label = f"{kind} {name}"
    check.ok(signed.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256")),
             f"{label}: signature header first")
    check.ok(signed.endswith(message), f"{label}: message unchanged after the signature")
    check.ok(verifies(signed, dns), f"{label}: verifies")
    check.ok(not verifies(tamper_body(signed), dns), f"{label}: tampered body fails")
    check.ok(not verifies(tamper_subject(signed), dns), f"{label}: tampered Subject fails")
    check.ok(not verifies(b"From: mallory@evil.example\r\n" + signed, dns), f"{label}: an added From fails")
    check.ok(not verifies(signed, other), f"{label}: the other key fails")
    # what a receiving MTA does: prepend trace headers
    check.ok(verifies(b"Received: from x by y; Tue, 14 Nov 2023 22:13:21 +0000\r\n" + signed, dns),
             f"{label}: still verifies below a Received header")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["non-ascii", "html-threaded"])
def test_the_signature_covers_the_headers_and_over_signs_from(keys, kind, name, check):
    signed = sign(keys[kind][0], MESSAGES[name])
    hdr = signed[:signed.index(b"\tb=")]
    h = b"".join(hdr.split()).split(b"h=")[1].split(b";")[0].lower().split(b":")
    for field in (b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
                  b"in-reply-to", b"references"):
        check.ok(field in h, f"{kind} {name}: h= signs {field.decode()}")
    check.ok(h.count(b"from") == 2, f"{kind} {name}: From over-signed")


@pytest.mark.parametrize("kind", KINDS)
def test_lf_input_comes_out_as_crlf_and_verifies(keys, kind):
    key, record = keys[kind]
    signed = sign(key, MESSAGES["ascii"].replace(b"\r\n", b"\n"))
    assert b"\n" not in signed.replace(b"\r\n", b""), f"{kind}: LF input comes out as CRLF"
    assert verifies(signed, dnsfunc_for(record)), f"{kind}: LF input verifies"


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_from_a_file_is_signed(keys, kind, tmp):
    key, record = keys[kind]
    path = os.path.join(tmp, "msg.eml")
    with open(path, "wb") as f:
        f.write(MESSAGES["html-threaded"])
    r = run(["dkim-sign", "--key", key, "--domain", DOMAIN, "--selector", SELECTOR, path])
    assert r.returncode == 0 and verifies(r.stdout, dnsfunc_for(record)), f"{kind}: message from a file"


@pytest.mark.parametrize("kind", KINDS)
def test_print_dns_publishes_the_key_openssl_derives(keys, kind):
    key, record = keys[kind]
    r = run(["dkim-sign", "--print-dns", "--key", key, "--selector", SELECTOR, "--domain", DOMAIN])
    out = r.stdout.decode().strip()
    prefix = f"{SELECTOR}._domainkey.{DOMAIN} IN TXT "
    assert r.returncode == 0 and out.startswith(prefix), f"{kind}: --print-dns names the record: {out}"
    strings = [s for s in out[len(prefix):].split('"') if s.strip()]
    assert all(len(s) <= 255 for s in strings), f"{kind}: TXT strings within 255"
    assert "".join(strings).encode() == record, f"{kind}: --print-dns publishes the key"
    assert b"PRIVATE" not in r.stdout + r.stderr, f"{kind}: --print-dns shows no private key"


def test_no_key_is_a_usage_error():
    r = run(["dkim-sign", "--domain", DOMAIN, "--selector", SELECTOR], stdin=MESSAGES["ascii"])
    assert r.returncode == 2, "no --key is a usage error"


def test_an_ec_key_is_refused_and_not_echoed(tmp):
    ec = os.path.join(tmp, "ec.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", ec], check=True, capture_output=True)
    with open(ec, "rb") as f:
        ec_body = f.read().split(b"\n")[1]
    r = run(["dkim-sign", "--key", ec, "--domain", DOMAIN, "--selector", SELECTOR], stdin=MESSAGES["ascii"])
    assert r.returncode == 1 and b"RSA or Ed25519" in r.stderr, "an EC key is refused with a reason"
    assert ec_body not in r.stdout + r.stderr, "the refused key is not echoed"


def test_a_bad_domain_and_a_message_without_from_are_refused(keys):
    r = run(["dkim-sign", "--key", keys["rsa"][0], "--domain", "bad domain", "--selector", SELECTOR],
            stdin=MESSAGES["ascii"])
    assert r.returncode == 1 and r.stdout == b"", "a bad domain is refused"
    r = run(["dkim-sign", "--key", keys["rsa"][0], "--domain", DOMAIN, "--selector", SELECTOR],
            stdin=b"Subject: no from\r\n\r\nbody\r\n")
    assert r.returncode == 1 and b"From" in r.stderr, "a message without From is refused"


def test_dkim_sign_help():
    r = run(["dkim-sign", "--help"])
    assert r.returncode == 0 and b"--print-dns" in r.stdout, "dkim-sign --help"
