/* Request reading. Only the headers the server acts on are kept; the rest are parsed
 * and dropped, so a request costs no allocation beyond its URL and body buffers, which
 * are reused across the requests of a connection. */
#include "http_parse.h"

#include <stdint.h>
#include <strings.h>
#include <string.h>

/* What the reader is in the middle of (jn_http_reader's collecting): a field name, or
 * the value of a header that is kept (HTTP's, and the caller's extra) or not (H_NONE). */
enum { H_NAME = -1, H_NONE, H_INM, H_CT, H_EXPECT, H_AUTH, H_ORIGIN, H_HOST, H_TE, H_EXTRA };

static jn_http_reader *reader_of(http_parser *p) {
    return p->data;
}

static int fail(jn_http_reader *r, int status, const char *msg) {
    r->error_status = status;
    r->error_msg = msg;
    return -1;
}

static int on_message_begin(http_parser *p) {
    jn_http_reader *r = reader_of(p);
    r->url.len = 0;
    r->body.len = 0;
    r->has_inm = r->has_ct = r->has_auth = r->has_origin = r->has_host = r->has_extra = 0;
    r->nhost = r->has_te = 0;
    r->crlf_left = 0;
    r->collecting = H_NONE;
    r->expect_continue = 0;
    r->in_message = 1;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    if (r->url.len + len > r->max_url)
        return fail(r, 414, "request target too long; keep the URL under 8 KiB");
    jn_sb_append(&r->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    /* Trailer fields (after a chunked body) are refused: they would be read as headers,
     * after the checks made on the head, and outside the head's size limit. Clients of
     * this server never need them. */
    if (r->in_body)
        return fail(r, 400, "trailer fields after a chunked body are not accepted; send headers");
    /* RFC 9112 §5.1: no whitespace between a field name and its colon (a proxy and this
     * server could otherwise read different headers). http-parser lets it through. */
    if (memchr(at, ' ', len) || memchr(at, '\t', len))
        return fail(r, 400, "whitespace between a header field name and its colon");
    /* A new field name starts after a value; a continuation extends the same name. */
    if (r->collecting != H_NAME) {
        r->field.len = 0;
        r->collecting = H_NAME;
    }
    /* Only short names are acted on; a longer one is replaced by a mark that matches none,
     * so the name read before it cannot show through. */
    if (r->field.len + len < 64)
        jn_sb_append(&r->field, at, len);
    else
        r->field.len = 0, jn_sb_putc(&r->field, '\x01');
    return 0;
}

static void append_capped(char *dst, size_t cap, const char *at, size_t len) {
    size_t cur = strlen(dst);
    if (cur + len >= cap) len = cap - 1 - cur;
    memcpy(dst + cur, at, len);
    dst[cur + len] = '\0';
}

/* Where a kept header's value goes: its buffer, and the flag saying it was present. */
static char *slot(jn_http_reader *r, int h, size_t *cap, int **has) {
    switch (h) {
    case H_INM:
        *cap = sizeof r->if_none_match, *has = &r->has_inm;
        return r->if_none_match;
    case H_CT:
        *cap = sizeof r->content_type, *has = &r->has_ct;
        return r->content_type;
    case H_AUTH:
        *cap = sizeof r->authorization, *has = &r->has_auth;
        return r->authorization;
    case H_ORIGIN:
        *cap = sizeof r->origin, *has = &r->has_origin;
        return r->origin;
    case H_HOST:
        *cap = sizeof r->host, *has = &r->has_host;
        return r->host;
    case H_TE:
        *cap = sizeof r->te, *has = &r->has_te;
        return r->te;
    case H_EXTRA:
        *cap = sizeof r->extra, *has = &r->has_extra;
        return r->extra;
    default:
        return NULL;
    }
}

static int header_of(const jn_http_reader *r, const char *f) {
    static const struct {
        const char *name;
        int h;
    } kept[] = {{"if-none-match", H_INM},   {"content-type", H_CT}, {"expect", H_EXPECT},
                {"authorization", H_AUTH},  {"origin", H_ORIGIN},   {"host", H_HOST},
                {"transfer-encoding", H_TE}};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (!strcasecmp(f, kept[i].name)) return kept[i].h;
    if (r->extra_name && !strcasecmp(f, r->extra_name)) return H_EXTRA;
    return H_NONE;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    size_t cap;
    int *has;
    /* RFC 9110 §5.5: a value with NUL is invalid. http-parser passes it on, and a kept
     * value (a C string) would end there, differently as reads split it. */
    if (memchr(at, '\0', len)) return fail(r, 400, "a NUL byte in a header value");
    if (r->collecting == H_NAME) {
        r->collecting = header_of(r, r->field.data ? r->field.data : "");
        char *buf = slot(r, r->collecting, &cap, &has);
        if (r->collecting == H_HOST) r->nhost++;
        if (buf && r->collecting == H_TE && *has) {
            append_capped(buf, cap, ",", 1); /* a second field adds codings to the list */
        } else if (buf) {
            *has = 1;
            buf[0] = '\0';
        }
    }
    char *buf = slot(r, r->collecting, &cap, &has);
    if (buf)
        append_capped(buf, cap, at, len);
    else if (r->collecting == H_EXPECT && len >= 12 && !strncasecmp(at, "100-continue", 12))
        r->expect_continue = 1;
    return 0;
}

/* Whether a Transfer-Encoding value is exactly "chunked" (case-insensitive, with
 * optional whitespace): the only coding this server decodes. */
static int only_chunked(const char *v) {
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "chunked", 7) != 0) return 0;
    v += 7;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0';
}

static int on_headers_complete(http_parser *p) {
    jn_http_reader *r = reader_of(p);
    /* RFC 9112 §3.2: no whitespace or control bytes in a target. http-parser, built
     * without its strict mode, lets tabs and form feeds through; a proxy ending the target
     * at one would route another request than this server. Checked on the whole target
     * (not in on_url), so the answer does not depend on where reads split it. */
    for (size_t i = 0; i < r->url.len; i++)
        if ((unsigned char)r->url.data[i] <= ' ' || r->url.data[i] == 0x7f)
            return fail(r, 400, "whitespace or a control byte in the request target");
    if (p->http_major != 1)
        return fail(r, 505, "HTTP version not supported; send HTTP/1.1 or HTTP/1.0");
    int v11 = p->http_minor >= 1;
    /* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; none is allowed twice */
    if ((v11 && r->nhost != 1) || r->nhost > 1)
        return fail(r, 400, "an HTTP/1.1 request needs exactly one Host header");
    if (r->has_te && !v11)
        return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)");
    if (r->has_te && !only_chunked(r->te))
        return fail(r, 501, "unsupported transfer coding: only chunked is accepted");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->max_body)
        return fail(r, 413, "request body too large");
    if (r->expect_continue && r->on_continue) r->on_continue(r);
    r->in_body = 1;
    return 0;
}

/* Checks the CRLF that must follow a chunk's data against the bytes from `from` on (up
 * to the end of what was fed); what is not fed yet is checked by the next feed.
 * http-parser, built without its strict mode, takes any two bytes there. */
static int check_crlf(jn_http_reader *r, const char *from) {
    while (r->crlf_left && from < r->feed_end) {
        char want = r->crlf_left == 2 ? '\r' : '\n';
        if (*from++ != want) return fail(r, 400, "chunk data not followed by CRLF");
        r->crlf_left--;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    if (r->body.len + len > r->max_body) return fail(r, 413, "request body too large");
    jn_sb_append(&r->body, at, len);
    if ((p->flags & F_CHUNKED) && p->content_length == 0) {
        r->crlf_left = 2;
        if (check_crlf(r, at + len) != 0) return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p) {
    jn_http_reader *r = reader_of(p);
    jn_sb_putc(&r->url, '\0'); /* make sure data is non-NULL */
    r->url.len--;
    jn_sb_putc(&r->body, '\0');
    r->body.len--;

    jn_http_request req = {0};
    req.method = p->method;
    req.method_name = http_method_str(p->method);
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = r->url.data;
    if (http_parser_parse_url(url, r->url.len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
        return fail(r, 400, "malformed request target");
    if (u.field_set & (1 << UF_FRAGMENT))
        return fail(r, 400, "a request target has no #fragment (RFC 9112 §3.2)");
    req.path = url + u.field_data[UF_PATH].off;
    req.path_len = u.field_data[UF_PATH].len;
    /* RFC 9112 §3.2: a path starts with '/', but for the asterisk-form, "*" alone and in
     * OPTIONS alone; http-parser takes anything from a '*' on as a path ("GET *a"). */
    if (req.path[0] != '/' && !(p->method == HTTP_OPTIONS && r->url.len == 1))
        return fail(r, 400, "malformed request target");
    if (u.field_set & (1 << UF_QUERY)) {
        req.query = url + u.field_data[UF_QUERY].off;
        req.query_len = u.field_data[UF_QUERY].len;
    }
    req.body = r->body.data;
    req.body_len = r->body.len;
    req.if_none_match = r->has_inm ? r->if_none_match : NULL;
    req.content_type = r->has_ct ? r->content_type : NULL;
    req.authorization = r->has_auth ? r->authorization : NULL;
    req.origin = r->has_origin ? r->origin : NULL;
    req.host = r->has_host ? r->host : NULL;
    req.extra = r->has_extra ? r->extra : NULL;
    req.keep_alive = http_should_keep_alive(p);
    r->in_message = r->in_body = 0;
    r->on_request(r, &req);
    http_parser_pause(p, 1); /* the next head is gathered whole first (jn_http_reader_feed) */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void jn_http_reader_init(jn_http_reader *r, size_t max_body, size_t max_url,
                         jn_http_request_cb on_request, void *data) {
    memset(r, 0, sizeof *r);
    http_parser_set_max_header_size(UINT32_MAX); /* see jn_http_reader_set_max_header */
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    jn_sb_init(&r->url);
    jn_sb_init(&r->body);
    jn_sb_init(&r->field);
    jn_sb_init(&r->head);
    jn_sb_init(&r->spare[0]);
    jn_sb_init(&r->spare[1]);
    r->max_body = max_body;
    r->max_url = max_url;
    r->on_request = on_request;
    r->data = data;
}

void jn_http_reader_keep(jn_http_reader *r, const char *name) {
    r->extra_name = name;
}

void jn_http_reader_free(jn_http_reader *r) {
    jn_sb_free(&r->url);
    jn_sb_free(&r->body);
    jn_sb_free(&r->field);
    jn_sb_free(&r->head);
    jn_sb_free(&r->spare[0]);
    jn_sb_free(&r->spare[1]);
}

/* Runs http-parser over one piece and maps its verdict to a status; returns the bytes it
 * took. It stops at the end of each message (on_message_complete pauses it), so a
 * pipelined request's head is never read from a body's read. */
static size_t execute(jn_http_reader *r, const char *data, size_t len) {
    r->feed_end = data + len;
    if (r->crlf_left && check_crlf(r, data) != 0) return 0;
    size_t n = http_parser_execute(&r->parser, &settings, data, len);
    if (r->error_status) return n;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&r->parser, 0);
        e = HPE_OK;
        if (r->parser.upgrade) fail(r, 400, "protocol upgrades are not supported");
        return n;
    }
    if (e == HPE_HEADER_OVERFLOW)
        fail(r, 431, "request headers too large");
    else if (e == HPE_INVALID_METHOD)
        fail(r, 501, "unknown HTTP method");
    else if (e != HPE_OK || n != len)
        fail(r, 400, "malformed HTTP request");
    else if (r->parser.upgrade)
        fail(r, 400, "protocol upgrades are not supported");
    return n;
}

/* The largest head gathered (jn_http_reader_set_max_header). */
static size_t max_head = 80 * 1024;

/* Finds the blank line ending a head (LF LF or LF CR LF, as http-parser reads them) in
 * data, carrying r->scan across reads. Returns the length up to and including it, or 0. */
static size_t head_end(jn_http_reader *r, const char *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n' && r->scan) return r->scan = 0, i + 1;
        r->scan = c == '\n' ? 1 : (c == '\r' && r->scan == 1) ? 2 : 0;
    }
    return 0;
}

int jn_http_reader_feed(jn_http_reader *r, const char *data, size_t len) {
    int which = 0;
    while (len && !r->error_status) {
        if (r->in_body) {
            size_t n = execute(r, data, len);
            data += n, len -= n;
            continue;
        }
        /* A head goes to http-parser whole: its checks (the target's length, a bad byte,
         * the head's size) then see the same bytes in one piece however reads split
         * them, and answer alike. The size limit is on the head gathered. */
        size_t room = r->head.len < max_head ? max_head - r->head.len : 0;
        size_t look = len < room ? len : room;
        size_t n = head_end(r, data, look);
        if (!r->in_message)
            for (size_t i = 0; i < (n ? n : look); i++)
                if (data[i] != '\r' && data[i] != '\n') r->in_message = 1;
        if (!n && len < room) {
            jn_sb_append(&r->head, data, len);
            break;
        }
        if (!n) {
            /* No blank line within the limit: http-parser reads the head's first bytes up
             * to the limit, in one piece, so a target too long (414) or a bad byte (400)
             * in them is named the same way whatever the reads; else it is 431. */
            jn_sb_append(&r->head, data, room);
            execute(r, r->head.data, r->head.len);
            if (!r->error_status) fail(r, 431, "request headers too large");
            break;
        }
        jn_sb_append(&r->head, data, n);
        data += n, len -= n;
        size_t took = execute(r, r->head.data, r->head.len);
        if (r->error_status) break;
        if (took < r->head.len) {
            /* http-parser ended the message before the blank line found here (a bare CR
             * ends a line for it): what it left starts the next head. Rare, so copied. */
            jn_sb *rest = &r->spare[which];
            which ^= 1;
            rest->len = 0;
            jn_sb_append(rest, r->head.data + took, r->head.len - took);
            jn_sb_append(rest, data, len);
            data = rest->data, len = rest->len;
        }
        r->head.len = 0;
        r->scan = 0;
    }
    return r->error_status;
}

void jn_http_reader_set_max_header(unsigned bytes) {
    max_head = bytes;
    /* The reader's limit is the only one: http-parser counts header bytes in whatever
     * pieces it is given, and carries a trailer's count into the next message, so its
     * verdict would depend on the reads. */
    http_parser_set_max_header_size(UINT32_MAX);
}
