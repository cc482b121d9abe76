/* dkim: DKIM signatures (RFC 6376) for outgoing messages.
 *
 * rsa-sha256 (RSA keys of 1024 bits and more; 2048 recommended) and
 * ed25519-sha256 (RFC 8463), relaxed/relaxed canonicalisation. A key is
 * loaded once and then signs any number of messages, from any number of
 * threads at once (a key is never modified after loading). Pure apart
 * from dkim_key_load_file: no logging, and key material is never written
 * into an error message. */
#ifndef RELANCE_DKIM_H
#define RELANCE_DKIM_H

#include <stddef.h>
#include <stdint.h>

struct dkim_key;

enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

/* Parses a PEM private key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE
 * KEY"; not encrypted) from len bytes of pem. On success *out is a new key
 * (free with dkim_key_free). Returns 0, or -EINVAL with a reason in err
 * ("not an RSA or Ed25519 private key", "RSA key has 512 bits; ..."). */
int dkim_key_load_pem(const char *pem, size_t len, struct dkim_key **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads the PEM file at path (the only I/O here) and parses it as
 * dkim_key_load_pem does; the file's bytes are wiped from memory after
 * use. Returns 0, -errno when the file cannot be read, or -EINVAL. */
int dkim_key_load_file(const char *path, struct dkim_key **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void dkim_key_free(struct dkim_key *key);

enum dkim_alg dkim_key_alg(const struct dkim_key *key);

/* The TXT record value to publish at <selector>._domainkey.<domain>:
 * "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or "v=DKIM1;
 * k=ed25519; p=<base64 raw 32-byte key>". *out is malloc'd. Returns 0 or
 * -ENOMEM / -EINVAL. */
int dkim_key_record(const struct dkim_key *key, char **out) __attribute__((warn_unused_result));

/* Signs the message (len bytes of RFC 5322 text; CRLF line ends, a bare
 * LF is read as CRLF) for d=domain and s=selector with t=timestamp.
 * Signs From, To, Subject, Date, Message-ID, List-Unsubscribe, List-Unsubscribe-Post,
 * In-Reply-To, References, MIME-Version, Content-Type and
 * Content-Transfer-Encoding — each instance present, plus one more, so a
 * header of those names added later breaks the signature. From must be
 * present. *header_out is the malloc'd "DKIM-Signature: ...\r\n" (folded,
 * ending in CRLF) to put in front of the message. Returns 0, -EINVAL
 * (bad domain or selector, no From) or -ENOMEM. */
int dkim_sign(const struct dkim_key *key, const char *domain, const char *selector, const char *message,
              size_t len, int64_t timestamp, char **header_out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Relaxed canonical form (RFC 6376 3.4.2) of one header field, given as
 * it appears in the message (name, colon, value, folded lines; with or
 * without its final line end). *out is malloc'd, "name:value\r\n".
 * Returns 0 or -ENOMEM. Exposed for tests. */
int dkim_header_relax(const char *field, size_t len, char **out) __attribute__((warn_unused_result));

/* Relaxed canonical form (RFC 6376 3.4.4) of a body. *out is malloc'd,
 * *out_len its length. Returns 0 or -ENOMEM. Exposed for tests. */
int dkim_body_relax(const char *body, size_t len, char **out, size_t *out_len) __attribute__((warn_unused_result));

/* The bh= value: base64 of SHA-256 of the relaxed body, into out (at
 * least 45 bytes). Returns 0 or -ENOMEM. */
int dkim_body_hash(const char *body, size_t len, char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
