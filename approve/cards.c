/* cards - the Teams cards approve sends: a case awaiting people, a
 * decision, an outcome, with the runbook a waiting case would run (see
 * approve.h) */
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approve.h"
#include "httpd.h"
#include "log.h"
#include "money.h"
#include "runbook.h"
#include "stage.h"
#include "utc.h"

/* cards_card - an Adaptive Card 1.4 about a case, as a "notice" body for execute */
event_body_t *cards_card(approve_t *a, const approval_t *c, const char *title)
{
    char amount[64], exp[32], tier[8];
    money_format(c->amount, c->currency, amount, sizeof amount);
    snprintf(tier, sizeof tier, "%d", c->route.tier);
    utc_iso(c->expires_ms, exp);
    char roles[256] = "";
    for (size_t i = 0; i < c->route.nroles; i++)
        snprintf(roles + strlen(roles), sizeof roles - strlen(roles), "%s%s", i ? ", " : "", c->route.roles[i]);
    json_t *rec = c->advice ? json_loads(c->advice, 0, NULL) : NULL;
    const char *advice = "";
    json_t *s = json_object_get(rec, "summary");
    if (json_is_string(s))
        advice = json_string_value(s);
    char url[RB_URL_MAX], err[256];
    if (runbook_case_url(&a->rb_opts, c->case_id, url, err, sizeof err) != 0) {
        log_warn("case %s: the card gets no link: %s", c->case_id, err);
        url[0] = '\0';
    }
    json_t *facts =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "title", "Case", "value",
                  c->case_id, "title", "Kind", "value", c->kind, "title", "Amount", "value", amount, "title", "Tier",
                  "value", tier, "title", "Required roles", "value", roles, "title", "State", "value",
                  approval_state_name(c->state), "title", "Expires", "value", exp);
    json_t *card = json_pack(
        "{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:b}, {s:s, s:o}, {s:s, s:s, s:b, s:s}, {s:s, s:s, s:b}], "
        "s:[{s:s, s:s, s:s}]}",
        "type", "AdaptiveCard", "version", "1.4", "$schema", "http://adaptivecards.io/schemas/adaptive-card.json",
        "body", "type", "TextBlock", "size", "Medium", "text", title, "wrap", 1, "type", "FactSet", "facts", facts,
        "type", "TextBlock", "text", "AI advice (advisory only; people and policy decide):", "wrap", 1, "weight",
        "Bolder", "type", "TextBlock", "text", advice, "wrap", 1, "actions", "type", "Action.OpenUrl", "title",
        "Open the case", "url", url);
    json_decref(rec); /* advice pointed into it; json_pack copied the text */
    event_body_t *b = event_body_new();
    event_body_str(b, "channel", "teams");
    event_body_str(b, EK_CASE_ID, c->case_id);
    event_body_str(b, "title", title);
    event_body_json(b, "card", card);
    json_decref(card);
    return approve_traced(c, b);
}
