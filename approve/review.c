/* review - is an approved case in ops review? Asked of audit, the one
 * place that sees execute's outcome: approve hands an approved case to
 * execute and hears nothing back, so without asking, a retry or a close
 * of a case that executed fine would reopen its approvals (issue: a
 * retried executed case sent new Teams cards). The person's own token
 * asks: approve holds no credential of its own for audit. */
#include "approve.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"

#define REVIEW_TIMEOUT_MS 3000

/* review_judge - see approve.h */
unsigned review_judge(long status, const char *body, char *why, size_t whylen)
{
    assert(why && whylen > 0);
    why[0] = '\0';
    if (status != 200) {
        snprintf(why, whylen, "cannot tell whether the case is in ops review: audit answered %s%ld",
                 status ? "HTTP " : "nothing, status ", status);
        return status == 404 ? 409 : 503;
    }
    json_t *o = json_loads(body ? body : "", 0, NULL);
    const char *state = json_string_value(json_object_get(o, "state"));
    unsigned rc = 0;
    if (!state) {
        snprintf(why, whylen, "cannot tell whether the case is in ops review: audit's answer has no state");
        rc = 503;
    } else if (strcmp(state, "ops_review") != 0) {
        snprintf(why, whylen, "case is %.40s in the audit trail, not in ops review: nothing to retry or close", state);
        rc = 409;
    }
    json_decref(o);
    return rc;
}

/* review_in_ops - see approve.h */
unsigned review_in_ops(const char *audit_url, const char *case_id, const char *authorization, char *why, size_t whylen)
{
    assert(audit_url && case_id && why && whylen > 0);
    httpc_t *h = httpc_new(audit_url, NULL, REVIEW_TIMEOUT_MS);
    char *esc = httpc_escape(case_id);
    char path[512];
    httpc_resp_t resp = {.retry_after_ms = -1};
    unsigned rc;
    if (!h || !esc || (authorization && httpc_set_header(h, "Authorization", authorization) != 0)) {
        snprintf(why, whylen, "cannot tell whether the case is in ops review: cannot ask audit");
        rc = 503;
    } else {
        snprintf(path, sizeof path, "/cases/%s", esc);
        int r = httpc_do(h, "GET", path, NULL, NULL, &resp);
        rc = review_judge(r == 0 ? resp.status : 0, resp.body, why, whylen);
        if (r != 0)
            snprintf(why, whylen, "cannot tell whether the case is in ops review: audit: %s", resp.error);
    }
    httpc_resp_free(&resp);
    free(esc);
    httpc_destroy(&h);
    return rc;
}
