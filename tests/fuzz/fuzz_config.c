/* fuzz_config - libFuzzer target for the group configuration (common/config.h)
 * and the operator-written values read from it: approvers (common/people.h)
 * and approval policy (common/policy.h).
 *
 * Input: the text of a configuration file (ZPL), written to a file of its
 * own for config_load, which takes a path; inputs over FZ_MAX_BYTES are
 * ignored. The file lives in a directory made once under /dev/shm or
 * $TMPDIR and removed at exit.
 *
 * Each input: czmq's ZPL parser (zconfig_chunk_load) on the bytes; then,
 * when they are ZPL, config_load on the file, the accessors over every
 * setting, people_load and policy_load on the result, and a few routes
 * and logins with what loaded. Properties checked besides the sanitizers':
 *   - a refusal (config_load, people_load, policy_load) writes a one-line
 *     reason; policy_load leaves its output zeroed when it refuses;
 *   - every value the file sets is the value payguard reads at that path
 *     (config_get): nothing the operator wrote is silently ignored;
 *   - run_dir and data_dir are absolute; instances are in range;
 *   - approvers: at most PEOPLE_MAX, each named as in the file, with a
 *     token_sha256 of exactly 64 hex digits that decodes to the hash kept;
 *   - policy: every tier has 1..POLICY_MAX_ROLES roles of [a-z_], every
 *     currency three upper-case letters with ordered thresholds, and a
 *     route under it names a rule and, for people, their tier's roles.
 *
 * czmq 4.2.1's zconfig_load leaks its zfile_t (104 bytes) when the file is
 * not valid ZPL; this target found it, and config_load now reads the file
 * itself and parses it with zconfig_chunk_load, so every input, ZPL or not,
 * goes to config_load.
 *
 *   make bin/fuzz_config && mkdir -p build-fuzz/corpus/config &&
 *   ./bin/fuzz_config -max_total_time=10 build-fuzz/corpus/config tests/fuzz/config
 * (new finds go to the first directory; the seeds stay as they are)
 */
#include "fuzz_util.h"
#include "policy.h"
#include "config.h"
#include "log.h"
#include "people.h"

#include <assert.h>
#include <czmq.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef NDEBUG
#error "the properties are asserts: build fuzz targets without NDEBUG"
#endif

#define FZ_MAX_BYTES (64u * 1024u)

static char s_dir[256];
static char s_path[320];

/* s_cleanup - at exit, leave nothing behind */
static void s_cleanup(void)
{
    unlink(s_path);
    rmdir(s_dir);
}

/* LLVMFuzzerInitialize - quiet logs, one file for every input; czmq's
 * parser reports each syntax error on stdout (zclock_log), which would
 * drown the fuzzer's own output, so stdout goes to /dev/null */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    log_init("fuzz_config", "error", NULL);
    fz_tempdir("fuzz_config", s_dir, sizeof s_dir);
    snprintf(s_path, sizeof s_path, "%s/payguard.cfg", s_dir);
    atexit(s_cleanup);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        fflush(stdout);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    return 0;
}

/* s_write_file - the input as the configuration file */
static void s_write_file(const uint8_t *data, size_t size)
{
    fz_write_file(s_path, data, size, 0600);
}

/* s_check_text - a reason: written, NUL-terminated, one line */
static void s_check_text(const char *text, size_t cap)
{
    assert(memchr(text, '\0', cap) != NULL);
    assert(text[0] != '\0' && text[0] != 'Z');
    assert(strchr(text, '\n') == NULL);
}

/* s_read_back - every value the file sets is what config_get answers at
 * its path (the file's tree is walked as czmq parsed it) */
static void s_read_back(const config_t *c, zconfig_t *node, const char *prefix)
{
    for (zconfig_t *k = zconfig_child(node); k; k = zconfig_next(k)) {
        const char *name = zconfig_name(k);
        size_t plen = strlen(prefix) + 1 + strlen(name) + 1;
        char *path = malloc(plen);
        assert(path);
        snprintf(path, plen, "%s%s%s", prefix, *prefix ? "/" : "", name);
        const char *want = zconfig_value(k);
        const char *got = config_get(c, path);
        if (want && (!got || strcmp(got, want) != 0)) {
            fprintf(stderr, "fuzz_config: the file sets %s = '%s' but payguard reads '%s'\n", path, want,
                    got ? got : "(null)");
            abort();
        }
        s_read_back(c, k, path);
        free(path);
    }
}

/* s_accessors - the getters stages call at start, on what loaded */
static void s_accessors(const config_t *c)
{
    assert(strcmp(config_path(c), s_path) == 0);
    assert(config_run_dir(c)[0] == '/' && config_data_dir(c)[0] == '/');
    static const struct {
        const char *path;
        long min, max;
    } ints[] = {{"payguard/journal/segment_bytes", 4096, 1L << 40},
                {"payguard/delivery/max_inflight", 1, 1000000},
                {"payguard/delivery/resend_ms", 1, 3600000},
                {"ingest/http_port", 1, 65535},
                {"approve/confidence_min", 0, 1000},
                {"validate/tolerance_s", 0, 86400}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        long v = -1;
        char err[256];
        memset(err, 'Z', sizeof err);
        if (config_int(c, ints[i].path, ints[i].min, ints[i].max, &v, err, sizeof err) == 0)
            assert(v >= ints[i].min && v <= ints[i].max);
        else
            s_check_text(err, sizeof err);
    }
    for (int s = 0; s < CONFIG_NSTAGES; s++) {
        const char *stage = config_stages[s];
        int n = config_instances(c, stage);
        assert(n >= 1 && n <= CONFIG_MAX_INSTANCES);
        for (int i = 0; i < n; i++) {
            char *in = config_input_endpoint(c, stage, i);
            char *ack = config_ack_endpoint(c, stage, i);
            char *dir = config_journal_dir(c, stage, i);
            assert(ack && dir && dir[0] == '/');
            char inst[48], back[32];
            int index = -1;
            snprintf(inst, sizeof inst, "%s.%d", stage, i);
            assert(config_parse_instance(inst, back, &index) == 0 && index == i && strcmp(back, stage) == 0);
            free(in);
            free(ack);
            free(dir);
        }
    }
    const char *tmpl = config_get(c, "sandbox/db");
    if (tmpl) {
        char *x = config_expand(c, tmpl, "triage", 15);
        free(x);
    }
    const char *names[4];
    bool from_file = false;
    size_t n = config_children(c, "approvers", names, 4, &from_file);
    assert(n <= 4);
    for (size_t i = 0; i < n; i++)
        (void) config_child_get(c, "approvers", names[i], "roles");
    n = config_children(c, "approve/thresholds", names, 4, NULL);
    for (size_t i = 0; i < n; i++)
        (void) config_child_get(c, "approve/thresholds", names[i], NULL);
}

/* s_hexval - a hex digit's value, -1 if it is not one */
static int s_hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* s_people - approvers as loaded against the file's words */
static void s_people(const config_t *c)
{
    static people_t p;
    char err[256];
    memset(err, 'Z', sizeof err);
    if (people_load(c, &p, err, sizeof err) != 0) {
        s_check_text(err, sizeof err);
        return;
    }
    assert(p.n <= PEOPLE_MAX);
    for (size_t i = 0; i < p.n; i++) {
        const person_t *who = &p.people[i];
        assert(who->name[0] != '\0' && memchr(who->name, '\0', sizeof who->name));
        assert(config_child_get(c, "approvers", who->name, NULL) != NULL);
        const char *hex = config_child_get(c, "approvers", who->name, "token_sha256");
        assert(hex && strlen(hex) == 64);
        for (int b = 0; b < 32; b++) {
            int hi = s_hexval(hex[2 * b]), lo = s_hexval(hex[2 * b + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "fuzz_config: approvers/%s/token_sha256 = '%s' accepted, not 64 hex digits\n",
                        who->name, hex);
                abort();
            }
            assert(who->hash[b] == (unsigned char) (hi << 4 | lo));
        }
        assert(who->nroles <= PEOPLE_MAX_ROLES);
        for (size_t r = 0; r < who->nroles; r++) {
            assert(who->roles[r][0] != '\0' && memchr(who->roles[r], '\0', PEOPLE_ROLE_MAX));
            assert(people_holds(who, who->roles[r]));
        }
    }
    assert(people_by_auth(&p, "Bearer not-a-token-anyone-has") == NULL);
    assert(people_by_auth(&p, "Basic eA==") == NULL);
}

/* s_role_ok - a policy role is [a-z_]{1,31} */
static bool s_role_ok(const char *role)
{
    size_t n = strnlen(role, POLICY_ROLE_MAX);
    return n >= 1 && n < POLICY_ROLE_MAX && strspn(role, "abcdefghijklmnopqrstuvwxyz_") == n;
}

/* s_route - one case through the loaded policy */
static void s_route(const policy_t *pol, const char *kind, int64_t amount, const char *currency, int confidence)
{
    policy_input_t in;
    memset(&in, 0, sizeof in);
    snprintf(in.kind, sizeof in.kind, "%s", kind);
    snprintf(in.classification, sizeof in.classification, "%s",
             strcmp(kind, "refund") == 0 ? "refund_missing_ledger_entry" : "payout_exception");
    snprintf(in.currency, sizeof in.currency, "%s", currency);
    snprintf(in.psp_status, sizeof in.psp_status, "succeeded");
    snprintf(in.customer_risk, sizeof in.customer_risk, "low");
    in.amount = amount;
    in.confidence_permille = confidence;
    in.ledger_refund_initiated = 1;
    route_t r;
    memset(&r, 0, sizeof r);
    policy_route(pol, &in, &r);
    assert(r.rule[0] != '\0' && memchr(r.reason, '\0', sizeof r.reason));
    if (r.kind == ROUTE_HUMANS) {
        assert(r.tier >= 1 && r.tier <= POLICY_TIERS);
        assert(r.nroles == pol->ntier_roles[r.tier - 1]);
    }
}

/* s_policy - the approval policy as loaded */
static void s_policy(const config_t *c)
{
    static policy_t pol;
    static const policy_t zero;
    char err[256];
    memset(err, 'Z', sizeof err);
    if (policy_load(c, &pol, err, sizeof err) != 0) {
        s_check_text(err, sizeof err);
        assert(memcmp(&pol, &zero, sizeof pol) == 0);
        return;
    }
    assert(pol.confidence_min_permille >= 0 && pol.confidence_min_permille <= 1000);
    for (int t = 0; t < POLICY_TIERS; t++) {
        assert(pol.ntier_roles[t] >= 1 && pol.ntier_roles[t] <= POLICY_MAX_ROLES);
        for (size_t i = 0; i < pol.ntier_roles[t]; i++)
            assert(s_role_ok(pol.tier_roles[t][i]));
        route_t r;
        memset(&r, 0, sizeof r);
        assert(policy_tier(&pol, t + 1, &r) == 0 && r.tier == t + 1);
    }
    assert(pol.ncurrencies <= POLICY_MAX_CURRENCIES);
    for (size_t i = 0; i < pol.ncurrencies; i++) {
        const policy_currency_t *cur = &pol.currencies[i];
        assert(strlen(cur->currency) == 3 && strspn(cur->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3);
        assert(cur->tier2_from >= 0 && cur->tier2_from <= cur->tier3_above && cur->refund_auto_max >= 0);
        int t1 = policy_amount_tier(&pol, cur->tier2_from - (cur->tier2_from > 0), cur->currency);
        int t3 = policy_amount_tier(&pol, cur->tier3_above + (cur->tier3_above < INT64_MAX), cur->currency);
        assert(t1 >= 1 && t1 <= t3 && t3 <= 3);
        s_route(&pol, "payout", cur->tier3_above, cur->currency, 900);
        s_route(&pol, "refund", cur->refund_auto_max, cur->currency, 1000);
    }
    s_route(&pol, "payout", INT64_MAX, "XXX", 0);
    s_route(&pol, "refund", 1, "usd", 1000);
    s_route(&pol, "other", -1, "", 500);
}

/* LLVMFuzzerTestOneInput - one input: a configuration file (see the top) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_BYTES)
        return 0;
    zchunk_t *chunk = zchunk_new(data, size);
    assert(chunk);
    zconfig_t *tree = zconfig_chunk_load(chunk);
    zchunk_destroy(&chunk);
    s_write_file(data, size);
    char err[512];
    memset(err, 'Z', sizeof err);
    config_t *c = config_load(s_path, err, sizeof err);
    if (!c) {
        s_check_text(err, sizeof err);
        zconfig_destroy(&tree);
        return 0;
    }
    if (tree) /* config_load parses with the same parser: it refused what has no tree */
        s_read_back(c, tree, "");
    s_accessors(c);
    s_people(c);
    s_policy(c);
    config_destroy(&c);
    assert(c == NULL);
    zconfig_destroy(&tree);
    return 0;
}
