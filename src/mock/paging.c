/* Paged answers: query parsing, cursors and the Link header (see paging.h). */
#include "paging.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "router.h"

/* Nine digits: a billion records is past any mock API, and the products below stay far
 * from overflowing. */
#define MAX_DIGITS 9
/* How much of a bad value a message repeats. */
#define ECHO_MAX 32
/* Bytes of SHA-256 a cursor carries as its check. */
#define CHECK_BYTES 4

typedef enum { NUM_ABSENT, NUM_OK, NUM_BAD } num_result;

/* name's value in the query as a whole number of at most MAX_DIGITS digits, at least min.
 * On NUM_BAD, err says what was wrong with which parameter. */
static num_result query_number(const char *query, size_t len, const char *name, size_t min,
                               const char *rule, size_t *out, char *err, size_t errlen) {
    size_t vl;
    const char *v = jn_query_get(query, len, name, &vl);
    if (!v) return NUM_ABSENT;
    size_t x = 0, i = 0;
    while (i < vl && i < MAX_DIGITS && v[i] >= '0' && v[i] <= '9')
        x = x * 10 + (size_t)(v[i++] - '0');
    if (vl > 0 && i == vl) {
        if (x >= min) {
            *out = x;
            return NUM_OK;
        }
    }
    snprintf(err, errlen, "%s must be %s, got \"%.*s%s\"", name, rule,
             (int)(vl < ECHO_MAX ? vl : ECHO_MAX), v, vl > ECHO_MAX ? "..." : "");
    return NUM_BAD;
}

/* The page's size: limit (or per_page) when given, cut to the largest; else the default. */
static int read_limit(const char *query, size_t len, const char *name, size_t page_size,
                      size_t max_page_size, size_t *out, char *err, size_t errlen) {
    num_result r =
        query_number(query, len, name, 1, "a whole number of 1 or more", out, err, errlen);
    if (r == NUM_BAD) return -1;
    if (r == NUM_ABSENT) *out = page_size;
    if (*out > max_page_size) *out = max_page_size;
    return 0;
}

int jn_paging_parse(jn_paging_style style, size_t page_size, size_t max_page_size,
                    const char *query, size_t len, jn_page_query *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    switch (style) {
    case JN_PAGING_OFFSET:
        if (query_number(query, len, "offset", 0, "a whole number of 0 or more", &out->offset, err,
                         errlen) == NUM_BAD)
            return -1;
        return read_limit(query, len, "limit", page_size, max_page_size, &out->limit, err, errlen);
    case JN_PAGING_LINK:
        out->page = 1;
        if (query_number(query, len, "page", 1, "a whole number of 1 or more (pages count from 1)",
                         &out->page, err, errlen) == NUM_BAD ||
            read_limit(query, len, "per_page", page_size, max_page_size, &out->limit, err,
                       errlen) != 0)
            return -1;
        out->offset = (out->page - 1) * out->limit;
        return 0;
    case JN_PAGING_CURSOR: {
        if (read_limit(query, len, "limit", page_size, max_page_size, &out->limit, err, errlen) !=
            0)
            return -1;
        size_t cl;
        const char *c = jn_query_get(query, len, "cursor", &cl);
        if (!c) return 0;
        if (jn_paging_cursor_decode(c, cl, out->after_id, sizeof out->after_id) != 0) {
            snprintf(err, errlen,
                     "cursor \"%.*s%s\" is not one this API gave out; use the next_cursor of "
                     "the page before, or no cursor for the first page",
                     (int)(cl < ECHO_MAX ? cl : ECHO_MAX), c, cl > ECHO_MAX ? "..." : "");
            return -1;
        }
        out->after = 1;
        return 0;
    }
    case JN_PAGING_NONE:
        break;
    }
    snprintf(err, errlen, "this API does not page its answers");
    return -1;
}

static void cursor_check(const char *id, size_t len, unsigned char out[CHECK_BYTES]) {
    unsigned char digest[32];
    jn_sha256(id, len, digest);
    memcpy(out, digest, CHECK_BYTES);
}

void jn_paging_cursor_encode(const char *id, char out[JN_CURSOR_MAX]) {
    size_t len = strlen(id);
    if (len > 255) len = 255;
    unsigned char check[CHECK_BYTES];
    cursor_check(id, len, check);
    jn_hex(check, CHECK_BYTES, out);
    jn_hex((const unsigned char *)id, len, out + 2 * CHECK_BYTES);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int jn_paging_cursor_decode(const char *cursor, size_t len, char *id, size_t cap) {
    if (len % 2 || len <= 2 * CHECK_BYTES || (len - 2 * CHECK_BYTES) / 2 >= cap) return -1;
    unsigned char bytes[CHECK_BYTES + 256];
    size_t n = len / 2;
    if (n > sizeof bytes) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(cursor[2 * i]), lo = hex_digit(cursor[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        bytes[i] = (unsigned char)(hi * 16 + lo);
    }
    size_t idlen = n - CHECK_BYTES;
    if (memchr(bytes + CHECK_BYTES, '\0', idlen)) return -1;
    unsigned char check[CHECK_BYTES];
    cursor_check((const char *)bytes + CHECK_BYTES, idlen, check);
    if (memcmp(check, bytes, CHECK_BYTES)) return -1;
    memcpy(id, bytes + CHECK_BYTES, idlen);
    id[idlen] = '\0';
    return 0;
}

int jn_paging_host_ok(const char *host) {
    size_t len = strlen(host);
    return len > 0 && len <= 200 &&
           strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") ==
               len;
}

int jn_paging_link(char *out, size_t cap, const char *host, const char *resource, size_t page,
                   size_t per_page) {
    int n = snprintf(out, cap, "Link: <http://%s/%s?page=%zu&per_page=%zu>; rel=\"next\"\r\n", host,
                     resource, page + 1, per_page);
    return n >= 0 && (size_t)n < cap ? n : -1;
}
