#include "resp.h"

#include <string.h>

static size_t digits(size_t v) {
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static char *put_uint(char *p, size_t v) {
    char *end = p + digits(v);
    char *q = end;
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

size_t jn_resp_bulk_size(size_t len) {
    return 1 + digits(len) + 2 + len + 2;
}

char *jn_resp_put_bulk(char *p, const char *s, size_t len) {
    *p++ = '$';
    p = put_uint(p, len);
    memcpy(p, "\r\n", 2);
    memcpy(p + 2, s, len);
    memcpy(p + 2 + len, "\r\n", 2);
    return p + 4 + len;
}

size_t jn_resp_head_size(size_t argc, const char *name) {
    return 1 + digits(argc) + 2 + jn_resp_bulk_size(strlen(name));
}

char *jn_resp_put_head(char *p, size_t argc, const char *name) {
    *p++ = '*';
    p = put_uint(p, argc);
    memcpy(p, "\r\n", 2);
    return jn_resp_put_bulk(p + 2, name, strlen(name));
}
