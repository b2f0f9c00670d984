/*++
 * NAME
 *	pg-load - webhook load generator: signed Stripe events over HTTP
 * SYNOPSIS
 *	pg-load --url URL --secret-file FILE --count N [--concurrency C]
 *	        [--dup-every K] [--out receipts.txt] [--seed S]
 *	        [--duration-max-s T] [--rate R] [--expect-status S]
 *	pg-load --url URL --secret-file FILE --plan FILE [--concurrency C] [--out F] [--rate R] ...
 * DESCRIPTION
 *	Builds N distinct Stripe "payout.failed" events (ids evt_<S>_<i>,
 *	payouts po_<i> / P-<i>, amount 1000+i minor units of usd), signs each
 *	with Stripe-Signature: t=<unix now>,v1=<hex HMAC-SHA256(secret,
 *	"<t>.<body>")> and POSTs it as application/json with libcurl multi, up
 *	to C transfers at once (default 16) over kept-alive connections.
 *
 *	--dup-every K: after every K-th event the same event (same body, fresh
 *	signature) is posted once more, as a PSP re-delivery would be.
 *
 *	--rate R: start at most R fresh deliveries a second (a paced load, so
 *	that a chaos run's faults and kills land while work is in flight).
 *
 *	--plan FILE: instead of generated events, post the file's lines in
 *	order, one delivery each: "good <body>" signed with the secret, or
 *	"forged <body>" signed with a secret nobody trusts (bodies up to 1 KiB;
 *	a chaos run writes the plan: duplicates, reordering, bad events). The
 *	receipts file then names deliveries "line_<n>" (n from 0).
 *
 *	--expect-status S: the status that answers a delivery (default 202).
 *	With any other S the body is not read for a receipt and --out gets no
 *	lines: a benchmark sends the same signed requests to a plain HTTP
 *	server (nginx answering 200) to measure the machine's HTTP ceiling.
 *
 *	Every delivery is retried until it gets its 202 (or S):
 *	  202         {"receipt_id":"..."} is parsed and "<event id> <receipt id>"
 *	              is appended to --out (one line per 202, duplicates too);
 *	  503, 429    retried after Retry-After seconds (default 1, at most 60);
 *	  no answer   (connection refused or reset, timeout: ingest restarting)
 *	              retried after 200 ms;
 *	  other       counted as an error and reported on stderr, not retried
 *	              (with --expect-status S, 503 and 429 are still retried
 *	              unless S is one of them).
 *	A transfer slot whose delivery must wait stays parked until then
 *	instead of taking a fresh event, so a back-pressured ingest sees at most
 *	one retry per slot per Retry-After, not a storm.
 *
 *	The run ends when every delivery has its answer, or after
 *	--duration-max-s (default 300) with a message saying how many are still
 *	missing. Last, one summary line on stdout:
 *	  sent=N accepted=N retried_503=N retried_conn=N errors=N elapsed_s=X
 *	  rate_per_s=Y p50_ms=A p99_ms=B
 *	sent counts deliveries (events + duplicates), accepted those answered
 *	202 (or S); rate and latencies are over the accepted POSTs (the final
 *	attempt).
 * EXIT STATUS
 *	0 every delivery got its 202 (or S) and there were no errors; 1 otherwise;
 *	2 bad usage or setup (unreadable secret, unwritable --out).
 * SECURITY
 *	The secret is read from a file (trailing newline stripped), never from
 *	argv, and never printed.
 *--*/
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOAD_MAX_COUNT 10000000ULL
#define LOAD_MAX_CONCURRENCY 1024ULL
#define LOAD_MAX_DURATION_S 86400ULL
#define LOAD_MAX_SECRET_BYTES 4096
#define LOAD_MAX_BODY_BYTES 1024
#define LOAD_MAX_RESPONSE_BYTES 4096
#define LOAD_MAX_RETRY_AFTER_S 60
#define LOAD_CONN_RETRY_MS 200
#define LOAD_TRANSFER_TIMEOUT_MS 30000L
#define LOAD_CONNECT_TIMEOUT_MS 5000L
#define LOAD_POLL_MAX_MS 100
#define LOAD_MAX_REPORTED 10 /* errors described one by one on stderr */
#define LOAD_RECEIPT_ID_MAX 64

/* job - one delivery: event index, and whether it is the re-posted copy */
typedef struct {
    uint32_t event;
    bool dup;
} job_t;

typedef enum { SLOT_IDLE = 0, SLOT_RUNNING, SLOT_PARKED } slot_state_t;

/* slot - one transfer at a time, its easy handle reused for keep-alive */
typedef struct {
    CURL *easy;
    slot_state_t state;
    job_t job;
    int64_t due_ms; /* PARKED: when to retry */
    char body[LOAD_MAX_BODY_BYTES];
    size_t body_len;
    struct curl_slist *headers;
    char resp[LOAD_MAX_RESPONSE_BYTES + 1];
    size_t resp_len;
    long retry_after_s; /* -1: no Retry-After header seen */
} slot_t;

typedef struct {
    const char *url;
    const char *secret_file;
    const char *out_path;
    uint64_t count;
    uint64_t concurrency;
    uint64_t dup_every;
    uint64_t seed;
    uint64_t duration_max_s;
    const char *plan_path;
    uint64_t rate;      /* fresh deliveries started per second (0: as fast as it goes) */
    long expect_status; /* the answer that accepts a delivery (202: a receipt) */
} load_opts_t;

typedef struct {
    load_opts_t o;
    unsigned char secret[LOAD_MAX_SECRET_BYTES];
    size_t secret_len;
    int64_t *created;    /* per event: its "created", fixed at first build */
    uint64_t total;      /* deliveries: events + duplicates */
    uint64_t next_event; /* fresh-job cursor */
    bool dup_pending;
    slot_t *slots;
    CURLM *multi;
    FILE *out;
    uint64_t accepted, retried_503, retried_conn, errors;
    double *lat_ms; /* one per accepted delivery */
    int64_t start_ms;
    char **plan; /* --plan: each delivery's body */
    size_t *plan_len;
    bool *plan_forged; /* sign with a secret nobody trusts */
} load_t;

/* s_now_ms - monotonic milliseconds, for scheduling and elapsed time */
static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_usage - the synopsis on stderr; exit 2 */
static void s_usage(const char *why)
{
    if (why)
        fprintf(stderr, "pg-load: %s\n", why);
    fprintf(stderr, "usage: pg-load --url URL --secret-file FILE --count N [--concurrency C]\n"
                    "               [--dup-every K] [--out receipts.txt] [--seed S] [--duration-max-s T] [--rate R]\n"
                    "               [--expect-status S]\n"
                    "       pg-load --url URL --secret-file FILE --plan FILE [--concurrency C] [--out F] [--rate R]\n");
    exit(2);
}

/* s_parse_u64 - a decimal number in [min,max] or a usage error naming the option */
static uint64_t s_parse_u64(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || !*text || *end || text[0] == '-' || v < min || v > max) {
        char why[160];
        snprintf(why, sizeof why, "--%s wants a whole number in [%llu, %llu], not '%.40s'", opt,
                 (unsigned long long) min, (unsigned long long) max, text);
        s_usage(why);
    }
    return (uint64_t) v;
}

/* s_parse_args - command line to options; usage errors exit 2 */
static void s_parse_args(int argc, char **argv, load_opts_t *o)
{
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"secret-file", required_argument, NULL, 's'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"concurrency", required_argument, NULL, 'c'},
                                             {"dup-every", required_argument, NULL, 'd'},
                                             {"out", required_argument, NULL, 'o'},
                                             {"seed", required_argument, NULL, 'S'},
                                             {"duration-max-s", required_argument, NULL, 'T'},
                                             {"plan", required_argument, NULL, 'p'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"expect-status", required_argument, NULL, 'x'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *o = (load_opts_t){.concurrency = 16,
                       .duration_max_s = 300,
                       .expect_status = 202,
                       .seed = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000};
    bool have_count = false;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 'n':
            o->count = s_parse_u64("count", optarg, 1, LOAD_MAX_COUNT);
            have_count = true;
            break;
        case 'c':
            o->concurrency = s_parse_u64("concurrency", optarg, 1, LOAD_MAX_CONCURRENCY);
            break;
        case 'd':
            o->dup_every = s_parse_u64("dup-every", optarg, 0, LOAD_MAX_COUNT);
            break;
        case 'o':
            o->out_path = optarg;
            break;
        case 'S':
            o->seed = s_parse_u64("seed", optarg, 0, UINT64_MAX);
            break;
        case 'T':
            o->duration_max_s = s_parse_u64("duration-max-s", optarg, 1, LOAD_MAX_DURATION_S);
            break;
        case 'p':
            o->plan_path = optarg;
            have_count = true;
            break;
        case 'r':
            o->rate = s_parse_u64("rate", optarg, 1, 1000000);
            break;
        case 'x':
            o->expect_status = (long) s_parse_u64("expect-status", optarg, 100, 599);
            break;
        case 'h':
            s_usage(NULL);
            break;
        default:
            s_usage("unknown option");
            break;
        }
    }
    if (optind < argc)
        s_usage("unexpected argument");
    if (!o->url || !o->secret_file || !have_count)
        s_usage("--url, --secret-file and --count (or --plan) are required");
    if (o->plan_path && o->dup_every)
        s_usage("--dup-every does not go with --plan (the plan holds its duplicates)");
}

/* s_read_secret - the webhook secret from its file, trailing newline
 * stripped; -1 with a reason (never the secret) on stderr */
static int s_read_secret(load_t *L)
{
    FILE *f = fopen(L->o.secret_file, "rb");
    if (!f) {
        fprintf(stderr, "pg-load: cannot open secret file %s: %s\n", L->o.secret_file, strerror(errno));
        return -1;
    }
    size_t n = fread(L->secret, 1, sizeof L->secret, f);
    bool too_big = (n == sizeof L->secret) && fgetc(f) != EOF;
    bool failed = ferror(f);
    fclose(f);
    if (failed || too_big) {
        fprintf(stderr, "pg-load: secret file %s: %s\n", L->o.secret_file, failed ? "read error" : "over 4096 bytes");
        return -1;
    }
    while (n > 0 && (L->secret[n - 1] == '\n' || L->secret[n - 1] == '\r'))
        n--;
    if (n == 0) {
        fprintf(stderr, "pg-load: secret file %s is empty\n", L->o.secret_file);
        return -1;
    }
    L->secret_len = n;
    return 0;
}

/* s_next_fresh - the next delivery in order (an event, then its duplicate
 * when it is a K-th one); false when all have been started */
static bool s_next_fresh(load_t *L, job_t *job)
{
    if (L->o.rate && !L->dup_pending &&
        L->next_event >= (uint64_t) ((s_now_ms() - L->start_ms) * (int64_t) L->o.rate / 1000) + 1)
        return false; /* --rate: not yet */
    if (L->dup_pending) {
        L->dup_pending = false;
        *job = (job_t){.event = (uint32_t) (L->next_event - 1), .dup = true};
        return true;
    }
    if (L->next_event >= L->o.count)
        return false;
    *job = (job_t){.event = (uint32_t) L->next_event, .dup = false};
    L->next_event++;
    if (L->o.dup_every && L->next_event % L->o.dup_every == 0)
        L->dup_pending = true;
    return true;
}

/* s_event_id - "evt_<seed>_<i>" */
static void s_event_id(const load_t *L, uint32_t i, char *out, size_t outlen)
{
    if (L->plan)
        snprintf(out, outlen, "line_%u", i);
    else
        snprintf(out, outlen, "evt_%llu_%u", (unsigned long long) L->o.seed, i);
}

/* s_build_body - the event's JSON with jansson; the same bytes every time
 * for the same event (its "created" is fixed at the first build) */
static int s_build_body(load_t *L, uint32_t i, char *out, size_t outlen, size_t *len_out)
{
    if (L->plan) {
        if (L->plan_len[i] > outlen)
            return -1;
        memcpy(out, L->plan[i], L->plan_len[i]);
        *len_out = L->plan_len[i];
        return 0;
    }
    if (!L->created[i])
        L->created[i] = (int64_t) time(NULL);
    char id[64], po[32], pid[32];
    s_event_id(L, i, id, sizeof id);
    snprintf(po, sizeof po, "po_%u", i);
    snprintf(pid, sizeof pid, "P-%u", i);
    json_t *ev = json_pack("{s:s, s:s, s:I, s:{s:{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:{s:s}}}}", "id", id, "type",
                           "payout.failed", "created", (json_int_t) L->created[i], "data", "object", "id", po, "object",
                           "payout", "amount", (json_int_t) (1000 + (int64_t) i), "currency", "usd", "status", "failed",
                           "failure_code", "account_closed", "failure_message", "closed", "metadata", "payout_id", pid);
    if (!ev)
        return -1;
    size_t n = json_dumpb(ev, out, outlen, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    if (n == 0 || n > outlen)
        return -1;
    *len_out = n;
    return 0;
}

/* s_signature_header - "Stripe-Signature: t=<now>,v1=<hex HMAC-SHA256>"
 * over "<t>.<body>", signed afresh for every attempt */
static int s_signature_header(const load_t *L, bool forged, const char *body, size_t body_len, char *out, size_t outlen)
{
    static const char forged_secret[] = "whsec_pg_load_forged_nobody_trusts_this";
    char signed_payload[32 + LOAD_MAX_BODY_BYTES];
    long long t = (long long) time(NULL);
    int pre = snprintf(signed_payload, sizeof signed_payload, "%lld.", t);
    if (pre < 0 || (size_t) pre + body_len > sizeof signed_payload)
        return -1;
    memcpy(signed_payload + pre, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const void *key = forged ? (const void *) forged_secret : (const void *) L->secret;
    int key_len = forged ? (int) strlen(forged_secret) : (int) L->secret_len;
    if (!HMAC(EVP_sha256(), key, key_len, (const unsigned char *) signed_payload, (size_t) pre + body_len, mac,
              &mac_len))
        return -1;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int k = 0; k < mac_len; k++)
        snprintf(hex + 2 * k, 3, "%02x", mac[k]);
    int n = snprintf(out, outlen, "Stripe-Signature: t=%lld,v1=%s", t, hex);
    return (n > 0 && (size_t) n < outlen) ? 0 : -1;
}

/* s_on_body - collect the response body, bounded (the rest is dropped) */
static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    slot_t *s = arg;
    size_t n = size * nmemb;
    size_t room = LOAD_MAX_RESPONSE_BYTES - s->resp_len;
    size_t take = n < room ? n : room;
    memcpy(s->resp + s->resp_len, data, take);
    s->resp_len += take;
    s->resp[s->resp_len] = '\0';
    return n;
}

/* s_on_header - note Retry-After (seconds); a new status line resets it */
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    slot_t *s = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        s->retry_after_s = -1;
    } else if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char value[32];
        size_t vlen = n - (sizeof name - 1);
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;
        memcpy(value, data + sizeof name - 1, vlen);
        value[vlen] = '\0';
        char *end = NULL;
        long v = strtol(value, &end, 10);
        while (end && (*end == ' ' || *end == '\r' || *end == '\n'))
            end++;
        if (end != value && end && *end == '\0' && v >= 0)
            s->retry_after_s = v > LOAD_MAX_RETRY_AFTER_S ? LOAD_MAX_RETRY_AFTER_S : v;
    }
    return n;
}

/* s_slot_init - an easy handle with everything that does not change */
static int s_slot_init(load_t *L, slot_t *s)
{
    s->easy = curl_easy_init();
    if (!s->easy)
        return -1;
    curl_easy_setopt(s->easy, CURLOPT_URL, L->o.url);
    curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, LOAD_TRANSFER_TIMEOUT_MS);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, LOAD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    return 0;
}

/* s_slot_start - sign and POST the slot's job; -1 if it cannot be built */
static int s_slot_start(load_t *L, slot_t *s)
{
    if (s_build_body(L, s->job.event, s->body, sizeof s->body, &s->body_len) != 0) {
        fprintf(stderr, "pg-load: cannot build event %u\n", s->job.event);
        return -1;
    }
    char sig[160];
    if (s_signature_header(L, L->plan && L->plan_forged[s->job.event], s->body, s->body_len, sig, sizeof sig) != 0) {
        fprintf(stderr, "pg-load: cannot sign event %u\n", s->job.event);
        return -1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    h = h ? curl_slist_append(h, sig) : NULL;
    if (!h)
        return -1;
    s->headers = h;
    s->resp_len = 0;
    s->resp[0] = '\0';
    s->retry_after_s = -1;
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long) s->body_len);
    if (curl_multi_add_handle(L->multi, s->easy) != CURLM_OK) {
        curl_slist_free_all(s->headers);
        s->headers = NULL;
        return -1;
    }
    s->state = SLOT_RUNNING;
    return 0;
}

/* s_report_error - count a delivery that failed for good; describe the first few */
static void s_report_error(load_t *L, const slot_t *s, const char *what)
{
    L->errors++;
    if (L->errors <= LOAD_MAX_REPORTED) {
        char id[64];
        s_event_id(L, s->job.event, id, sizeof id);
        fprintf(stderr, "pg-load: error: %s%s: %s\n", id, s->job.dup ? " (duplicate)" : "", what);
    } else if (L->errors == LOAD_MAX_REPORTED + 1) {
        fprintf(stderr, "pg-load: more errors; only counting them now\n");
    }
}

/* s_receipt_ok - a receipt id we can write as one token on a line */
static bool s_receipt_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > LOAD_RECEIPT_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (r[i] <= ' ' || r[i] > '~')
            return false;
    return true;
}

/* s_note_latency - count an accepted delivery and keep its latency */
static void s_note_latency(load_t *L, slot_t *s)
{
    curl_off_t us = 0;
    curl_easy_getinfo(s->easy, CURLINFO_TOTAL_TIME_T, &us);
    L->lat_ms[L->accepted++] = (double) us / 1000.0;
}

/* s_accepted - the expected answer: for a 202, parse its receipt and write
 * the receipt line; note the latency */
static void s_accepted(load_t *L, slot_t *s)
{
    if (L->o.expect_status != 202) {
        s_note_latency(L, s);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(s->resp, s->resp_len, 0, &jerr);
    const char *rid = root ? json_string_value(json_object_get(root, "receipt_id")) : NULL;
    if (!rid || !s_receipt_ok(rid)) {
        char what[160];
        snprintf(what, sizeof what, "202 without a usable receipt_id: %.100s", s->resp);
        s_report_error(L, s, what);
        json_decref(root);
        return;
    }
    if (L->out) {
        char id[64];
        s_event_id(L, s->job.event, id, sizeof id);
        fprintf(L->out, "%s %s\n", id, rid);
    }
    json_decref(root);
    s_note_latency(L, s);
}

/* s_finish - one transfer done: accept, park for a retry, or count an error */
static void s_finish(load_t *L, slot_t *s, CURLcode result)
{
    curl_multi_remove_handle(L->multi, s->easy);
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    s->state = SLOT_IDLE;
    if (result != CURLE_OK) {
        L->retried_conn++;
        s->state = SLOT_PARKED;
        s->due_ms = s_now_ms() + LOAD_CONN_RETRY_MS;
        return;
    }
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == L->o.expect_status) {
        s_accepted(L, s);
    } else if (status == 503 || status == 429) {
        L->retried_503++;
        long after_s = s->retry_after_s >= 0 ? s->retry_after_s : 1;
        s->state = SLOT_PARKED;
        s->due_ms = s_now_ms() + after_s * 1000;
    } else {
        char what[200];
        snprintf(what, sizeof what, "HTTP %ld: %.120s", status, s->resp);
        s_report_error(L, s, what);
    }
}

/* s_fill - start work on every slot that may: parked ones when due, idle
 * ones with the next fresh delivery */
static void s_fill(load_t *L, int64_t now)
{
    for (uint64_t k = 0; k < L->o.concurrency; k++) {
        slot_t *s = &L->slots[k];
        if (s->state == SLOT_PARKED && s->due_ms <= now) {
            if (s_slot_start(L, s) != 0) {
                s->state = SLOT_IDLE;
                s_report_error(L, s, "cannot start the transfer");
            }
        }
        while (s->state == SLOT_IDLE && s_next_fresh(L, &s->job)) {
            if (s_slot_start(L, s) != 0)
                s_report_error(L, s, "cannot start the transfer");
        }
    }
}

/* s_poll_ms - how long to wait for sockets: not at all when a slot is free
 * and a fresh delivery may start (a transfer just finished: refill it now,
 * not after a poll timeout); until the next parked slot is due or, under
 * --rate, the next fresh delivery may start (so a paced load is spread
 * evenly, not sent in bursts); at most LOAD_POLL_MAX_MS */
static int s_poll_ms(const load_t *L, int64_t now)
{
    int64_t wait = LOAD_POLL_MAX_MS;
    bool idle = false;
    for (uint64_t k = 0; k < L->o.concurrency; k++) {
        const slot_t *s = &L->slots[k];
        if (s->state == SLOT_PARKED && s->due_ms - now < wait)
            wait = s->due_ms - now;
        idle |= s->state == SLOT_IDLE;
    }
    if (idle && (L->dup_pending || L->next_event < L->o.count)) {
        int64_t due = now;
        if (L->o.rate && !L->dup_pending)
            due = L->start_ms + (int64_t) ((L->next_event * 1000 + L->o.rate - 1) / L->o.rate);
        if (due - now < wait)
            wait = due - now;
    }
    return wait < 0 ? 0 : (int) wait;
}

/* s_run - the transfer loop until all deliveries are answered or time is
 * up; true if everything got its answer in time */
static bool s_run(load_t *L)
{
    int64_t deadline = L->start_ms + (int64_t) L->o.duration_max_s * 1000;
    for (;;) {
        int64_t now = s_now_ms();
        s_fill(L, now);
        if (L->accepted + L->errors >= L->total)
            return true;
        if (now >= deadline)
            return false;
        int still = 0;
        curl_multi_perform(L->multi, &still);
        CURLMsg *msg;
        int left = 0;
        while ((msg = curl_multi_info_read(L->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            s_finish(L, (slot_t *) priv, msg->data.result);
        }
        if (L->accepted + L->errors >= L->total)
            return true;
        int wait = s_poll_ms(L, s_now_ms());
        int64_t to_deadline = deadline - s_now_ms();
        if (to_deadline < wait)
            wait = to_deadline < 0 ? 0 : (int) to_deadline;
        curl_multi_poll(L->multi, NULL, 0, wait, NULL);
    }
}

/* s_cmp_double - qsort order for latencies */
static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* s_percentile - nearest-rank percentile (p in 1..100) of sorted v; 0 when empty */
static double s_percentile(const double *v, uint64_t n, unsigned p)
{
    if (n == 0)
        return 0.0;
    uint64_t rank = (p * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

/* s_read_plan - the --plan file's deliveries; -1 with a reason on stderr */
static int s_read_plan(load_t *L)
{
    FILE *f = fopen(L->o.plan_path, "r");
    if (!f) {
        fprintf(stderr, "pg-load: cannot open plan %s: %s\n", L->o.plan_path, strerror(errno));
        return -1;
    }
    size_t cap = 0, n = 0, lineno = 0;
    char line[LOAD_MAX_BODY_BYTES + 16];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f)) {
            fprintf(stderr, "pg-load: plan line %zu: over %d bytes\n", lineno, LOAD_MAX_BODY_BYTES);
            rc = -1;
            break;
        }
        bool forged = strncmp(line, "forged ", 7) == 0;
        if (!forged && strncmp(line, "good ", 5) != 0) {
            fprintf(stderr, "pg-load: plan line %zu: want \"good <body>\" or \"forged <body>\"\n", lineno);
            rc = -1;
            break;
        }
        if (n == LOAD_MAX_COUNT) {
            fprintf(stderr, "pg-load: plan over %llu lines\n", (unsigned long long) LOAD_MAX_COUNT);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            L->plan = realloc(L->plan, cap * sizeof *L->plan);
            L->plan_len = realloc(L->plan_len, cap * sizeof *L->plan_len);
            L->plan_forged = realloc(L->plan_forged, cap * sizeof *L->plan_forged);
            if (!L->plan || !L->plan_len || !L->plan_forged) {
                fprintf(stderr, "pg-load: out of memory\n");
                rc = -1;
                break;
            }
        }
        const char *body = line + (forged ? 7 : 5);
        L->plan[n] = strdup(body);
        L->plan_len[n] = strlen(body);
        L->plan_forged[n] = forged;
        n++;
    }
    fclose(f);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "pg-load: plan %s is empty\n", L->o.plan_path);
        rc = -1;
    }
    L->o.count = n;
    return rc;
}

/* s_setup - secret, output file, buffers, curl; -1 with a reason on stderr */
static int s_setup(load_t *L)
{
    if (s_read_secret(L) != 0)
        return -1;
    if (L->o.plan_path && s_read_plan(L) != 0)
        return -1;
    if (L->o.out_path) {
        L->out = fopen(L->o.out_path, "a");
        if (!L->out) {
            fprintf(stderr, "pg-load: cannot open %s: %s\n", L->o.out_path, strerror(errno));
            return -1;
        }
        setvbuf(L->out, NULL, _IOLBF, 0);
    }
    L->total = L->o.count + (L->o.dup_every ? L->o.count / L->o.dup_every : 0);
    L->created = calloc(L->o.count, sizeof *L->created);
    L->lat_ms = calloc(L->total, sizeof *L->lat_ms);
    L->slots = calloc(L->o.concurrency, sizeof *L->slots);
    if (!L->created || !L->lat_ms || !L->slots) {
        fprintf(stderr, "pg-load: out of memory\n");
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(L->multi = curl_multi_init())) {
        fprintf(stderr, "pg-load: cannot initialise libcurl\n");
        return -1;
    }
    curl_multi_setopt(L->multi, CURLMOPT_MAXCONNECTS, (long) L->o.concurrency);
    for (uint64_t k = 0; k < L->o.concurrency; k++)
        if (s_slot_init(L, &L->slots[k]) != 0) {
            fprintf(stderr, "pg-load: cannot create a curl handle\n");
            return -1;
        }
    return 0;
}

/* s_teardown - abort what still runs, free everything, wipe the secret;
 * -1 if the receipts file could not be written completely */
static int s_teardown(load_t *L)
{
    int rc = 0;
    for (uint64_t k = 0; L->slots && k < L->o.concurrency; k++) {
        slot_t *s = &L->slots[k];
        if (s->state == SLOT_RUNNING)
            curl_multi_remove_handle(L->multi, s->easy);
        curl_slist_free_all(s->headers);
        if (s->easy)
            curl_easy_cleanup(s->easy);
    }
    if (L->multi)
        curl_multi_cleanup(L->multi);
    curl_global_cleanup();
    if (L->out && (fflush(L->out) != 0 || ferror(L->out) || fclose(L->out) != 0)) {
        fprintf(stderr, "pg-load: writing %s failed: %s\n", L->o.out_path, strerror(errno));
        rc = -1;
    }
    for (uint64_t i = 0; L->plan && i < L->o.count; i++)
        free(L->plan[i]);
    free(L->plan);
    free(L->plan_len);
    free(L->plan_forged);
    free(L->slots);
    free(L->created);
    free(L->lat_ms);
    OPENSSL_cleanse(L->secret, sizeof L->secret);
    return rc;
}

int main(int argc, char **argv)
{
    static load_t L;
    s_parse_args(argc, argv, &L.o);
    if (s_setup(&L) != 0) {
        s_teardown(&L);
        return 2;
    }
    fprintf(stderr, "pg-load: seed=%llu deliveries=%llu concurrency=%llu\n", (unsigned long long) L.o.seed,
            (unsigned long long) L.total, (unsigned long long) L.o.concurrency);
    L.start_ms = s_now_ms();
    bool finished = s_run(&L);
    double elapsed_s = (double) (s_now_ms() - L.start_ms) / 1000.0;
    if (!finished)
        fprintf(stderr, "pg-load: gave up after %llu s: %llu of %llu deliveries have no %ld\n",
                (unsigned long long) L.o.duration_max_s, (unsigned long long) (L.total - L.accepted),
                (unsigned long long) L.total, L.o.expect_status);
    qsort(L.lat_ms, L.accepted, sizeof *L.lat_ms, s_cmp_double);
    printf("sent=%llu accepted=%llu retried_503=%llu retried_conn=%llu errors=%llu elapsed_s=%.3f "
           "rate_per_s=%.1f p50_ms=%.2f p99_ms=%.2f\n",
           (unsigned long long) L.total, (unsigned long long) L.accepted, (unsigned long long) L.retried_503,
           (unsigned long long) L.retried_conn, (unsigned long long) L.errors, elapsed_s,
           elapsed_s > 0 ? (double) L.accepted / elapsed_s : 0.0, s_percentile(L.lat_ms, L.accepted, 50),
           s_percentile(L.lat_ms, L.accepted, 99));
    fflush(stdout);
    bool ok = finished && L.errors == 0 && L.accepted == L.total;
    if (s_teardown(&L) != 0)
        ok = false;
    return ok ? 0 : 1;
}
