/*++
 * NAME
 *	pg-push - push one hand-made event into a stage's input (tests only)
 * SYNOPSIS
 *	pg-push -c CONFIG --into INSTANCE --type TYPE --case KEY
 *		[--from INSTANCE] [--body JSON] [--seal-key FILE] [--cert FILE]
 * DESCRIPTION
 *	What an attacker who can reach a stage's ZeroMQ input can do: an
 *	event with any head and body, from any claimed producer (default
 *	approve.0), to the input endpoint of INSTANCE (e.g. execute.0). With
 *	--seal-key the event is sealed with the 64-hex-digit key in FILE, as
 *	approve seals (common/event.h, SEALS); the e2e tests use it to show
 *	that execute refuses what approve did not seal and acts on what it
 *	did. When the group uses CURVE (common/curve.h), it connects as a
 *	CURVE client with the key pair in FILE (--cert; default a fresh one
 *	the group does not know), checking the target's server key. Prints
 *	the event's id; exit 0 once handed to ZeroMQ (an unknown key's event
 *	is then never read by the stage).
 *--*/
#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "curve.h"
#include "event.h"

/* s_opt - the value after name, or dflt */
static const char *s_opt(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return dflt;
}

/* s_key - 32 bytes from a file of 64 hex digits; -1 if it is not one */
static int s_key(const char *path, unsigned char key[EVENT_SEAL_KEY_BYTES])
{
    FILE *f = fopen(path, "r");
    char text[80] = "";
    if (!f || !fgets(text, sizeof text, f) || strlen(text) < 64) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    for (int i = 0; i < EVENT_SEAL_KEY_BYTES; i++) {
        unsigned v;
        if (sscanf(text + 2 * i, "%2x", &v) != 1)
            return -1;
        key[i] = (unsigned char) v;
    }
    return 0;
}

/* s_encode - the event, sealed or not; NULL and a message */
static void *s_encode(int argc, char **argv, size_t *len)
{
    event_head_t h = {.seq = 1, .time_ms = (int64_t) time(NULL) * 1000};
    event_mint_id(h.id, "forged");
    snprintf(h.type, sizeof h.type, "%s", s_opt(argc, argv, "--type", ""));
    h.kind = event_type_of(h.type);
    snprintf(h.case_key, sizeof h.case_key, "%s", s_opt(argc, argv, "--case", ""));
    snprintf(h.stage, sizeof h.stage, "%s", s_opt(argc, argv, "--from", "approve.0"));
    json_t *body = json_loads(s_opt(argc, argv, "--body", "{}"), 0, NULL);
    event_body_t *b = event_body_new();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) event_body_json(b, k, v);
    json_decref(body);
    const char *keyfile = s_opt(argc, argv, "--seal-key", NULL);
    unsigned char key[EVENT_SEAL_KEY_BYTES];
    char err[256] = "";
    void *env = NULL;
    if (keyfile && s_key(keyfile, key) != 0)
        snprintf(err, sizeof err, "%s: not 64 hex digits", keyfile);
    else
        env = keyfile ? event_seal_encode(&h, b, key, len, err, sizeof err) : event_encode(&h, b, len, err, sizeof err);
    event_body_destroy(&b);
    if (!env)
        fprintf(stderr, "pg-push: %s\n", err);
    else
        printf("%s\n", h.id);
    return env;
}

int main(int argc, char **argv)
{
    const char *into = s_opt(argc, argv, "--into", NULL);
    char stage[32], err[256];
    int index;
    config_t *c = config_load(s_opt(argc, argv, "-c", NULL), err, sizeof err);
    if (!c || !into || config_parse_instance(into, stage, &index) != 0) {
        fprintf(stderr,
                "%s\nusage: pg-push -c CONFIG --into INSTANCE --type TYPE --case KEY [--from INSTANCE] "
                "[--body JSON] [--seal-key FILE]\n",
                c ? "" : err);
        config_destroy(&c);
        return 2;
    }
    size_t len;
    void *env = s_encode(argc, argv, &len);
    char *ep = config_input_endpoint(c, stage, index);
    zsock_t *push = zsock_new(ZMQ_PUSH);
    zsock_set_sndtimeo(push, 5000);
    zsock_set_linger(push, 2000);
    if (curve_enabled(c)) {
        const char *certfile = s_opt(argc, argv, "--cert", NULL);
        zcert_t *cert = certfile ? zcert_load(certfile) : zcert_new();
        if (!cert || curve_client(c, push, cert, into, err, sizeof err) != 0)
            fprintf(stderr, "pg-push: %s\n", cert ? err : "cannot load --cert");
        zcert_destroy(&cert);
    }
    int rc = env && zsock_connect(push, "%s", ep) == 0 && zmq_send(zsock_resolve(push), env, len, 0) == (int) len;
    zsock_destroy(&push);
    free(ep);
    free(env);
    config_destroy(&c);
    return rc ? 0 : 1;
}
