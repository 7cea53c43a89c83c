/* Redis commands written in its protocol (RESP) by hand, for jn_redis_send: hiredis' own
 * formatting goes through its printf-like sds functions for every argument, which cost
 * more than the rest of a de-duplication key's path together. A command is a header
 * ("*<argc>\r\n" and the command name) followed by argc - 1 bulk strings; the _size
 * functions say how many bytes the put functions write. */
#ifndef JN_RESP_H
#define JN_RESP_H

#include <stddef.h>

/* The longest header: argc < 2^31 and a name shorter than 20 bytes. */
#define JN_RESP_HEAD_MAX 48

/* "$<len>\r\n<s>\r\n" */
size_t jn_resp_bulk_size(size_t len);
char *jn_resp_put_bulk(char *p, const char *s, size_t len);
/* "*<argc>\r\n" and name as a bulk string. */
size_t jn_resp_head_size(size_t argc, const char *name);
char *jn_resp_put_head(char *p, size_t argc, const char *name);

#endif
