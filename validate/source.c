/* source - where a webhook came from: CIDR lists and trusted proxies (see validate.h).
 *
 * A netlist is at most NETLIST_MAX entries of {family, network, prefix}.
 * IPv4 entries are kept as 4 bytes; an IPv4-mapped IPv6 entry
 * (::ffff:a.b.c.d/96+n) is stored as the IPv4 entry it means, and an
 * IPv4-mapped address being judged is looked up as IPv4, so a dual-stack
 * listener that reports peers as ::ffff:1.2.3.4 matches "1.2.3.0/24".
 *
 * Entries with host bits set ("10.0.0.1/8") are refused rather than masked:
 * an allowlist is security configuration and a typo there should stop the
 * stage, not quietly widen or move the range.
 *
 * X-Forwarded-For: each proxy appends the address it received the request
 * from, so only entries appended by proxies we trust are believed. Walking
 * from the right while the current hop is trusted, the first untrusted
 * address is the client; everything to its left was written by the client
 * itself and is never parsed (garbage there is not an error). At most
 * SOURCE_MAX_HOPS entries are examined.
 */
#include "validate.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NETLIST_MAX 64
#define SOURCE_MAX_HOPS 32
#define SOURCE_MAX_TOKEN 64 /* longer than any address with port and brackets */

typedef struct {
    int family;             /* AF_INET | AF_INET6 */
    unsigned char addr[16]; /* network, 4 or 16 bytes used */
    unsigned prefix;
} s_net_t;

struct netlist_t {
    s_net_t nets[NETLIST_MAX];
    size_t n;
};

/* s_fmt - a one-line err/reason if the caller gave a buffer */
__attribute__((format(printf, 3, 4))) static void s_fmt(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* s_printable - a bounded copy of untrusted text safe to quote in a reason
 * (non-printable bytes become '?') */
static void s_printable(const char *s, size_t n, char *out, size_t outlen)
{
    assert(outlen > 0);
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < outlen; i++)
        out[j++] = (s[i] >= ' ' && s[i] <= '~') ? s[i] : '?';
    out[j] = '\0';
}

/* s_unmap - an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 one */
static void s_unmap(int *family, unsigned char addr[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (*family == AF_INET6 && memcmp(addr, mapped, sizeof mapped) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = AF_INET;
    }
}

/* s_pton - a plain IPv4 or IPv6 address in [s, s+n), nothing around it */
static int s_pton(const char *s, size_t n, int *family, unsigned char addr[16])
{
    char buf[SOURCE_MAX_TOKEN];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, buf, addr) == 1)
        *family = AF_INET6;
    else
        return -1;
    return 0;
}

/* s_is_port - ":<1..65535>" after an address */
static bool s_is_port(const char *s, size_t n)
{
    if (n < 2 || n > 6 || s[0] != ':')
        return false;
    unsigned v = 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned) (s[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* s_parse_host - an address as proxies write it: "1.2.3.4", "1.2.3.4:80",
 * "::1", "[::1]", "[::1]:443"; IPv4-mapped IPv6 becomes IPv4 */
static int s_parse_host(const char *s, size_t n, int *family, unsigned char addr[16])
{
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return -1;
        size_t inner = (size_t) (close - s - 1), rest = n - inner - 2;
        if (memchr(s + 1, ':', inner) == NULL)
            return -1; /* brackets are for IPv6 only */
        if (rest && !s_is_port(close + 1, rest))
            return -1;
        if (s_pton(s + 1, inner, family, addr) < 0)
            return -1;
    } else {
        const char *colon = memchr(s, ':', n);
        bool v4_with_port = colon && memchr(colon + 1, ':', n - (size_t) (colon - s) - 1) == NULL;
        size_t alen = v4_with_port ? (size_t) (colon - s) : n;
        if (v4_with_port && !s_is_port(colon, n - alen))
            return -1;
        if (s_pton(s, alen, family, addr) < 0 || (v4_with_port && *family != AF_INET))
            return -1;
    }
    s_unmap(family, addr);
    return 0;
}

/* s_in_net - whether addr (already unmapped) lies in net */
static bool s_in_net(const s_net_t *net, int family, const unsigned char addr[16])
{
    if (net->family != family)
        return false;
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char) (0xff << (8 - rest));
    return (net->addr[full] & mask) == (addr[full] & mask);
}

/* s_host_bits_set - whether bits beyond the prefix are set in the network */
static bool s_host_bits_set(const s_net_t *net)
{
    unsigned bytes = net->family == AF_INET ? 4 : 16;
    for (unsigned bit = net->prefix; bit < bytes * 8; bit++)
        if (net->addr[bit / 8] & (0x80 >> (bit % 8)))
            return true;
    return false;
}

/* s_parse_entry - one CIDR or bare address of a netlist spec */
static int s_parse_entry(const char *s, size_t n, s_net_t *net, char *err, size_t errlen)
{
    char shown[SOURCE_MAX_TOKEN + 1];
    s_printable(s, n, shown, sizeof shown);
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t) (slash - s) : n;
    if (s_pton(s, alen, &net->family, net->addr) < 0) {
        s_fmt(err, errlen, "netlist: bad entry \"%s\": not an IPv4 or IPv6 address", shown);
        return -1;
    }
    unsigned max = net->family == AF_INET ? 32 : 128;
    net->prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dn = n - alen - 1;
        unsigned v = 0;
        bool ok = dn >= 1 && dn <= 3;
        for (size_t i = 0; ok && i < dn; i++) {
            ok = d[i] >= '0' && d[i] <= '9';
            v = v * 10 + (unsigned) (d[i] - '0');
        }
        if (!ok || v > max) {
            s_fmt(err, errlen, "netlist: bad entry \"%s\": prefix length must be 0..%u", shown, max);
            return -1;
        }
        net->prefix = v;
    }
    if (s_host_bits_set(net)) {
        s_fmt(err, errlen, "netlist: bad entry \"%s\": host bits set beyond /%u", shown, net->prefix);
        return -1;
    }
    if (net->family == AF_INET6 && net->prefix >= 96) {
        int fam = net->family;
        s_unmap(&fam, net->addr);
        if (fam == AF_INET) {
            net->family = AF_INET;
            net->prefix -= 96;
        }
    }
    return 0;
}

/* netlist_parse - see validate.h */
netlist_t *netlist_parse(const char *spec, char *err, size_t errlen)
{
    netlist_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_fmt(err, errlen, "out of memory");
        return NULL;
    }
    for (const char *p = spec ? spec : ""; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
            p++;
        const char *b = p;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ','))
            p++;
        if (p == b)
            break;
        if (self->n == NETLIST_MAX) {
            s_fmt(err, errlen, "netlist: more than %d entries", NETLIST_MAX);
            netlist_destroy(&self);
            return NULL;
        }
        if (s_parse_entry(b, (size_t) (p - b), &self->nets[self->n], err, errlen) < 0) {
            netlist_destroy(&self);
            return NULL;
        }
        self->n++;
    }
    return self;
}

/* netlist_destroy - see validate.h */
void netlist_destroy(netlist_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

/* s_contains - membership of a parsed (unmapped) address */
static bool s_contains(const netlist_t *self, int family, const unsigned char addr[16])
{
    for (size_t i = 0; self && i < self->n; i++)
        if (s_in_net(&self->nets[i], family, addr))
            return true;
    return false;
}

/* netlist_contains - see validate.h; an unparseable address is in no list */
bool netlist_contains(const netlist_t *self, const char *ip)
{
    int family;
    unsigned char addr[16];
    if (!self || !ip || s_parse_host(ip, strlen(ip), &family, addr) < 0)
        return false;
    return s_contains(self, family, addr);
}

/* netlist_size - see validate.h */
size_t netlist_size(const netlist_t *self)
{
    return self ? self->n : 0;
}

/* s_ntop - the canonical text of an address (mapped IPv6 as dotted IPv4) */
static void s_ntop(int family, const unsigned char addr[16], char out[64])
{
    const char *r = inet_ntop(family, addr, out, 64);
    assert(r);
    (void) r;
}

/* s_has_text - whether an X-Forwarded-For value holds anything but
 * separators (an empty header is no header) */
static bool s_has_text(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != ',')
            return true;
    return false;
}

/* source_client_ip - see validate.h */
int source_client_ip(const netlist_t *trusted, const char *peer, const char *xff, char out[64], bool *spoofed,
                     char *reason, size_t reasonlen)
{
    assert(out && spoofed);
    *spoofed = false;
    out[0] = '\0';
    int family;
    unsigned char addr[16];
    char shown[SOURCE_MAX_TOKEN + 1];
    if (!peer || s_parse_host(peer, strlen(peer), &family, addr) < 0) {
        s_printable(peer ? peer : "", peer ? strlen(peer) : 0, shown, sizeof shown);
        s_fmt(reason, reasonlen, "source: peer \"%s\" is not an address", shown);
        return -1;
    }
    s_ntop(family, addr, out);
    if (!s_contains(trusted, family, addr)) {
        *spoofed = s_has_text(xff);
        if (*spoofed)
            s_fmt(reason, reasonlen, "source: client %s (direct; X-Forwarded-For from an untrusted peer ignored)", out);
        else
            s_fmt(reason, reasonlen, "source: client %s (direct)", out);
        return 0;
    }
    if (!s_has_text(xff)) {
        s_fmt(reason, reasonlen, "source: client %s (trusted proxy, no X-Forwarded-For)", out);
        return 0;
    }
    /* from the right: each entry was appended by the hop to its right,
     * which is trusted as long as we are still walking */
    const char *end = xff + strlen(xff);
    for (size_t hop = 1; hop <= SOURCE_MAX_HOPS; hop++) {
        const char *b = end;
        while (b > xff && b[-1] != ',')
            b--;
        const char *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (s_parse_host(b, (size_t) (e - b), &family, addr) < 0) {
            s_printable(b, (size_t) (e - b), shown, sizeof shown);
            s_fmt(reason, reasonlen, "source: X-Forwarded-For entry %zu from the right is not an address: \"%s\"", hop,
                  shown);
            out[0] = '\0';
            return -1;
        }
        s_ntop(family, addr, out);
        if (!s_contains(trusted, family, addr)) {
            s_fmt(reason, reasonlen, "source: client %s (X-Forwarded-For, %zu trusted hop%s)", out, hop,
                  hop == 1 ? "" : "s");
            return 0;
        }
        /* trusted: the entry to its left was written by it */
        while (end > xff && end[-1] != ',')
            end--;
        if (end == xff) {
            s_fmt(reason, reasonlen, "source: client %s (every X-Forwarded-For entry is a trusted proxy)", out);
            return 0;
        }
        end--; /* past the comma */
    }
    s_fmt(reason, reasonlen, "source: X-Forwarded-For has more than %d trusted hops", SOURCE_MAX_HOPS);
    out[0] = '\0';
    return -1;
}
