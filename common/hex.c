/* hex - hex digits to bytes (see hex.h) */
#include "hex.h"

#include <assert.h>
#include <openssl/crypto.h>

/* hex_decode - see hex.h */
int hex_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    assert(out && outlen);
    if (!s || n == 0 || n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char) s[2 * i]);
        int lo = OPENSSL_hexchar2int((unsigned char) s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char) (hi << 4 | lo);
    }
    *outlen = n / 2;
    assert(*outlen <= cap);
    return 0;
}

/* hex_encode - see hex.h */
void hex_encode(const unsigned char *in, size_t n, char *out)
{
    assert((in || n == 0) && out);
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}
