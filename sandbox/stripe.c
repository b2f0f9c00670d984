/* stripe - the sandbox playing Stripe's sending side: POST /_sandbox/stripe/send.
 *
 *   {"event": {Stripe event: id, type, created, data.object},
 *    "url": "http://127.0.0.1:8080/webhooks/stripe"?, "secret": "whsec_..."?}
 *   -> 200 {"stored":true, "status":<the receiver's HTTP status, 0: none>,
 *           "body":"<its answer>"}
 *
 * As Stripe does, the event is kept first (the Events API lists it,
 * psp.c), then sent as a webhook signed with Stripe-Signature
 * (t=<now>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))). Without url it is
 * only kept: an event whose webhook never arrived (an outage). A failed
 * send leaves it kept too, as Stripe's would be. Runs under the store lock
 * (http.c): the receiver must not call the sandbox to answer (ingest does
 * not; validate's reads come later and wait for the lock).
 */
#include <assert.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"
#include "log.h"
#include "sandbox.h"

#define SBX_SEND_TIMEOUT_MS 10000
#define SBX_SECRET_MAX 256
#define SBX_URL_MAX 512

/* s_sign - Stripe-Signature for body at t */
static void s_sign(const char *secret, int64_t t, const char *body, char *out, size_t outlen)
{
    size_t blen = strlen(body), cap = blen + 32;
    char *msg = malloc(cap);
    assert(msg && outlen >= 80);
    int hl = snprintf(msg, cap, "%" PRId64 ".", t);
    memcpy(msg + hl, body, blen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    assert(mdlen == 0 && hl > 0);
    HMAC(EVP_sha256(), secret, (int) strlen(secret), (const unsigned char *) msg, (size_t) hl + blen, md, &mdlen);
    free(msg);
    size_t n = (size_t) snprintf(out, outlen, "t=%" PRId64 ",v1=", t);
    for (unsigned i = 0; i < mdlen && n + 2 < outlen; i++, n += 2)
        snprintf(out + n, outlen - n, "%02x", md[i]);
}

/* s_send - POST the signed event to url; what the receiver answered */
static json_t *s_send(const char *url, const char *secret, const char *body)
{
    assert(url && *url && secret && body);
    char sig[160];
    s_sign(secret, (int64_t) time(NULL), body, sig, sizeof sig);
    httpc_t *h = httpc_new(url, NULL, SBX_SEND_TIMEOUT_MS);
    httpc_resp_t r = {0};
    if (!h || httpc_set_header(h, "Stripe-Signature", sig) != 0 || httpc_do(h, "POST", "", body, NULL, &r) != 0)
        log_warn("stripe send to %s: %s", url, r.error[0] ? r.error : "cannot send");
    assert(r.status >= 0);
    json_t *out =
        json_pack("{s:b, s:I, s:s}", "stored", 1, "status", (json_int_t) r.status, "body", r.body ? r.body : r.error);
    httpc_resp_free(&r);
    httpc_destroy(&h);
    return out;
}

/* sbx_stripe_send - see the top of this file */
int sbx_stripe_send(sbx_store_t *st, json_t *doc, sbx_resp_t *resp)
{
    static const char *const fields[] = {"event", "url", "secret", NULL};
    char err[256];
    const char *url, *secret;
    assert(st && doc && resp);
    json_t *event = json_object_get(doc, "event");
    if (sbx_only_fields(doc, fields, err, sizeof err) ||
        !(url = sbx_str(doc, "url", false, false, SBX_URL_MAX, err, sizeof err)) ||
        !(secret = sbx_str(doc, "secret", false, false, SBX_SECRET_MAX, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!json_is_object(event))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "event: a Stripe event object is required");
    if (*url && !*secret)
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "secret: the signing secret is required to send");
    json_t *seed = json_pack("{s:[O]}", "events", event), *counts = json_object();
    int rc = sbx_seed_apply(st, seed, counts, err, sizeof err);
    json_decref(seed);
    json_decref(counts);
    if (rc != 0)
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!*url)
        return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:b, s:i}", "stored", 1, "status", 0));
    char *body = json_dumps(event, JSON_COMPACT);
    assert(body && *secret);
    json_t *out = s_send(url, secret, body);
    free(body);
    return sbx_reply(resp, MHD_HTTP_OK, out);
}
