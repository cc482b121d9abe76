/* Unit tests for dkim: relaxed canonicalisation (RFC 6376 3.4 examples),
 * body hashes, key loading and refusals, the published record, and
 * signatures verified here with OpenSSL directly — for RSA and Ed25519,
 * on messages built by the message module, from several threads at once.
 * The independent check (python3-dkim) is tests/integration/test_dkim_oracle.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim.h"
#include "message.h"

/* ---- canonicalisation ---- */

static const struct {
    const char *in;
    const char *expected;
} header_rows[] = {
    /* RFC 6376 3.4.5 */
    {"A: X\r\n", "a:X\r\n"},
    {"B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n"},
    {"Subject:   Hello    World  ", "subject:Hello World\r\n"},
    {"X-Empty:", "x-empty:\r\n"},
    {"X-Empty:   \r\n", "x-empty:\r\n"},
    {"MESSAGE-ID: <a@b>", "message-id:<a@b>\r\n"},
    {"To: a@b,\r\n  c@d,\r\n\td@e", "to:a@b, c@d, d@e\r\n"},
    {"X-Tab:\tv\t \tw", "x-tab:v w\r\n"},
    {"X-Bare: a\n b", "x-bare:a b\r\n"},
};

static void test_header_relax(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof header_rows / sizeof header_rows[0]; r++) {
        char *out = NULL;
        assert_int_equal(dkim_header_relax(header_rows[r].in, strlen(header_rows[r].in), &out), 0);
        assert_string_equal(out, header_rows[r].expected);
        free(out);
    }
}

static const struct {
    const char *in;
    const char *expected;
    const char *hash;   /* bh=, or NULL */
} body_rows[] = {
    /* RFC 6376 3.4.5 */
    {" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n", "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo="},
    /* 3.4.4: an empty body stays empty; so does one of empty lines */
    {"", "", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    {"\r\n", "", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    {"\r\n\r\n \t \r\n", "", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    {"Hi.", "Hi.\r\n", "UrA8rmgY3eNBotmDWtzAmHyn5RyZv8Gea45sNGsP0zw="},
    {"Hi.\r\n", "Hi.\r\n", "UrA8rmgY3eNBotmDWtzAmHyn5RyZv8Gea45sNGsP0zw="},
    {"Hi.  \t\r\n\r\n", "Hi.\r\n", "UrA8rmgY3eNBotmDWtzAmHyn5RyZv8Gea45sNGsP0zw="},
    {"a  \r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n", NULL},
    {"x\n\ny\n", "x\r\n\r\ny\r\n", NULL},
    {"\r\n\r\nlate start", "\r\n\r\nlate start\r\n", NULL},
    {"tab\tinside  and   out", "tab inside and out\r\n", NULL},
};

static void test_body_relax(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof body_rows / sizeof body_rows[0]; r++) {
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(dkim_body_relax(body_rows[r].in, strlen(body_rows[r].in), &out, &len), 0);
        assert_int_equal(len, strlen(body_rows[r].expected));
        assert_memory_equal(out, body_rows[r].expected, len);
        free(out);
        if (body_rows[r].hash) {
            char bh[64];
            assert_int_equal(dkim_body_hash(body_rows[r].in, strlen(body_rows[r].in), bh, sizeof bh), 0);
            assert_string_equal(bh, body_rows[r].hash);
        }
    }
}

/* A long line streams through the canonicaliser's chunks unchanged. */
static void test_body_long_line(void **state)
{
    (void)state;
    size_t n = 5000;
    char *in = malloc(n + 3);
    for (size_t i = 0; i < n; i++)
        in[i] = (i % 7 == 0) ? ' ' : 'x';
    in[0] = 'y';
    memcpy(in + n, "\r\n", 3);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(dkim_body_relax(in, n + 2, &out, &len), 0);
    assert_int_equal(len, n + 2);
    assert_memory_equal(out, in, len);
    free(out);
    free(in);
}

/* ---- keys ---- */

static char *pem_of(EVP_PKEY *pkey, int traditional, int encrypted)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int ok;
    if (encrypted)
        ok = PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), "secret", 6, NULL, NULL);
    else if (traditional)
        ok = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
    else
        ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    assert_int_equal(ok, 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static EVP_PKEY *rsa2048, *ed25519;
static char *rsa_pem, *ed_pem;

static int setup_keys(void **state)
{
    (void)state;
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa2048 || !ed25519)
        return -1;
    rsa_pem = pem_of(rsa2048, 0, 0);
    ed_pem = pem_of(ed25519, 0, 0);
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(ed25519);
    free(rsa_pem);
    free(ed_pem);
    return 0;
}

static void test_key_load(void **state)
{
    (void)state;
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(small);
    assert_non_null(ec);
    char *pkcs1 = pem_of(rsa2048, 1, 0), *enc = pem_of(ed25519, 0, 1), *small_pem = pem_of(small, 0, 0),
         *ec_pem = pem_of(ec, 0, 0);
    char pub[4096];
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa2048), 1);
    char *data;
    long pn = BIO_get_mem_data(bio, &data);
    snprintf(pub, sizeof pub, "%.*s", (int)pn, data);
    BIO_free(bio);

    const struct {
        const char *pem;
        int rc;
        enum dkim_alg alg;
        const char *reason;   /* part of the error */
    } rows[] = {
        {rsa_pem, 0, DKIM_RSA_SHA256, NULL},
        {pkcs1, 0, DKIM_RSA_SHA256, NULL},
        {ed_pem, 0, DKIM_ED25519_SHA256, NULL},
        {enc, -EINVAL, 0, "encrypted"},
        {small_pem, -EINVAL, 0, "512 bits"},
        {ec_pem, -EINVAL, 0, "not an RSA or Ed25519"},
        {pub, -EINVAL, 0, "not a PEM private key"},
        {"garbage", -EINVAL, 0, "not a PEM private key"},
        {"", -EINVAL, 0, "not a PEM private key"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct dkim_key *key = NULL;
        char err[300] = "";
        assert_int_equal(dkim_key_load_pem(rows[r].pem, strlen(rows[r].pem), &key, err, sizeof err), rows[r].rc);
        if (rows[r].rc == 0) {
            assert_int_equal(dkim_key_alg(key), rows[r].alg);
            dkim_key_free(key);
        } else {
            assert_null(key);
            assert_non_null(strstr(err, rows[r].reason));
            assert_null(strstr(err, "PRIVATE KEY-----\n"));   /* never echoes the key */
        }
    }
    struct dkim_key *key = NULL;
    char err[300];
    assert_int_equal(dkim_key_load_file("/nonexistent/dkim.pem", &key, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/dkim.pem"));
    free(pkcs1);
    free(enc);
    free(small_pem);
    free(ec_pem);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

static void test_key_record(void **state)
{
    (void)state;
    struct dkim_key *key = NULL;
    char *rec = NULL, err[200];
    /* Ed25519: p= is the raw 32-byte key */
    assert_int_equal(dkim_key_load_pem(ed_pem, strlen(ed_pem), &key, err, sizeof err), 0);
    assert_int_equal(dkim_key_record(key, &rec), 0);
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    assert_int_equal(EVP_PKEY_get_raw_public_key(ed25519, raw, &rawlen), 1);
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, raw, 32);
    char want[128];
    snprintf(want, sizeof want, "v=DKIM1; k=ed25519; p=%s", b64);
    assert_string_equal(rec, want);
    free(rec);
    dkim_key_free(key);
    /* RSA: p= is the DER SubjectPublicKeyInfo */
    assert_int_equal(dkim_key_load_pem(rsa_pem, strlen(rsa_pem), &key, err, sizeof err), 0);
    assert_int_equal(dkim_key_record(key, &rec), 0);
    assert_true(strncmp(rec, "v=DKIM1; k=rsa; p=", 18) == 0);
    unsigned char der[1024];
    int n = EVP_DecodeBlock(der, (const unsigned char *)rec + 18, (int)strlen(rec + 18));
    assert_true(n > 0);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_eq(pub, rsa2048), 1);
    EVP_PKEY_free(pub);
    free(rec);
    dkim_key_free(key);
}

/* ---- signatures, verified with OpenSSL ---- */

/* The value of tag name in the (folded) signature header, whitespace removed. */
static char *tag_value(const char *sig, const char *name)
{
    const char *v = strchr(sig, ':') + 1;
    size_t nl = strlen(name);
    for (;;) {
        while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
            v++;
        const char *end = strchr(v, ';');
        if (!end)
            end = v + strlen(v);
        if (strncmp(v, name, nl) == 0 && (v[nl] == '=' || v[nl] == ' ')) {
            const char *s = strchr(v, '=') + 1;
            char *out = malloc((size_t)(end - s) + 1);
            size_t o = 0;
            for (; s < end; s++)
                if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
                    out[o++] = *s;
            out[o] = '\0';
            return out;
        }
        if (!*end)
            return NULL;
        v = end + 1;
    }
}

/* Verifies sig (a DKIM-Signature header) over msg with pub. Returns 1
 * when it verifies, 0 when it does not. */
static int verify(const char *sig, const char *msg, EVP_PKEY *pub)
{
    int ok = 0;
    char *bh = tag_value(sig, "bh"), *b = tag_value(sig, "b"), *h = tag_value(sig, "h");
    assert_non_null(bh);
    assert_non_null(b);
    assert_non_null(h);
    const char *body = strstr(msg, "\r\n\r\n");
    body = body ? body + 4 : msg + strlen(msg);
    char hash[64];
    assert_int_equal(dkim_body_hash(body, strlen(body), hash, sizeof hash), 0);
    if (strcmp(hash, bh) != 0)
        goto done;

    /* header fields of msg */
    const char *starts[64];
    size_t lens[64], nh = 0;
    for (const char *p = msg; p < body - 2;) {
        const char *e = p;
        for (;;) {
            e = strstr(e, "\r\n");
            if (e[2] != ' ' && e[2] != '\t')
                break;
            e += 2;
        }
        starts[nh] = p;
        lens[nh++] = (size_t)(e - p);
        p = e + 2;
    }
    int used[64] = {0};
    char data[16384];
    size_t dl = 0;
    for (char *name = strtok(h, ":"); name; name = strtok(NULL, ":")) {
        for (size_t i = nh; i-- > 0;) {
            size_t n = strlen(name);
            if (used[i] || strncasecmp(starts[i], name, n) != 0 || starts[i][n] != ':')
                continue;
            used[i] = 1;
            char *c = NULL;
            assert_int_equal(dkim_header_relax(starts[i], lens[i], &c), 0);
            memcpy(data + dl, c, strlen(c));
            dl += strlen(c);
            free(c);
            break;
        }
    }
    /* the signature header with an empty b= */
    const char *bt = strstr(sig, "\tb=");
    assert_non_null(bt);
    char *c = NULL;
    assert_int_equal(dkim_header_relax(sig, (size_t)(bt + 3 - sig), &c), 0);
    memcpy(data + dl, c, strlen(c) - 2);
    dl += strlen(c) - 2;
    free(c);

    unsigned char digest[32], raw[1024];
    unsigned int dlen;
    assert_int_equal(EVP_Digest(data, dl, digest, &dlen, EVP_sha256(), NULL), 1);
    int rawlen = EVP_DecodeBlock(raw, (unsigned char *)b, (int)strlen(b));
    assert_true(rawlen > 0);
    for (size_t i = strlen(b); i > 0 && b[i - 1] == '='; i--)
        rawlen--;   /* EVP_DecodeBlock counts the padding as bytes */
    if (EVP_PKEY_is_a(pub, "RSA")) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
        assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
        ok = EVP_PKEY_verify(ctx, raw, (size_t)rawlen, digest, 32) == 1;
        EVP_PKEY_CTX_free(ctx);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, pub, NULL), 1);
        ok = EVP_DigestVerify(ctx, raw, (size_t)rawlen, digest, 32) == 1;
        EVP_MD_CTX_free(ctx);
    }
done:
    free(bh);
    free(b);
    free(h);
    return ok;
}

static const char *const refs[] = {"<first@acme.example>"};

static const struct {
    const char *subject, *from_name, *text, *html, *in_reply_to;
    const char *h;   /* expected h= */
} sign_rows[] = {
    {"Quick question", "Alice Martin", "Hi Bob,\n\nShort one.\n", NULL, NULL,
     "From:From:To:To:Subject:Subject:Date:Date:Message-ID:Message-ID:List-Unsubscribe:List-Unsubscribe:"
     "MIME-Version:MIME-Version:Content-Type:Content-Type:Content-Transfer-Encoding:Content-Transfer-Encoding"},
    {"Re: Café et croissants — 日本語 🚀", "Amélie Dupré", "Bonjour,\n\nÀ bientôt, j'espère.\n",
     "<p>Bonjour,</p><p>À bientôt</p>", "<first@acme.example>",
     "From:From:To:To:Subject:Subject:Date:Date:Message-ID:Message-ID:In-Reply-To:In-Reply-To:References:"
     "References:List-Unsubscribe:List-Unsubscribe:MIME-Version:MIME-Version:Content-Type:Content-Type"},
    {"Empty body", NULL, "", NULL, NULL, NULL},
    {"Trailing blank lines and  spaces", NULL, "text  \n\n\n\n", "<b>x</b>\n\n", NULL, NULL},
};

static char *build_row(size_t r, size_t *len)
{
    struct message m = {
        .from_addr = "alice@acme.example",
        .from_name = sign_rows[r].from_name,
        .to_addr = "bob@corp.example",
        .subject = sign_rows[r].subject,
        .date = 1700000000,
        .message_id = "<m2@acme.example>",
        .in_reply_to = sign_rows[r].in_reply_to,
        .references = sign_rows[r].in_reply_to ? refs : NULL,
        .n_references = sign_rows[r].in_reply_to ? 1 : 0,
        .list_unsubscribe = "<mailto:alice@acme.example?subject=unsubscribe>",
        .text = sign_rows[r].text,
        .html = sign_rows[r].html,
    };
    char *out = NULL, err[200];
    assert_int_equal(message_build(&m, &out, len, err, sizeof err), 0);
    return out;
}

static void test_sign_round_trip(void **state)
{
    (void)state;
    const char *pems[2] = {rsa_pem, ed_pem};
    EVP_PKEY *pubs[2] = {rsa2048, ed25519};
    for (size_t k = 0; k < 2; k++) {
        struct dkim_key *key = NULL;
        char err[200];
        assert_int_equal(dkim_key_load_pem(pems[k], strlen(pems[k]), &key, err, sizeof err), 0);
        for (size_t r = 0; r < sizeof sign_rows / sizeof sign_rows[0]; r++) {
            size_t len;
            char *msg = build_row(r, &len);
            char *sig = NULL;
            assert_int_equal(dkim_sign(key, "acme.example", "s1", msg, len, 1700000000, &sig, err, sizeof err), 0);
            /* shape: one header, folded, lines within 78 */
            assert_true(strncmp(sig, "DKIM-Signature: v=1; a=", 23) == 0);
            size_t slen = strlen(sig);
            assert_true(slen > 2 && strcmp(sig + slen - 2, "\r\n") == 0);
            for (const char *line = sig; *line;) {
                const char *e = strstr(line, "\r\n");
                assert_true(e - line <= 78);
                line = e + 2;
                if (*line)
                    assert_true(*line == '\t' || *line == ' ');
            }
            char *a = tag_value(sig, "a"), *c = tag_value(sig, "c"), *d = tag_value(sig, "d"),
                 *s = tag_value(sig, "s"), *t = tag_value(sig, "t"), *h = tag_value(sig, "h");
            assert_string_equal(a, k == 0 ? "rsa-sha256" : "ed25519-sha256");
            assert_string_equal(c, "relaxed/relaxed");
            assert_string_equal(d, "acme.example");
            assert_string_equal(s, "s1");
            assert_string_equal(t, "1700000000");
            if (sign_rows[r].h)
                assert_string_equal(h, sign_rows[r].h);
            free(a), free(c), free(d), free(s), free(t), free(h);

            assert_true(verify(sig, msg, pubs[k]));

            /* tampering: body, Subject, an added From */
            char *bad = strdup(msg);
            char *body = strstr(bad, "\r\n\r\n") + 4;
            if (*body) {
                body[0] ^= 1;
                assert_false(verify(sig, bad, pubs[k]));
            }
            free(bad);
            bad = strdup(msg);
            char *subj = strstr(bad, "\r\nSubject: ") + 11;
            subj[0] ^= 1;
            assert_false(verify(sig, bad, pubs[k]));
            free(bad);
            size_t blen = len + 64;
            bad = malloc(blen);
            snprintf(bad, blen, "From: mallory@evil.example\r\n%s", msg);
            assert_false(verify(sig, bad, pubs[k]));
            free(bad);
            free(sig);
            free(msg);
        }
        dkim_key_free(key);
    }
}

static void test_sign_rejects(void **state)
{
    (void)state;
    struct dkim_key *key = NULL;
    char err[200], *sig = NULL;
    assert_int_equal(dkim_key_load_pem(ed_pem, strlen(ed_pem), &key, err, sizeof err), 0);
    static const char msg[] = "From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
    static const char nofrom[] = "Subject: x\r\n\r\nbody\r\n";
    static const struct {
        const char *domain, *selector, *msg;
        const char *reason;
    } rows[] = {
        {"acme example", "s1", msg, "domain"},
        {"acme.example;x=y", "s1", msg, "domain"},
        {"acme.example", "s1; l=0", msg, "selector"},
        {"acme.example", "", msg, "selector"},
        {"acme.example", "s1", nofrom, "no From"},
        {"acme.example", "s1", "", "no From"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        err[0] = '\0';
        assert_int_equal(dkim_sign(key, rows[r].domain, rows[r].selector, rows[r].msg, strlen(rows[r].msg), 1,
                                   &sig, err, sizeof err),
                         -EINVAL);
        assert_non_null(strstr(err, rows[r].reason));
    }
    /* LF-only input signs as its CRLF form would */
    static const char lf[] = "From: a@b.example\nSubject: x\n\nbody\n";
    static const char crlf[] = "From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
    char *s1 = NULL, *s2 = NULL;
    assert_int_equal(dkim_sign(key, "b.example", "s", lf, strlen(lf), 5, &s1, err, sizeof err), 0);
    assert_int_equal(dkim_sign(key, "b.example", "s", crlf, strlen(crlf), 5, &s2, err, sizeof err), 0);
    assert_string_equal(s1, s2);
    assert_true(verify(s2, crlf, ed25519));
    free(s1);
    free(s2);
    dkim_key_free(key);
}

/* One key, four threads, many signatures: each equals the one made alone
 * (both algorithms are deterministic). */
struct job {
    const struct dkim_key *key;
    const char *msg;
    size_t len;
    const char *expected;
    int failures;
};

static void *sign_many(void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 25; i++) {
        char *sig = NULL, err[200];
        if (dkim_sign(j->key, "acme.example", "s1", j->msg, j->len, 1700000000, &sig, err, sizeof err) != 0 ||
            strcmp(sig, j->expected) != 0)
            j->failures++;
        free(sig);
    }
    return NULL;
}

static void test_sign_threads(void **state)
{
    (void)state;
    const char *pems[2] = {rsa_pem, ed_pem};
    for (size_t k = 0; k < 2; k++) {
        struct dkim_key *key = NULL;
        char err[200], *expected = NULL;
        size_t len;
        char *msg = build_row(1, &len);
        assert_int_equal(dkim_key_load_pem(pems[k], strlen(pems[k]), &key, err, sizeof err), 0);
        assert_int_equal(dkim_sign(key, "acme.example", "s1", msg, len, 1700000000, &expected, err, sizeof err), 0);
        pthread_t th[4];
        struct job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (struct job){key, msg, len, expected, 0};
            assert_int_equal(pthread_create(&th[i], NULL, sign_many, &jobs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(jobs[i].failures, 0);
        }
        free(expected);
        free(msg);
        dkim_key_free(key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_relax),    cmocka_unit_test(test_body_relax),
        cmocka_unit_test(test_body_long_line),  cmocka_unit_test(test_key_load),
        cmocka_unit_test(test_key_record),      cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_sign_rejects),    cmocka_unit_test(test_sign_threads),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
