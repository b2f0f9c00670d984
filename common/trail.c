/* trail - the audit trail's hash chain, checkpoints and verification.
 * Format and contracts in trail.h. */
#include "trail.h"
#include "hex.h"
#include "jsonw.h"
#include "utc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAIL_MAX_CHECKPOINTS (1u << 20)
#define TRAIL_CP_LINE_MAX 512

struct trail_key_t {
    EVP_PKEY *pkey;
    bool is_private;
};

/* s_put64 / s_get64 - little-endian integers */
static void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}
static uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* trail_hex - see trail.h */
void trail_hex(const unsigned char hash[TRAIL_HASH_BYTES], char out[2 * TRAIL_HASH_BYTES + 1])
{
    hex_encode(hash, TRAIL_HASH_BYTES, out);
}

/* s_unhex - 64 hex digits to a hash; -1 if not exactly that */
static int s_unhex(const char *hex, unsigned char out[TRAIL_HASH_BYTES])
{
    if (strlen(hex) != 2 * TRAIL_HASH_BYTES)
        return -1;
    for (int i = 0; i < 2 * TRAIL_HASH_BYTES; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char) (v << 4);
        else
            out[i / 2] |= (unsigned char) v;
    }
    return 0;
}

/* ---------------------------------------------------------------- meta */

/* s_kv_nonempty - "key":"value" unless value is empty, or not text that
 * JSON can carry (jansson's json_string refused such a value: the meta
 * never had the member) */
static void s_kv_nonempty(jsonw_t *w, const char *key, const char *value)
{
    if (value && *value && jsonw_utf8_valid((const unsigned char *) value, strlen(value), false))
        jsonw_kv_str(w, key, value);
}

/* s_failure - was what this event records a failure or a refusal? */
static bool s_failure(const event_t *ev)
{
    char buf[64];
    switch (event_head(ev)->kind) {
    case EV_REJECTED:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_REVIEW:
    case EV_EXPIRED:
        return true;
    case EV_STEP: {
        const char *s = event_get_strbuf(ev, EK_STATUS, buf, sizeof buf);
        return strcmp(s, "failed") == 0 || strcmp(s, "error") == 0;
    }
    case EV_EXECUTED:
        return strcmp(event_get_strbuf(ev, "outcome", buf, sizeof buf), "ops_review") == 0;
    case EV_AUDIT_VERIFIED:
        return strcmp(event_get_strbuf(ev, "outcome", buf, sizeof buf), "verified") != 0;
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
    case EV_TRIAGED:
    case EV_ROUTED:
    case EV_DECISION:
    case EV_APPROVED:
    case EV_DENIED:
    case EV_RUNBOOK:
    case EV_NOTICE:
    case EV_ESCALATED:
    case EV_CLOSED:
    case EV_NONE:
    case EV_NTYPES:
        return false;
    }
    return false;
}

/* s_meta_who - the person for what people do; the PSP for what it sent; else the stage */
static void s_meta_who(const event_t *ev, char *who, size_t wholen)
{
    const event_head_t *h = event_head(ev);
    char buf[EVENT_KEY_MAX + 1];
    const char *person = event_get_strbuf(ev, EK_WHO, buf, sizeof buf);
    if (!*person)
        person = event_get_strbuf(ev, "closed_by", buf, sizeof buf);
    if (!*person && strcmp(event_get_strbuf(ev, "decided_by", buf, sizeof buf), "policy") != 0)
        person = buf;
    if (*person)
        snprintf(who, wholen, "person:%s", person);
    else if (h->kind == EV_RECEIPT)
        snprintf(who, wholen, "psp:%s", event_get_strbuf(ev, EK_ENDPOINT, buf, sizeof buf));
    else
        snprintf(who, wholen, "stage:%s", h->stage);
}

/* s_meta_what - the event type, and for runbook steps which step in which state */
static void s_meta_what(const event_t *ev, char *what, size_t whatlen)
{
    const event_head_t *h = event_head(ev);
    char buf[EVENT_KEY_MAX + 1];
    if (h->kind == EV_STEP) {
        char st[64];
        snprintf(what, whatlen, "step %s %s", event_get_strbuf(ev, "step", buf, sizeof buf),
                 event_get_strbuf(ev, EK_STATUS, st, sizeof st));
    } else if (h->kind == EV_DECISION) {
        snprintf(what, whatlen, "decision %s", event_get_strbuf(ev, EK_DECISION, buf, sizeof buf));
    } else {
        snprintf(what, whatlen, "%s", h->type);
    }
}

/* s_meta_resource - {"case","payment","payout","refund"}: what the event is about */
static void s_meta_resource(jsonw_t *w, const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    char payout[EVENT_KEY_MAX + 1], refund[EVENT_KEY_MAX + 1], payment[EVENT_KEY_MAX + 1];
    event_get_strbuf(ev, "payout_id", payout, sizeof payout);
    event_get_strbuf(ev, "refund_id", refund, sizeof refund);
    event_get_strbuf(ev, "payment_id", payment, sizeof payment);
    if (!*payout && !*refund) /* only a "ref": the case says which it is */
        event_get_strbuf(ev, "ref", strncmp(h->case_key, "refund-", 7) == 0 ? refund : payout, EVENT_KEY_MAX + 1);
    jsonw_open(w, '{');
    s_kv_nonempty(w, "case", h->case_key);
    s_kv_nonempty(w, "payment", payment);
    s_kv_nonempty(w, "payout", payout);
    s_kv_nonempty(w, "refund", refund);
    jsonw_close(w, '}');
}

/* trail_meta_json - see trail.h: written directly, its members in sorted
 * order (what json_dumps with JSON_SORT_KEYS wrote before; one tree per
 * record cost the audit stage a share of its CPU) */
char *trail_meta_json(const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    char buf[EVENT_KEY_MAX + 1], who[EVENT_KEY_MAX + 16], what[EVENT_TYPE_MAX + 2 * EVENT_KEY_MAX + 4];
    s_meta_who(ev, who, sizeof who);
    s_meta_what(ev, what, sizeof what);
    jsonw_t w;
    jsonw_init(&w);
    jsonw_open(&w, '{');
    jsonw_key(&w, "at_ms", 5);
    jsonw_int(&w, h->time_ms);
    s_kv_nonempty(&w, "cause", h->cause);
    s_kv_nonempty(&w, "event_id", h->id);
    jsonw_key(&w, "origin", 6);
    jsonw_open(&w, '{');
    const char *addr = event_get_strbuf(ev, "client_ip", buf, sizeof buf);
    if (!*addr)
        addr = event_get_strbuf(ev, EK_PEER, buf, sizeof buf);
    s_kv_nonempty(&w, "address", addr);
    s_kv_nonempty(&w, "instance", h->stage);
    s_kv_nonempty(&w, "via", event_get_strbuf(ev, "via", buf, sizeof buf)); /* the console a person came through */
    jsonw_close(&w, '}');
    s_kv_nonempty(&w, "outcome", s_failure(ev) ? "failure" : "success");
    const void *body;
    size_t blen;
    if (h->kind == EV_RECEIPT && event_get_bin(ev, EK_BODY, &body, &blen) == 0) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char hex[2 * TRAIL_HASH_BYTES + 1];
        SHA256(body, blen, d);
        trail_hex(d, hex);
        s_kv_nonempty(&w, "payload_sha256", hex);
    } else if (h->kind == EV_RECEIPT) { /* as the trail stores it (trail_receipt_view) */
        s_kv_nonempty(&w, "payload_sha256", event_get_strbuf(ev, "body_sha256", buf, sizeof buf));
    }
    jsonw_key(&w, "resource", 8);
    s_meta_resource(&w, ev);
    s_kv_nonempty(&w, "what", what);
    s_kv_nonempty(&w, "who", who);
    jsonw_close(&w, '}');
    return jsonw_take(&w);
}

/* ------------------------------------------------------------- records */

/* trail_receipt_view - see trail.h */
void *trail_receipt_view(const event_t *ev, size_t *len_out)
{
    const void *body;
    size_t blen;
    if (event_head(ev)->kind != EV_RECEIPT || event_get_bin(ev, EK_BODY, &body, &blen) != 0)
        return NULL;
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[2 * TRAIL_HASH_BYTES + 1];
    SHA256(body, blen, d);
    trail_hex(d, hex);
    event_body_t *b = event_body_new();
    event_body_copy_except(b, ev, EK_BODY);
    event_body_str(b, "body_sha256", hex);
    event_body_int(b, "body_bytes", (int64_t) blen);
    char err[128];
    void *env = event_encode(event_head(ev), b, len_out, err, sizeof err);
    event_body_destroy(&b);
    assert(env); /* smaller than the event it came from, which decoded */
    return env;
}

/* trail_record_new - see trail.h */
void *trail_record_new(trail_head_t *head, const event_t *ev, const void *raw, size_t rawlen, int64_t stored_ms,
                       size_t *len_out)
{
    char *meta = trail_meta_json(ev);
    size_t mlen = meta ? strlen(meta) : 0;
    if (!meta || mlen > TRAIL_META_MAX) {
        free(meta);
        return NULL;
    }
    size_t len = TRAIL_HEADER_BYTES + mlen + rawlen;
    unsigned char *p = malloc(len);
    if (!p)
        abort();
    p[0] = TRAIL_REC;
    memcpy(p + 33, head->head, TRAIL_HASH_BYTES);
    s_put64(p + 65, head->seq + 1);
    s_put64(p + 73, (uint64_t) stored_ms);
    p[81] = (unsigned char) (mlen & 0xff);
    p[82] = (unsigned char) (mlen >> 8);
    memcpy(p + TRAIL_HEADER_BYTES, meta, mlen);
    memcpy(p + TRAIL_HEADER_BYTES + mlen, raw, rawlen);
    free(meta);
    SHA256(p + 33, len - 33, p + 1);
    memcpy(head->head, p + 1, TRAIL_HASH_BYTES);
    head->seq++;
    *len_out = len;
    return p;
}

/* trail_record_parse - see trail.h */
int trail_record_parse(const void *rec, size_t len, trail_view_t *out)
{
    const unsigned char *p = rec;
    if (len < TRAIL_HEADER_BYTES || p[0] != TRAIL_REC)
        return -1;
    size_t mlen = (size_t) p[81] | (size_t) p[82] << 8;
    if (TRAIL_HEADER_BYTES + mlen > len)
        return -1;
    out->hash = p + 1;
    out->prev = p + 33;
    out->seq = s_get64(p + 65);
    out->stored_ms = (int64_t) s_get64(p + 73);
    out->meta = (const char *) p + TRAIL_HEADER_BYTES;
    out->meta_len = mlen;
    out->envelope = p + TRAIL_HEADER_BYTES + mlen;
    out->envelope_len = len - TRAIL_HEADER_BYTES - mlen;
    return 0;
}

/* trail_record_hash_ok - see trail.h */
bool trail_record_hash_ok(const void *rec, size_t len)
{
    const unsigned char *p = rec;
    if (len < TRAIL_HEADER_BYTES || p[0] != TRAIL_REC)
        return false;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(p + 33, len - 33, d);
    return memcmp(d, p + 1, TRAIL_HASH_BYTES) == 0;
}

/* trail_record_json - see trail.h */
void *trail_record_json(const trail_view_t *v)
{
    char err[256], hex[2 * TRAIL_HASH_BYTES + 1], when[UTC_ISO_MAX];
    event_t *ev = event_decode(v->envelope, v->envelope_len, err, sizeof err);
    if (!ev)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "trail_seq", json_integer((json_int_t) v->seq));
    trail_hex(v->hash, hex);
    json_object_set_new(o, "hash", json_string(hex));
    trail_hex(v->prev, hex);
    json_object_set_new(o, "prev", json_string(hex));
    json_object_set_new(o, "stored_ms", json_integer(v->stored_ms));
    utc_iso(v->stored_ms, when);
    json_object_set_new(o, "stored_at", json_string(when));
    json_t *meta = json_loadb(v->meta, v->meta_len, 0, NULL);
    if (json_is_object(meta))
        json_object_update(o, meta);
    json_decref(meta);
    char *text = event_to_json(ev);
    json_object_set_new(o, "event", json_loads(text, 0, NULL));
    free(text);
    event_destroy(&ev);
    return o;
}

/* trail_head_recover - see trail.h. The writer trusts its own journal
 * (verify is what checks it): the head is the last record's hash and seq. */
int trail_head_recover(const char *dir, uint64_t hint_from, trail_head_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    journal_reader_t *r = journal_reader_new(dir, hint_from ? hint_from : 1, err, errlen);
    if (!r)
        return -1;
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        trail_view_t v;
        if (trail_record_parse(data, len, &v) == 0) {
            memcpy(out->head, v.hash, TRAIL_HASH_BYTES);
            out->seq = v.seq;
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "%s", journal_reader_error(r));
    journal_reader_destroy(&r);
    if (rc == 0 && out->seq == 0 && hint_from > 1)
        return trail_head_recover(dir, 1, out, err, errlen);
    return rc < 0 ? -1 : 0;
}

/* ----------------------------------------------------------- signing */

/* s_key_write - write pkey's private (or public) PEM to path with mode */
static int s_key_write(EVP_PKEY *pkey, const char *path, bool private_part, mode_t mode, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok = private_part ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, pkey);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    fclose(f);
    if (!ok) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

/* trail_key_load - see trail.h */
trail_key_t *trail_key_load(const char *path, const char *pub_path, bool generate, char *err, size_t errlen)
{
    EVP_PKEY *pkey = NULL;
    FILE *f = fopen(path, "r");
    if (f) {
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
            snprintf(err, errlen, "%s: not an Ed25519 private key (PEM)", path);
            EVP_PKEY_free(pkey);
            return NULL;
        }
    } else if (errno == ENOENT && generate) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (!pkey) {
            snprintf(err, errlen, "cannot generate an Ed25519 key");
            return NULL;
        }
        if (s_key_write(pkey, path, true, 0600, err, errlen) != 0 ||
            (pub_path && *pub_path && s_key_write(pkey, pub_path, false, 0644, err, errlen) != 0)) {
            EVP_PKEY_free(pkey);
            return NULL;
        }
    } else {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    trail_key_t *k = calloc(1, sizeof *k);
    k->pkey = pkey;
    k->is_private = true;
    return k;
}

/* trail_pubkey_load - see trail.h */
trail_key_t *trail_pubkey_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (!pkey) {
        rewind(f);
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s: not an Ed25519 key (PEM)", path);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    trail_key_t *k = calloc(1, sizeof *k);
    k->pkey = pkey;
    return k;
}

/* trail_key_destroy - free, NULL the pointer */
void trail_key_destroy(trail_key_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    EVP_PKEY_free((*self_p)->pkey);
    free(*self_p);
    *self_p = NULL;
}

/* s_signed_text - what a checkpoint's signature covers */
static int s_signed_text(char *out, size_t outlen, uint64_t seq, const char *hex, int64_t ms)
{
    return snprintf(out, outlen, "%s:%" PRIu64 ":%s:%" PRId64, TRAIL_SIG_CONTEXT, seq, hex, ms);
}

/* trail_checkpoint_append - see trail.h */
int trail_checkpoint_append(const char *path, trail_key_t *key, const trail_head_t *head, int64_t time_ms, char *err,
                            size_t errlen)
{
    assert(key && key->is_private);
    char hex[2 * TRAIL_HASH_BYTES + 1], msg[256];
    trail_hex(head->head, hex);
    int mlen = s_signed_text(msg, sizeof msg, head->seq, hex, time_ms);
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
             EVP_DigestSign(md, sig, &siglen, (const unsigned char *) msg, (size_t) mlen) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        snprintf(err, errlen, "Ed25519 signing failed");
        return -1;
    }
    char b64[128];
    EVP_EncodeBlock((unsigned char *) b64, sig, (int) siglen);
    char line[TRAIL_CP_LINE_MAX];
    int n = snprintf(line, sizeof line, "pgcp1 %" PRIu64 " %s %" PRId64 " %s\n", head->seq, hex, time_ms, b64);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, line, (size_t) n);
    int saved = errno;
    if (w != n || fdatasync(fd) != 0) {
        /* like the journal: a failed sync proves nothing afterwards */
        snprintf(err, errlen, "cannot append to %s: %s", path, strerror(w < 0 ? saved : errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------- verify */

typedef struct {
    uint64_t seq;
    unsigned char head[TRAIL_HASH_BYTES];
    int64_t ms;
} checkpoint_t;

/* s_cp_cmp - order checkpoints by trail seq, then time */
static int s_cp_cmp(const void *x, const void *y)
{
    const checkpoint_t *a = x, *b = y;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return (a->ms > b->ms) - (a->ms < b->ms);
}

/* s_checkpoints_load - parse and check every checkpoint line; 0, or 1 with
 * the problem in report (a forged or malformed line), or -1 (err) */
static int s_checkpoints_load(const char *path, trail_key_t *key, checkpoint_t **out, size_t *nout,
                              trail_report_t *report, char *err, size_t errlen)
{
    *out = NULL;
    *nout = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0, lineno = 0;
    char line[TRAIL_CP_LINE_MAX + 2];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char hex[80], b64[120];
        uint64_t seq;
        int64_t ms;
        checkpoint_t cp;
        if (sscanf(line, "pgcp1 %" SCNu64 " %79s %" SCNd64 " %119s", &seq, hex, &ms, b64) != 4 ||
            s_unhex(hex, cp.head) != 0) {
            snprintf(report->problem, sizeof report->problem, "%s line %zu: not a checkpoint line (edited?)", path,
                     lineno);
            rc = 1;
            break;
        }
        if (key) {
            unsigned char sig[96];
            int n = EVP_DecodeBlock(sig, (const unsigned char *) b64, (int) strlen(b64));
            char msg[256];
            int mlen = s_signed_text(msg, sizeof msg, seq, hex, ms);
            EVP_MD_CTX *md = EVP_MD_CTX_new();
            /* EVP_DecodeBlock counts the padding: an Ed25519 signature is 64 bytes */
            bool good = n >= 64 && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
                        EVP_DigestVerify(md, sig, 64, (const unsigned char *) msg, (size_t) mlen) == 1;
            EVP_MD_CTX_free(md);
            if (!good) {
                snprintf(report->problem, sizeof report->problem,
                         "%s line %zu: checkpoint of trail record #%" PRIu64
                         " has a bad signature: forged, or signed with another key",
                         path, lineno, seq);
                rc = 1;
                break;
            }
        }
        if (*nout == cap) {
            if (cap >= TRAIL_MAX_CHECKPOINTS) {
                snprintf(err, errlen, "%s: more than %u checkpoints", path, TRAIL_MAX_CHECKPOINTS);
                rc = -1;
                break;
            }
            cap = cap ? 2 * cap : 64;
            checkpoint_t *grown = realloc(*out, cap * sizeof **out);
            if (!grown) {
                snprintf(err, errlen, "%s: out of memory at %zu checkpoints", path, *nout);
                rc = -1;
                break;
            }
            *out = grown;
        }
        cp.seq = seq;
        cp.ms = ms;
        (*out)[(*nout)++] = cp;
    }
    fclose(f);
    /* by seq: a restart after a truncation appends a lower seq after a higher one */
    if (rc == 0 && *nout > 1)
        qsort(*out, *nout, sizeof **out, s_cp_cmp);
    return rc;
}

/* s_where - "trail record #N (journal record J)" */
static void s_where(char *out, size_t outlen, uint64_t trail_seq, uint64_t jseq)
{
    snprintf(out, outlen, "trail record #%" PRIu64 " (journal record %" PRIu64 ")", trail_seq, jseq);
}

/* trail_verify - see trail.h */
int trail_verify(const char *dir, const char *checkpoints_path, trail_key_t *key, trail_report_t *report, char *err,
                 size_t errlen)
{
    memset(report, 0, sizeof *report);
    checkpoint_t *cps;
    size_t ncps, icp = 0;
    int rc = s_checkpoints_load(checkpoints_path, key, &cps, &ncps, report, err, errlen);
    if (rc != 0)
        return rc;
    journal_reader_t *r = journal_reader_new(dir, 1, err, errlen);
    if (!r) {
        free(cps);
        return -1;
    }
    unsigned char prev[TRAIL_HASH_BYTES] = {0};
    uint64_t expected = 1;
    for (; icp < ncps && cps[icp].seq == 0; icp++) { /* the genesis checkpoint of an empty trail */
        if (memcmp(cps[icp].head, prev, TRAIL_HASH_BYTES) != 0) {
            snprintf(report->problem, sizeof report->problem,
                     "the checkpoint of the empty trail (#0) names a head: the checkpoints file was forged");
            journal_reader_destroy(&r);
            free(cps);
            return 1;
        }
        report->checkpoints++;
        report->last_checkpoint_ms = cps[icp].ms;
    }
    const void *data;
    size_t len;
    uint64_t jseq = 0;
    char where[128];
    int n;
    rc = 0;
    while ((n = journal_reader_next(r, &data, &len, &jseq)) == 1) {
        trail_view_t v;
        if (((const unsigned char *) data)[0] != TRAIL_REC) {
            /* the skeleton's own records; 'S': stored by an audit older than the chain */
            report->unchained += ((const unsigned char *) data)[0] == 'S';
            continue;
        }
        if (trail_record_parse(data, len, &v) != 0) {
            s_where(where, sizeof where, expected, jseq);
            snprintf(report->problem, sizeof report->problem, "%s: not a well-formed trail record: edited", where);
            rc = 1;
            break;
        }
        if (!trail_record_hash_ok(data, len)) {
            s_where(where, sizeof where, expected, jseq);
            snprintf(report->problem, sizeof report->problem,
                     "%s: its content does not match its hash: the record was edited", where);
            rc = 1;
            break;
        }
        if (v.seq != expected) {
            s_where(where, sizeof where, expected, jseq);
            uint64_t found = v.seq;
            if (found > expected) {
                const void *d2;
                size_t l2;
                uint64_t j2;
                trail_view_t v2;
                bool swapped = journal_reader_next(r, &d2, &l2, &j2) == 1 && trail_record_parse(d2, l2, &v2) == 0 &&
                               v2.seq == expected;
                if (swapped)
                    snprintf(report->problem, sizeof report->problem,
                             "%s: holds #%" PRIu64 " and the next holds #%" PRIu64 ": records swapped (out of order)",
                             where, found, expected);
                else
                    snprintf(report->problem, sizeof report->problem,
                             "%s is missing: the next record is #%" PRIu64 ": record(s) #%" PRIu64 "..#%" PRIu64
                             " deleted",
                             where, found, expected, found - 1);
            } else {
                snprintf(report->problem, sizeof report->problem,
                         "%s: holds #%" PRIu64 " again (after #%" PRIu64 "): a record was copied or moved", where,
                         found, expected - 1);
            }
            rc = 1;
            break;
        }
        if (memcmp(v.prev, prev, TRAIL_HASH_BYTES) != 0) {
            s_where(where, sizeof where, expected, jseq);
            snprintf(report->problem, sizeof report->problem,
                     "%s does not follow #%" PRIu64 ": the record before it was replaced", where, expected - 1);
            rc = 1;
            break;
        }
        while (icp < ncps && cps[icp].seq == v.seq) {
            if (memcmp(cps[icp].head, v.hash, TRAIL_HASH_BYTES) != 0) {
                char when[UTC_ISO_MAX];
                utc_iso(cps[icp].ms, when);
                s_where(where, sizeof where, expected, jseq);
                snprintf(report->problem, sizeof report->problem,
                         "%s differs from the head signed in the checkpoint of %s: the chain up to it was rewritten",
                         where, when);
                rc = 1;
                break;
            }
            report->checkpoints++;
            report->last_checkpoint = cps[icp].seq;
            report->last_checkpoint_ms = cps[icp].ms;
            icp++;
        }
        if (rc)
            break;
        memcpy(prev, v.hash, TRAIL_HASH_BYTES);
        report->records++;
        expected++;
    }
    if (rc == 0 && n < 0) {
        s_where(where, sizeof where, expected, jseq + 1);
        snprintf(report->problem, sizeof report->problem,
                 "%s: the journal's frame is broken (%s): edited, or records removed", where, journal_reader_error(r));
        rc = 1;
    }
    if (rc == 0 && icp < ncps) {
        char when[UTC_ISO_MAX];
        utc_iso(cps[icp].ms, when);
        snprintf(report->problem, sizeof report->problem,
                 "the trail ends at #%" PRIu64 " but the checkpoint of %s seals #%" PRIu64 ": records #%" PRIu64
                 "..#%" PRIu64 " were truncated",
                 expected - 1, when, cps[icp].seq, expected, cps[icp].seq);
        rc = 1;
    }
    if (rc == 0 && ncps == 0 && report->records > 0 && checkpoints_path) {
        snprintf(report->problem, sizeof report->problem,
                 "no checkpoint in %s: a rewritten chain could not be told from the real one", checkpoints_path);
        rc = 1;
    }
    if (rc) {
        report->bad_seq = expected;
        report->bad_journal_seq = jseq;
    }
    memcpy(report->head, prev, TRAIL_HASH_BYTES);
    journal_reader_destroy(&r);
    free(cps);
    return rc;
}
