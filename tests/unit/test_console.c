/* test_console - the ops console's routing, assets, CSRF and origin rules */
#include "../../console/console.h"

#include <criterion/criterion.h>
#include <string.h>
#include <stdio.h>

static int s_route(const char *method, const char *path, console_route_t *r)
{
    char why[128];
    return console_api_route(method, path, r, why, sizeof why);
}

Test(console, api_paths_go_to_the_process_that_owns_them)
{
    console_route_t r;
    cr_assert_eq(s_route("GET", "/api/session", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_APPROVE);
    cr_expect_str_eq(r.path, "/whoami");
    cr_expect(r.session);

    cr_assert_eq(s_route("GET", "/api/approvals", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_APPROVE);
    cr_expect_str_eq(r.path, "/approvals");
    cr_expect_not(r.session);

    cr_assert_eq(s_route("GET", "/api/approvals/payout-P-1", &r), 0);
    cr_expect_str_eq(r.path, "/approvals/payout-P-1");
    cr_assert_eq(s_route("POST", "/api/approvals/payout-P-1/decisions", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_APPROVE);
    cr_expect_str_eq(r.path, "/approvals/payout-P-1/decisions");
    cr_assert_eq(s_route("POST", "/api/reviews/refund-re_9/retry", &r), 0);
    cr_expect_str_eq(r.path, "/reviews/refund-re_9/retry");
    cr_assert_eq(s_route("POST", "/api/reviews/refund-re_9/close", &r), 0);
    cr_expect_str_eq(r.path, "/reviews/refund-re_9/close");

    cr_assert_eq(s_route("GET", "/api/cases", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_AUDIT);
    cr_expect_str_eq(r.path, "/cases");
    cr_assert_eq(s_route("GET", "/api/cases/payout-P-1", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_AUDIT);
    cr_expect_str_eq(r.path, "/cases/payout-P-1");
    cr_assert_eq(s_route("POST", "/api/audit/verify", &r), 0);
    cr_expect_eq(r.backend, CONSOLE_AUDIT);
    cr_expect_str_eq(r.path, "/audit/verify");
}

Test(console, an_id_is_re_encoded_for_the_backend)
{
    /* libmicrohttpd hands the path decoded: the id goes on encoded again,
     * so a '?' or '#' or space in it cannot change the backend's request */
    console_route_t r;
    cr_assert_eq(s_route("GET", "/api/cases/a b?state=x#y", &r), 0);
    cr_expect_str_eq(r.path, "/cases/a%20b%3Fstate%3Dx%23y");
    cr_assert_eq(s_route("POST", "/api/approvals/p&q/decisions", &r), 0);
    cr_expect_str_eq(r.path, "/approvals/p%26q/decisions");
}

Test(console, unknown_paths_404_and_wrong_methods_405)
{
    console_route_t r;
    char why[128] = "";
    cr_expect_eq(console_api_route("GET", "/api/nothing", &r, why, sizeof why), 404);
    cr_expect(strlen(why) > 0, "a 404 says why");
    cr_expect_eq(s_route("GET", "/api/approvals/", &r), 404, "an empty id");
    cr_expect_eq(s_route("GET", "/api/cases/a/b", &r), 404, "an id is one segment");
    cr_expect_eq(s_route("POST", "/api/approvals/x/other", &r), 404);
    cr_expect_eq(s_route("POST", "/api/reviews/x/delete", &r), 404);
    cr_expect_eq(s_route("GET", "/api/cases/a\x01", &r), 404, "a control character");
    char long_id[400] = "/api/cases/";
    memset(long_id + strlen(long_id), 'x', 250);
    cr_expect_eq(s_route("GET", long_id, &r), 404, "an id over 200 bytes");

    cr_expect_eq(console_api_route("POST", "/api/cases", &r, why, sizeof why), 405);
    cr_expect(strstr(why, "GET"), "%s", why);
    cr_expect_eq(s_route("GET", "/api/approvals/x/decisions", &r), 405, "a decision is a POST");
    cr_expect_eq(s_route("DELETE", "/api/approvals/x", &r), 405);
    cr_expect_eq(s_route("POST", "/api/session", &r), 405);
    cr_expect_eq(s_route("GET", "/api/reviews/x/retry", &r), 405);
    cr_expect_eq(s_route("DELETE", "/api/audit/verify", &r), 405);
}

Test(console, only_known_query_parameters_pass)
{
    cr_expect(console_query_key_ok("state"));
    cr_expect(console_query_key_ok("status"));
    cr_expect(console_query_key_ok("kind"));
    cr_expect(console_query_key_ok("tier"));
    cr_expect(console_query_key_ok("max_age_s"));
    cr_expect(console_query_key_ok("limit"));
    cr_expect(console_query_key_ok("q"));
    cr_expect_not(console_query_key_ok("token"));
    cr_expect_not(console_query_key_ok(""));
    cr_expect_not(console_query_key_ok("State"));
}

Test(console, pages_and_assets)
{
    char name[CONSOLE_ASSET_NAME_MAX];
    const char *pages[] = {"/", "/signin", "/ops", "/audit", "/pipeline", "/case/payout-P-1"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        cr_assert(console_page(pages[i], name), "%s", pages[i]);
        cr_expect_str_eq(name, "index.html", "%s", pages[i]);
    }
    cr_assert(console_page("/static/app.js", name));
    cr_expect_str_eq(name, "app.js");
    cr_expect_str_eq(console_content_type("app.js"), "text/javascript; charset=utf-8");
    cr_expect_str_eq(console_content_type("app.css"), "text/css; charset=utf-8");
    cr_expect_str_eq(console_content_type("index.html"), "text/html; charset=utf-8");

    const char *refused[] = {"/static/../payguard.cfg",
                             "/static/..",
                             "/static/.hidden.js",
                             "/static/a/b.js",
                             "/static/App.js",
                             "/static/app.sh",
                             "/static/",
                             "/case/",
                             "/case/a/b",
                             "/etc/passwd",
                             "/index.html",
                             "/static/app.js%00.css",
                             "/static/x..js"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_expect_not(console_page(refused[i], name), "%s must not be served", refused[i]);
    cr_expect_null(console_content_type("Makefile"));
}

Test(console, csrf_token_is_bound_to_the_session_and_the_secret)
{
    unsigned char s1[CONSOLE_SECRET_BYTES], s2[CONSOLE_SECRET_BYTES];
    memset(s1, 1, sizeof s1);
    memset(s2, 2, sizeof s2);
    char t[CONSOLE_CSRF_HEX + 1], u[CONSOLE_CSRF_HEX + 1];
    console_csrf(s1, "Bearer alice-token", t);
    cr_expect_eq(strlen(t), CONSOLE_CSRF_HEX);
    cr_expect_eq(strspn(t, "0123456789abcdef"), CONSOLE_CSRF_HEX, "hex: %s", t);
    cr_expect(console_csrf_ok(s1, "Bearer alice-token", t));
    cr_expect_not(console_csrf_ok(s1, "Bearer bob-token", t), "another person's session");
    cr_expect_not(console_csrf_ok(s2, "Bearer alice-token", t), "a restarted console (new secret)");
    cr_expect_not(console_csrf_ok(s1, "Bearer alice-token", NULL), "missing");
    cr_expect_not(console_csrf_ok(s1, "Bearer alice-token", ""), "empty");
    char shortened[CONSOLE_CSRF_HEX];
    memcpy(shortened, t, CONSOLE_CSRF_HEX - 1);
    shortened[CONSOLE_CSRF_HEX - 1] = '\0';
    cr_expect_not(console_csrf_ok(s1, "Bearer alice-token", shortened), "truncated");
    memcpy(u, t, sizeof u);
    u[10] = u[10] == 'a' ? 'b' : 'a';
    cr_expect_not(console_csrf_ok(s1, "Bearer alice-token", u), "one digit changed");
    console_csrf(s1, "Bearer alice-token", u);
    cr_expect_str_eq(t, u, "the same session gets the same token");
}

Test(console, a_post_must_come_from_the_console_itself)
{
    cr_expect(console_same_origin("http://127.0.0.1:8083", "127.0.0.1:8083", "same-origin"));
    cr_expect(console_same_origin("https://ops.example.com", "ops.example.com", NULL));
    cr_expect(console_same_origin(NULL, "127.0.0.1:8083", NULL), "curl sends no Origin: the CSRF token still applies");
    cr_expect_not(console_same_origin("http://evil.example", "127.0.0.1:8083", NULL));
    cr_expect_not(console_same_origin("http://127.0.0.1:8083.evil", "127.0.0.1:8083", NULL));
    cr_expect_not(console_same_origin("null", "127.0.0.1:8083", NULL), "a sandboxed frame or file page");
    cr_expect_not(console_same_origin("http://127.0.0.1:8083", "127.0.0.1:8083", "cross-site"));
    cr_expect_not(console_same_origin(NULL, "127.0.0.1:8083", "same-site"));
    cr_expect_not(console_same_origin("http://127.0.0.1:8083", NULL, NULL));
}

Test(console, only_a_bearer_token_is_passed_on)
{
    cr_expect_str_eq(console_bearer("Bearer abc-DEF_0.9~+/"), "abc-DEF_0.9~+/");
    cr_expect_str_eq(console_bearer("Bearer abc=="), "abc==");
    cr_expect_null(console_bearer(NULL));
    cr_expect_null(console_bearer("Bearer "), "empty");
    cr_expect_null(console_bearer("Basic YTpi"), "another scheme");
    cr_expect_null(console_bearer("Bearer two words"), "a space: no token (was a 500)");
    cr_expect_null(console_bearer("Bearer a=b"), "'=' only at the end");
    cr_expect_null(console_bearer("Bearer tab\there"), "a control byte");
    cr_expect_null(console_bearer("Bearer caf\xc3\xa9"), "non-ASCII");
    static char big[8 + CONSOLE_TOKEN_MAX + 2];
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', CONSOLE_TOKEN_MAX + 1);
    cr_expect_null(console_bearer(big), "over CONSOLE_TOKEN_MAX bytes");
    big[7 + CONSOLE_TOKEN_MAX] = '\0';
    cr_expect_not_null(console_bearer(big), "CONSOLE_TOKEN_MAX bytes exactly");
}

Test(console, known_tokens_are_remembered_for_a_while_and_bounded)
{
    static console_known_t k;
    memset(&k, 0, sizeof k);
    cr_expect_not(console_known_recent(&k, "tok-a", 0, 1000), "nobody is known at first");
    console_known_note(&k, "tok-a", 1000);
    cr_expect(console_known_recent(&k, "tok-a", 1500, 1000));
    cr_expect(console_known_recent(&k, "tok-a", 2000, 1000), "within the grace");
    cr_expect_not(console_known_recent(&k, "tok-a", 2001, 1000), "past the grace");
    cr_expect_not(console_known_recent(&k, "tok-b", 1500, 1000), "another token");
    console_known_note(&k, "tok-a", 5000);
    cr_expect_eq(k.n, 1, "heard again: the same entry, later");
    cr_expect(console_known_recent(&k, "tok-a", 5500, 1000));
    console_known_forget(&k, "tok-a");
    cr_expect_not(console_known_recent(&k, "tok-a", 5500, 1000), "a 401 forgets it");
    char tok[32];
    for (int i = 0; i < CONSOLE_KNOWN_MAX + 5; i++) {
        snprintf(tok, sizeof tok, "tok-%d", i);
        console_known_note(&k, tok, 10000 + i);
    }
    cr_expect_eq(k.n, CONSOLE_KNOWN_MAX, "bounded");
    cr_expect_not(console_known_recent(&k, "tok-0", 10100, 1000), "the oldest went first");
    snprintf(tok, sizeof tok, "tok-%d", CONSOLE_KNOWN_MAX + 4);
    cr_expect(console_known_recent(&k, tok, 10100, 1000), "the newest stays");
}
