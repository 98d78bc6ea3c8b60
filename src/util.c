/* util: small pure helpers shared by the core modules. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

int util_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int util_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int util_base64_decode(const char *s, size_t n, struct buf *out)
{
    return util_base64_decode_max(s, n, SIZE_MAX, out);
}

int util_base64_decode_max(const char *s, size_t n, size_t max, struct buf *out)
{
    size_t digits = 0, eq = 0, kept = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t room = n / 4 * 3 + 3;
    buf_reserve(out, room < max ? room : max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            eq++;
            continue;
        }
        int v = util_base64_value(c);
        if (eq > 0 || v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        digits++;
        if (bits >= 8) {
            bits -= 8;
            if (kept < max) {
                out->data[out->len++] = (char)(acc >> bits & 0xff);
                kept++;
            }
        }
    }
    if (out->data != NULL)
        out->data[out->len] = '\0';
    if (eq > 2 || digits % 4 == 1 || (eq > 0 && (digits + eq) % 4 != 0))
        return -1;
    return 0;
}

void util_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void util_sha256_hex(const void *data, size_t len, char out[UTIL_SHA256_HEX_LEN + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    util_hex(md, sizeof md, out);
}

void util_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                      unsigned char out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen);
}

bool util_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

bool util_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

size_t util_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

bool util_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = util_utf8_len(u + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

void util_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Parse n decimal digits at s; -1 if any is not a digit. */
static int util_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int util_parse_amz_date(const char *s, size_t n, time_t *out)
{
    if (n != 16 || s[8] != 'T' || s[15] != 'Z')
        return -1;
    int y = util_digits(s, 4), mo = util_digits(s + 4, 2), d = util_digits(s + 6, 2);
    int h = util_digits(s + 9, 2), mi = util_digits(s + 11, 2), se = util_digits(s + 13, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    /* timegm normalizes 31 February into March: refuse such dates. */
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != mo - 1)
        return -1;
    *out = t;
    return 0;
}

void util_http_date(time_t t, char out[30])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* The C locale's strftime would do, but this is locale-proof and cheap. */
    char *p = out;
    memcpy(p, days[tm.tm_wday], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_mday / 10);
    *p++ = (char)('0' + tm.tm_mday % 10);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon], 3);
    p += 3;
    *p++ = ' ';
    int y = tm.tm_year + 1900;
    for (int div = 1000; div > 0; div /= 10)
        *p++ = (char)('0' + (y / div) % 10);
    *p++ = ' ';
    int f[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    for (int i = 0; i < 3; i++) {
        *p++ = (char)('0' + f[i] / 10);
        *p++ = (char)('0' + f[i] % 10);
        *p++ = i < 2 ? ':' : ' ';
    }
    memcpy(p, "GMT", 4);
}

/* Parse a non-negative decimal number (with optional fraction) and its suffix. */
static int util_number_unit(const char *s, double *num, const char **unit)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s) && *s != '.')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    *num = v;
    *unit = end;
    return 0;
}

/* True when unit (trailing spaces allowed) equals u, ignoring case. */
static bool util_unit_is(const char *unit, const char *u)
{
    size_t n = strlen(unit);
    while (n > 0 && isspace((unsigned char)unit[n - 1]))
        n--;
    return util_ieq(unit, n, u);
}

int util_parse_duration_ms(const char *s, int64_t *out_ms)
{
    double v;
    const char *unit;
    if (util_number_unit(s, &v, &unit) < 0)
        return -1;
    double mult;
    if (util_unit_is(unit, "") || util_unit_is(unit, "s"))
        mult = 1000;
    else if (util_unit_is(unit, "ms"))
        mult = 1;
    else if (util_unit_is(unit, "m"))
        mult = 60e3;
    else if (util_unit_is(unit, "h"))
        mult = 3600e3;
    else if (util_unit_is(unit, "d"))
        mult = 86400e3;
    else
        return -1;
    double ms = v * mult;
    if (ms > 9.2e15)
        return -1;
    *out_ms = (int64_t)ms;
    return 0;
}

int util_parse_size(const char *s, uint64_t *out)
{
    double v;
    const char *unit;
    if (util_number_unit(s, &v, &unit) < 0)
        return -1;
    double mult;
    if (util_unit_is(unit, "") || util_unit_is(unit, "b"))
        mult = 1;
    else if (util_unit_is(unit, "k") || util_unit_is(unit, "kb"))
        mult = 1024.0;
    else if (util_unit_is(unit, "m") || util_unit_is(unit, "mb"))
        mult = 1024.0 * 1024;
    else if (util_unit_is(unit, "g") || util_unit_is(unit, "gb"))
        mult = 1024.0 * 1024 * 1024;
    else
        return -1;
    double n = v * mult;
    if (n > 1.8e19)
        return -1;
    *out = (uint64_t)n;
    return 0;
}

int util_addr_spec(const char *s, size_t n, size_t *start, size_t *len)
{
    const char *lt = NULL, *gt = NULL;
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && quoted) {
            i++;
            continue;
        }
        if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == '<')
            lt = s + i;
        else if (!quoted && s[i] == '>' && lt)
            gt = s + i;
    }
    size_t b, e;
    if (lt && gt && gt > lt) {
        b = (size_t)(lt - s) + 1;
        e = (size_t)(gt - s);
    } else if (!lt && !gt) {
        b = 0;
        e = n;
    } else {
        return -1;
    }
    while (b < e && isspace((unsigned char)s[b]))
        b++;
    while (e > b && isspace((unsigned char)s[e - 1]))
        e--;
    const char *at = memchr(s + b, '@', e - b);
    if (at == NULL || at == s + b || at == s + e - 1)
        return -1;
    for (size_t i = b; i < e; i++)
        if (isspace((unsigned char)s[i]) || s[i] == '<' || s[i] == '>')
            return -1;
    *start = b;
    *len = e - b;
    return 0;
}
