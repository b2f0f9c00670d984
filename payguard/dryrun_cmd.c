/* dryrun_cmd - `payguard replay --stage triage|approve --dry-run`: re-run
 * a stage's decisions over the inputs it recorded, with this build's code
 * and the configuration given now, and print where they differ from what
 * was recorded (an incident replay: would a new policy, or new rules, have
 * decided otherwise?).
 *
 * The recorded decisions are read first, then their inputs: a stage
 * journals what it emits before sending it, so every input a recorded
 * decision answered is already in its producer's journal, whether the
 * group is running or down.
 *
 *   approve  decisions: the "routed" events of every approve.N journal that
 *            carry a route (a note that a pending approval stands, and an
 *            ops-review retry round, are not policy's decisions); inputs:
 *            the "triaged" event each answered (its cause), found in the
 *            triage.N journals. Re-run: policy_input_from_json and
 *            policy_route under the policy loaded from the configuration.
 *            Compared: route kind, tier, required roles, rule, action.
 *   triage   decisions: the "triaged" events of every triage.N journal;
 *            inputs: the validated / duplicate / out_of_order event each
 *            answered, in the validate.N journals. Re-run:
 *            triage_case_from_event and triage_rules. Compared:
 *            classification, root cause, recommendation, confidence with
 *            the recorded advice, or with the recorded rules baseline
 *            ("rules_advice") when the advice came from a model: the dry
 *            run never calls the model (outside/llm), it re-runs the rules.
 *
 * Read-only: journal readers beside live writers; nothing is journaled,
 * sent or called. Differences are the answer, not an error (exit 0). */
#include <assert.h>
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "rules.h"
#include "cli.h"
#include "journal.h"
#include "stage.h"

/* labels_t - what triage's comparison looks at (an advice without its text) */
typedef struct {
    char classification[48];
    char root_cause[40];
    char recommendation[40];
    int confidence_permille;
} labels_t;

/* decision_t - one recorded decision, and what re-running it gave */
typedef struct {
    char case_id[EVENT_KEY_MAX + 1];
    char cause[EVENT_ID_MAX + 1]; /* the input it answered */
    bool rerun;                   /* its input was found and re-run */
    char *diff;                   /* "recorded: ...  now: ..." when they differ (owned) */
    union {
        route_t route; /* approve: the recorded route */
        struct {
            labels_t labels; /* triage: the recorded labels */
            char source[80]; /* triage: where the recorded advice came from */
        };
    };
} decision_t;

/* dryrun_t - the recorded decisions of one stage, in journal order */
typedef struct {
    const config_t *config;
    policy_t policy; /* approve: from the configuration given */
    decision_t *items;
    size_t n, cap;
    zhash_t *by_cause; /* cause -> index + 1 (first decision wins) */
    size_t from_model; /* triage: re-run decisions whose advice a model gave */
} dryrun_t;

/* scan_fn - called for every event of a journal scan */
typedef void(scan_fn)(dryrun_t *d, const event_t *ev);

/* s_usage - the dry run's synopsis (exit status 2) */
static int s_usage(void)
{
    fprintf(stderr, "usage: payguard replay --stage triage|approve --dry-run [-c CONFIG]\n");
    return 2;
}

/* s_add - a recorded decision answering cause; NULL if one was recorded
 * for that input already (a re-delivered input keeps its first answer) */
static decision_t *s_add(dryrun_t *d, const event_head_t *h)
{
    if (!h->cause[0] || zhash_lookup(d->by_cause, h->cause))
        return NULL;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->items = realloc(d->items, d->cap * sizeof *d->items);
        assert(d->items);
    }
    decision_t *x = &d->items[d->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->case_id, sizeof x->case_id, "%s", h->case_key);
    snprintf(x->cause, sizeof x->cause, "%s", h->cause);
    zhash_insert(d->by_cause, h->cause, (void *) (uintptr_t) d->n);
    return x;
}

/* s_find - the recorded decision that answered the input with this id, or NULL */
static decision_t *s_find(dryrun_t *d, const char *input_id)
{
    uintptr_t i = (uintptr_t) zhash_lookup(d->by_cause, input_id);
    return i ? &d->items[i - 1] : NULL;
}

/* s_scan - every event of every instance of stage, in journal order, to
 * fn; -1 and a message if a journal cannot be read to its end */
static int s_scan(dryrun_t *d, const char *stage, scan_fn *fn)
{
    int n = config_instances(d->config, stage);
    for (int i = 0; i < n; i++) {
        char *dir = config_journal_dir(d->config, stage, i);
        char err[512];
        journal_reader_t *r = journal_reader_new(dir, 1, err, sizeof err);
        if (!r) {
            fprintf(
                stderr,
                "payguard: cannot read %s.%d's journal: %s (has the group run with this configuration's data_dir?)\n",
                stage, i, err);
            free(dir);
            return -1;
        }
        free(dir);
        event_t *ev;
        while ((ev = stage_read_event(r, NULL, NULL)) != NULL) {
            fn(d, ev);
            event_destroy(&ev);
        }
        bool failed = *journal_reader_error(r) != '\0';
        if (failed)
            fprintf(stderr, "payguard: %s.%d's journal: %s\n", stage, i, journal_reader_error(r));
        journal_reader_destroy(&r);
        if (failed)
            return -1;
    }
    return 0;
}

/* s_differs - record what the re-run of x gave, when it is not what was recorded */
static void s_differs(decision_t *x, const char *recorded_label, const char *recorded, const char *now)
{
    size_t len = strlen(recorded_label) + strlen(recorded) + strlen(now) + 16;
    x->diff = malloc(len);
    assert(x->diff);
    snprintf(x->diff, len, "%s: %s  now: %s", recorded_label, recorded, now);
}

/* ------------------------------------------------------------ approve */

/* s_route_of_record - the route a "routed" event's body states */
static void s_route_of_record(const json_t *b, route_t *r)
{
    memset(r, 0, sizeof *r);
    const char *state = json_string_value(json_object_get(b, "state"));
    r->kind = strcmp(state, "no_action") == 0       ? ROUTE_NO_ACTION
              : strcmp(state, "auto_approved") == 0 ? ROUTE_AUTO
                                                    : ROUTE_HUMANS;
    r->tier = (int) json_integer_value(json_object_get(b, "tier"));
    size_t i;
    json_t *role;
    json_array_foreach(json_object_get(b, "required_roles"), i, role) if (r->nroles < POLICY_MAX_ROLES)
        snprintf(r->roles[r->nroles++], POLICY_ROLE_MAX, "%s", json_is_string(role) ? json_string_value(role) : "");
    const char *rule = json_string_value(json_object_get(b, "rule"));
    const char *action = json_string_value(json_object_get(b, "action"));
    snprintf(r->rule, sizeof r->rule, "%s", rule ? rule : "");
    snprintf(r->action, sizeof r->action, "%s", action ? action : "");
}

/* s_route_same - the same decision: kind, tier, roles (in order), rule, action */
static bool s_route_same(const route_t *a, const route_t *b)
{
    if (a->kind != b->kind || a->tier != b->tier || a->nroles != b->nroles || strcmp(a->rule, b->rule) != 0 ||
        strcmp(a->action, b->action) != 0)
        return false;
    for (size_t i = 0; i < a->nroles; i++)
        if (strcmp(a->roles[i], b->roles[i]) != 0)
            return false;
    return true;
}

/* s_route_text - "humans tier 2 (finance_manager compliance) rule payout_tier_2",
 * "auto rule refund_auto_approve", "no_action rule already_consistent";
 * the action too when with_action (when it is what changed) */
static void s_route_text(const route_t *r, bool with_action, char *out, size_t len)
{
    size_t n = 0;
    if (r->kind == ROUTE_HUMANS) {
        n += (size_t) snprintf(out, len, "humans tier %d (", r->tier);
        for (size_t i = 0; i < r->nroles && n < len; i++)
            n += (size_t) snprintf(out + n, len - n, "%s%s", i ? " " : "", r->roles[i]);
        if (n < len)
            n += (size_t) snprintf(out + n, len - n, ")");
    } else {
        n += (size_t) snprintf(out, len, "%s", r->kind == ROUTE_AUTO ? "auto" : "no_action");
    }
    if (n < len)
        n += (size_t) snprintf(out + n, len - n, " rule %s", r->rule);
    if (with_action && n < len)
        snprintf(out + n, len - n, " action %s", r->action);
}

/* s_collect_routed - approve's routes: a "routed" event with a state is
 * policy's decision on the triaged event it answers; one without (a newer
 * fact about a case already awaiting people: the pending approval stood)
 * and an ops-review retry round (people asked, no input) are not */
static void s_collect_routed(dryrun_t *d, const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    if (h->kind != EV_ROUTED)
        return;
    json_t *b = event_body_to_json(ev);
    if (json_is_string(json_object_get(b, "state")) && json_integer_value(json_object_get(b, "retry")) == 0) {
        decision_t *x = s_add(d, h);
        if (x)
            s_route_of_record(b, &x->route);
    }
    json_decref(b);
}

/* s_rerun_approve - route a recorded triaged event again under the policy given */
static void s_rerun_approve(dryrun_t *d, const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    decision_t *x;
    if (h->kind != EV_TRIAGED || !(x = s_find(d, h->id)) || x->rerun)
        return;
    x->rerun = true;
    json_t *b = event_body_to_json(ev);
    policy_input_t in;
    policy_input_from_json(b, &in);
    json_decref(b);
    route_t now;
    policy_route(&d->policy, &in, &now);
    if (s_route_same(&x->route, &now))
        return;
    bool with_action = strcmp(x->route.action, now.action) != 0;
    char was[512], is[512];
    s_route_text(&x->route, with_action, was, sizeof was);
    s_route_text(&now, with_action, is, sizeof is);
    s_differs(x, "recorded", was, is);
}

/* ------------------------------------------------------------- triage */

/* s_labels_of_json - the labels of an advice object as recorded */
static void s_labels_of_json(const json_t *a, labels_t *l)
{
    memset(l, 0, sizeof *l);
#define LABEL(field)                                                                                                   \
    snprintf(l->field, sizeof l->field, "%s",                                                                          \
             json_is_string(json_object_get(a, #field)) ? json_string_value(json_object_get(a, #field)) : "")
    LABEL(classification);
    LABEL(root_cause);
    LABEL(recommendation);
#undef LABEL
    l->confidence_permille = (int) json_integer_value(json_object_get(a, "confidence_permille"));
}

/* s_labels_same - the same advice as far as anything downstream reads it */
static bool s_labels_same(const labels_t *a, const labels_t *b)
{
    return strcmp(a->classification, b->classification) == 0 && strcmp(a->root_cause, b->root_cause) == 0 &&
           strcmp(a->recommendation, b->recommendation) == 0 && a->confidence_permille == b->confidence_permille;
}

/* s_labels_text - "payout_exception bank_rejection request_updated_bank_details confidence 850" */
static void s_labels_text(const labels_t *l, char *out, size_t len)
{
    snprintf(out, len, "%s %s %s confidence %d", l->classification, l->root_cause, l->recommendation,
             l->confidence_permille);
}

/* s_collect_triaged - triage's advice on each input: what the rules said
 * when the rules advised, the rules' baseline beside a model's advice */
static void s_collect_triaged(dryrun_t *d, const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    if (h->kind != EV_TRIAGED)
        return;
    decision_t *x = s_add(d, h);
    if (!x)
        return;
    json_t *b = event_body_to_json(ev);
    json_t *advice = json_object_get(b, "advice");
    const char *source = json_string_value(json_object_get(advice, "source"));
    snprintf(x->source, sizeof x->source, "%s", source ? source : "rules");
    bool model = strncmp(x->source, "llm:", 4) == 0;
    s_labels_of_json(model ? json_object_get(b, "rules_advice") : advice, &x->labels);
    json_decref(b);
}

/* s_rerun_triage - advise on a recorded validate decision again with the rules */
static void s_rerun_triage(dryrun_t *d, const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    decision_t *x;
    if ((h->kind != EV_VALIDATED && h->kind != EV_DUPLICATE && h->kind != EV_OUT_OF_ORDER) || !(x = s_find(d, h->id)) ||
        x->rerun)
        return;
    x->rerun = true;
    bool model = strncmp(x->source, "llm:", 4) == 0;
    d->from_model += model;
    triage_case_t c;
    triage_case_from_event(ev, &c);
    advice_t advice;
    triage_rules(&c, &advice);
    labels_t now;
    snprintf(now.classification, sizeof now.classification, "%s", advice.classification);
    snprintf(now.root_cause, sizeof now.root_cause, "%s", advice.root_cause);
    snprintf(now.recommendation, sizeof now.recommendation, "%s", advice.recommendation);
    now.confidence_permille = advice.confidence_permille;
    if (s_labels_same(&now, &x->labels))
        return;
    char was[256], is[256], label[160];
    s_labels_text(&x->labels, was, sizeof was);
    s_labels_text(&now, is, sizeof is);
    if (model)
        snprintf(label, sizeof label, "recorded rules_advice (the advice used came from %s)", x->source);
    else
        snprintf(label, sizeof label, "recorded");
    s_differs(x, label, was, is);
}

/* ------------------------------------------------------------- report */

/* s_report - the differing decisions in recorded order, then the summary
 * line "replay STAGE --dry-run: N cases re-run, K differ (WHAT)" */
static void s_report(dryrun_t *d, const char *stage, const char *what)
{
    zhash_t *cases = zhash_new();
    size_t rerun = 0, differ = 0, skipped = 0;
    for (size_t i = 0; i < d->n; i++) {
        decision_t *x = &d->items[i];
        if (!x->rerun) {
            skipped++;
            continue;
        }
        rerun++;
        zhash_insert(cases, x->case_id, (void *) 1);
        if (x->diff) {
            differ++;
            printf("%s  %s\n", x->case_id, x->diff);
        }
    }
    printf("replay %s --dry-run: %zu cases re-run", stage, zhash_size(cases));
    if (rerun != zhash_size(cases))
        printf(" (%zu decisions)", rerun);
    printf(", %zu differ (%s)", differ, what);
    if (skipped)
        printf("; %zu recorded decision%s not re-run: %s input is not in %s's journals", skipped,
               skipped == 1 ? "" : "s", skipped == 1 ? "its" : "their", config_prev_stage(stage));
    printf("\n");
    zhash_destroy(&cases);
}

/* s_run - collect the stage's decisions, re-run them over their inputs, report */
static int s_run(dryrun_t *d, const char *stage)
{
    bool approve = strcmp(stage, "approve") == 0;
    if (s_scan(d, stage, approve ? s_collect_routed : s_collect_triaged) != 0 ||
        s_scan(d, config_prev_stage(stage), approve ? s_rerun_approve : s_rerun_triage) != 0)
        return 1;
    const char *path = config_path(d->config);
    char what[CONFIG_PATH_MAX + 128];
    if (approve) {
        snprintf(what, sizeof what, "policy from %s", path ? path : "the embedded defaults");
    } else {
        const char *llm = config_get(d->config, "outside/llm");
        if (llm && *llm)
            printf("note: outside/llm is configured, but a dry run re-runs the deterministic rules only: "
                   "the model is not called\n");
        snprintf(what, sizeof what, "the deterministic rules of this build");
        if (d->from_model)
            snprintf(what + strlen(what), sizeof what - strlen(what),
                     "; %zu advised by a model: compared with the rules baseline recorded beside %s", d->from_model,
                     d->from_model == 1 ? "it" : "each");
    }
    s_report(d, stage, what);
    return 0;
}

/* cmd_replay_dry_run - `payguard replay --stage triage|approve --dry-run [-c CONFIG]` */
int cmd_replay_dry_run(int argc, char **argv)
{
    const char *stage = NULL;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stage") == 0 && i + 1 < argc) {
            stage = argv[++i];
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry = true;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
        } else if (strcmp(argv[i], "--from") == 0) {
            fprintf(stderr, "payguard: replay --stage re-runs a stage's decisions; --from re-feeds a journal: "
                            "one or the other\n");
            return s_usage();
        } else {
            return s_usage();
        }
    }
    if (!stage)
        return s_usage();
    if (strcmp(stage, "triage") != 0 && strcmp(stage, "approve") != 0) {
        fprintf(stderr, "payguard: replay --dry-run re-runs triage or approve, not '%s'\n", stage);
        return 2;
    }
    if (!dry) {
        fprintf(stderr,
                "payguard: replay --stage %s only does dry runs (add --dry-run); to re-feed recorded "
                "events for real, use replay --from INSTANCE\n",
                stage);
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    dryrun_t d = {.config = c, .by_cause = zhash_new()};
    assert(d.by_cause);
    int status = 0;
    char err[512];
    if (strcmp(stage, "approve") == 0 && policy_load(c, &d.policy, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: %s\n", err);
        status = 2;
    } else {
        status = s_run(&d, stage);
    }
    for (size_t i = 0; i < d.n; i++)
        free(d.items[i].diff);
    free(d.items);
    zhash_destroy(&d.by_cause);
    config_destroy(&c);
    return status;
}
