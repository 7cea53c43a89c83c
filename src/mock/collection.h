/* The records a mock API serves: encoded JSON in id order, an id index, and the whole
 * array serialized once and cached (with its ETag) until the data changes. */
#ifndef JN_COLLECTION_H
#define JN_COLLECTION_H

#include <limits.h>
#include <stddef.h>

#include "buf.h"

/* The largest integer id: Lua's largest integer, which a script sees the id as. */
#define JN_ID_MAX     LLONG_MAX
#define JN_ID_MAX_STR "9223372036854775807"

typedef struct jn_collection jn_collection;

jn_collection *jn_collection_new(void);
void jn_collection_free(jn_collection *c);

/* Inserts (at the end) or replaces (in place) the record with this id. */
void jn_collection_put(jn_collection *c, const char *id, const char *json, size_t len);
/* Returns 0 when removed, -1 when there was no such id. */
int jn_collection_remove(jn_collection *c, const char *id);
/* Returns the record's JSON or NULL; etag (quoted) is set when non-NULL. */
const char *jn_collection_get(const jn_collection *c, const char *id, size_t *len,
                              const char **etag);
size_t jn_collection_count(const jn_collection *c);
/* The id a POST gets: one more than the largest id that is a decimal integer, 1 when there
 * is none. Returns 0, or -1 when the largest is JN_ID_MAX: no larger id exists, and
 * wrapping around would hand out an id that may be taken. */
int jn_collection_next_id(const jn_collection *c, long long *out);

/* Reads an integer id as a path writes it. Each record has one id, so each id has one
 * spelling: the plain decimal of 1 to JN_ID_MAX ("7", never "007", "+7" or " 7"), or one
 * record could be stored under two. Returns 0 with *out set; JN_ID_NOT_PLAIN when s is
 * not written that way; JN_ID_OUT_OF_RANGE when it is (digits, no leading zero) but its
 * value is 0 or above JN_ID_MAX. */
#define JN_ID_NOT_PLAIN    (-1)
#define JN_ID_OUT_OF_RANGE (-2)
int jn_collection_parse_id(const char *s, long long *out);

/* The whole array as one cached body (a new reference) and its quoted ETag. */
jn_rbuf *jn_collection_array(jn_collection *c, const char **etag);
/* A page of the array, built on demand; etag receives a quoted ETag of the page. */
jn_rbuf *jn_collection_slice(const jn_collection *c, size_t offset, size_t limit, char etag[72]);

/* Paged APIs walk the records by id: integer ids by value and before the others, which
 * go by their bytes. A client walking the pages sees each record once while nothing
 * changes, whatever order the records were added in. */

/* Appends the records at positions from.. (at most limit) in id order to out as a JSON
 * array; returns how many. */
size_t jn_collection_page(jn_collection *c, size_t from, size_t limit, jn_sb *out);
/* The position in id order of the first record whose id sorts after id (which need not
 * exist any more): where the page after a cursor starts. */
size_t jn_collection_position_after(jn_collection *c, const char *id);
/* The id at position pos in id order, or NULL past the end. */
const char *jn_collection_id_at(jn_collection *c, size_t pos);

#endif
