/*++
 * NAME
 *	pg-stage-echo - a stage that answers each input with one event (tests only)
 * SYNOPSIS
 *	pg-stage-echo -c CONFIG -i 0
 * DESCRIPTION
 *	Runs the stage skeleton (common/stage*.c) as "triage" (or as the
 *	stage PG_ECHO_STAGE names, e.g. approve): each input is
 *	answered with one "triaged" event to the next stage and audit. The
 *	skeleton's own unit test (tests/unit/test_stage.c) starts it in a fresh
 *	process, plays its producer and consumers over ZeroMQ and checks acks,
 *	re-sends, the window bound and recovery. With PG_ECHO_DEFER set it
 *	answers nothing: each input is deferred (stage_defer) for good, as a
 *	runbook waiting on outside calls is. With PG_ECHO_NOTE set each input
 *	is also noted to its producer (stage_note: "rejected", its case key,
 *	its seq), and each note the stage is told is appended to the file
 *	PG_ECHO_NOTE names ("<from> <what> <subject> <n>" a line). A separate program, because a
 *	process that forks with a live ZeroMQ context cannot use it in the child.
 *--*/
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"

/* s_on_note - with PG_ECHO_NOTE: what a consumer told us, a line each */
static void s_on_note(stage_t *st, const char *from, const char *what, const char *subject, uint64_t n, void *arg)
{
    (void) st;
    (void) arg;
    FILE *f = fopen(getenv("PG_ECHO_NOTE"), "a");
    if (!f)
        return;
    fprintf(f, "%s %s %s %llu\n", from, what, subject, (unsigned long long) n);
    fclose(f);
}

/* s_handle - one "triaged" event per input, to the next stage and audit;
 * with PG_ECHO_DEFER, the input deferred and never finished */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    if (arg) {
        stage_defer(st);
        return STAGE_DEFERRED;
    }
    if (getenv("PG_ECHO_NOTE"))
        stage_note(st, "rejected", event_head(in)->case_key, event_head(in)->seq);
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, event_head(in)->case_key);
    event_body_str(b, "advice", "rules");    /* what a triaged event must carry */
    const char *pad = getenv("PG_ECHO_PAD"); /* bytes of padding in each answer (test_stage's byte window) */
    long npad = pad ? strtol(pad, NULL, 10) : 0;
    if (npad > 0 && npad <= 512 * 1024) {
        char *filler = malloc((size_t) npad + 1);
        assert(filler);
        memset(filler, 'x', (size_t) npad);
        filler[npad] = '\0';
        event_body_str(b, "pad", filler);
        free(filler);
    }
    int rc = stage_emit(st, EV_TRIAGED, event_head(in)->case_key, b, STAGE_TO_BOTH);
    event_body_destroy(&b);
    return rc == 0 ? STAGE_DONE : STAGE_RETRY;
}

int main(int argc, char **argv)
{
    static stage_def_t def = {.name = "triage", .handle = s_handle};
    if (getenv("PG_ECHO_DEFER")) {
        def.arg = &def; /* any non-NULL: defer */
        def.max_deferred = 16;
    }
    if (getenv("PG_ECHO_NOTE"))
        def.on_note = s_on_note;
    const char *as = getenv("PG_ECHO_STAGE"); /* "approve": a stage whose next one is partitioned */
    if (as && config_stage_index(as) >= 0)
        def.name = as;
    return stage_main(argc, argv, &def);
}
