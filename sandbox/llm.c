/* llm - an OpenAI-compatible chat completions endpoint (CONTRACT.md §2.6), under /llm.
 *
 *   POST /v1/chat/completions  {"model","messages":[{"role","content"}...],
 *                               "response_format":{"type":"json_schema","json_schema":{"name","strict","schema"}}}
 *        -> 200 {"id","object":"chat.completion","created","model","choices":[{"index":0,
 *                "message":{"role":"assistant","content":"<JSON text>"},"finish_reason":"stop"}],"usage":{...}}
 *   GET  /v1/models            {"object":"list","data":[{"id":"sandbox","object":"model"}]}
 *
 * The content is deterministic: when the request's schema has "properties",
 * an object with every required property filled by its type (enum/const:
 * the first value; string "sandbox"; number 0.8; integer 1; boolean false;
 * array [] or minItems items; object: recursively; $ref to #/..., anyOf,
 * oneOf: the first alternative; numbers clamped to minimum/maximum);
 * otherwise {}. POST /_sandbox/llm {"content"} replaces the content with a
 * raw string, verbatim, until DELETE /_sandbox/llm (tests of bad answers).
 * Any token of the tokens file may call it (read tokens included).
 * Errors have OpenAI's shape: {"error":{"message","type","param","code"}}.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

#define LLM_MAX_DEPTH 16

enum { R_CHAT, R_MODELS };

static const sbx_route_t s_routes[] = {
    [R_CHAT] = {"POST", "/v1/chat/completions"},
    [R_MODELS] = {"GET", "/v1/models"},
    {NULL, NULL},
};

/* s_openai_error - OpenAI's error object */
static int s_openai_error(sbx_resp_t *resp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbx_reply(resp, status,
              json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type", "invalid_request_error", "param",
                        "code"));
    return -1;
}

/* s_route - the two endpoints a client of an OpenAI-compatible server uses */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    if (rc >= 0)
        return rc;
    return s_openai_error(resp, rc == SBX_NO_METHOD ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
                          "Invalid URL (%s %s)", req->method, req->path);
}

/* s_resolve - a local "$ref": "#/a/b" inside the root schema, or NULL */
static json_t *s_resolve(json_t *root, const char *ref)
{
    if (strncmp(ref, "#", 1) != 0)
        return NULL;
    json_t *node = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 1);
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok && node; tok = strtok_r(NULL, "/", &save))
        node = json_object_get(node, tok);
    return node;
}

/* s_clamp - a default number kept inside minimum/maximum */
static double s_clamp(json_t *schema, double v)
{
    json_t *min = json_object_get(schema, "minimum"), *max = json_object_get(schema, "maximum");
    if (json_is_number(min) && v < json_number_value(min))
        v = json_number_value(min);
    if (json_is_number(max) && v > json_number_value(max))
        v = json_number_value(max);
    return v;
}

/* s_type - the schema's type; the first that is not "null" of a list */
static const char *s_type(json_t *schema)
{
    json_t *t = json_object_get(schema, "type");
    if (json_is_string(t))
        return json_string_value(t);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "null") != 0)
            return json_string_value(v);
    }
    if (json_object_get(schema, "properties"))
        return "object";
    return json_array_size(t) ? "null" : NULL;
}

/* s_fill - a plausible value that satisfies schema (the simple cases) */
static json_t *s_fill(json_t *schema, json_t *root, int depth)
{
    if (!json_is_object(schema) || depth > LLM_MAX_DEPTH)
        return json_null();
    json_t *v;
    if ((v = json_object_get(schema, "$ref")) && json_is_string(v))
        return s_fill(s_resolve(root, json_string_value(v)), root, depth + 1);
    if ((v = json_object_get(schema, "const")))
        return json_deep_copy(v);
    if ((v = json_object_get(schema, "enum")) && json_array_size(v))
        return json_deep_copy(json_array_get(v, 0));
    const char *alts[] = {"anyOf", "oneOf", "allOf"};
    for (int i = 0; i < 3; i++)
        if ((v = json_object_get(schema, alts[i])) && json_array_size(v))
            return s_fill(json_array_get(v, 0), root, depth + 1);
    const char *type = s_type(schema);
    if (!type || strcmp(type, "null") == 0)
        return json_null();
    if (strcmp(type, "string") == 0)
        return json_string("sandbox");
    if (strcmp(type, "number") == 0)
        return json_real(s_clamp(schema, 0.8));
    if (strcmp(type, "integer") == 0)
        return json_integer((json_int_t) s_clamp(schema, 1));
    if (strcmp(type, "boolean") == 0)
        return json_false();
    if (strcmp(type, "array") == 0) {
        json_t *arr = json_array();
        json_t *min = json_object_get(schema, "minItems");
        json_int_t n = json_is_integer(min) ? json_integer_value(min) : 0;
        for (json_int_t i = 0; i < n && i < 16; i++)
            json_array_append_new(arr, s_fill(json_object_get(schema, "items"), root, depth + 1));
        return arr;
    }
    if (strcmp(type, "object") == 0) {
        json_t *obj = json_object(), *props = json_object_get(schema, "properties");
        size_t i;
        json_array_foreach(json_object_get(schema, "required"), i, v)
        {
            const char *name = json_string_value(v);
            if (name)
                json_object_set_new(obj, name, s_fill(json_object_get(props, name), root, depth + 1));
        }
        return obj;
    }
    return json_null();
}

/* sbx_llm_content - the deterministic answer text for a request */
char *sbx_llm_content(json_t *request)
{
    json_t *rf = json_object_get(request, "response_format");
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    json_t *out = json_is_object(json_object_get(schema, "properties")) ? s_fill(schema, schema, 0) : json_object();
    char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    json_decref(out);
    return text;
}

/* s_check - the request's shape, as an OpenAI-compatible server checks it */
static int s_check(json_t *req, char *err, size_t errlen)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", NULL};
    static const char *const formats[] = {"text", "json_object", "json_schema", NULL};
    json_t *model = json_object_get(req, "model"), *msgs = json_object_get(req, "messages");
    if (!json_is_string(model) || !json_string_length(model)) {
        snprintf(err, errlen, "you must provide a model parameter");
        return -1;
    }
    if (!json_is_array(msgs) || !json_array_size(msgs)) {
        snprintf(err, errlen, "messages must be a non-empty array");
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *c = json_object_get(m, "content");
        if (!sbx_in(json_string_value(json_object_get(m, "role")), roles)) {
            snprintf(err, errlen, "messages[%zu].role must be system, developer, user, assistant or tool", i);
            return -1;
        }
        if (!json_is_string(c) && !json_is_array(c) && !json_is_null(c)) {
            snprintf(err, errlen, "messages[%zu].content must be a string or an array of parts", i);
            return -1;
        }
    }
    json_t *rf = json_object_get(req, "response_format");
    if (rf) {
        const char *type = json_string_value(json_object_get(rf, "type"));
        if (!sbx_in(type, formats)) {
            snprintf(err, errlen, "response_format.type must be text, json_object or json_schema");
            return -1;
        }
        json_t *js = json_object_get(rf, "json_schema");
        if (strcmp(type, "json_schema") == 0 && (!json_is_object(js) || !json_is_string(json_object_get(js, "name")) ||
                                                 !json_is_object(json_object_get(js, "schema")))) {
            snprintf(err, errlen, "response_format.json_schema needs a name and a schema object");
            return -1;
        }
    }
    return 0;
}

/* s_prompt_chars - the size of the prompt, for a plausible usage block */
static size_t s_prompt_chars(json_t *req)
{
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(json_object_get(req, "messages"), i, m)
    {
        json_t *c = json_object_get(m, "content");
        n += json_is_string(c) ? json_string_length(c) : 16;
    }
    return n;
}

/* s_chat - one completion: the override, else the schema-built object */
static int s_chat(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    char err[256];
    if (s_check(req->json, err, sizeof err))
        return s_openai_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    char *content = sbx_store_setting_get(st, "sbx_llm_content");
    if (!content)
        content = sbx_llm_content(req->json);
    long long n = sbx_db_int(st, 0, "SELECT value FROM settings WHERE key = 'llm_completions'", "") + 1;
    char count[32], id[64];
    snprintf(count, sizeof count, "%lld", n);
    snprintf(id, sizeof id, "chatcmpl-sandbox-%lld", n);
    sbx_store_setting_set(st, "llm_completions", count);
    long long prompt = (long long) s_prompt_chars(req->json) / 4 + 1, done = (long long) strlen(content) / 4 + 1;
    json_t *out = json_pack("{s:s, s:s, s:I, s:O, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:I, s:I, s:I}}", "id", id, "object",
                            "chat.completion", "created", (json_int_t) time(NULL), "model",
                            json_object_get(req->json, "model"), "choices", "index", 0, "message", "role", "assistant",
                            "content", content, "finish_reason", "stop", "usage", "prompt_tokens", (json_int_t) prompt,
                            "completion_tokens", (json_int_t) done, "total_tokens", (json_int_t) (prompt + done));
    free(content);
    if (!out)
        return s_openai_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "the override content is not valid UTF-8");
    return sbx_reply(resp, MHD_HTTP_OK, out);
}

/* s_handle - serve one routed LLM call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    if (req->route == R_CHAT)
        return s_chat(st, req, resp);
    return sbx_reply(resp, MHD_HTTP_OK,
                     json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "object", "list", "data", "id", "sandbox", "object",
                               "model", "owned_by", "payguard"));
}

const sbx_system_t sbx_llm = {
    .name = "llm",
    .prefix = "/llm",
    .auth = true,
    .read_token_posts = true,
    .route = s_route,
    .handle = s_handle,
};
