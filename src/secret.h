/* Secrets for the config: values kept out of the config file, in an environment variable
 * or a file (NAME_FILE, how container platforms mount secrets). A secret is one
 * non-empty line; messages name where a value came from, never the value. */
#ifndef JN_SECRET_H
#define JN_SECRET_H

#include <stddef.h>

#include "buf.h"

#define JN_SECRET_MAX_BYTES 65536

/* The whole regular file at path (at most JN_SECRET_MAX_BYTES, a trailing line break
 * dropped) into *out. via is the variable that named the file, if one did. On failure
 * returns -1 and writes "config: <at>: ..." to err. */
int jn_secret_from_file(const char *at, const char *path, const char *via, char **out, jn_sb *err);
/* The value of the environment variable var or, when it is unset, of the file var_FILE
 * names. Returns 1 with *out, 0 when neither is set (nothing written to err), or -1 with
 * the reason in err. */
int jn_secret_from_env(const char *at, const char *var, char **out, jn_sb *err);
/* Checks a value: 0, or -1 with "config: <at>: <source> is empty" (or holds more than
 * one line) in err. */
int jn_secret_check(const char *at, const char *source, const char *value, size_t len, jn_sb *err);
/* Overwrites a secret before its memory goes back to the allocator. */
void jn_secret_free(char *s);

#endif
