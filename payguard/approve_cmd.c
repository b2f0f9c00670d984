/* approve_cmd - `payguard approvals` and `payguard approve`: the approvals
 * API (CONTRACT.md §3.1) for operators at a terminal. The token is read
 * from --token-file, or from the terminal without echo; never from argv. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "httpc.h"
#include "money.h"

/* s_read_tty_token - the token from the terminal, not echoed */
static char *s_read_tty_token(const char *who)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return NULL;
    fprintf(tty, "token for %s: ", who ? who : "your approver");
    fflush(tty);
    struct termios old, quiet;
    tcgetattr(fileno(tty), &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t) ECHO;
    tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    char buf[512] = "";
    char *ok = fgets(buf, sizeof buf, tty);
    tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fprintf(tty, "\n");
    fclose(tty);
    buf[strcspn(buf, "\r\n")] = '\0';
    char *t = ok && *buf ? strdup(buf) : NULL;
    memset(buf, 0, sizeof buf);
    return t;
}

/* cli_api_client - an httpc for the API a stage serves, with the operator's token */
httpc_t *cli_api_client(const config_t *c, const char *stage, const char *token_file, const char *who)
{
    char err[256], url[300];
    if (config_api_url(c, stage, url, sizeof url, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: %s\n", err);
        return NULL;
    }
    char *token = token_file ? httpc_read_token(token_file, err, sizeof err) : s_read_tty_token(who);
    if (!token) {
        fprintf(stderr, "payguard: %s\n", token_file ? err : "no token (use --token-file FILE or a terminal)");
        return NULL;
    }
    httpc_t *h = httpc_new(url, token, 10000);
    memset(token, 0, strlen(token));
    free(token);
    return h;
}

/* cmd_approvals - list approvals (pending by default) */
int cmd_approvals(int argc, char **argv)
{
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    const char *status = cli_opt(argc, argv, "--status");
    httpc_t *h = cli_api_client(c, "approve", cli_opt(argc, argv, "--token-file"), cli_opt(argc, argv, "--as"));
    config_destroy(&c);
    if (!h)
        return 2;
    char path[128];
    snprintf(path, sizeof path, "/approvals?status=%s", status ? status : "pending");
    httpc_resp_t r = {0};
    int rc = httpc_call(h, "GET", path, NULL, NULL, NULL, &r);
    httpc_destroy(&h);
    if (rc != 0 || r.status != 200) {
        fprintf(stderr, "payguard: approvals API: %s (HTTP %ld)\n", r.body ? r.body : r.error, r.status);
        httpc_resp_free(&r);
        return 1;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    httpc_resp_free(&r);
    size_t i;
    json_t *a;
    printf("%-28s %-7s %16s %4s %-40s %-20s %s\n", "CASE", "KIND", "AMOUNT", "TIER", "MISSING ROLES", "EXPIRES",
           "ADVICE (advisory)");
    json_array_foreach(json_object_get(j, "approvals"), i, a)
    {
        char missing[128] = "";
        size_t k;
        json_t *m;
        json_array_foreach(json_object_get(a, "missing_roles"), k, m) snprintf(
            missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", k ? "," : "", json_string_value(m));
        json_t *rec = json_object_get(a, "recommendation");
        char amount[48];
        money_format(json_integer_value(json_object_get(a, "amount")),
                     json_string_value(json_object_get(a, "currency")), amount, sizeof amount);
        printf("%-28s %-7s %16s %4lld %-40s %-20s %s/%s\n", json_string_value(json_object_get(a, "case_id")),
               json_string_value(json_object_get(a, "kind")), amount,
               (long long) json_integer_value(json_object_get(a, "tier")), missing,
               json_string_value(json_object_get(a, "expires_at")),
               json_string_value(json_object_get(rec, "classification"))
                   ? json_string_value(json_object_get(rec, "classification"))
                   : "-",
               json_string_value(json_object_get(rec, "recommendation"))
                   ? json_string_value(json_object_get(rec, "recommendation"))
                   : "-");
    }
    json_decref(j);
    return 0;
}

/* cmd_approve - decide a case: payguard approve CASE --as NAME [--deny] [--comment TEXT] [--token-file F] */
int cmd_approve(int argc, char **argv)
{
    const char *case_id = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    const char *who = cli_opt(argc, argv, "--as");
    if (!case_id || !who) {
        fprintf(stderr,
                "usage: payguard approve CASE --as NAME [--deny] [--comment TEXT] [--token-file FILE] [-c CONFIG]\n");
        return 2;
    }
    bool deny = false;
    for (int i = 1; i < argc; i++)
        deny |= strcmp(argv[i], "--deny") == 0;
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    httpc_t *h = cli_api_client(c, "approve", cli_opt(argc, argv, "--token-file"), who);
    config_destroy(&c);
    if (!h)
        return 2;
    const char *comment = cli_opt(argc, argv, "--comment");
    json_t *body = json_pack("{s:s, s:s}", "decision", deny ? "deny" : "approve", "comment", comment ? comment : "");
    return cli_post_case(&h, "approvals", case_id, "decisions", body);
}

/* cli_post_case - see cli.h */
int cli_post_case(httpc_t **h, const char *section, const char *case_id, const char *action, void *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *esc = httpc_escape(case_id);
    char path[512];
    snprintf(path, sizeof path, "/%s/%s/%s", section, esc, action);
    free(esc);
    httpc_resp_t r = {0};
    int rc = httpc_call(*h, "POST", path, text, NULL, NULL, &r);
    free(text);
    httpc_destroy(h);
    int status = 0;
    if (rc == 0 && r.status == 200)
        printf("recorded: %s\n", r.body);
    else {
        fprintf(stderr, "payguard: refused (HTTP %ld): %s\n", r.status, r.body && *r.body ? r.body : r.error);
        status = 1;
    }
    httpc_resp_free(&r);
    return status;
}
