/* test_otlp - spans to a collector: the JSON mapping, the bounded buffer,
 * a collector that fails */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "otlp.h"

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

/* the collector: answers status, counts the spans it was sent */
static struct {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    unsigned status;
    int posts, spans;
    char path[64], type[64];
    char url[64];
} s_col = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
    char *data;
    size_t len;
} up_t;

static enum MHD_Result s_on(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *data, size_t *size, void **con_cls)
{
    (void) cls, (void) method, (void) version;
    up_t *up = *con_cls;
    if (!up) {
        *con_cls = calloc(1, sizeof(up_t));
        return MHD_YES;
    }
    if (*size) {
        up->data = realloc(up->data, up->len + *size + 1);
        memcpy(up->data + up->len, data, *size);
        up->len += *size;
        up->data[up->len] = 0;
        *size = 0;
        return MHD_YES;
    }
    json_t *req = json_loads(up->data ? up->data : "", 0, NULL);
    json_t *list = json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(req, "resourceSpans"), 0), "scopeSpans"), 0),
        "spans");
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    pthread_mutex_lock(&s_col.mu);
    s_col.posts++;
    s_col.spans += (int) json_array_size(list);
    snprintf(s_col.path, sizeof s_col.path, "%s", url);
    snprintf(s_col.type, sizeof s_col.type, "%s", ct ? ct : "");
    unsigned status = s_col.status;
    pthread_mutex_unlock(&s_col.mu);
    json_decref(req);
    struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *) "{}", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static void s_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void) cls, (void) c, (void) t;
    up_t *up = *con_cls;
    if (up)
        free(up->data);
    free(up);
    *con_cls = NULL;
}

static void s_collector(unsigned status)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s_col.status = status;
    s_col.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_on, NULL, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *) &a, MHD_OPTION_NOTIFY_COMPLETED, s_done, NULL, MHD_OPTION_END);
    cr_assert_not_null(s_col.d);
    snprintf(s_col.url, sizeof s_col.url, "http://127.0.0.1:%u",
             (unsigned) MHD_get_daemon_info(s_col.d, MHD_DAEMON_INFO_BIND_PORT)->port);
}

static otlp_span_t s_span(const char *name)
{
    otlp_span_t s = {.kind = OTLP_CONSUMER, .start_ms = 1700000000123, .end_ms = 1700000000456};
    cr_assert_eq(trace_parse(TP, strlen(TP), &s.ctx), 0);
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

Test(otlp, spans_in_otlps_json_mapping)
{
    otlp_span_t s[2] = {s_span("validate receipt"), s_span("GET payments")};
    memset(s[1].parent, 0x11, sizeof s[1].parent);
    s[1].kind = OTLP_CLIENT;
    s[1].error = true;
    otlp_span_attr(&s[1], "http.response.status_code", "503");
    char *text = otlp_json(s, 2, "payguard-validate", "validate.0");
    json_t *req = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(req);
    json_t *rs = json_array_get(json_object_get(req, "resourceSpans"), 0);
    json_t *attr0 = json_array_get(json_object_get(json_object_get(rs, "resource"), "attributes"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(attr0, "key")), "service.name");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(attr0, "value"), "stringValue")),
                     "payguard-validate");
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    cr_assert_eq(json_array_size(spans), 2);
    json_t *a = json_array_get(spans, 0), *b = json_array_get(spans, 1);
    cr_expect_str_eq(json_string_value(json_object_get(a, "traceId")), "0af7651916cd43dd8448eb211c80319c");
    cr_expect_str_eq(json_string_value(json_object_get(a, "spanId")), "b7ad6b7169203331");
    cr_expect_null(json_object_get(a, "parentSpanId"), "a root span has no parent");
    cr_expect_str_eq(json_string_value(json_object_get(a, "startTimeUnixNano")), "1700000000123000000");
    cr_expect_eq(json_integer_value(json_object_get(a, "kind")), OTLP_CONSUMER);
    cr_expect_str_eq(json_string_value(json_object_get(b, "parentSpanId")), "1111111111111111");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(b, "status"), "code")), 2, "an error");
    json_t *battr = json_array_get(json_object_get(b, "attributes"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(battr, "value"), "stringValue")), "503");
    json_decref(req);
}

Test(otlp, a_collector_gets_every_span_within_a_second)
{
    s_collector(200);
    char err[128];
    otlp_t *o = otlp_new(s_col.url, "payguard-triage", "triage.0", 64, 2000, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    otlp_span_t s = s_span("triage validated");
    for (int i = 0; i < 5; i++)
        cr_expect(otlp_add(o, &s));
    uint64_t sent = 0, dropped = 0, failed = 0;
    for (int i = 0; i < 40 && sent < 5; i++) {
        usleep(100 * 1000);
        otlp_stats(o, &sent, &dropped, &failed);
    }
    cr_expect_eq(sent, 5);
    cr_expect_eq(dropped, 0);
    pthread_mutex_lock(&s_col.mu);
    cr_expect_eq(s_col.spans, 5);
    cr_expect_str_eq(s_col.path, "/v1/traces");
    cr_expect_str_eq(s_col.type, "application/json");
    pthread_mutex_unlock(&s_col.mu);
    otlp_destroy(&o);
    MHD_stop_daemon(s_col.d);
}

Test(otlp, a_full_buffer_or_a_failing_collector_drops_and_counts)
{
    s_collector(503);
    char err[128];
    otlp_t *o = otlp_new(s_col.url, "payguard-execute", "execute.0", 4, 2000, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    otlp_span_t s = s_span("execute approved");
    int taken = 0;
    for (int i = 0; i < 100; i++)
        taken += otlp_add(o, &s);
    cr_expect_lt(taken, 100, "the buffer holds at most 4");
    otlp_destroy(&o); /* posts what is left once */
    cr_expect_null(o);
    pthread_mutex_lock(&s_col.mu);
    cr_expect_geq(s_col.posts, 1);
    pthread_mutex_unlock(&s_col.mu);
    MHD_stop_daemon(s_col.d);
}

Test(otlp, a_bad_endpoint_or_bound_is_refused)
{
    char err[128];
    cr_expect_null(otlp_new("ftp://x", "s", "s.0", 64, 1000, err, sizeof err));
    cr_expect(strstr(err, "http://") != NULL, "%s", err);
    cr_expect_null(otlp_new("http://127.0.0.1:1", "s", "s.0", 1, 1000, err, sizeof err));
    cr_expect(strstr(err, "max_spans") != NULL, "%s", err);
}
