/* One page of a source's response, turned into records and the next page's URL; the
 * producer (producer.c) maps and publishes the records and fetches the next page.
 *
 * A source whose map script has neither records() nor next() answers with one JSON array:
 * it is checked whole and cut into spans, each record decoded only when it is mapped, so
 * a big response never lives as Lua tables at once (the fast path). Otherwise the body is
 * decoded once and handed to the hooks: records(body, ctx) returns the array inside an
 * envelope (without it the body must be the array), next(response, ctx) returns the next
 * page's URL or nil after the last page. */
#ifndef JN_PAGE_H
#define JN_PAGE_H

#include <lua.h>
#include <stddef.h>

#include "json.h"
#include "script.h"

typedef struct {
    /* in: the source and its script */
    jn_script *script;
    int has_records, has_next; /* the hooks the script's current version defines */
    const char *source, *topic;
    const char *base_url; /* the source's url: every next URL keeps its scheme, host, port */
    /* in: the response */
    int page; /* 1 for the first page of a cycle */
    const char *url;
    long status;
    const char *headers; /* jn_http_result's "name\0value\0" fields */
    size_t headers_len;
    const char *body;
    size_t body_len;
    /* out */
    jn_json_span *spans; /* the fast path: where each record is in body (to free) */
    int records_ref;     /* the hooks' path: a registry reference to the records' array */
    size_t nrecords;
    char *next_url; /* malloc'd; NULL after the last page */
} jn_page;

/* Reads the page. Returns NULL, or the reason it is unusable (a metric label:
 * "malformed_json", "not_array", "records_error", "next_error", "bad_next_url") with
 * detail (cap bytes) saying what went wrong for a person; then nothing is left to
 * release, and *transient says whether fetching the page again may help (a body cut
 * short). Leaves L's stack as it was. */
const char *jn_page_read(lua_State *L, jn_page *pg, int *transient, char *detail, size_t cap);
/* Pushes a hook's ctx: {source, topic, page}, what map() gets too. */
void jn_page_push_ctx(lua_State *L, const char *source, const char *topic, int page);
/* Frees the spans, the array's reference and the next URL; pg can be read again. */
void jn_page_release(lua_State *L, jn_page *pg);

#endif
