/* The paged answers of the mock APIs, bytes in and bytes out: the query of a paged GET
 * read strictly, the opaque cursors, and the Link header. Knows no collection and no
 * loop, so it is tested by calling it. The contract, which the producer's paging helpers
 * implement the client side of:
 *   offset  GET /r?offset=O&limit=L   records O..O+L-1, a bare array ([] past the end)
 *   cursor  GET /r?cursor=C&limit=L   {"data":[...],"next_cursor":"<C'>"|null}; no cursor:
 *                                     the first page; null: the last page
 *   link    GET /r?page=N&per_page=L  a bare array and, while pages follow,
 *                                     Link: <http://host/r?page=N+1&per_page=L>; rel="next"
 * A limit left out is the page size; one above the largest page size is cut to it. */
#ifndef JN_PAGING_H
#define JN_PAGING_H

#include <stddef.h>

#include "config.h"

/* Large enough for any cursor: a check and an id of 255 bytes, in hex. */
#define JN_CURSOR_MAX 520

/* What a paged GET asks for. */
typedef struct {
    size_t offset; /* offset and link: the position of the first record, in id order */
    size_t limit;  /* records at most on the page */
    size_t page;   /* link: the page's number, from 1 */
    int after;     /* cursor: a cursor was given, and after_id is the last id it covered */
    char after_id[256];
} jn_page_query;

/* Reads the query (without '?') of a GET to an API paging with style. 0, or -1 with a
 * message for a 400 in err naming the parameter and the value. Other parameters are
 * ignored, as an API ignores what it does not know. */
int jn_paging_parse(jn_paging_style style, size_t page_size, size_t max_page_size,
                    const char *query, size_t len, jn_page_query *out, char *err, size_t errlen);
/* The cursor that asks for the records after id: a check and the id, in hex, so a cursor
 * that was not given out, or was cut or altered, is told apart. out holds JN_CURSOR_MAX. */
void jn_paging_cursor_encode(const char *id, char out[JN_CURSOR_MAX]);
/* The id a cursor covers up to, into id (cap bytes). -1 when it is not one of ours. */
int jn_paging_cursor_decode(const char *cursor, size_t len, char *id, size_t cap);
/* Whether a Host header can go into a URL as it is: a name or address, and a port. */
int jn_paging_host_ok(const char *host);
/* Writes the Link header line (with its \r\n) for the page after `page`. Returns its
 * length, or -1 when it does not fit in cap. */
int jn_paging_link(char *out, size_t cap, const char *host, const char *resource, size_t page,
                   size_t per_page);

#endif
