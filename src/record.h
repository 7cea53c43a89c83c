/* A Kafka record as a map script returns it: {key = ..., value = ..., headers = {...}}.
 * Reading checks every field, so a script's mistake is reported, never published. */
#ifndef JN_RECORD_H
#define JN_RECORD_H

#include <lua.h>

#include "buf.h"

#define JN_RECORD_MAX_HEADERS 16

typedef struct {
    jn_sb key;
    jn_sb value; /* a string value as is; a table as canonical JSON (sorted keys) */
    /* name, value, name, value, ..., NULL; the strings belong to the Lua table read,
     * valid while it stays on the stack */
    const char *headers[2 * JN_RECORD_MAX_HEADERS + 1];
    int nheaders; /* number of entries in headers (twice the number of headers) */
} jn_record;

void jn_record_init(jn_record *r);
void jn_record_free(jn_record *r);
/* Reads the table at the top of the stack into r (reusing its buffers). Returns NULL
 * when the record is usable, else a message saying what is wrong. The stack is left as
 * it was. */
const char *jn_record_read(lua_State *L, jn_record *r);

#endif
