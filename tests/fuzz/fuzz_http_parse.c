/* The HTTP request reader (src/http_parse.c) under any bytes.
 *
 * Input: byte 0 is the number of extra reads (0-15), the next that many bytes are the
 * sizes of the first reads, and the rest is the stream, which may pipeline any number of
 * requests; the last read takes what is left. So the fuzzer chooses where TCP splits
 * the stream, the way a client or the network would.
 *
 * Checked:
 * - every delivered request is sane: its method named, a path starting with '/' (or "*"
 *   for OPTIONS), no control bytes or blanks in the target, a body within the limit and
 *   NUL-terminated, kept header values within their buffers and free of CR and LF;
 * - the split does not matter: the requests delivered and the final status are those
 *   of the same stream fed in one read (a reader that answered differently depending on
 *   segmentation would let a client smuggle requests past a proxy). */
#include <http_parser.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "http_parse.h"

/* Small limits, so the 413/414/431 paths are within reach of short inputs. */
#define MAX_BODY   512
#define MAX_URL    256
#define MAX_HEADER 1024

/* Each delivered request, written down as text, so two feedings compare with memcmp. */
typedef struct {
    jn_sb log;
    int requests;
} record;

static void check_text(const char *what, const char *s, size_t len, int blanks_ok) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0', "%s holds byte 0x%02x at %zu", what, c, i);
        if (!blanks_ok) FUZZ_CHECK(c > ' ' && c != 0x7f, "%s holds byte 0x%02x at %zu", what, c, i);
    }
}

static void log_header(jn_sb *log, const char *name, const char *v, size_t cap) {
    if (!v) return;
    size_t len = strlen(v);
    FUZZ_CHECK(len < cap, "%s value of %zu bytes in a buffer of %zu", name, len, cap);
    check_text(name, v, len, 1);
    jn_sb_printf(log, "%s=", name);
    jn_sb_append(log, v, len);
    jn_sb_putc(log, '\n');
}

static void on_request(jn_http_reader *r, const jn_http_request *req) {
    record *rec = r->data;
    jn_sb *log = &rec->log;
    rec->requests++;
    FUZZ_CHECK(req->method_name &&
                   !strcmp(req->method_name, http_method_str((enum http_method)req->method)),
               "method %d named %s", req->method, req->method_name ? req->method_name : "NULL");
    FUZZ_CHECK(req->path && req->path_len > 0 &&
                   (req->path[0] == '/' ||
                    (req->method == HTTP_OPTIONS && req->path_len == 1 && req->path[0] == '*')),
               "path %.*s", (int)req->path_len, req->path ? req->path : "");
    FUZZ_CHECK(req->path_len <= MAX_URL, "path of %zu bytes", req->path_len);
    check_text("path", req->path, req->path_len, 0);
    if (req->query) {
        FUZZ_CHECK(req->query_len <= MAX_URL, "query of %zu bytes", req->query_len);
        check_text("query", req->query, req->query_len, 0);
    }
    FUZZ_CHECK(req->body && req->body_len <= MAX_BODY && req->body[req->body_len] == '\0',
               "body of %zu bytes", req->body_len);
    FUZZ_CHECK(req->keep_alive == 0 || req->keep_alive == 1, "keep_alive %d", req->keep_alive);

    jn_sb_printf(log, "%s ", req->method_name);
    jn_sb_append(log, req->path, req->path_len);
    if (req->query) {
        jn_sb_putc(log, '?');
        jn_sb_append(log, req->query, req->query_len);
    }
    jn_sb_printf(log, " keep_alive=%d body=%zu:", req->keep_alive, req->body_len);
    jn_sb_append(log, req->body, req->body_len);
    jn_sb_putc(log, '\n');
    log_header(log, "if-none-match", req->if_none_match, sizeof r->if_none_match);
    log_header(log, "content-type", req->content_type, sizeof r->content_type);
    log_header(log, "idempotency-key (extra)", req->extra, sizeof r->extra);
    log_header(log, "authorization", req->authorization, sizeof r->authorization);
    log_header(log, "origin", req->origin, sizeof r->origin);
    log_header(log, "host", req->host, sizeof r->host);
}

/* Feeds the stream in reads of the given sizes (the last takes the rest), stopping at
 * the first error as the server does; returns the final status and fills rec. */
static int feed(const uint8_t *stream, size_t len, const uint8_t *sizes, size_t nsizes,
                record *rec) {
    jn_http_reader r;
    jn_sb_init(&rec->log);
    rec->requests = 0;
    jn_http_reader_init(&r, MAX_BODY, MAX_URL, on_request, rec);
    jn_http_reader_keep(&r, "Idempotency-Key"); /* as the analytics receiver asks */
    int status = 0;
    size_t off = 0;
    for (size_t i = 0; i <= nsizes && !status; i++) {
        size_t n = i < nsizes ? sizes[i] : len - off;
        if (n > len - off) n = len - off;
        if (n == 0) continue; /* the server never feeds an empty read (http-parser's EOF) */
        /* Each read in a buffer of its own, exactly its size: a reader that kept a
         * pointer into an earlier read, or read past this one, is caught by ASan. */
        char *buf = malloc(n);
        if (!buf) abort();
        memcpy(buf, stream + off, n);
        status = jn_http_reader_feed(&r, buf, n);
        free(buf);
        off += n;
    }
    if (status) {
        FUZZ_CHECK(r.error_msg && *r.error_msg, "status %d without a message", status);
        FUZZ_CHECK(status >= 400 && status <= 505, "status %d", status);
    }
    jn_sb_printf(&rec->log, "status=%d\n", status);
    jn_http_reader_free(&r);
    return status;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    jn_http_reader_set_max_header(MAX_HEADER);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t nsizes = data[0] & 15;
    if (size < 1 + nsizes) return 0;
    const uint8_t *sizes = data + 1, *stream = data + 1 + nsizes;
    size_t len = size - 1 - nsizes;

    record split, whole;
    feed(stream, len, sizes, nsizes, &split);
    feed(stream, len, NULL, 0, &whole);
    FUZZ_CHECK(split.log.len == whole.log.len &&
                   !memcmp(split.log.data, whole.log.data, whole.log.len),
               "fed in %zu reads:\n%s\nfed whole:\n%s", nsizes + 1, split.log.data, whole.log.data);
    jn_sb_free(&split.log);
    jn_sb_free(&whole.log);
    return 0;
}
