/* whsig: signing webhook requests by the Standard Webhooks scheme (see
 * whsig.h), with OpenSSL's HMAC and base64. The key bytes of a secret are
 * wiped once used. */
#include "whsig.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

#define PREFIX "whsec_"
#define PREFIX_LEN 6
#define KEY_MIN 24
#define KEY_MAX 64

int whsig_secret_format(const unsigned char *key, size_t n, char *out, size_t outlen)
{
    if (n < KEY_MIN || n > KEY_MAX || outlen < PREFIX_LEN + 4 * ((n + 2) / 3) + 1)
        return -1;
    memcpy(out, PREFIX, PREFIX_LEN);
    EVP_EncodeBlock((unsigned char *)out + PREFIX_LEN, key, (int)n);
    return 0;
}

/* The key bytes of secret into key; their number, or -1. */
static int secret_key(const char *secret, unsigned char key[KEY_MAX + 3])
{
    if (strncmp(secret, PREFIX, PREFIX_LEN) != 0)
        return -1;
    const char *b64 = secret + PREFIX_LEN;
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len > 4 * ((KEY_MAX + 2) / 3))
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = b64[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '/' || (c == '=' && i >= len - 2);
        if (!ok || (b64[i] == '=' && i + 1 < len && b64[i + 1] != '='))
            return -1;
    }
    int n = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding's bytes as zeros */
    n -= (b64[len - 1] == '=') + (b64[len - 2] == '=');
    if (n < KEY_MIN || n > KEY_MAX) {
        OPENSSL_cleanse(key, KEY_MAX + 3);
        return -1;
    }
    return n;
}

int whsig_secret_valid(const char *s)
{
    unsigned char key[KEY_MAX + 3];
    int n = s ? secret_key(s, key) : -1;
    OPENSSL_cleanse(key, sizeof key);
    return n > 0;
}

/* HMAC's implementation, fetched once: a fetch looks it up in OpenSSL's
 * store under a lock, which cost more than the signing of a small body. */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

int whsig_sign(const char *secret, const char *id, const char *timestamp, const char *body, size_t body_len,
               char *out, size_t outlen)
{
    unsigned char key[KEY_MAX + 3], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n = secret_key(secret, key);
    if (n < 0 || outlen < WHSIG_SIGNATURE_MAX)
        return -1;
    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *ctx = hmac_impl ? EVP_MAC_CTX_new(hmac_impl) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_END};
    size_t got = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, (size_t)n, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
             EVP_MAC_final(ctx, mac, &got, sizeof mac) == 1;
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof key);
    mac_len = (unsigned int)got;
    if (!ok || mac_len != 32)
        return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
    return 0;
}
