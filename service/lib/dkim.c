/* dkim: DKIM-Signature headers for outgoing messages (RFC 6376, RFC 8463).
 *
 * Owns the private key once it is loaded, relaxed/relaxed
 * canonicalisation, the choice of signed headers, the body hash, the
 * rsa-sha256 and ed25519-sha256 signatures (OpenSSL 3 EVP) and the
 * folded header, plus the TXT record that publishes the public key.
 * Does not own which key a domain uses (configuration), building the
 * message (message) or sending it (sender). Apart from reading a key
 * file in dkim_key_load_file it does no I/O and never logs; nothing here
 * ever copies key material into a string it returns. */
#include "dkim.h"

#include "buf.h"
#include "idn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define KEY_FILE_MAX (64 * 1024)
#define LINE_SOFT 78

struct dkim_key {
    EVP_PKEY *pkey;   /* never modified after loading: safe to share across threads */
    enum dkim_alg alg;
};

/* Headers signed when present, in h= order. All are single-instance in
 * RFC 5322 terms, so each is also over-signed once. */
static const char *const signed_headers[] = {
    "From",        "To",         "Subject",      "Date",         "Message-ID",
    "In-Reply-To", "References", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding",
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- keys ---- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;   /* never prompt on a terminal */
}

int dkim_key_load_pem(const char *pem, size_t len, struct dkim_key **out, char *err, size_t errlen)
{
    struct dkim_key *key = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc = -EINVAL;

    if (len > KEY_FILE_MAX) {
        seterr(err, errlen, "the key is larger than %d bytes; not a DKIM private key", KEY_FILE_MAX);
        goto fail;
    }
    if (memmem(pem, len, "ENCRYPTED", 9)) {
        seterr(err, errlen, "the key is encrypted; DKIM keys must be stored without a passphrase "
                            "(openssl pkey -in KEY -out PLAIN)");
        goto fail;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        rc = -ENOMEM;
        goto fail;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!pkey) {
        seterr(err, errlen, "not a PEM private key (expected -----BEGIN PRIVATE KEY-----)");
        goto fail;
    }
    key = calloc(1, sizeof *key);
    if (!key) {
        rc = -ENOMEM;
        goto fail;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < 1024) {
            /* RFC 8301 3.2: signers MUST use at least 1024 bits */
            seterr(err, errlen, "RSA key has %d bits; DKIM needs at least 1024, 2048 recommended "
                                "(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)", bits);
            goto fail;
        }
        key->alg = DKIM_RSA_SHA256;
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        key->alg = DKIM_ED25519_SHA256;
    } else {
        seterr(err, errlen, "not an RSA or Ed25519 private key");
        goto fail;
    }
    key->pkey = pkey;
    BIO_free(bio);
    ERR_clear_error();
    *out = key;
    return 0;
fail:
    free(key);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int dkim_key_load_file(const char *path, struct dkim_key **out, char *err, size_t errlen)
{
    char *data = NULL;
    size_t cap = 0, len = 0;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        char tmp[128];
        seterr(err, errlen, "cannot open DKIM key file %s: %s", path, strerror_r(errno, tmp, sizeof tmp));
        goto fail;
    }
    cap = KEY_FILE_MAX + 1;
    data = malloc(cap);
    if (!data) {
        rc = -ENOMEM;
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            char tmp[128];
            seterr(err, errlen, "cannot read DKIM key file %s: %s", path, strerror_r(errno, tmp, sizeof tmp));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            seterr(err, errlen, "DKIM key file %s is larger than %d bytes", path, KEY_FILE_MAX);
            rc = -EINVAL;
            goto fail;
        }
    }
    rc = dkim_key_load_pem(data, len, out, err, errlen);
    if (rc < 0 && err && errlen) {
        char reason[300];
        snprintf(reason, sizeof reason, "%s", err);
        seterr(err, errlen, "DKIM key file %s: %s", path, reason);
    }
fail:
    if (data) {
        OPENSSL_cleanse(data, cap);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

void dkim_key_free(struct dkim_key *key)
{
    if (!key)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

enum dkim_alg dkim_key_alg(const struct dkim_key *key)
{
    return key->alg;
}

/* base64 without line breaks, appended to b. */
static void b64_add(struct buf *b, const unsigned char *s, size_t n)
{
    size_t need = 4 * ((n + 2) / 3);
    buf_add(b, "", 0);
    if (b->oom)
        return;
    char *tmp = malloc(need + 1);
    if (!tmp) {
        b->oom = 1;
        return;
    }
    int w = EVP_EncodeBlock((unsigned char *)tmp, s, (int)n);
    buf_add(b, tmp, (size_t)w);
    free(tmp);
}

int dkim_key_record(const struct dkim_key *key, char **out)
{
    struct buf b = {0};
    unsigned char *der = NULL;
    int rc = -EINVAL;

    if (key->alg == DKIM_RSA_SHA256) {
        int n = i2d_PUBKEY(key->pkey, &der);
        if (n <= 0)
            goto fail;
        buf_adds(&b, "v=DKIM1; k=rsa; p=");
        b64_add(&b, der, (size_t)n);
    } else {
        unsigned char raw[32];
        size_t rawlen = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rawlen) != 1)
            goto fail;
        buf_adds(&b, "v=DKIM1; k=ed25519; p=");
        b64_add(&b, raw, rawlen);
    }
    if (b.oom) {
        rc = -ENOMEM;
        goto fail;
    }
    OPENSSL_free(der);
    *out = b.p;
    return 0;
fail:
    OPENSSL_free(der);
    buf_free(&b);
    ERR_clear_error();
    return rc;
}

/* ---- canonicalisation ---- */

int dkim_header_relax(const char *field, size_t len, char **out)
{
    struct buf b = {0};
    size_t i = 0;
    while (i < len && field[i] != ':')
        i++;
    size_t nend = i;
    while (nend > 0 && is_wsp(field[nend - 1]))
        nend--;
    for (size_t k = 0; k < nend; k++) {
        char c = field[k];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        buf_addc(&b, c);
    }
    buf_add(&b, ":", 1);
    int space = 0, started = 0;
    for (i = i < len ? i + 1 : len; i < len; i++) {
        char c = field[i];
        if (c == '\n' || (c == '\r' && i + 1 < len && field[i + 1] == '\n'))
            continue;   /* unfold */
        if (is_wsp(c)) {
            space = 1;
            continue;
        }
        if (space && started)
            buf_add(&b, " ", 1);
        space = 0;
        started = 1;
        buf_addc(&b, c);
    }
    buf_add(&b, "\r\n", 2);
    if (b.oom) {
        buf_free(&b);
        return -ENOMEM;
    }
    *out = b.p;
    return 0;
}

typedef void sink_fn(void *ctx, const char *p, size_t n);

/* Streams the relaxed body (RFC 6376 3.4.3 and 3.4.4) into sink: WSP runs
 * become one SP, WSP at line ends goes, empty lines at the end go, and a
 * non-empty body ends in CRLF. Lines end at LF, with or without CR. */
static void body_relax_run(const char *body, size_t len, sink_fn *sink, void *ctx)
{
    static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    size_t pending = 0;   /* empty lines not yet known to be inside the body */
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t next = nl ? end + 1 : len;
        if (nl && end > pos && body[end - 1] == '\r')
            end--;
        size_t last = end;
        while (last > pos && is_wsp(body[last - 1]))
            last--;
        if (last == pos) {
            pending++;
            pos = next;
            continue;
        }
        for (; pending > 0; pending -= pending < 8 ? pending : 8)
            sink(ctx, crlfs, 2 * (pending < 8 ? pending : 8));
        char chunk[1024];
        size_t c = 0;
        for (size_t i = pos; i < last; i++) {
            if (is_wsp(body[i])) {
                if (i > pos && is_wsp(body[i - 1]))
                    continue;
                chunk[c++] = ' ';
            } else {
                chunk[c++] = body[i];
            }
            if (c == sizeof chunk) {
                sink(ctx, chunk, c);
                c = 0;
            }
        }
        if (c)
            sink(ctx, chunk, c);
        sink(ctx, "\r\n", 2);
        pos = next;
    }
}

static void sink_buf(void *ctx, const char *p, size_t n)
{
    buf_add(ctx, p, n);
}

static void sink_digest(void *ctx, const char *p, size_t n)
{
    EVP_DigestUpdate(ctx, p, n);
}

int dkim_body_relax(const char *body, size_t len, char **out, size_t *out_len)
{
    struct buf b = {0};
    buf_add(&b, "", 0);
    body_relax_run(body, len, sink_buf, &b);
    if (b.oom) {
        buf_free(&b);
        return -ENOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

int dkim_body_hash(const char *body, size_t len, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (outlen < 45)
        return -EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    if (ok) {
        body_relax_run(body, len, sink_digest, ctx);
        ok = EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return -ENOMEM;
    }
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    return 0;
}

/* ---- signing ---- */

struct field {
    size_t start, end;   /* the field without its final line end */
    size_t name_len;
};

/* Splits the header section into fields; *body_off is where the body
 * starts (len when there is no blank line). */
static int parse_headers(const char *msg, size_t len, struct field **out, size_t *n_out, size_t *body_off)
{
    struct field *f = NULL;
    size_t n = 0, cap = 0, pos = 0;
    *body_off = len;
    while (pos < len) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - msg) : len;
        size_t next = nl ? end + 1 : len;
        size_t content_end = (nl && end > pos && msg[end - 1] == '\r') ? end - 1 : end;
        if (content_end == pos) {   /* the blank line */
            *body_off = next;
            break;
        }
        if (is_wsp(msg[pos]) && n > 0) {
            f[n - 1].end = content_end;   /* a continuation line */
        } else {
            if (n == cap) {
                cap = cap ? cap * 2 : 32;
                struct field *nf = realloc(f, cap * sizeof *f);
                if (!nf) {
                    free(f);
                    return -ENOMEM;
                }
                f = nf;
            }
            const char *colon = memchr(msg + pos, ':', content_end - pos);
            size_t nl_len = colon ? (size_t)(colon - (msg + pos)) : 0;
            while (nl_len > 0 && is_wsp(msg[pos + nl_len - 1]))
                nl_len--;
            f[n].start = pos;
            f[n].end = content_end;
            f[n].name_len = colon ? nl_len : 0;   /* 0: not a field; never signed */
            n++;
        }
        pos = next;
    }
    *out = f;
    *n_out = n;
    return 0;
}

/* Appends " text" or, when the line would pass LINE_SOFT, CRLF TAB text. */
static void put_tag(struct buf *b, size_t *col, const char *text)
{
    size_t n = strlen(text);
    if (*col + 1 + n > LINE_SOFT) {
        buf_adds(b, "\r\n\t");
        *col = 1;
    } else {
        buf_adds(b, " ");
        *col += 1;
    }
    buf_adds(b, text);
    *col += n;
}

static int sign_digest(const struct dkim_key *key, const unsigned char *digest, unsigned char *sig, size_t *siglen)
{
    int ok = 0;
    if (key->alg == DKIM_RSA_SHA256) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        ok = pctx && EVP_PKEY_sign_init(pctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(pctx, sig, siglen, digest, 32) == 1;
        EVP_PKEY_CTX_free(pctx);
    } else {
        /* RFC 8463 3: Ed25519 (pure) over the SHA-256 of the data */
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        ok = mctx && EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestSign(mctx, sig, siglen, digest, 32) == 1;
        EVP_MD_CTX_free(mctx);
    }
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : -EINVAL;
}

int dkim_sign(const struct dkim_key *key, const char *domain, const char *selector, const char *message,
              size_t len, int64_t timestamp, char **header_out, char *err, size_t errlen)
{
    struct field *f = NULL;
    size_t nf = 0, body_off = 0;
    struct buf hdr = {0}, data = {0};
    char *canon = NULL;
    int rc = -EINVAL;

    if (!domain || !idn_ldh_name_ok(domain)) {
        seterr(err, errlen, "DKIM domain '%.100s' is not a domain name", domain ? domain : "(none)");
        goto fail;
    }
    if (!selector || !idn_ldh_name_ok(selector) || strlen(selector) > 63) {
        seterr(err, errlen, "DKIM selector '%.100s' is not a DNS label", selector ? selector : "(none)");
        goto fail;
    }
    if (timestamp < 0) {
        seterr(err, errlen, "negative DKIM timestamp");
        goto fail;
    }
    rc = parse_headers(message, len, &f, &nf, &body_off);
    if (rc < 0)
        goto fail;

    char bh[64];
    rc = dkim_body_hash(message + body_off, len - body_off, bh, sizeof bh);
    if (rc < 0)
        goto fail;

    /* h= and the canonical headers, bottom-up for repeated names */
    struct buf h = {0};
    int have_from = 0;
    for (size_t s = 0; s < sizeof signed_headers / sizeof signed_headers[0]; s++) {
        const char *name = signed_headers[s];
        size_t nlen = strlen(name), count = 0;
        for (size_t i = nf; i-- > 0;) {
            if (f[i].name_len != nlen || strncasecmp(message + f[i].start, name, nlen) != 0)
                continue;
            rc = dkim_header_relax(message + f[i].start, f[i].end - f[i].start, &canon);
            if (rc < 0) {
                buf_free(&h);
                goto fail;
            }
            buf_adds(&data, canon);
            free(canon);
            canon = NULL;
            buf_adds(&h, h.len ? ":" : "");
            buf_adds(&h, name);
            count++;
        }
        if (count > 0) {   /* over-sign: no further instance may be added */
            buf_adds(&h, ":");
            buf_adds(&h, name);
        }
        if (s == 0)
            have_from = count > 0;
    }
    if (!have_from) {
        buf_free(&h);
        seterr(err, errlen, "the message has no From header");
        rc = -EINVAL;
        goto fail;
    }

    /* the header, folded, up to and including "b=" */
    size_t col = strlen("DKIM-Signature:");
    char tag[300];
    buf_adds(&hdr, "DKIM-Signature:");
    put_tag(&hdr, &col, "v=1;");
    put_tag(&hdr, &col, key->alg == DKIM_RSA_SHA256 ? "a=rsa-sha256;" : "a=ed25519-sha256;");
    put_tag(&hdr, &col, "c=relaxed/relaxed;");
    snprintf(tag, sizeof tag, "d=%s;", domain);
    put_tag(&hdr, &col, tag);
    snprintf(tag, sizeof tag, "s=%s;", selector);
    put_tag(&hdr, &col, tag);
    snprintf(tag, sizeof tag, "t=%lld;", (long long)timestamp);
    put_tag(&hdr, &col, tag);
    /* h= may fold after any ':' */
    const char *hp = h.p ? h.p : "";
    for (size_t i = 0; hp[i];) {
        size_t j = i;
        while (hp[j] && hp[j] != ':')
            j++;
        if (hp[j] == ':')
            j++;
        snprintf(tag, sizeof tag, "%s%.*s%s", i == 0 ? "h=" : "", (int)(j - i), hp + i, hp[j] ? "" : ";");
        if (i == 0) {
            put_tag(&hdr, &col, tag);
        } else if (col + strlen(tag) > LINE_SOFT) {
            buf_adds(&hdr, "\r\n\t");
            buf_adds(&hdr, tag);
            col = 1 + strlen(tag);
        } else {
            buf_adds(&hdr, tag);
            col += strlen(tag);
        }
        i = j;
    }
    buf_free(&h);
    snprintf(tag, sizeof tag, "bh=%s;", bh);
    put_tag(&hdr, &col, tag);
    buf_adds(&hdr, "\r\n\tb=");
    if (hdr.oom) {
        rc = -ENOMEM;
        goto fail;
    }

    rc = dkim_header_relax(hdr.p, hdr.len, &canon);
    if (rc < 0)
        goto fail;
    buf_add(&data, canon, strlen(canon) - 2);   /* the signature header goes in without its CRLF */
    if (data.oom) {
        rc = -ENOMEM;
        goto fail;
    }

    unsigned char digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(data.p, data.len, digest, &dlen, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        rc = -ENOMEM;
        goto fail;
    }
    unsigned char sig[1024];   /* RSA up to 8192 bits */
    size_t siglen = sizeof sig;
    if (EVP_PKEY_get_size(key->pkey) > (int)sizeof sig) {
        seterr(err, errlen, "the DKIM key is too large");
        rc = -EINVAL;
        goto fail;
    }
    rc = sign_digest(key, digest, sig, &siglen);
    if (rc < 0) {
        seterr(err, errlen, "signing failed");
        goto fail;
    }
    struct buf b64 = {0};
    b64_add(&b64, sig, siglen);
    for (size_t i = 0; i < b64.len; i += 72) {
        if (i > 0)
            buf_adds(&hdr, "\r\n\t");
        buf_add(&hdr, b64.p + i, b64.len - i < 72 ? b64.len - i : 72);
    }
    buf_adds(&hdr, "\r\n");
    if (hdr.oom || b64.oom) {
        buf_free(&b64);
        rc = -ENOMEM;
        goto fail;
    }
    buf_free(&b64);
    free(canon);
    buf_free(&data);
    free(f);
    *header_out = hdr.p;
    return 0;
fail:
    free(canon);
    buf_free(&data);
    buf_free(&hdr);
    free(f);
    return rc;
}
