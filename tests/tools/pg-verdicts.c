/* pg-verdicts - list the verdicts in a journal, one line each, for tests.
 *
 *   pg-verdicts DIR
 *
 * For every event (emitted 'E' or stored 'S') whose type is a verdict —
 * rejected, validated, duplicate, out_of_order, ignored, sweep — prints
 *   <id> <cause or -> <type> <code or -> <case key or -> <stage>
 * so a shell test can join receipt ids to what validate made of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "journal.h"
#include "stage.h"

/* s_is_verdict - the event types a verdict list shows */
static int s_is_verdict(const char *type)
{
    static const char *types[] = {"rejected", "validated", "duplicate", "out_of_order", "ignored", "sweep"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(type, types[i]) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pg-verdicts JOURNAL_DIR\n");
        return 2;
    }
    char err[512];
    journal_reader_t *r = journal_reader_new(argv[1], 1, err, sizeof err);
    if (!r) {
        fprintf(stderr, "pg-verdicts: %s\n", err);
        return 1;
    }
    event_t *ev;
    while ((ev = stage_read_event(r, NULL, NULL)) != NULL) {
        const event_head_t *h = event_head(ev);
        if (s_is_verdict(h->type)) {
            char *code = event_get_strdup(ev, "code");
            printf("%s %s %s %s %s %s\n", h->id, h->cause[0] ? h->cause : "-", h->type, code ? code : "-",
                   h->case_key[0] ? h->case_key : "-", h->stage);
            free(code);
        }
        event_destroy(&ev);
    }
    int rc = journal_reader_error(r)[0] ? -1 : 0;
    journal_reader_destroy(&r);
    return rc < 0 ? 1 : 0;
}
