/* signature - webhook signatures: Stripe, Standard Webhooks and Adyen (see validate.h).
 *
 * Secrets. A provider's live secrets come from a file (one a line, '#'
 * comments, optional " expires=<unix seconds>") and/or an environment
 * variable (whitespace or comma separated, no expiry). Stripe signs with the
 * secret string itself as the HMAC key; Standard Webhooks secrets are
 * "whsec_<base64 key>" and the decoded bytes are the key, so they are
 * decoded (and a bad one refused) at load time, not on every request;
 * Adyen HMAC keys are hex, and their decoded bytes are the key too.
 * Rotation: several secrets may be live at once, each with its own expiry,
 * and sigkeys_reload re-reads the file when it changed on disk (mtime with
 * nanoseconds, size, inode), keeping the old set if the new file is bad.
 *
 * Verification. The header is parsed strictly and bounded (4 KiB) first,
 * then the timestamp is checked against the tolerance (cheap, and a stale
 * replay never reaches the HMAC), then every v1 is compared against every
 * live secret with CRYPTO_memcmp, without stopping at the first match, so
 * the time taken says nothing about which secret or which byte matched.
 *
 * SECURITY: secrets live only in sigkeys_t (and briefly in stack buffers
 * that are wiped), are wiped with OPENSSL_cleanse on destroy and reload, and
 * never appear in err or reason strings: those name the file, the line
 * number and what is wrong, never the text of a secret. Reasons never echo
 * header values either (they are attacker-chosen bytes).
 *
 * Not thread-safe against sigkeys_reload: the validate stage verifies and
 * reloads from one thread.
 */
#include "hex.h"
#include "validate.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_MAX_HEADER_BYTES 4096 /* a longer signature header is malformed */
#define SIG_MAX_V1 32             /* v1 entries considered per header */
#define SIG_MAX_ID_BYTES (WH_ID_MAX - 1)
#define SIG_MAX_TS_DIGITS 18 /* fits int64_t with room for arithmetic */
#define SIG_MAC_BYTES 32     /* HMAC-SHA256 */
#define SIG_MAX_FILE_BYTES (64 * 1024)
#define SIG_MAX_LINE_BYTES 1024
#define SIG_WHSEC_PREFIX "whsec_"

typedef struct {
    unsigned char key[SIG_MAX_SECRET_BYTES];
    size_t len;
    int64_t expires; /* unix seconds; 0: never */
} s_secret_t;

typedef struct {
    s_secret_t secrets[SIG_MAX_SECRETS];
    size_t n;
} s_set_t;

struct sigkeys_t {
    sig_scheme_t scheme;
    char *file;     /* NULL: no file */
    char *env_name; /* NULL: no variable */
    s_set_t set;
    struct stat st; /* of the file as last read (valid when file) */
};

/* s_fmt - write a one-line reason/err if the caller gave a buffer; the
 * callers' texts never contain secrets or raw header bytes */
__attribute__((format(printf, 3, 4))) static void s_fmt(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* s_set_wipe - forget a set of secrets without leaving them in memory */
static void s_set_wipe(s_set_t *set)
{
    OPENSSL_cleanse(set, sizeof *set);
}

/* s_parse_decimal - strict unsigned decimal (1..18 digits, nothing else):
 * timestamps and expiries must not be "12abc", "+5" or " 7" */
static int s_parse_decimal(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > SIG_MAX_TS_DIGITS)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* s_hex_decode_mac - exactly 64 hex digits to 32 bytes: comparing bytes
 * rather than text makes upper- and lower-case hex equal */
static int s_hex_decode_mac(const char *s, size_t n, unsigned char out[SIG_MAC_BYTES])
{
    size_t len;
    return n == 2 * SIG_MAC_BYTES && hex_decode(s, n, out, SIG_MAC_BYTES, &len) == 0 ? 0 : -1;
}

/* s_b64_decode - strict standard base64 (RFC 4648 alphabet, '=' only as the
 * last one or two characters, padding optional) into out. EVP_DecodeBlock
 * alone is not enough: it counts padding as zero bytes in its result and
 * trims whitespace, so the alphabet and padding are checked here and the
 * padding subtracted. -1 if invalid or longer than outcap. */
static int s_b64_decode(const char *in, size_t n, unsigned char *out, size_t outcap, size_t *outlen)
{
    char padded[SIG_MAX_LINE_BYTES + 4];
    unsigned char raw[(SIG_MAX_LINE_BYTES + 4) / 4 * 3];
    if (n == 0 || n > SIG_MAX_LINE_BYTES)
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '=') {
            pad++;
            continue;
        }
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (pad || !(alpha || c == '+' || c == '/'))
            return -1; /* '=' in the middle, or not base64 */
    }
    if (pad > 2 || (pad && n % 4 != 0) || n % 4 == 1)
        return -1;
    memcpy(padded, in, n);
    size_t total = n;
    while (total % 4)
        padded[total++] = '=', pad++;
    int got = EVP_DecodeBlock(raw, (const unsigned char *) padded, (int) total);
    int rc = -1;
    if (got >= 0 && (size_t) got >= pad && (size_t) got - pad <= outcap && (size_t) got > pad) {
        *outlen = (size_t) got - pad;
        memcpy(out, raw, *outlen);
        rc = 0;
    }
    OPENSSL_cleanse(padded, sizeof padded);
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

/* s_mac_ctx - an HMAC context for one verification or signing: the MAC
 * implementation is fetched once per call, not once per secret */
static EVP_MAC_CTX *s_mac_ctx(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    return ctx;
}

/* s_hmac_sha256 - HMAC-SHA256 (re-keying ctx) over pieces fed in order, so
 * the signed payload "<t>.<body>" is never copied into one buffer */
static int s_hmac_sha256(EVP_MAC_CTX *ctx, const unsigned char *key, size_t keylen, const void *const parts[],
                         const size_t lens[], size_t nparts, unsigned char out[SIG_MAC_BYTES])
{
    assert(keylen > 0);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, keylen, params);
    for (size_t i = 0; ok && i < nparts; i++)
        ok = lens[i] == 0 || EVP_MAC_update(ctx, parts[i], lens[i]);
    ok = ok && EVP_MAC_final(ctx, out, &outl, SIG_MAC_BYTES) && outl == SIG_MAC_BYTES;
    return ok ? 0 : -1;
}

/* s_add_secret - decode one secret token into the set; err names where it
 * came from ("where"), never the secret */
static int s_add_secret(s_set_t *set, sig_scheme_t scheme, const char *tok, size_t n, int64_t expires,
                        const char *where, char *err, size_t errlen)
{
    if (set->n >= SIG_MAX_SECRETS) {
        s_fmt(err, errlen, "%s: more than %d secrets", where, SIG_MAX_SECRETS);
        return -1;
    }
    s_secret_t *s = &set->secrets[set->n];
    if (scheme == SIG_STANDARD) {
        size_t plen = strlen(SIG_WHSEC_PREFIX);
        if (n <= plen || memcmp(tok, SIG_WHSEC_PREFIX, plen) != 0) {
            s_fmt(err, errlen, "%s: a Standard Webhooks secret must be whsec_<base64 key>", where);
            return -1;
        }
        if (s_b64_decode(tok + plen, n - plen, s->key, sizeof s->key, &s->len) < 0) {
            s_fmt(err, errlen, "%s: the key after whsec_ is not valid base64 of 1..%d bytes", where,
                  SIG_MAX_SECRET_BYTES);
            return -1;
        }
    } else if (scheme == SIG_ADYEN) {
        if (hex_decode(tok, n, s->key, sizeof s->key, &s->len) < 0) {
            OPENSSL_cleanse(s, sizeof *s);
            s_fmt(err, errlen, "%s: an Adyen HMAC key must be an even number of hex digits, at most %d", where,
                  2 * SIG_MAX_SECRET_BYTES);
            return -1;
        }
    } else {
        if (n == 0 || n > SIG_MAX_SECRET_BYTES) {
            s_fmt(err, errlen, "%s: a secret must be 1..%d bytes", where, SIG_MAX_SECRET_BYTES);
            return -1;
        }
        memcpy(s->key, tok, n);
        s->len = n;
    }
    s->expires = expires;
    set->n++;
    return 0;
}

/* s_parse_line - one line of a secrets file: "<secret>[ expires=<unix>]",
 * blank, or a '#' comment. Nothing else may follow the secret: a typo in
 * "expires" must not silently make a secret immortal. */
static int s_parse_line(s_set_t *set, sig_scheme_t scheme, char *line, const char *path, size_t lineno, char *err,
                        size_t errlen)
{
    char where[300];
    snprintf(where, sizeof where, "secrets file %.200s line %zu", path, lineno);
    size_t n = strlen(line);
    while (n && isspace((unsigned char) line[n - 1]))
        n--;
    line[n] = '\0';
    char *p = line;
    while (*p && isspace((unsigned char) *p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    char *tok = p;
    while (*p && !isspace((unsigned char) *p))
        p++;
    size_t toklen = (size_t) (p - tok);
    while (*p && isspace((unsigned char) *p))
        p++;
    int64_t expires = 0;
    if (*p) {
        size_t klen = strlen("expires=");
        if (strncmp(p, "expires=", klen) != 0) {
            s_fmt(err, errlen, "%s: unexpected text after the secret (only \" expires=<unix seconds>\")", where);
            return -1;
        }
        if (s_parse_decimal(p + klen, strlen(p + klen), &expires) < 0 || expires == 0) {
            s_fmt(err, errlen, "%s: expires= is not a positive decimal unix time", where);
            return -1;
        }
    }
    return s_add_secret(set, scheme, tok, toklen, expires, where, err, errlen);
}

/* s_read_file - the secrets of a file into set, and the stat of exactly
 * what was read (fstat of the open descriptor, not a second lookup) */
static int s_read_file(s_set_t *set, sig_scheme_t scheme, const char *path, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s_fmt(err, errlen, "secrets file %.200s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_size > SIG_MAX_FILE_BYTES) {
        s_fmt(err, errlen, "secrets file %.200s: not a regular file of at most %d bytes", path, SIG_MAX_FILE_BYTES);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        s_fmt(err, errlen, "secrets file %.200s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    char line[SIG_MAX_LINE_BYTES + 2];
    size_t lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n' && !feof(f)) {
            s_fmt(err, errlen, "secrets file %.200s line %zu: longer than %d bytes", path, lineno, SIG_MAX_LINE_BYTES);
            rc = -1;
            break;
        }
        rc = s_parse_line(set, scheme, line, path, lineno, err, errlen);
    }
    if (rc == 0 && ferror(f)) {
        s_fmt(err, errlen, "secrets file %.200s: read error", path);
        rc = -1;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    return rc;
}

/* s_read_env - the secrets of an environment variable (absent or empty is
 * no secret, not an error: the file may hold them) */
static int s_read_env(s_set_t *set, sig_scheme_t scheme, const char *name, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (!v)
        return 0;
    char where[200];
    size_t index = 0;
    for (const char *p = v; *p;) {
        while (*p && (isspace((unsigned char) *p) || *p == ','))
            p++;
        const char *tok = p;
        while (*p && !(isspace((unsigned char) *p) || *p == ','))
            p++;
        if (p == tok)
            break;
        index++;
        snprintf(where, sizeof where, "environment variable %.100s secret %zu", name, index);
        if (s_add_secret(set, scheme, tok, (size_t) (p - tok), 0, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* s_read_all - the whole set from file then environment, into a fresh set
 * so a failed reload leaves the live one untouched */
static int s_read_all(const sigkeys_t *self, s_set_t *set, struct stat *st, char *err, size_t errlen)
{
    memset(set, 0, sizeof *set);
    int rc = 0;
    if (self->file)
        rc = s_read_file(set, self->scheme, self->file, st, err, errlen);
    if (rc == 0 && self->env_name)
        rc = s_read_env(set, self->scheme, self->env_name, err, errlen);
    if (rc < 0)
        s_set_wipe(set);
    return rc;
}

/* sigkeys_load - see validate.h */
sigkeys_t *sigkeys_load(sig_scheme_t scheme, const char *file, const char *env_name, char *err, size_t errlen)
{
    assert(scheme == SIG_STRIPE || scheme == SIG_STANDARD || scheme == SIG_ADYEN);
    sigkeys_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_fmt(err, errlen, "out of memory");
        return NULL;
    }
    self->scheme = scheme;
    if ((file && *file && !(self->file = strdup(file))) ||
        (env_name && *env_name && !(self->env_name = strdup(env_name)))) {
        s_fmt(err, errlen, "out of memory");
        sigkeys_destroy(&self);
        return NULL;
    }
    if (s_read_all(self, &self->set, &self->st, err, errlen) < 0) {
        sigkeys_destroy(&self);
        return NULL;
    }
    return self;
}

/* sigkeys_destroy - wipe the secrets before the memory goes back */
void sigkeys_destroy(sigkeys_t **self_p)
{
    assert(self_p);
    sigkeys_t *self = *self_p;
    if (!self)
        return;
    s_set_wipe(&self->set);
    free(self->file);
    free(self->env_name);
    free(self);
    *self_p = NULL;
}

/* s_same_file - whether the file on disk is the one last read: a rewrite in
 * place changes mtime or size, a rename into place changes the inode */
static bool s_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev;
}

/* sigkeys_reload - see validate.h */
int sigkeys_reload(sigkeys_t *self, char *err, size_t errlen)
{
    assert(self);
    if (!self->file)
        return 0;
    struct stat now;
    if (stat(self->file, &now) < 0) {
        s_fmt(err, errlen, "secrets file %.200s: %s (old secrets kept)", self->file, strerror(errno));
        return -1;
    }
    if (s_same_file(&now, &self->st))
        return 0;
    s_set_t fresh;
    struct stat st;
    if (s_read_all(self, &fresh, &st, err, errlen) < 0)
        return -1;
    s_set_wipe(&self->set);
    self->set = fresh;
    self->st = st;
    s_set_wipe(&fresh);
    return 1;
}

/* s_is_live - a secret verifies until its expiry second */
static bool s_is_live(const s_secret_t *s, int64_t now)
{
    return s->expires == 0 || now < s->expires;
}

/* sigkeys_live - see validate.h */
size_t sigkeys_live(const sigkeys_t *self, int64_t now)
{
    if (!self)
        return 0;
    size_t live = 0;
    for (size_t i = 0; i < self->set.n; i++)
        live += s_is_live(&self->set.secrets[i], now);
    return live;
}

/* s_check_time - the tolerance window, checked before any HMAC: a replay
 * of an old delivery or a clock far ahead is refused on the timestamp */
static sig_verdict_t s_check_time(const char *who, int64_t t, int64_t now, int64_t tolerance_s, char *reason,
                                  size_t reasonlen)
{
    int64_t age;
    if (__builtin_sub_overflow(now, t, &age)) {
        s_fmt(reason, reasonlen, "%s signature: timestamp %lld is out of range", who, (long long) t);
        return SIG_MALFORMED;
    }
    if (age > tolerance_s) {
        s_fmt(reason, reasonlen, "%s signature: timestamp %lld is %lld s old (tolerance %lld s)", who, (long long) t,
              (long long) age, (long long) tolerance_s);
        return SIG_STALE;
    }
    if (age < -tolerance_s) {
        s_fmt(reason, reasonlen, "%s signature: timestamp %lld is %lld s in the future (tolerance %lld s)", who,
              (long long) t, (long long) -age, (long long) tolerance_s);
        return SIG_FUTURE;
    }
    return SIG_OK;
}

/* s_match - compare every candidate MAC against every live secret's MAC of
 * the payload, without an early exit; 1-based indexes of the first match */
static sig_verdict_t s_match(const sigkeys_t *keys, const void *const parts[], const size_t lens[], size_t nparts,
                             unsigned char cand[][SIG_MAC_BYTES], size_t ncand, int64_t now, size_t *which_sig,
                             size_t *which_key, size_t *live)
{
    *which_sig = *which_key = *live = 0;
    unsigned char mac[SIG_MAC_BYTES];
    EVP_MAC_CTX *ctx = s_mac_ctx();
    for (size_t k = 0; k < keys->set.n; k++) {
        const s_secret_t *s = &keys->set.secrets[k];
        if (!s_is_live(s, now))
            continue;
        ++*live;
        if (s_hmac_sha256(ctx, s->key, s->len, parts, lens, nparts, mac) < 0)
            continue; /* an OpenSSL failure never verifies */
        for (size_t i = 0; i < ncand; i++) {
            if (CRYPTO_memcmp(mac, cand[i], SIG_MAC_BYTES) == 0 && !*which_sig) {
                *which_sig = i + 1;
                *which_key = k + 1;
            }
        }
    }
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(mac, sizeof mac);
    return *which_sig ? SIG_OK : SIG_MISMATCH;
}

/* s_match_reason - the verdict of the comparison in words */
static void s_match_reason(const char *who, sig_verdict_t v, size_t ncand, size_t which_sig, size_t which_key,
                           size_t live, char *reason, size_t reasonlen)
{
    if (v == SIG_OK)
        s_fmt(reason, reasonlen, "%s signature: v1 #%zu of %zu matches secret #%zu", who, which_sig, ncand, which_key);
    else
        s_fmt(reason, reasonlen, "%s signature: no v1 signature matches any of %zu live secret%s", who, live,
              live == 1 ? "" : "s");
}

/* s_no_secrets - fail closed, and say whether secrets exist but expired */
static sig_verdict_t s_no_secrets(const sigkeys_t *keys, const char *who, char *reason, size_t reasonlen)
{
    size_t n = keys ? keys->set.n : 0;
    if (n)
        s_fmt(reason, reasonlen, "%s signature: no live secret (all %zu expired)", who, n);
    else
        s_fmt(reason, reasonlen, "%s signature: no secret configured", who);
    return SIG_NO_SECRETS;
}

/* s_trim - a [b, e) slice without surrounding spaces and tabs */
static void s_trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        ++*b;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        --*e;
}

/* sig_verify_stripe - see validate.h */
sig_verdict_t sig_verify_stripe(const sigkeys_t *keys, const char *header, const void *body, size_t len, int64_t now,
                                int64_t tolerance_s, char *reason, size_t reasonlen)
{
    static const char who[] = "stripe";
    assert(tolerance_s >= 0);
    assert(body || len == 0);
    if (!header || !*header) {
        s_fmt(reason, reasonlen, "stripe signature: missing Stripe-Signature header");
        return SIG_MISSING;
    }
    size_t hlen = strnlen(header, SIG_MAX_HEADER_BYTES + 1);
    if (hlen > SIG_MAX_HEADER_BYTES) {
        s_fmt(reason, reasonlen, "stripe signature: header longer than %d bytes", SIG_MAX_HEADER_BYTES);
        return SIG_MALFORMED;
    }
    unsigned char cand[SIG_MAX_V1][SIG_MAC_BYTES];
    size_t ncand = 0, nt = 0, element = 0;
    int64_t t = 0;
    const char *t_text = NULL;
    size_t t_len = 0;
    for (const char *p = header, *end = header + hlen; p <= end; p++) {
        const char *b = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        element++;
        s_trim(&b, &e);
        const char *eq = memchr(b, '=', (size_t) (e - b));
        if (!eq || eq == b) {
            s_fmt(reason, reasonlen, "stripe signature: element %zu is not key=value", element);
            return SIG_MALFORMED;
        }
        size_t klen = (size_t) (eq - b), vlen = (size_t) (e - eq - 1);
        if (klen == 1 && b[0] == 't') {
            /* a header sent twice arrives merged (RFC 9110 §5.3): the same t
             * again is one timestamp; two different ones are ambiguous */
            if (s_parse_decimal(eq + 1, vlen, &t) < 0) {
                s_fmt(reason, reasonlen, "stripe signature: t is not a decimal unix time");
                return SIG_MALFORMED;
            }
            if (nt++ && (vlen != t_len || memcmp(eq + 1, t_text, vlen) != 0)) {
                s_fmt(reason, reasonlen, "stripe signature: two different t= values");
                return SIG_MALFORMED;
            }
            t_text = eq + 1;
            t_len = vlen;
        } else if (klen == 2 && b[0] == 'v' && b[1] == '1') {
            if (ncand == SIG_MAX_V1) {
                s_fmt(reason, reasonlen, "stripe signature: more than %d v1 signatures", SIG_MAX_V1);
                return SIG_MALFORMED;
            }
            if (s_hex_decode_mac(eq + 1, vlen, cand[ncand]) < 0) {
                s_fmt(reason, reasonlen, "stripe signature: v1 #%zu is not 64 hex digits", ncand + 1);
                return SIG_MALFORMED;
            }
            ncand++;
        } /* other schemes (v0, ...) are not ours to judge */
    }
    if (!nt) {
        s_fmt(reason, reasonlen, "stripe signature: no t= timestamp");
        return SIG_MALFORMED;
    }
    if (!ncand) {
        s_fmt(reason, reasonlen, "stripe signature: no v1 signature");
        return SIG_MALFORMED;
    }
    sig_verdict_t v = s_check_time(who, t, now, tolerance_s, reason, reasonlen);
    if (v != SIG_OK)
        return v;
    if (sigkeys_live(keys, now) == 0)
        return s_no_secrets(keys, who, reason, reasonlen);
    /* the signed payload is the t value exactly as sent, a dot, the body */
    const void *parts[] = {t_text, ".", body};
    const size_t lens[] = {t_len, 1, len};
    size_t which_sig, which_key, live;
    v = s_match(keys, parts, lens, 3, cand, ncand, now, &which_sig, &which_key, &live);
    s_match_reason(who, v, ncand, which_sig, which_key, live, reason, reasonlen);
    return v;
}

/* s_check_webhook_id - non-empty, bounded, printable without spaces: it is
 * both signed and the event's identity downstream */
static sig_verdict_t s_check_webhook_id(const char *id, char *reason, size_t reasonlen)
{
    size_t n = strnlen(id, SIG_MAX_ID_BYTES + 1);
    if (n > SIG_MAX_ID_BYTES) {
        s_fmt(reason, reasonlen, "standard signature: webhook-id longer than %d bytes", SIG_MAX_ID_BYTES);
        return SIG_MALFORMED;
    }
    for (size_t i = 0; i < n; i++) {
        if (id[i] <= ' ' || id[i] > '~') {
            s_fmt(reason, reasonlen, "standard signature: webhook-id has a space or non-printable byte");
            return SIG_MALFORMED;
        }
    }
    return SIG_OK;
}

/* sig_verify_standard - see validate.h */
sig_verdict_t sig_verify_standard(const sigkeys_t *keys, const char *id, const char *timestamp, const char *sig_header,
                                  const void *body, size_t len, int64_t now, int64_t tolerance_s, char *reason,
                                  size_t reasonlen)
{
    static const char who[] = "standard";
    assert(tolerance_s >= 0);
    assert(body || len == 0);
    const char *missing = !id || !*id                   ? "webhook-id"
                          : !timestamp || !*timestamp   ? "webhook-timestamp"
                          : !sig_header || !*sig_header ? "webhook-signature"
                                                        : NULL;
    if (missing) {
        s_fmt(reason, reasonlen, "standard signature: missing %s header", missing);
        return SIG_MISSING;
    }
    if (s_check_webhook_id(id, reason, reasonlen) != SIG_OK)
        return SIG_MALFORMED;
    int64_t t;
    size_t tslen = strnlen(timestamp, SIG_MAX_TS_DIGITS + 1);
    if (s_parse_decimal(timestamp, tslen, &t) < 0) {
        s_fmt(reason, reasonlen, "standard signature: webhook-timestamp is not a decimal unix time");
        return SIG_MALFORMED;
    }
    size_t hlen = strnlen(sig_header, SIG_MAX_HEADER_BYTES + 1);
    if (hlen > SIG_MAX_HEADER_BYTES) {
        s_fmt(reason, reasonlen, "standard signature: webhook-signature longer than %d bytes", SIG_MAX_HEADER_BYTES);
        return SIG_MALFORMED;
    }
    unsigned char cand[SIG_MAX_V1][SIG_MAC_BYTES];
    size_t ncand = 0, entry = 0;
    for (const char *p = sig_header, *end = sig_header + hlen; p < end;) {
        while (p < end && *p == ' ')
            p++;
        const char *b = p;
        while (p < end && *p != ' ')
            p++;
        if (p == b)
            break;
        entry++;
        /* a header sent twice arrives merged with ", " (RFC 9110 §5.3):
         * "v1,A, v1,B"; base64 has no comma, so a trailing one is the join */
        const char *e = p;
        if (e - b > 1 && e[-1] == ',' && memchr(b, ',', (size_t) (e - b - 1)))
            e--;
        const char *comma = memchr(b, ',', (size_t) (e - b));
        if (!comma || comma == b) {
            s_fmt(reason, reasonlen, "standard signature: entry %zu is not <version>,<signature>", entry);
            return SIG_MALFORMED;
        }
        if (comma - b != 2 || b[0] != 'v' || b[1] != '1')
            continue; /* v1a (asymmetric) and future versions: not ours */
        if (ncand == SIG_MAX_V1) {
            s_fmt(reason, reasonlen, "standard signature: more than %d v1 signatures", SIG_MAX_V1);
            return SIG_MALFORMED;
        }
        size_t got = 0;
        if (s_b64_decode(comma + 1, (size_t) (e - comma - 1), cand[ncand], SIG_MAC_BYTES, &got) < 0 ||
            got != SIG_MAC_BYTES) {
            s_fmt(reason, reasonlen, "standard signature: v1 #%zu is not base64 of 32 bytes", ncand + 1);
            return SIG_MALFORMED;
        }
        ncand++;
    }
    if (!ncand) {
        s_fmt(reason, reasonlen, "standard signature: no v1 signature");
        return SIG_MALFORMED;
    }
    sig_verdict_t v = s_check_time(who, t, now, tolerance_s, reason, reasonlen);
    if (v != SIG_OK)
        return v;
    if (sigkeys_live(keys, now) == 0)
        return s_no_secrets(keys, who, reason, reasonlen);
    const void *parts[] = {id, ".", timestamp, ".", body};
    const size_t lens[] = {strlen(id), 1, tslen, 1, len};
    size_t which_sig, which_key, live;
    v = s_match(keys, parts, lens, 5, cand, ncand, now, &which_sig, &which_key, &live);
    s_match_reason(who, v, ncand, which_sig, which_key, live, reason, reasonlen);
    return v;
}

/* sig_verify_adyen - see validate.h */
sig_verdict_t sig_verify_adyen(const sigkeys_t *keys, const char *signing, size_t len, const char *hmac_b64,
                               int64_t now, char *reason, size_t reasonlen)
{
    static const char who[] = "adyen";
    assert(signing || len == 0);
    assert(keys);
    if (!hmac_b64 || !*hmac_b64) {
        s_fmt(reason, reasonlen, "adyen signature: no additionalData.hmacSignature");
        return SIG_MISSING;
    }
    unsigned char cand[1][SIG_MAC_BYTES];
    size_t got = 0, blen = strnlen(hmac_b64, SIG_MAX_LINE_BYTES + 1);
    if (s_b64_decode(hmac_b64, blen, cand[0], SIG_MAC_BYTES, &got) < 0 || got != SIG_MAC_BYTES) {
        s_fmt(reason, reasonlen, "adyen signature: hmacSignature is not base64 of 32 bytes");
        return SIG_MALFORMED;
    }
    if (sigkeys_live(keys, now) == 0)
        return s_no_secrets(keys, who, reason, reasonlen);
    const void *parts[] = {signing};
    const size_t lens[] = {len};
    size_t which_sig, which_key, live;
    sig_verdict_t v = s_match(keys, parts, lens, 1, cand, 1, now, &which_sig, &which_key, &live);
    if (v == SIG_OK)
        s_fmt(reason, reasonlen, "adyen signature: hmacSignature matches key #%zu", which_key);
    else
        s_fmt(reason, reasonlen, "adyen signature: hmacSignature matches none of %zu live key%s", live,
              live == 1 ? "" : "s");
    return v;
}

/* sig_verdict_name - see validate.h */
const char *sig_verdict_name(sig_verdict_t v)
{
    switch (v) {
    case SIG_OK:
        return "ok";
    case SIG_MISSING:
        return "missing";
    case SIG_MALFORMED:
        return "malformed";
    case SIG_STALE:
        return "stale";
    case SIG_FUTURE:
        return "future";
    case SIG_MISMATCH:
        return "mismatch";
    case SIG_NO_SECRETS:
        return "no_secrets";
    }
    return "unknown";
}

/* sig_sign_stripe - see validate.h; the key is the secret string itself */
void sig_sign_stripe(const char *secret, int64_t t, const void *body, size_t len, char out_hex[65])
{
    assert(secret && *secret);
    char ts[24];
    int tn = snprintf(ts, sizeof ts, "%lld", (long long) t);
    unsigned char mac[SIG_MAC_BYTES] = {0};
    const void *parts[] = {ts, ".", body};
    const size_t lens[] = {(size_t) tn, 1, len};
    EVP_MAC_CTX *ctx = s_mac_ctx();
    int rc = s_hmac_sha256(ctx, (const unsigned char *) secret, strlen(secret), parts, lens, 3, mac);
    EVP_MAC_CTX_free(ctx);
    assert(rc == 0);
    (void) rc;
    hex_encode(mac, SIG_MAC_BYTES, out_hex);
}

/* s_sign_b64 - the HMAC-SHA256 of parts under a kind's secret (decoded
 * as s_add_secret reads it), base64 into out_b64 (44 characters and a
 * NUL); -1 if the secret is not one */
static int s_sign_b64(sig_scheme_t kind, const char *secret, const void *const *parts, const size_t *lens, size_t n,
                      char out_b64[64])
{
    s_set_t set;
    memset(&set, 0, sizeof set);
    if (!secret || s_add_secret(&set, kind, secret, strlen(secret), 0, "secret", NULL, 0) < 0)
        return -1;
    unsigned char mac[SIG_MAC_BYTES];
    EVP_MAC_CTX *ctx = s_mac_ctx();
    int rc = s_hmac_sha256(ctx, set.secrets[0].key, set.secrets[0].len, parts, lens, n, mac);
    EVP_MAC_CTX_free(ctx);
    s_set_wipe(&set);
    if (rc < 0)
        return -1;
    EVP_EncodeBlock((unsigned char *) out_b64, mac, SIG_MAC_BYTES);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

/* sig_sign_standard - see validate.h */
int sig_sign_standard(const char *secret, const char *id, const char *timestamp, const void *body, size_t len,
                      char out_b64[64])
{
    const void *parts[] = {id, ".", timestamp, ".", body};
    const size_t lens[] = {strlen(id), 1, strlen(timestamp), 1, len};
    return s_sign_b64(SIG_STANDARD, secret, parts, lens, 5, out_b64);
}

/* sig_sign_adyen - see validate.h */
int sig_sign_adyen(const char *hex_key, const char *signing, size_t len, char out_b64[64])
{
    assert(signing || len == 0);
    assert(out_b64);
    const void *parts[] = {signing};
    const size_t lens[] = {len};
    return s_sign_b64(SIG_ADYEN, hex_key, parts, lens, 1, out_b64);
}
