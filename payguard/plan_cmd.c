/* plan_cmd - `payguard plan CASE`: the exact calls a case's runbook would
 * make, without making them (a dry run of execute/runbook.c over what
 * approve recorded for the case). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runbook.h"
#include "cli.h"
#include "journal.h"
#include "stage.h"

/* s_latest - the newest approve record of a case: approved/denied, else routed */
static json_t *s_latest(const config_t *c, const char *case_id, char type[16])
{
    char *dir = config_journal_dir(c, "approve", 0);
    char err[512];
    journal_reader_t *r = journal_reader_new(dir, 1, err, sizeof err);
    free(dir);
    if (!r) {
        fprintf(stderr, "payguard: %s\n", err);
        return NULL;
    }
    json_t *best = NULL;
    event_t *ev;
    while ((ev = stage_read_event(r, NULL, NULL)) != NULL) {
        const event_head_t *h = event_head(ev);
        bool decided = h->kind == EV_APPROVED || h->kind == EV_DENIED;
        if (strcmp(h->case_key, case_id) == 0 &&
            (decided ||
             (h->kind == EV_ROUTED && event_type_of(type) != EV_APPROVED && event_type_of(type) != EV_DENIED))) {
            json_t *body = event_body_to_json(ev);
            if (json_object_get(body, "facts")) {
                json_decref(best);
                best = json_incref(body);
                snprintf(type, 16, "%.15s", h->type);
            }
            json_decref(body);
        }
        event_destroy(&ev);
    }
    journal_reader_destroy(&r);
    return best;
}

/* cmd_plan - print the runbook's calls for a case */
int cmd_plan(int argc, char **argv)
{
    const char *case_id = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    if (!case_id) {
        fprintf(stderr, "usage: payguard plan CASE [-c CONFIG]\n");
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    char type[16] = "";
    json_t *body = s_latest(c, case_id, type);
    if (!body) {
        fprintf(stderr, "payguard: approve has no record of case %s\n", case_id);
        config_destroy(&c);
        return 1;
    }
    const char *sn = config_get(c, "outside/servicenow");
    rb_opts_t opts = {.ticket_system = sn && *sn ? "servicenow" : "jira",
                      .jira_project = config_get(c, "execute/jira_project"),
                      .public_url = config_get(c, "approve/public_url")};
    rb_plan_t plan;
    char err[256];
    event_type_t as = event_type_of(type) == EV_ROUTED ? EV_APPROVED : event_type_of(type);
    if (runbook_plan(as, body, &opts, &plan, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: cannot plan %s: %s\n", case_id, err);
        json_decref(body);
        config_destroy(&c);
        return 1;
    }
    printf("case %s: runbook %s (%s)%s\n", case_id, plan.runbook, type,
           event_type_of(type) == EV_ROUTED ? " — not decided yet: the calls it would make once approved" : "");
    for (size_t i = 0; i < plan.n; i++) {
        rb_step_t *s = &plan.steps[i];
        char key[64];
        snprintf(key, sizeof key, "outside/%s", s->system);
        char lookup[RB_LOOKUP_MAX] = "";
        runbook_step_lookup(plan.case_id, s, lookup);
        if (lookup[0]) /* Jira and ServiceNow ignore the key: the step searches first (common/ticket.h) */
            printf("%zu. %-24s GET %s%s\n   then, only if that finds nothing:\n", i + 1, s->name, config_get(c, key),
                   lookup);
        printf("%s%zu. %-24s %s %s%s\n   Idempotency-Key: %s\n   %s\n", lookup[0] ? "   " : "", i + 1, s->name,
               s->method, config_get(c, key), s->path, s->idem_key, s->body ? s->body : "");
    }
    for (size_t i = 0; i < plan.nnotes; i++)
        if (plan.notes[i][0])
            printf("note: %s\n", plan.notes[i]);
    if (plan.n == 0)
        printf("(no calls)\n");
    runbook_plan_clear(&plan);
    json_decref(body);
    config_destroy(&c);
    return 0;
}
