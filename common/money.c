/* money - amounts for people (see money.h) */
#include "money.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* money_decimals - ISO 4217 exponents 0 and 3; 2 for every other code */
int money_decimals(const char *currency)
{
    static const char *const zero[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
                                       "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF", NULL};
    static const char *const three[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND", NULL};
    for (size_t i = 0; currency && zero[i]; i++)
        if (strncasecmp(currency, zero[i], 4) == 0)
            return 0;
    for (size_t i = 0; currency && three[i]; i++)
        if (strncasecmp(currency, three[i], 4) == 0)
            return 3;
    return 2;
}

/* money_number - minor units in the currency's decimals, grouped by thousands */
void money_number(int64_t amount, const char *currency, char *out, size_t outlen)
{
    static const uint64_t unit[] = {1, 10, 100, 1000};
    int d = money_decimals(currency);
    uint64_t mag = amount < 0 ? (uint64_t) 0 - (uint64_t) amount : (uint64_t) amount; /* INT64_MIN too */
    char digits[24], grouped[32];
    int nd = snprintf(digits, sizeof digits, "%" PRIu64, mag / unit[d]);
    size_t o = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            grouped[o++] = ',';
        grouped[o++] = digits[i];
    }
    grouped[o] = '\0';
    if (d == 0)
        snprintf(out, outlen, "%s%s", amount < 0 ? "-" : "", grouped);
    else
        snprintf(out, outlen, "%s%s.%0*" PRIu64, amount < 0 ? "-" : "", grouped, d, mag % unit[d]);
}

/* money_format - the number and the code, upper-cased */
void money_format(int64_t amount, const char *currency, char *out, size_t outlen)
{
    char code[4] = "---";
    if (currency && strlen(currency) == 3) {
        for (int i = 0; i < 3; i++) {
            char c = currency[i];
            code[i] = (c >= 'a' && c <= 'z') ? (char) (c - 32) : c;
            if (code[i] < 'A' || code[i] > 'Z') {
                memcpy(code, "---", 4);
                break;
            }
        }
    }
    char num[48];
    money_number(amount, code, num, sizeof num);
    snprintf(out, outlen, "%s %s", num, code);
}
