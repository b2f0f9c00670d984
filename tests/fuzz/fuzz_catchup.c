/* fuzz_catchup - libFuzzer target for what `payguard catch-up stripe` reads
 * from outside: a page of Stripe's Events API (catchup_page) and its own
 * state file (catchup_state_get / _put, payguard/catchup.h).
 *
 * Each input is taken twice: as the body of a list answer, and as the
 * content of a state file (written to a file of its own in a directory made
 * once under /dev/shm or $TMPDIR). Properties checked besides the
 * sanitizers':
 *   - a refused page appends nothing and says why in one line; an accepted
 *     one appends at most CATCHUP_PAGE_LIMIT events, each with an id
 *     catchup_id_ok accepts (what goes into starting_after and the state
 *     file), a string type and an integer created;
 *   - a state file is read or refused with a reason, never half-read; when
 *     it is read, a run put into it is read back as it was put.
 *
 *   make bin/fuzz_catchup && mkdir -p build-fuzz/corpus/catchup &&
 *   ./bin/fuzz_catchup -max_total_time=10 build-fuzz/corpus/catchup tests/fuzz/catchup
 */
#include "../../payguard/catchup.h"
#include "fuzz_util.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FZ_MAX_BYTES (256 * 1024)

static char s_dir[256];

/* s_page - the input as a list answer */
static void s_page(const uint8_t *data, size_t size)
{
    json_t *events = json_array();
    bool more = false;
    char err[256] = "";
    int n = catchup_page((const char *) data, size, events, &more, err, sizeof err);
    if (n < 0) {
        assert(json_array_size(events) == 0);
        assert(err[0] && !strchr(err, '\n'));
    } else {
        assert(n <= CATCHUP_PAGE_LIMIT && json_array_size(events) == (size_t) n);
        for (int i = 0; i < n; i++) {
            json_t *e = json_array_get(events, (size_t) i);
            assert(catchup_id_ok(json_string_value(json_object_get(e, "id"))));
            assert(json_is_string(json_object_get(e, "type")) && json_is_integer(json_object_get(e, "created")));
        }
    }
    json_decref(events);
}

/* s_state - the input as a state file */
static void s_state(const uint8_t *data, size_t size)
{
    char path[320], err[512] = "";
    snprintf(path, sizeof path, "%s/catchup.state", s_dir);
    fz_write_file(path, data, size, 0600);
    catchup_run_t r;
    int found = catchup_state_get(path, 7, CATCHUP_OPEN_UNTIL, &r, err, sizeof err);
    if (found < 0) {
        assert(err[0]);
        return;
    }
    catchup_run_t w = {.since = 7, .until = CATCHUP_OPEN_UNTIL, .eff_until = 99, .fetched = 3, .fresh = 2, .dups = 1};
    snprintf(w.last_id, sizeof w.last_id, "evt_fuzz");
    if (catchup_state_put(path, &w, err, sizeof err) != 0)
        return; /* a line catchup_state_get skipped past may still be refused on the full read */
    assert(catchup_state_get(path, 7, CATCHUP_OPEN_UNTIL, &r, err, sizeof err) == 1);
    assert(r.eff_until == 99 && r.fetched == 3 && r.fresh == 2 && r.dups == 1 && !r.done);
    assert(strcmp(r.last_id, "evt_fuzz") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_BYTES)
        return 0;
    if (!s_dir[0])
        fz_tempdir("pg-fuzz-catchup", s_dir, sizeof s_dir);
    s_page(data, size);
    s_state(data, size);
    return 0;
}
