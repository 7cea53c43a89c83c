/* The analytics receiver's batch scanner (analytics.c), declared apart from the
 * receiver's API for the two callers that need it without a server: the unit tests and
 * the fuzz harness (tests/fuzz/fuzz_analytics.c), which feed it any bytes as a body.
 * Internal: nothing outside analytics.c's tests should call it. */
#ifndef JN_ANALYTICS_SCAN_H
#define JN_ANALYTICS_SCAN_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "http_server.h"
#include "json.h"

/* Checks a POSTed body and finds its records: a JSON array of objects, or an object
 * whose (last) "records" member is one. On success *spans (malloc'd, NULL when empty)
 * holds each record's place in body; returns the record count. On failure fills res
 * (400 malformed, 422 wrong shape) and returns -1. */
long jn_analytics_parse_batch(const char *body, size_t len, jn_json_span **spans,
                              jn_http_response *res);

/* The id of the record object at [p, e) (a span jn_analytics_parse_batch gave) as
 * canonical JSON text (what jn_json_encode gives for the decoded value), so 7, 7.0 and "7"
 * vs "\u0037" compare the way a person would expect (a number and a string stay
 * different ids). Most ids are spelled canonically already and are taken as they are;
 * any other is decoded and encoded again. Returns 0, or -1 when the record has no id
 * (absent or null) or one JSON cannot encode (1e999). */
int jn_analytics_read_id(lua_State *L, const char *p, const char *e, jn_sb *out);

#endif
