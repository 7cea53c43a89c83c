/* Byte buffers: a growable string builder (jn_sb) and an immutable, reference-counted
 * buffer (jn_rbuf) that lets a cached response body outlive the cache entry while a
 * socket write still points at it. */
#ifndef JN_BUF_H
#define JN_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h" /* jn_errorf: the error messages jn_sb_steal also hands over */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} jn_sb;

void jn_sb_init(jn_sb *sb);
void jn_sb_free(jn_sb *sb);
void jn_sb_reserve(jn_sb *sb, size_t extra);
/* Inline: the join and the encoders append a dozen pieces a record. */
static inline void jn_sb_append(jn_sb *sb, const void *data, size_t len) {
    if (sb->len + len + 1 > sb->cap) jn_sb_reserve(sb, len);
    memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}
void jn_sb_puts(jn_sb *sb, const char *s);
/* Inline: encoders call it for every comma and brace. */
static inline void jn_sb_putc(jn_sb *sb, char c) {
    if (sb->len + 2 > sb->cap) jn_sb_reserve(sb, 1);
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}
/* v in decimal, as %lld would write it, without going through printf: into out
 * (NUL-terminated; returns the length), or appended to sb. */
#define JN_INT_CHARS 24
size_t jn_fmt_int(char out[JN_INT_CHARS], long long v);
void jn_sb_int(jn_sb *sb, long long v);
void jn_sb_printf(jn_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jn_sb_vprintf(jn_sb *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a quoted JSON string, escaping what RFC 8259 requires. */
void jn_sb_json_string(jn_sb *sb, const char *s, size_t len);
/* Appends s for a message a person reads: a control character or DEL as \xNN, every
 * other byte as it is. A name holding one (a script path with \x01 in it) would
 * otherwise print invisibly, or break the line it is printed in. */
void jn_sb_visible(jn_sb *sb, const char *s, size_t len);
/* Appends s as jn_sb_visible does, but at most max of its bytes, cut on a character
 * boundary (a UTF-8 sequence cut in two would make a JSON answer invalid), then "..."
 * when it was cut: how a message quotes what a client sent. */
void jn_sb_echo(jn_sb *sb, const char *s, size_t len, size_t max);
/* s as jn_sb_visible writes it, in a new string (the caller frees it). */
char *jn_visible(const char *s);
/* Hands the bytes to the caller (NUL-terminated) and leaves sb empty. */
char *jn_sb_steal(jn_sb *sb);

typedef struct {
    uint32_t refs;
    size_t len;
    char data[];
} jn_rbuf;

jn_rbuf *jn_rbuf_new(const void *data, size_t len);
jn_rbuf *jn_rbuf_from_sb(jn_sb *sb);
jn_rbuf *jn_rbuf_ref(jn_rbuf *b);
void jn_rbuf_unref(jn_rbuf *b);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void jn_hex(const unsigned char *in, size_t len, char *out);
/* SHA-256 of data, raw. */
void jn_sha256(const void *data, size_t len, unsigned char out[32]);
/* SHA-256 of data as 64 hex chars plus NUL. */
void jn_sha256_hex(const void *data, size_t len, char out[65]);

#endif
