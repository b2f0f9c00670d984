/* caseidx - audit's case index in SQLite (see caseidx.h) */
#include "caseidx.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "log.h"
#include "sqlx.h"
#include "money.h"
#include "stage.h"
#include "utc.h"
#include "utf8.h"

#define CASEIDX_SCHEMA_VERSION 4 /* 3: events keep a summary and the trail position; 4: ids (FINDING A CASE) */

#define CASEIDX_STMT_CACHE 32

struct caseidx_t {
    sqlite3 *db;
    struct {
        const char *sql; /* the literal's address: each statement prepared once */
        sqlite3_stmt *st;
    } cache[CASEIDX_STMT_CACHE];
    size_t ncache;
    char path[512];
    char trail[512];     /* the trail's journal directory: timeline details are read there */
    journal_reader_t *r; /* on it, for those reads (made on the first) */
    bool in_txn;
    uint64_t applied_jseq;
    size_t ids_max;               /* ids one case keeps (caseidx_set_ids_max) */
    _Atomic uint64_t ids_dropped; /* not kept: their case was full (read by other threads) */
};

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cases(case_id TEXT PRIMARY KEY, kind TEXT, ref TEXT, provider TEXT,"
    "  amount INTEGER, currency TEXT, tier INTEGER, state TEXT NOT NULL, state_rank INTEGER NOT NULL,"
    "  state_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  receipts INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS cases_state ON cases(state, created_ms);"
    "CREATE INDEX IF NOT EXISTS cases_created ON cases(created_ms);"
    "CREATE TABLE IF NOT EXISTS events(id TEXT PRIMARY KEY, jseq INTEGER NOT NULL, seg INTEGER NOT NULL,"
    "  off INTEGER NOT NULL, case_id TEXT, type TEXT NOT NULL, time_ms INTEGER NOT NULL, stage TEXT NOT NULL,"
    "  cause TEXT NOT NULL, summary TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_case ON events(case_id, time_ms, jseq);"
    "CREATE TABLE IF NOT EXISTS links(id TEXT PRIMARY KEY, case_id TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS keys(case_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(case_id, key));"
    "CREATE TABLE IF NOT EXISTS ids(id TEXT NOT NULL, case_id TEXT NOT NULL, field TEXT NOT NULL,"
    "  shown TEXT NOT NULL, PRIMARY KEY(id, case_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ids_case ON ids(case_id);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('applied_jseq', 0);"
    "PRAGMA user_version = 4;";

/* the states, their rank (how far along the pipeline), aliases */
static const struct {
    const char *name;
    int rank;
} s_states[] = {
    {"rejected", 1},  {"validated", 2}, {"triaged", 3},    {"awaiting_approval", 4},
    {"approved", 5},  {"denied", 5},    {"expired", 5},    {"already_consistent", 5},
    {"executing", 6}, {"executed", 7},  {"ops_review", 7}, {"closed", 8},
};
#define NSTATES (sizeof s_states / sizeof s_states[0])

/* s_rank - a state's rank, 0 if unknown */
static int s_rank(const char *state)
{
    for (size_t i = 0; i < NSTATES; i++)
        if (strcmp(s_states[i].name, state) == 0)
            return s_states[i].rank;
    return 0;
}

/* s_alias - the state a query word names */
static const char *s_alias(const char *state)
{
    return strcmp(state, "pending") == 0 ? "awaiting_approval" : state;
}

/* caseidx_state_known - see caseidx.h */
bool caseidx_state_known(const char *state)
{
    return s_rank(s_alias(state)) > 0;
}

/* s_exec - SQL without rows; logs what failed */
static int s_exec(caseidx_t *self, const char *sql)
{
    return sqlx_exec(self->db, "case index", self->path, sql);
}

/* s_int - the first column of a one-row query with up to two text binds */
static int64_t s_int(caseidx_t *self, const char *sql, const char *a, const char *b, int64_t dflt)
{
    sqlite3_stmt *st;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK)
        return dflt;
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* caseidx_open - see caseidx.h */
caseidx_t *caseidx_open(const char *path, const char *trail, bool readonly, char *err, size_t errlen)
{
    caseidx_t *self = calloc(1, sizeof *self);
    snprintf(self->path, sizeof self->path, "%s", path);
    snprintf(self->trail, sizeof self->trail, "%s", trail);
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &self->db, flags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "case index %s: %s", path, self->db ? sqlite3_errmsg(self->db) : "cannot open");
        caseidx_close(&self);
        return NULL;
    }
    sqlite3_busy_timeout(self->db, 2000);
    if (readonly) {
        if (s_int(self, "PRAGMA user_version", NULL, NULL, -1) != CASEIDX_SCHEMA_VERSION) {
            snprintf(err, errlen, "case index %s: not a case index of this version (audit rebuilds it at start)", path);
            caseidx_close(&self);
            return NULL;
        }
        return self;
    }
    int64_t v = s_int(self, "PRAGMA user_version", NULL, NULL, -1);
    /* a projection: synchronous=OFF is safe, a lost commit is re-applied from the trail */
    if (s_exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;") ||
        (v != 0 && v != CASEIDX_SCHEMA_VERSION &&
         s_exec(self, "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS cases; DROP TABLE IF EXISTS events;"
                      "DROP TABLE IF EXISTS links; DROP TABLE IF EXISTS keys; DROP TABLE IF EXISTS ids;")) ||
        s_exec(self, s_schema)) {
        snprintf(err, errlen, "case index %s: %s", path, sqlite3_errmsg(self->db));
        caseidx_close(&self);
        return NULL;
    }
    self->applied_jseq = (uint64_t) s_int(self, "SELECT v FROM meta WHERE k = 'applied_jseq'", NULL, NULL, 0);
    self->ids_max = CASEIDX_IDS_DEFAULT;
    return self;
}

/* caseidx_close - commit, close, NULL the pointer */
void caseidx_close(caseidx_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    caseidx_t *self = *self_p;
    if (self->in_txn)
        caseidx_commit(self);
    for (size_t i = 0; i < self->ncache; i++)
        sqlite3_finalize(self->cache[i].st);
    journal_reader_destroy(&self->r);
    sqlite3_close(self->db);
    free(self);
    *self_p = NULL;
}

uint64_t caseidx_applied_jseq(caseidx_t *self)
{
    return self->applied_jseq;
}

/* caseidx_set_ids_max - see caseidx.h */
void caseidx_set_ids_max(caseidx_t *self, size_t ids_max)
{
    assert(self);
    assert(ids_max > 0);
    self->ids_max = ids_max;
}

/* caseidx_ids_dropped - see caseidx.h */
uint64_t caseidx_ids_dropped(caseidx_t *self)
{
    return atomic_load(&self->ids_dropped);
}

/* ------------------------------------------------------------- apply */

/* s_state_of - the state an event puts its case in, or NULL (none) */
static const char *s_state_of(const event_t *ev)
{
    const char *t = event_head(ev)->type;
    event_type_t k = event_head(ev)->kind;
    char b[64];
    if (k == EV_REJECTED || k == EV_VALIDATED || k == EV_TRIAGED || k == EV_APPROVED || k == EV_DENIED ||
        k == EV_EXPIRED || k == EV_CLOSED)
        return t;
    if (k == EV_ESCALATED)
        return "awaiting_approval";
    if (k == EV_REVIEW)
        return "ops_review";
    if (k == EV_ROUTED || k == EV_DECISION) {
        event_get_strbuf(ev, EK_STATE, b, sizeof b);
        return strcmp(b, "pending") == 0 && k == EV_ROUTED                     ? "awaiting_approval"
               : strcmp(b, "auto_approved") == 0 || strcmp(b, "approved") == 0 ? "approved"
               : strcmp(b, "denied") == 0                                      ? "denied"
               : strcmp(b, "no_action") == 0                                   ? "already_consistent"
                                                                               : NULL;
    }
    if (k == EV_RUNBOOK)
        return strcmp(event_get_strbuf(ev, EK_DECISION, b, sizeof b), "approved") == 0 ? "executing" : NULL;
    if (k == EV_EXECUTED) {
        /* a denial's notice run (runbook "denied") done is the denial, whatever
         * reaches audit first: approve's denied or execute's executed */
        char rb[48];
        bool denial = strcmp(event_get_strbuf(ev, "runbook", rb, sizeof rb), "denied") == 0;
        event_get_strbuf(ev, "outcome", b, sizeof b);
        return strcmp(b, "done") == 0 && denial  ? "denied"
               : strcmp(b, "done") == 0          ? "executed"
               : strcmp(b, "ops_review") == 0    ? "ops_review"
               : strcmp(b, "nothing_to_do") == 0 ? "already_consistent"
               : strcmp(b, "closed") == 0        ? "closed"
                                                 : NULL;
    }
    return NULL;
}

/* s_stmt - the statement for a literal, prepared on its first use and kept
 * (preparing costs more than running most of these statements) */
static sqlite3_stmt *s_stmt(caseidx_t *self, const char *sql)
{
    for (size_t i = 0; i < self->ncache; i++)
        if (self->cache[i].sql == sql)
            return self->cache[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("case index: %s: %s", sqlite3_errmsg(self->db), sql);
        return NULL;
    }
    assert(self->ncache < CASEIDX_STMT_CACHE); /* only literals come here */
    self->cache[self->ncache].sql = sql;
    self->cache[self->ncache++].st = st;
    return st;
}

/* s_run - prepare, bind (i: int64, j: int64 or null (int has, int64_t v), t: text, n: null for empty text), step */
static int s_run(caseidx_t *self, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = s_stmt(self, sql);
    if (!st)
        return -1;
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        if (types[i] == 'i') {
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else if (types[i] == 'j') { /* two arguments: int has, int64_t value */
            int has = va_arg(ap, int);
            int64_t v = va_arg(ap, int64_t);
            if (has)
                sqlite3_bind_int64(st, i + 1, v);
            else
                sqlite3_bind_null(st, i + 1);
        } else {
            const char *s = va_arg(ap, const char *);
            if (types[i] == 'n' && (!s || !*s))
                sqlite3_bind_null(st, i + 1);
            else
                sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("case index: %s", sqlite3_errmsg(self->db));
        return -1;
    }
    return sqlite3_changes(self->db);
}

/* caseidx_commit - see caseidx.h */
int caseidx_commit(caseidx_t *self)
{
    if (!self->in_txn)
        return 0;
    self->in_txn = false;
    if (s_run(self, "UPDATE meta SET v = ? WHERE k = 'applied_jseq'", "i", (int64_t) self->applied_jseq) < 0 ||
        s_run(self, "COMMIT", "") < 0) {
        s_exec(self, "ROLLBACK"); /* nothing lost: the trail has every event, a restart re-applies them */
        return -1;
    }
    return 0;
}

/* s_is_verdict - validate's answer to a receipt (its cause is the receipt) */
static bool s_is_verdict(event_type_t type)
{
    return type == EV_VALIDATED || type == EV_DUPLICATE || type == EV_OUT_OF_ORDER || type == EV_REJECTED;
}

/* s_case_facts - the case row: created if new, facts filled in, counters */
static void s_case_facts(caseidx_t *self, const event_t *ev, const char *case_id)
{
    const event_head_t *h = event_head(ev);
    char kind[16], ref[128], provider[32], cur[8];
    int64_t amount = 0, tier = 0;
    bool has_amount = event_get_int(ev, "amount", &amount) == 0;
    bool has_tier = event_get_int(ev, "tier", &tier) == 0 && tier > 0;
    event_get_strbuf(ev, "kind", kind, sizeof kind);
    event_get_strbuf(ev, "ref", ref, sizeof ref);
    event_get_strbuf(ev, "provider", provider, sizeof provider);
    event_get_strbuf(ev, "currency", cur, sizeof cur);
    /* one upsert: the case created on its first event, facts filled in by
     * the first that states them (the amount too), the tier by the newest
     * that decides it (routed, approved, escalated); one statement, so one
     * lookup of the case's row per event */
    s_run(self,
          "INSERT INTO cases(case_id, kind, ref, provider, currency, amount, tier, state, state_rank, state_ms,"
          " created_ms, updated_ms, duplicates) VALUES(?, ?, ?, ?, ?, ?, ?, 'validated', 0, 0, ?, ?, ?)"
          " ON CONFLICT(case_id) DO UPDATE SET kind = COALESCE(kind, excluded.kind),"
          " ref = COALESCE(ref, excluded.ref), provider = COALESCE(provider, excluded.provider),"
          " currency = COALESCE(currency, excluded.currency), amount = COALESCE(amount, excluded.amount),"
          " tier = COALESCE(excluded.tier, tier), created_ms = MIN(created_ms, excluded.created_ms),"
          " updated_ms = MAX(updated_ms, excluded.updated_ms), duplicates = duplicates + excluded.duplicates",
          "tnnnnjjiii", case_id, kind, ref, provider, cur, has_amount, amount, has_tier, tier, (int64_t) h->time_ms,
          (int64_t) h->time_ms, (int64_t) (h->kind == EV_DUPLICATE));
    char key[256];
    if (s_is_verdict(h->kind) && *event_get_strbuf(ev, EK_KEY, key, sizeof key))
        s_run(self, "INSERT OR IGNORE INTO keys(case_id, key) VALUES(?, ?)", "tt", case_id, key);
}

/* s_fold - an id as the ids table keeps it: ASCII letters lowercased (the
 * search ignores ASCII case); false when it does not fit */
static bool s_fold(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);
    if (n == 0 || n >= outlen)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char) (in[i] - 'A' + 'a') : in[i];
    return true;
}

/* s_case_id_add - one id of a case into the ids table; a field other than
 * case_id and ticket_key only while the case has fewer than ids_max */
static void s_case_id_add(caseidx_t *self, const char *case_id, const char *field, const char *shown)
{
    char id[CASEIDX_QUERY_MAX + 1];
    if (!s_fold(shown, id, sizeof id))
        return; /* longer than any query: nobody could type it */
    sqlite3_stmt *st = s_stmt(self, "SELECT EXISTS(SELECT 1 FROM ids WHERE id = ?1 AND case_id = ?2),"
                                    " (SELECT COUNT(*) FROM ids WHERE case_id = ?2)");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
    bool known = true;
    int64_t n = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        known = sqlite3_column_int(st, 0) != 0;
        n = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (known)
        return;
    bool always = strcmp(field, "case_id") == 0 || strcmp(field, "ticket_key") == 0;
    if (!always && (size_t) n >= self->ids_max) {
        atomic_fetch_add(&self->ids_dropped, 1);
        return;
    }
    s_run(self, "INSERT OR IGNORE INTO ids(id, case_id, field, shown) VALUES(?, ?, ?, ?)", "tttt", id, case_id, field,
          shown);
}

/* the body fields that name a case (FINDING A CASE in caseidx.h) and the
 * field each is found as */
static const struct {
    const char *key, *field;
} s_id_fields[] = {
    {"payout_id", "payout_id"},
    {"refund_id", "refund_id"},
    {"payment_id", "payment_id"},
    {"payment_intent", "payment_id"},
    {"ref", "ref"},
    {"psp_event_id", "psp_event_id"},
    {"object_id", "psp_reference"},
    {EK_KEY, "idempotency_key"},
    {"ticket_key", "ticket_key"},
};
#define NID_FIELDS (sizeof s_id_fields / sizeof s_id_fields[0])

/* s_case_ids - the ids an event names its case by, into the ids table
 * (each value once: a Stripe payout's ref, payout_id and object_id are one) */
static void s_case_ids(caseidx_t *self, const event_t *ev, const char *case_id)
{
    event_type_t k = event_head(ev)->kind;
    s_case_id_add(self, case_id, "case_id", case_id);
    if (!s_is_verdict(k) && k != EV_STEP)
        return;
    char seen[NID_FIELDS][CASEIDX_QUERY_MAX + 1], provider[32];
    event_get_strbuf(ev, "provider", provider, sizeof provider);
    for (size_t i = 0; i < NID_FIELDS; i++) {
        seen[i][0] = '\0';
        if (!*event_get_strbuf(ev, s_id_fields[i].key, seen[i], sizeof seen[i]) || strcmp(seen[i], case_id) == 0)
            continue;
        bool again = false;
        for (size_t j = 0; j < i && !again; j++)
            again = strcmp(seen[j], seen[i]) == 0;
        const char *field = s_id_fields[i].field;
        if (strcmp(field, "psp_event_id") == 0 && strcmp(provider, "standard") == 0)
            field = "webhook_id"; /* a Standard Webhooks event's id is its webhook-id */
        if (!again)
            s_case_id_add(self, case_id, field, seen[i]);
    }
}

/* s_case_state - move the state when this event says so (see caseidx.h) */
static void s_case_state(caseidx_t *self, const event_t *ev, const char *case_id)
{
    const char *state = s_state_of(ev);
    if (!state)
        return;
    int rank = s_rank(state);
    int64_t t = event_head(ev)->time_ms;
    if (rank <= 3) /* early states never move a case back */
        s_run(
            self,
            "UPDATE cases SET state = ?, state_rank = ?, state_ms = MAX(state_ms, ?) WHERE case_id = ? AND state_rank <= ?",
            "tiiti", state, (int64_t) rank, t, case_id, (int64_t) rank);
    /* from here on, the newest state-bearing event by event time wins; an early
     * state never blocks a later one, whatever its time: the advice about a
     * duplicate delivery may carry a later time than the route it preceded */
    else if (strcmp(state, "already_consistent") == 0) /* a later event that finds nothing left to do */
        s_run(self,
              "UPDATE cases SET state = ?, state_rank = ?, state_ms = ? WHERE case_id = ?"
              " AND (state_ms <= ? OR state_rank <= 3) AND state_rank < 6",
              "tiiti", state, (int64_t) rank, t, case_id, t);
    else if (strcmp(state, "executed") == 0) /* a denial's notice run is not an execution */
        s_run(self,
              "UPDATE cases SET state = ?, state_rank = ?, state_ms = ? WHERE case_id = ?"
              " AND (state_ms <= ? OR state_rank <= 3) AND state <> 'denied'",
              "tiiti", state, (int64_t) rank, t, case_id, t);
    else
        s_run(self,
              "UPDATE cases SET state = ?, state_rank = ?, state_ms = ? WHERE case_id = ?"
              " AND (state_ms <= ? OR state_rank <= 3)",
              "tiiti", state, (int64_t) rank, t, case_id, t);
}

/* caseidx_apply - see caseidx.h */
int caseidx_apply(caseidx_t *self, const event_t *ev, const caseidx_pos_t *at)
{
    uint64_t jseq = at->jseq;
    if (!self->in_txn) {
        if (s_run(self, "BEGIN", "") < 0)
            return -1;
        self->in_txn = true;
    }
    if (jseq > self->applied_jseq)
        self->applied_jseq = jseq;
    const event_head_t *h = event_head(ev);
    char case_id[EVENT_KEY_MAX + 1];
    snprintf(case_id, sizeof case_id, "%s", h->case_key);
    if (!case_id[0]) { /* a receipt: its case is known once validate has answered it */
        sqlite3_stmt *st = s_stmt(self, "SELECT case_id FROM links WHERE id = ?");
        if (st) {
            sqlite3_bind_text(st, 1, h->id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                snprintf(case_id, sizeof case_id, "%s", (const char *) sqlite3_column_text(st, 0));
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
        }
    }
    char summary[CASEIDX_SUMMARY_MAX];
    json_t *e = json_pack("{s:s, s:o}", "type", h->type, "body", event_body_to_json(ev));
    caseidx_summary(e, summary, sizeof summary);
    json_decref(e);
    int n = s_run(self,
                  "INSERT OR IGNORE INTO events(id, jseq, seg, off, case_id, type, time_ms, stage, cause, summary)"
                  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  "tiiintittt", h->id, (int64_t) jseq, (int64_t) at->seg, (int64_t) at->off, case_id, h->type,
                  (int64_t) h->time_ms, h->stage, h->cause, summary);
    if (n <= 0)
        return n < 0 ? -1 : 0; /* applied before: once only */
    if (!case_id[0])
        return 0; /* on the trail, in no case (e.g. a receipt refused before anything was known) */
    s_case_facts(self, ev, case_id);
    s_case_ids(self, ev, case_id);
    if (h->kind == EV_RECEIPT)
        s_run(self, "UPDATE cases SET receipts = receipts + 1, created_ms = MIN(created_ms, ?) WHERE case_id = ?", "it",
              (int64_t) h->time_ms, case_id);
    if (s_is_verdict(h->kind) && h->cause[0]) {
        s_run(self, "INSERT OR IGNORE INTO links(id, case_id) VALUES(?, ?)", "tt", h->cause, case_id);
        if (s_run(self, "UPDATE events SET case_id = ? WHERE id = ? AND case_id IS NULL AND type = 'receipt'", "tt",
                  case_id, h->cause) > 0)
            s_run(self,
                  "UPDATE cases SET receipts = receipts + 1,"
                  " created_ms = MIN(created_ms, (SELECT time_ms FROM events WHERE id = ?)) WHERE case_id = ?",
                  "tt", h->cause, case_id);
    }
    s_case_state(self, ev, case_id);
    return 0;
}

/* caseidx_sync - see caseidx.h */
int caseidx_sync(caseidx_t *self, const char *dir, uint64_t *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (self->applied_jseq > 0) { /* ahead of the journal (or another journal): rebuild */
        journal_reader_t *r = journal_reader_new(dir, self->applied_jseq, err, errlen);
        if (!r)
            return -1;
        const void *d;
        size_t l;
        uint64_t s = 0;
        bool present = journal_reader_next(r, &d, &l, &s) == 1 && s == self->applied_jseq;
        journal_reader_destroy(&r);
        if (!present) {
            log_warn("case index %s is ahead of the trail (record %" PRIu64 "): rebuilding it", self->path,
                     self->applied_jseq);
            if (s_exec(self, "DELETE FROM cases; DELETE FROM events; DELETE FROM links; DELETE FROM keys;"
                             "DELETE FROM ids; UPDATE meta SET v = 0 WHERE k = 'applied_jseq';") != 0) {
                snprintf(err, errlen, "case index %s: cannot wipe", self->path);
                return -1;
            }
            self->applied_jseq = 0;
        }
    }
    uint64_t from = self->applied_jseq + 1;
    journal_reader_t *r = journal_reader_new(dir, from, err, errlen);
    if (!r)
        return -1;
    caseidx_pos_t at = {0};
    event_t *ev;
    while ((ev = stage_read_event(r, &at.jseq, NULL)) != NULL) {
        journal_reader_where(r, &at.seg, &at.off);
        int rc = caseidx_apply(self, ev, &at);
        event_destroy(&ev);
        if (rc != 0) {
            journal_reader_destroy(&r);
            snprintf(err, errlen, "case index %s: cannot apply journal record %" PRIu64, self->path, at.jseq);
            return -1;
        }
        if (++*applied % 10000 == 0)
            caseidx_commit(self);
    }
    const char *jerr = journal_reader_error(r);
    if (jerr && *jerr) {
        snprintf(err, errlen, "case index: the trail's journal is unreadable: %s", jerr);
        journal_reader_destroy(&r);
        return -1;
    }
    journal_reader_destroy(&r);
    return caseidx_commit(self);
}

/* ------------------------------------------------------------ queries */

/* s_col - a text column or "" */
static const char *s_col(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *) s : "";
}

/* s_iso - unix ms as ISO 8601 UTC, a JSON string (null if out of range) */
static json_t *s_iso(int64_t ms)
{
    char out[UTC_ISO_MAX];
    return utc_iso(ms, out) == 0 ? json_string(out) : json_null();
}

/* s_case_row - the case's fields from a row of s_case_cols */
#define S_CASE_COLS                                                                                                    \
    "case_id, kind, state, ref, provider, amount, currency, tier, created_ms, updated_ms, receipts, duplicates"
static json_t *s_case_row(sqlite3_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "case_id", json_string(s_col(st, 0)));
    json_object_set_new(o, "kind", json_string(s_col(st, 1)));
    json_object_set_new(o, "state", json_string(s_col(st, 2)));
    json_object_set_new(o, "ref", json_string(s_col(st, 3)));
    json_object_set_new(o, "provider", json_string(s_col(st, 4)));
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
        int64_t amount = sqlite3_column_int64(st, 5);
        char text[64];
        json_object_set_new(o, "amount", json_integer(amount));
        json_object_set_new(o, "currency", json_string(s_col(st, 6)));
        money_format(amount, s_col(st, 6), text, sizeof text);
        json_object_set_new(o, "amount_text", json_string(text));
    }
    if (sqlite3_column_type(st, 7) != SQLITE_NULL)
        json_object_set_new(o, "tier", json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(o, "created_at", s_iso(sqlite3_column_int64(st, 8)));
    json_object_set_new(o, "updated_at", s_iso(sqlite3_column_int64(st, 9)));
    json_object_set_new(o, "receipts", json_integer(sqlite3_column_int64(st, 10)));
    json_object_set_new(o, "duplicates", json_integer(sqlite3_column_int64(st, 11)));
    return o;
}

/* s_jstr - a string member or "" */
static const char *s_jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* caseidx_summary - see caseidx.h */
void caseidx_summary(const void *event_json, char *out, size_t outlen)
{
    json_t *e = (json_t *) event_json;
    json_t *b = json_object_get(e, "body");
    const char *t = s_jstr(e, "type");
    event_type_t k = event_type_of(t);
    json_t *hs = json_object_get(b, "http_status");
    json_int_t http = json_is_integer(hs) ? json_integer_value(hs) : 0;
    if (k == EV_RECEIPT) {
        utf8_fmt(out, outlen, "webhook received on /webhooks/%s from %s", s_jstr(b, "endpoint"), s_jstr(b, "peer"));
    } else if (k == EV_VALIDATED) {
        utf8_fmt(out, outlen, "validated %s %s: %s; %s", s_jstr(b, "provider"), s_jstr(b, "event_type"),
                 s_jstr(b, "signature_verdict"), s_jstr(b, "state_verdict"));
    } else if (k == EV_DUPLICATE) {
        json_t *n = json_object_get(b, "times_seen");
        utf8_fmt(out, outlen, "duplicate of %s (seen %lld times): recorded, not acted on", s_jstr(b, "key"),
                 json_is_integer(n) ? (long long) json_integer_value(n) : 0LL);
    } else if (k == EV_OUT_OF_ORDER) {
        utf8_fmt(out, outlen, "out of order: %s is older than what was applied; recorded, changes nothing",
                 s_jstr(b, "event_type"));
    } else if (k == EV_REJECTED) {
        utf8_fmt(out, outlen, "rejected at the %s gate (%s): %s", s_jstr(b, "gate"), s_jstr(b, "code"),
                 s_jstr(b, "reason"));
    } else if (k == EV_TRIAGED) {
        json_t *a = json_object_get(b, "advice");
        json_t *c = json_object_get(a, "confidence_permille");
        utf8_fmt(out, outlen, "AI advice (advisory only, from %s): %s, root cause %s, recommends %s, confidence %lld%%",
                 s_jstr(a, "source"), s_jstr(a, "classification"), s_jstr(a, "root_cause"), s_jstr(a, "recommendation"),
                 json_is_integer(c) ? (long long) json_integer_value(c) / 10 : 0LL);
    } else if (k == EV_ROUTED) {
        utf8_fmt(out, outlen, "routed (%s): %s", *s_jstr(b, "rule") ? s_jstr(b, "rule") : "note",
                 *s_jstr(b, "reason") ? s_jstr(b, "reason") : s_jstr(b, "note"));
    } else if (k == EV_DECISION) {
        utf8_fmt(out, outlen, "%s (%s) decided %s%s%s", s_jstr(b, "who"), s_jstr(b, "role"), s_jstr(b, "decision"),
                 *s_jstr(b, "comment") ? ": " : "", s_jstr(b, "comment"));
    } else if (k == EV_APPROVED || k == EV_DENIED || k == EV_EXPIRED || k == EV_ESCALATED) {
        utf8_fmt(out, outlen, "%s%s%s", t, *s_jstr(b, "decided_by") ? " by " : "", s_jstr(b, "decided_by"));
    } else if (k == EV_STEP) {
        json_t *at = json_object_get(b, "attempts");
        if (*s_jstr(b, "system"))
            utf8_fmt(out, outlen, "step %s %s: %s %s %s", s_jstr(b, "step"), s_jstr(b, "status"), s_jstr(b, "system"),
                     s_jstr(b, "method"), s_jstr(b, "path"));
        else
            utf8_fmt(out, outlen, "step %s %s", s_jstr(b, "step"), s_jstr(b, "status"));
        if (http) {
            size_t used = strlen(out);
            utf8_fmt(out + used, outlen - used, " -> HTTP %lld after %lld attempt(s)", (long long) http,
                     json_is_integer(at) ? (long long) json_integer_value(at) : 1LL);
        }
        if (*s_jstr(b, "effect")) { /* a ticket step: "found existing ticket PAY-3", "created ticket PAY-4" */
            size_t used = strlen(out);
            utf8_fmt(out + used, outlen - used, ": %s", s_jstr(b, "effect"));
        }
    } else if (k == EV_RUNBOOK) {
        utf8_fmt(out, outlen, "runbook started (decision: %s)", s_jstr(b, "decision"));
    } else if (k == EV_EXECUTED) {
        utf8_fmt(out, outlen, "runbook finished: %s", s_jstr(b, "outcome"));
    } else if (k == EV_REVIEW) {
        utf8_fmt(out, outlen, "to ops review: step %s failed: %s", s_jstr(b, "failed_step"), s_jstr(b, "error"));
    } else if (k == EV_CLOSED) {
        utf8_fmt(out, outlen, "closed by %s%s%s", s_jstr(b, "who"), *s_jstr(b, "comment") ? ": " : "",
                 s_jstr(b, "comment"));
    } else if (k == EV_NOTICE) {
        utf8_fmt(out, outlen, "Teams card queued: %s", s_jstr(b, "title"));
    } else if (k == EV_ACCESS_DENIED || k == EV_DECISION_REFUSED) {
        json_t *s = json_object_get(b, "status");
        utf8_fmt(out, outlen, "%s refused (%lld): %s", s_jstr(b, "who"),
                 json_is_integer(s) ? (long long) json_integer_value(s) : 0LL, s_jstr(b, "reason"));
    } else {
        utf8_fmt(out, outlen, "%s", t);
    }
}

/* s_detail - the event's body as the trail holds it (a new reference), or
 * NULL when the record cannot be read there (logged) */
static json_t *s_detail(caseidx_t *self, const caseidx_pos_t *at)
{
    char err[256];
    if (!self->r && !(self->r = journal_reader_new(self->trail, at->jseq, err, sizeof err))) {
        log_warn("case index: the trail at %s: %s", self->trail, err);
        return NULL;
    }
    const void *data;
    size_t len;
    uint64_t seq = 0;
    event_t *ev = NULL;
    if (journal_reader_seek(self->r, at->jseq, at->seg, at->off) == 0 &&
        journal_reader_next(self->r, &data, &len, &seq) == 1 && seq == at->jseq)
        ev = stage_record_event(data, len, seq, NULL);
    if (!ev) {
        log_warn("case index: trail record %" PRIu64 " unreadable: %s", at->jseq, journal_reader_error(self->r));
        journal_reader_destroy(&self->r); /* its failure is sticky: the next read starts afresh */
        return NULL;
    }
    json_t *body = event_body_to_json(ev);
    event_destroy(&ev);
    return body;
}

/* s_timeline_facts - what one timeline entry adds to the case's
 * recommendation (the first advice about a non-duplicate), decisions and
 * actions */
static void s_timeline_facts(json_t *item, const char *type, json_t *body, int64_t time, json_t *decisions,
                             json_t *actions, json_t **rec)
{
    event_type_t k = event_type_of(type);
    if (k == EV_TRIAGED) {
        json_object_set_new(item, "advisory", json_true());
        if (!*rec && body && json_integer_value(json_object_get(body, "duplicates")) == 0)
            *rec = json_incref(json_object_get(body, "advice"));
    }
    if (!body)
        return;
    if (k == EV_DECISION)
        json_array_append_new(decisions, json_pack("{s:s, s:s, s:s, s:s, s:o}", "approver", s_jstr(body, "who"), "role",
                                                   s_jstr(body, "role"), "decision", s_jstr(body, "decision"),
                                                   "comment", s_jstr(body, "comment"), "at", s_iso(time)));
    if (k == EV_STEP && strcmp(s_jstr(body, "status"), "started") != 0) {
        json_t *http = json_object_get(body, "http_status"), *resp = json_object_get(body, "response");
        json_array_append_new(actions, json_pack("{s:s, s:s, s:s, s:O, s:O}", "step", s_jstr(body, "step"), "status",
                                                 s_jstr(body, "status"), "idempotency_key",
                                                 s_jstr(body, "idempotency_key"), "http_status",
                                                 http ? http : json_null(), "response", resp ? resp : json_null()));
    }
}

/* caseidx_case_json - see caseidx.h */
char *caseidx_case_json(caseidx_t *self, const char *case_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, "SELECT " S_CASE_COLS " FROM cases WHERE case_id = ?", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, case_id, -1, SQLITE_TRANSIENT);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? s_case_row(st) : NULL;
    sqlite3_finalize(st);
    if (!o)
        return NULL;

    json_t *keys = json_array();
    if (sqlite3_prepare_v2(self->db, "SELECT key FROM keys WHERE case_id = ? ORDER BY key", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, case_id, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(keys, json_string(s_col(st, 0)));
        sqlite3_finalize(st);
    }
    json_object_set_new(o, "idempotency_keys", keys);

    json_t *timeline = json_array(), *decisions = json_array(), *actions = json_array(), *rec = NULL;
    if (sqlite3_prepare_v2(self->db,
                           "SELECT type, time_ms, stage, id, cause, summary, jseq, seg, off FROM events"
                           " WHERE case_id = ? ORDER BY time_ms, jseq",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, case_id, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *type = s_col(st, 0);
            int64_t time = sqlite3_column_int64(st, 1);
            caseidx_pos_t at = {(uint64_t) sqlite3_column_int64(st, 6), (uint64_t) sqlite3_column_int64(st, 7),
                                (uint64_t) sqlite3_column_int64(st, 8)};
            json_t *body = s_detail(self, &at);
            json_t *item =
                json_pack("{s:o, s:I, s:s, s:s, s:s, s:s, s:s, s:o}", "at", s_iso(time), "time_ms", (json_int_t) time,
                          "type", type, "stage", s_col(st, 2), "event_id", s_col(st, 3), "cause", s_col(st, 4),
                          "summary", s_col(st, 5), "detail", body ? json_incref(body) : json_null());
            if (!body)
                json_object_set_new(item, "detail_unreadable", json_true());
            s_timeline_facts(item, type, body, time, decisions, actions, &rec);
            json_array_append_new(timeline, item);
            json_decref(body);
        }
        sqlite3_finalize(st);
    }
    if (rec) {
        json_t *r = json_deep_copy(rec);
        json_object_set_new(r, "advisory", json_true());
        json_object_set_new(o, "recommendation", r);
        json_decref(rec);
    }
    json_object_set_new(o, "decisions", decisions);
    json_object_set_new(o, "actions", actions);
    json_object_set_new(o, "timeline", timeline);
    journal_reader_destroy(&self->r); /* an archived segment it expanded is memory: not kept between views */
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* caseidx_query_ok - see caseidx.h */
bool caseidx_query_ok(const char *q, char *why, size_t whylen)
{
    size_t n = q ? strlen(q) : 0;
    if (n == 0 || n > CASEIDX_QUERY_MAX) {
        snprintf(
            why, whylen,
            "q must be 1..%d bytes: a case, payout, refund, payment, PSP event, webhook, receipt id or a ticket key",
            CASEIDX_QUERY_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) q[i] < 0x20 || q[i] == 0x7f) {
            snprintf(why, whylen, "q must not hold control characters (byte %zu is one)", i + 1);
            return false;
        }
    if (q[0] == ' ' || q[n - 1] == ' ') {
        snprintf(why, whylen, "q must not begin or end with a space");
        return false;
    }
    return true;
}

/* s_matches - the cases whose ids q matches (whole ids, else ids it begins
 * when long enough): into *found as {case_id: [{"field","id"}...]}; the
 * kind of match ("exact", "prefix", "none") */
static const char *s_matches(caseidx_t *self, const char *q, json_t *found)
{
    char lo[CASEIDX_QUERY_MAX + 1], hi[CASEIDX_QUERY_MAX + 1];
    if (!s_fold(q, lo, sizeof lo))
        return "none";
    snprintf(hi, sizeof hi, "%s", lo);
    hi[strlen(hi) - 1]++; /* every id beginning with lo sorts in [lo, hi): no byte of a query is 0xff */
    static const char *const sql[2] = {
        "SELECT case_id, field, shown FROM ids WHERE id = ?1 UNION ALL"
        " SELECT case_id, 'receipt_id', id FROM links WHERE id = ?1 LIMIT ?3",
        "SELECT case_id, field, shown FROM ids WHERE id >= ?1 AND id < ?2 UNION ALL"
        " SELECT case_id, 'receipt_id', id FROM links WHERE id >= ?1 AND id < ?2 LIMIT ?3"};
    for (int prefix = 0; prefix < 2; prefix++) {
        if (prefix && strlen(q) < CASEIDX_PREFIX_MIN)
            break;
        sqlite3_stmt *st = s_stmt(self, sql[prefix]);
        if (!st)
            return "none";
        sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, CASEIDX_LIST_MAX);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *m = json_object_get(found, s_col(st, 0));
            if (!m)
                json_object_set_new(found, s_col(st, 0), m = json_array());
            json_array_append_new(m, json_pack("{s:s, s:s}", "field", s_col(st, 1), "id", s_col(st, 2)));
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (json_object_size(found))
            return prefix ? "prefix" : "exact";
    }
    return "none";
}

/* s_last - a list row's entry (key: "last", "review") from its
 * json_array(type, time_ms, summary) column, when not null */
static void s_last(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    json_t *e = sqlite3_column_type(st, col) == SQLITE_TEXT ? json_loads(s_col(st, col), 0, NULL) : NULL;
    if (json_array_size(e) == 3)
        json_object_set_new(o, key,
                            json_pack("{s:O, s:o, s:O}", "type", json_array_get(e, 0), "at",
                                      s_iso(json_integer_value(json_array_get(e, 1))), "summary",
                                      json_array_get(e, 2)));
    json_decref(e);
}

/* caseidx_find_json - see caseidx.h */
char *caseidx_find_json(caseidx_t *self, const caseidx_filter_t *f)
{
    size_t limit = f->limit == 0 || f->limit > CASEIDX_LIST_MAX ? CASEIDX_LIST_MAX : f->limit;
    json_t *found = json_object(), *list = json_array();
    const char *match = f->q ? s_matches(self, f->q, found) : NULL;
    char sql[1024], *ids = NULL;
    if (f->q) {
        json_t *keys = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(found, k, v) json_array_append_new(keys, json_string(k));
        ids = json_dumps(keys, JSON_COMPACT);
        json_decref(keys);
    }
    snprintf(sql, sizeof sql,
             "SELECT " S_CASE_COLS ", (SELECT json_array(type, time_ms, summary) FROM events e"
             " WHERE e.case_id = cases.case_id ORDER BY time_ms DESC, jseq DESC LIMIT 1),"
             " CASE WHEN state = 'ops_review' THEN (SELECT json_array(type, time_ms, summary) FROM events r"
             " WHERE r.case_id = cases.case_id AND r.type = 'review' ORDER BY time_ms DESC, jseq DESC LIMIT 1) END"
             " FROM cases"
             " WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 = 0 OR tier = ?3)"
             " AND created_ms >= ?4 AND (?5 IS NULL OR case_id IN (SELECT value FROM json_each(?5)))"
             " ORDER BY created_ms DESC, case_id LIMIT %zu",
             limit);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (f->state)
            sqlite3_bind_text(st, 1, s_alias(f->state), -1, SQLITE_TRANSIENT);
        if (f->kind)
            sqlite3_bind_text(st, 2, f->kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, f->tier);
        sqlite3_bind_int64(st, 4, f->created_after_ms);
        if (ids)
            sqlite3_bind_text(st, 5, ids, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *o = s_case_row(st);
            s_last(o, "last", st, 12);
            s_last(o, "review", st, 13);
            if (f->q)
                json_object_set(o, "matched", json_object_get(found, s_col(st, 0)));
            json_array_append_new(list, o);
        }
        sqlite3_finalize(st);
    }
    free(ids);
    json_decref(found);
    json_t *o = json_pack("{s:o}", "cases", list);
    if (match)
        json_object_set_new(o, "match", json_string(match));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* caseidx_counts - see caseidx.h: every state, zeros included */
void caseidx_counts(caseidx_t *self, void (*fn)(const char *state, int64_t n, void *arg), void *arg)
{
    for (size_t i = 0; i < NSTATES; i++)
        fn(s_states[i].name, s_int(self, "SELECT COUNT(*) FROM cases WHERE state = ?", s_states[i].name, NULL, 0), arg);
}
