/* linktoken: making and checking the signed tokens of public links (the
 * layout is in linktoken.h). It owns the byte layout, base64url and the
 * tag; what a link does with a token is public.c's, and where the secret
 * comes from is the engine's. */
#include "linktoken.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define RAW_MAX (2 + LINKTOKEN_ID_MAX + LINKTOKEN_DATA_MAX + LINKTOKEN_TAG_LEN)

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int kind_known(char k)
{
    return k == LINKTOKEN_UNSUBSCRIBE || k == LINKTOKEN_CLICK || k == LINKTOKEN_OPEN;
}

int linktoken_secret_ok(const char *secret)
{
    return secret && strlen(secret) >= LINKTOKEN_SECRET_MIN;
}

static int tag(const char *secret, const unsigned char *msg, size_t len, unsigned char out[LINKTOKEN_TAG_LEN])
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, len, full, &n) || n < LINKTOKEN_TAG_LEN)
        return -1;
    memcpy(out, full, LINKTOKEN_TAG_LEN);
    OPENSSL_cleanse(full, sizeof full);
    return 0;
}

/* base64url without padding; out must hold (len * 4 + 2) / 3 + 1. */
static size_t encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static int value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes len characters into out (RAW_MAX); -1 for a character outside
 * the alphabet, an impossible length, or bits left over in the last
 * character (one token has one spelling: the tag covers the bytes, and a
 * second spelling would be a second link to the same thing). */
static long decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1 || len > (RAW_MAX * 4 + 2) / 3)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

static int id_ok(const char *id, size_t n)
{
    if (n == 0 || n > LINKTOKEN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= 0x20 || id[i] >= 0x7f || id[i] == '<' || id[i] == '>')
            return 0;
    return 1;
}

int linktoken_make(const char *secret, char kind, const char *message_id, const void *data, size_t data_len,
                   char *out, size_t outlen)
{
    unsigned char raw[RAW_MAX];
    if (!linktoken_secret_ok(secret) || !kind_known(kind) || !message_id || data_len > LINKTOKEN_DATA_MAX ||
        (data_len > 0 && !data))
        return -EINVAL;
    size_t n = strlen(message_id);
    if (!id_ok(message_id, n))
        return -EINVAL;
    size_t len = 0;
    raw[len++] = (unsigned char)kind;
    raw[len++] = (unsigned char)n;
    memcpy(raw + len, message_id, n);
    len += n;
    if (data_len > 0)
        memcpy(raw + len, data, data_len);
    len += data_len;
    if (tag(secret, raw, len, raw + len) < 0)
        return -EINVAL;
    len += LINKTOKEN_TAG_LEN;
    if (outlen < (len * 4 + 2) / 3 + 1)
        return -ENOSPC;
    encode(raw, len, out);
    return 0;
}

int linktoken_open(const char *const *secrets, size_t n, const char *token, size_t len, struct linktoken *out)
{
    unsigned char raw[RAW_MAX];
    long got = token ? decode(token, len, raw) : -1;
    if (got < 2 + 1 + LINKTOKEN_TAG_LEN)
        return -EINVAL;
    size_t total = (size_t)got, body = total - LINKTOKEN_TAG_LEN, idn = raw[1];
    if (!kind_known((char)raw[0]) || 2 + idn > body || body - 2 - idn > LINKTOKEN_DATA_MAX)
        return -EINVAL;
    int found = -EACCES;
    for (size_t i = 0; i < n && found < 0; i++) {
        unsigned char want[LINKTOKEN_TAG_LEN];
        if (!linktoken_secret_ok(secrets[i]) || tag(secrets[i], raw, body, want) < 0)
            continue;
        if (CRYPTO_memcmp(want, raw + body, LINKTOKEN_TAG_LEN) == 0)
            found = (int)i;
    }
    if (found < 0)
        return found;
    /* signed by us, so well formed; checked all the same */
    if (!id_ok((const char *)raw + 2, idn))
        return -EINVAL;
    out->kind = (char)raw[0];
    memcpy(out->message_id, raw + 2, idn);
    out->message_id[idn] = '\0';
    out->data_len = body - 2 - idn;
    memcpy(out->data, raw + 2 + idn, out->data_len);
    out->data[out->data_len] = '\0';
    return found;
}
