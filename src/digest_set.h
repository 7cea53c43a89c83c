/* A set of objects keyed by a 32-byte digest each carries (the pipeline's messages on
 * their way, by content hash). The set keeps a pointer to the object's digest, not a
 * copy: 24 bytes a slot where a string map keeps the key and a value, which matters at
 * tens of thousands of messages in flight. The digest must stay unchanged while its
 * object is in the set. */
#ifndef JN_DIGEST_SET_H
#define JN_DIGEST_SET_H

#include <stddef.h>

#define JN_DIGEST_LEN 32

typedef struct jn_digest_set jn_digest_set;

jn_digest_set *jn_digest_set_new(void);
void jn_digest_set_free(jn_digest_set *s);
/* The object put under digest, or NULL. */
void *jn_digest_set_get(const jn_digest_set *s, const unsigned char *digest);
/* Puts obj under its digest (a pointer into obj, or anything living as long), replacing
 * what was under the same digest. */
void jn_digest_set_put(jn_digest_set *s, const unsigned char *digest, void *obj);
/* Returns 1 when an object was removed. */
int jn_digest_set_del(jn_digest_set *s, const unsigned char *digest);
size_t jn_digest_set_count(const jn_digest_set *s);

#endif
