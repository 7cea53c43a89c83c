/* A string-keyed hash map holding a fixed-size value per key (the producer keeps a
 * content hash per record id). Keys are copied; values are read through the pointer get
 * returns, which stays valid until the next set or del. */
#ifndef JN_STRMAP_H
#define JN_STRMAP_H

#include <stddef.h>

#define JN_STRMAP_VALUE 32

typedef struct jn_strmap jn_strmap;

jn_strmap *jn_strmap_new(void);
void jn_strmap_free(jn_strmap *m);
/* Returns the value stored under key, or NULL. */
const unsigned char *jn_strmap_get(const jn_strmap *m, const char *key, size_t len);
void jn_strmap_set(jn_strmap *m, const char *key, size_t len,
                   const unsigned char value[JN_STRMAP_VALUE]);
/* Returns 1 when a key was removed. */
int jn_strmap_del(jn_strmap *m, const char *key, size_t len);
size_t jn_strmap_count(const jn_strmap *m);
void jn_strmap_clear(jn_strmap *m);

#endif
