/* trace - W3C Trace Context (https://www.w3.org/TR/trace-context/):
 * the `traceparent` value that follows a case from the webhook that opened
 * it through every event and every outside call made for it.
 *
 * FORMAT
 *   version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex:
 *   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
 *   trace_parse takes version 00 exactly as above; a later version (not
 *   "ff") is read by its first four fields when what follows them starts
 *   with "-", as the recommendation asks of a version-00 reader. An all-zero
 *   trace-id or parent-id, upper-case hex, or any other shape is refused
 *   (the caller then starts a new trace, as the recommendation says).
 *   trace_format always writes version 00.
 *
 * SPANS
 *   A span is one piece of work: a stage handling one input, one outside
 *   call, ingest taking one webhook. Its context (trace_t) is the trace-id it
 *   belongs to, its own span id and the flags; what it emits or sends
 *   carries that context, so that the receiver's span is its child.
 *   trace_derive makes a span id that is a pure function of (stage, input
 *   id), so that an input handled again after a crash carries the same
 *   context as the first time (like event ids, event.h).
 */
#ifndef PG_TRACE_H
#define PG_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_ID_BYTES 16
#define TRACE_SPAN_BYTES 8
#define TRACE_HEADER_LEN 55 /* "00-" 32 "-" 16 "-" 2 */
#define TRACE_FLAG_SAMPLED 0x01u
#define TRACE_KEY "traceparent" /* the body key and the HTTP header name */

typedef struct {
    unsigned char trace_id[TRACE_ID_BYTES];
    unsigned char span_id[TRACE_SPAN_BYTES];
    unsigned char flags;
} trace_t;

/* trace_parse - 0 and the context of the len bytes at s (a header value,
 * optional spaces or tabs around it), -1 if it is not a valid traceparent */
int trace_parse(const char *s, size_t len, trace_t *out);

/* trace_format - out is the version-00 traceparent of t */
void trace_format(const trace_t *t, char out[TRACE_HEADER_LEN + 1]);

/* trace_mint - a new trace: random trace-id and span id, sampled */
void trace_mint(trace_t *out);

/* trace_child - a span of parent's trace with a new random span id */
void trace_child(const trace_t *parent, trace_t *out);

/* trace_derive - a span of parent's trace whose id is the first 8 bytes of
 * SHA-256("payguard-span-1" NUL stage NUL id) (never all zero) */
void trace_derive(const trace_t *parent, const char *stage, const char *id, trace_t *out);

/* trace_hex - the trace-id (32 digits) or a span id (16) as hex */
void trace_id_hex(const trace_t *t, char out[2 * TRACE_ID_BYTES + 1]);
void trace_span_hex(const unsigned char span[TRACE_SPAN_BYTES], char out[2 * TRACE_SPAN_BYTES + 1]);

#endif
