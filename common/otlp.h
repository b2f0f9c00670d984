/* otlp - spans out to an OpenTelemetry collector over OTLP/HTTP, JSON
 * encoding (https://opentelemetry.io/docs/specs/otlp/): POST
 * <endpoint>/v1/traces, Content-Type application/json, one
 * ExportTraceServiceRequest per batch.
 *
 * Export is advice for people, not part of the record: the trail holds
 * every event with its traceparent whatever happens here. So the exporter
 * never slows a stage: otlp_add copies a span into a bounded buffer
 * (max_spans) and returns; a thread of its own posts the buffer once a
 * second, or sooner when half of it is full, with one attempt of at most
 * timeout_ms. A span that finds the buffer full, or whose batch the
 * collector did not take (no answer, or not 2xx), is dropped and counted
 * (otlp_stats). otlp_destroy posts what is left once, then stops.
 *
 * LIMITS: OTLP_MAX_SPANS spans buffered at the most; OTLP_ATTRS attributes
 * of a span, keys of OTLP_KEY_MAX and values of OTLP_VALUE_MAX bytes (longer
 * values are cut on a UTF-8 boundary).
 */
#ifndef PG_OTLP_H
#define PG_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

#define OTLP_MAX_SPANS 65536
#define OTLP_ATTRS 6
#define OTLP_KEY_MAX 31
#define OTLP_VALUE_MAX 127
#define OTLP_NAME_MAX 63

/* span kinds, as OTLP numbers them */
typedef enum { OTLP_INTERNAL = 1, OTLP_SERVER = 2, OTLP_CLIENT = 3, OTLP_PRODUCER = 4, OTLP_CONSUMER = 5 } otlp_kind_t;

typedef struct {
    trace_t ctx;                            /* its trace, its own span id */
    unsigned char parent[TRACE_SPAN_BYTES]; /* all zero: a root span */
    char name[OTLP_NAME_MAX + 1];
    otlp_kind_t kind;
    int64_t start_ms, end_ms; /* unix time */
    bool error;
    size_t nattrs;
    struct {
        char key[OTLP_KEY_MAX + 1];
        char value[OTLP_VALUE_MAX + 1];
    } attrs[OTLP_ATTRS];
} otlp_span_t;

typedef struct otlp_t otlp_t;

/* otlp_new - an exporter to endpoint (http:// or https://, no query) for
 * service ("payguard-validate") and instance ("validate.0"); NULL and err
 * for a bad endpoint or bound */
otlp_t *otlp_new(const char *endpoint, const char *service, const char *instance, size_t max_spans, long timeout_ms,
                 char *err, size_t errlen);
/* otlp_destroy - post what is buffered (one attempt), stop the thread */
void otlp_destroy(otlp_t **self_p);

/* otlp_span_init - s: the span ctx (its own context) from start_ms to
 * end_ms, a child of parent's span (NULL: a root), named name (cut at
 * OTLP_NAME_MAX), no error, no attributes */
void otlp_span_init(otlp_span_t *s, const trace_t *ctx, const trace_t *parent, otlp_kind_t kind, const char *name,
                    int64_t start_ms, int64_t end_ms);
/* otlp_span_attr - add key=value to s (ignored past OTLP_ATTRS) */
void otlp_span_attr(otlp_span_t *s, const char *key, const char *value);

/* otlp_add - buffer a copy of span; false if the buffer was full (dropped).
 * Any thread. */
bool otlp_add(otlp_t *self, const otlp_span_t *span);

/* otlp_stats - spans the collector took, spans dropped, posts that failed */
void otlp_stats(otlp_t *self, uint64_t *sent, uint64_t *dropped, uint64_t *failed_posts);

/* otlp_json - the ExportTraceServiceRequest of n spans (malloc'd; for
 * tests and the exporter) */
char *otlp_json(const otlp_span_t *spans, size_t n, const char *service, const char *instance);

#endif
