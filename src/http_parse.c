/* Request reading. Only the headers the server acts on are kept; the rest are parsed
 * and dropped, so a request costs no allocation beyond its URL and body buffers, which
 * are reused across the requests of a connection. */
#include "http_parse.h"

#include <strings.h>
#include <string.h>

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
    r->has_inm = r->has_ct = r->has_idem = r->has_auth = 0;
    r->collecting = 0;
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
    /* A new field name starts after a value; a continuation extends the same name. */
    if (r->collecting >= 0) {
        r->field.len = 0;
        r->collecting = -1;
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

static int on_header_value(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    if (r->collecting == -1) {
        const char *f = r->field.data ? r->field.data : "";
        r->collecting = 0;
        if (!strcasecmp(f, "if-none-match")) {
            r->collecting = 1;
            r->has_inm = 1;
            r->if_none_match[0] = '\0';
        } else if (!strcasecmp(f, "content-type")) {
            r->collecting = 2;
            r->has_ct = 1;
            r->content_type[0] = '\0';
        } else if (!strcasecmp(f, "expect")) {
            r->collecting = 3;
        } else if (!strcasecmp(f, "idempotency-key")) {
            r->collecting = 4;
            r->has_idem = 1;
            r->idempotency_key[0] = '\0';
        } else if (!strcasecmp(f, "authorization")) {
            r->collecting = 5;
            r->has_auth = 1;
            r->authorization[0] = '\0';
        }
    }
    if (r->collecting == 1)
        append_capped(r->if_none_match, sizeof r->if_none_match, at, len);
    else if (r->collecting == 2)
        append_capped(r->content_type, sizeof r->content_type, at, len);
    else if (r->collecting == 4)
        append_capped(r->idempotency_key, sizeof r->idempotency_key, at, len);
    else if (r->collecting == 5)
        append_capped(r->authorization, sizeof r->authorization, at, len);
    else if (r->collecting == 3 && len >= 12 && !strncasecmp(at, "100-continue", 12))
        r->expect_continue = 1;
    return 0;
}

static int on_headers_complete(http_parser *p) {
    jn_http_reader *r = reader_of(p);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->max_body)
        return fail(r, 413, "request body too large");
    if (r->expect_continue && r->on_continue) r->on_continue(r);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    jn_http_reader *r = reader_of(p);
    if (r->body.len + len > r->max_body) return fail(r, 413, "request body too large");
    jn_sb_append(&r->body, at, len);
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
    req.path = url + u.field_data[UF_PATH].off;
    req.path_len = u.field_data[UF_PATH].len;
    if (u.field_set & (1 << UF_QUERY)) {
        req.query = url + u.field_data[UF_QUERY].off;
        req.query_len = u.field_data[UF_QUERY].len;
    }
    req.body = r->body.data;
    req.body_len = r->body.len;
    req.if_none_match = r->has_inm ? r->if_none_match : NULL;
    req.content_type = r->has_ct ? r->content_type : NULL;
    req.idempotency_key = r->has_idem ? r->idempotency_key : NULL;
    req.authorization = r->has_auth ? r->authorization : NULL;
    req.keep_alive = http_should_keep_alive(p);
    r->in_message = 0;
    r->on_request(r, &req);
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
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    jn_sb_init(&r->url);
    jn_sb_init(&r->body);
    jn_sb_init(&r->field);
    r->max_body = max_body;
    r->max_url = max_url;
    r->on_request = on_request;
    r->data = data;
}

void jn_http_reader_free(jn_http_reader *r) {
    jn_sb_free(&r->url);
    jn_sb_free(&r->body);
    jn_sb_free(&r->field);
}

int jn_http_reader_feed(jn_http_reader *r, const char *data, size_t len) {
    if (r->error_status) return r->error_status;
    size_t n = http_parser_execute(&r->parser, &settings, data, len);
    if (r->error_status) return r->error_status;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_HEADER_OVERFLOW) {
        r->error_status = 431;
        r->error_msg = "request headers too large";
    } else if (e == HPE_INVALID_METHOD) {
        r->error_status = 501;
        r->error_msg = "unknown HTTP method";
    } else if (e != HPE_OK || n != len) {
        r->error_status = 400;
        r->error_msg = "malformed HTTP request";
    } else if (r->parser.upgrade) {
        r->error_status = 400;
        r->error_msg = "protocol upgrades are not supported";
    }
    return r->error_status;
}

void jn_http_reader_set_max_header(unsigned bytes) {
    http_parser_set_max_header_size(bytes);
}
