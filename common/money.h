/* money - amounts for people: minor units in, "12,500.00 USD" out.
 *
 * Money is always an integer count of minor units plus an ISO 4217 code
 * (CONTRACT.md); this only renders it, with integer arithmetic, in the
 * currency's own decimals (ISO 4217 exponents: 0 for JPY, KRW, ...; 3 for
 * KWD, BHD, ...; 2 for the rest). One implementation, so an amount reads
 * the same in advice, policy reasons, tickets and cards.
 */
#ifndef PG_MONEY_H
#define PG_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* money_decimals - minor-unit digits of a currency code (either case) */
int money_decimals(const char *currency);

/* money_number - "12,500.00" (thousands separators, "-" when negative) */
void money_number(int64_t amount_minor, const char *currency, char *out, size_t outlen);

/* money_format - "12,500.00 USD"; a code that is not three letters shows as "---" */
void money_format(int64_t amount_minor, const char *currency, char *out, size_t outlen);

#endif
