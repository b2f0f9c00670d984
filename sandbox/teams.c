/* teams - a Microsoft Teams Workflows webhook (CONTRACT.md §2.5), under /teams.
 *
 *   POST /webhook[/{channel}]  {"type":"message","attachments":[{"contentType":
 *                               "application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard",
 *                               "version":"1.4","body":[...],"actions":[...]}}]} -> 202, empty body
 * Anything else is 400 {"error": reason}. The whole message is stored (see
 * /_sandbox/state, teams_cards). Like a real Workflows URL, it takes no
 * Bearer token (the URL is the secret) and no Idempotency-Key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

static const sbx_route_t s_routes[] = {
    {"POST", "/webhook"},
    {"POST", "/webhook/*"},
    {NULL, NULL},
};

/* s_route - the webhook URL, POST only */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    return rc >= 0 ? rc : sbx_route_error(rc, req, resp);
}

/* s_check - the message and every card's envelope; 0 or -1 + err */
static int s_check(json_t *msg, char *err, size_t errlen)
{
    json_t *atts = json_object_get(msg, "attachments");
    json_t *type = json_object_get(msg, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "message") != 0) {
        snprintf(err, errlen, "type must be \"message\"");
        return -1;
    }
    if (!json_is_array(atts) || json_array_size(atts) == 0) {
        snprintf(err, errlen, "attachments must be a non-empty array");
        return -1;
    }
    size_t i;
    json_t *a;
    json_array_foreach(atts, i, a)
    {
        json_t *ct = json_object_get(a, "contentType"), *card = json_object_get(a, "content");
        if (!json_is_string(ct) || strcmp(json_string_value(ct), "application/vnd.microsoft.card.adaptive")) {
            snprintf(err, errlen, "attachments[%zu].contentType must be application/vnd.microsoft.card.adaptive", i);
            return -1;
        }
        if (!json_is_object(card)) {
            snprintf(err, errlen, "attachments[%zu].content must be an Adaptive Card object", i);
            return -1;
        }
        json_t *type = json_object_get(card, "type"), *version = json_object_get(card, "version");
        if (!json_is_string(type) || strcmp(json_string_value(type), "AdaptiveCard")) {
            snprintf(err, errlen, "attachments[%zu].content.type must be \"AdaptiveCard\"", i);
            return -1;
        }
        if (!json_is_string(version)) {
            snprintf(err, errlen, "attachments[%zu].content.version must be a string such as \"1.4\"", i);
            return -1;
        }
        json_t *body = json_object_get(card, "body"), *actions = json_object_get(card, "actions");
        if ((body && !json_is_array(body)) || (actions && !json_is_array(actions))) {
            snprintf(err, errlen, "attachments[%zu].content body and actions must be arrays", i);
            return -1;
        }
    }
    return 0;
}

/* s_handle - accept and store one card message */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    char err[256], now[32];
    if (s_check(req->json, err, sizeof err))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    char *text = json_dumps(req->json, JSON_COMPACT);
    sbx_now_rfc3339(now);
    int rc = sbx_db_exec(st, "INSERT INTO teams_cards(message, received_at) VALUES(?, ?)", "ss", text, now);
    free(text);
    if (rc)
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_ACCEPTED, NULL);
}

const sbx_system_t sbx_teams = {
    .name = "teams",
    .prefix = "/teams",
    .route = s_route,
    .handle = s_handle,
};
