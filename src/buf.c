/* Byte buffers and the hashing helpers every module shares. */
#include "buf.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) abort(); /* out of memory: nothing sensible is left to do */
    return q;
}

void jn_sb_init(jn_sb *sb) {
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void jn_sb_free(jn_sb *sb) {
    free(sb->data);
    jn_sb_init(sb);
}

void jn_sb_reserve(jn_sb *sb, size_t extra) {
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void jn_sb_puts(jn_sb *sb, const char *s) {
    jn_sb_append(sb, s, strlen(s));
}

size_t jn_fmt_int(char out[JN_INT_CHARS], long long v) {
    char tmp[JN_INT_CHARS], *e = tmp + sizeof tmp, *p = e;
    /* Through unsigned, so LLONG_MIN negates without overflow. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0) *--p = '-';
    size_t n = (size_t)(e - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

void jn_sb_int(jn_sb *sb, long long v) {
    char tmp[JN_INT_CHARS];
    jn_sb_append(sb, tmp, jn_fmt_int(tmp, v));
}

void jn_sb_vprintf(jn_sb *sb, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (n >= 0 && (size_t)n < sizeof tmp) {
        jn_sb_append(sb, tmp, (size_t)n);
    } else if (n >= 0) {
        jn_sb_reserve(sb, (size_t)n);
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, again);
        sb->len += (size_t)n;
    }
    va_end(again);
}

void jn_sb_printf(jn_sb *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jn_sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

/* Bytes a JSON string must escape: controls, '"' and '\\'. */
static const unsigned char must_escape[256] = {
    [0 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

void jn_sb_json_string(jn_sb *sb, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    /* Worst case is 6 bytes per input byte; reserving it once keeps the loop free of
     * bounds checks. Runs of plain bytes are copied in one go. */
    if (sb->len + len * 6 + 3 > sb->cap) jn_sb_reserve(sb, len * 6 + 2);
    char *o = sb->data + sb->len;
    *o++ = '"';
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        if (!must_escape[c]) continue;
        memcpy(o, s + run, i - run);
        o += i - run;
        run = i + 1;
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
        }
    }
    memcpy(o, s + run, len - run);
    o += len - run;
    *o++ = '"';
    sb->len = (size_t)(o - sb->data);
    sb->data[sb->len] = '\0';
}

void jn_sb_visible(jn_sb *sb, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) continue;
        jn_sb_append(sb, s + run, i - run);
        char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        jn_sb_append(sb, esc, sizeof esc);
        run = i + 1;
    }
    jn_sb_append(sb, s + run, len - run);
}

void jn_sb_echo(jn_sb *sb, const char *s, size_t len, size_t max) {
    size_t cut = len;
    if (len > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    jn_sb_visible(sb, s, cut);
    if (cut < len) jn_sb_puts(sb, "...");
}

char *jn_visible(const char *s) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_visible(&sb, s, strlen(s));
    return jn_sb_steal(&sb);
}

char *jn_sb_steal(jn_sb *sb) {
    if (!sb->data) jn_sb_reserve(sb, 0), sb->data[0] = '\0';
    char *p = sb->data;
    jn_sb_init(sb);
    return p;
}

jn_rbuf *jn_rbuf_new(const void *data, size_t len) {
    jn_rbuf *b = xrealloc(NULL, sizeof *b + len + 1);
    b->refs = 1;
    b->len = len;
    if (len) memcpy(b->data, data, len);
    b->data[len] = '\0';
    return b;
}

jn_rbuf *jn_rbuf_from_sb(jn_sb *sb) {
    jn_rbuf *b = jn_rbuf_new(sb->data, sb->len);
    jn_sb_free(sb);
    return b;
}

jn_rbuf *jn_rbuf_ref(jn_rbuf *b) {
    if (b) b->refs++;
    return b;
}

void jn_rbuf_unref(jn_rbuf *b) {
    if (b && --b->refs == 0) free(b);
}

void jn_hex(const unsigned char *in, size_t len, char *out) {
    /* Both digits of each byte from one table: a mark key is 64 digits a message. */
    static const char pairs[513] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (size_t i = 0; i < len; i++)
        memcpy(out + 2 * i, pairs + 2 * in[i], 2);
    out[2 * len] = '\0';
}

void jn_sha256(const void *data, size_t len, unsigned char out[32]) {
    /* EVP_Digest looks the algorithm up and allocates a context on every call, which
     * costs more than hashing a record; one process-wide context (one loop per process)
     * and one fetched algorithm avoid both. */
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    if (!md) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        ctx = EVP_MD_CTX_new();
        if (!md || !ctx) abort();
    }
    unsigned int mdlen = 0;
    if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, data, len) ||
        !EVP_DigestFinal_ex(ctx, out, &mdlen))
        abort();
}

void jn_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    jn_sha256(data, len, md);
    jn_hex(md, 32, out);
}
