#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXT_(x) #x
#define TEXT(x)  TEXT_(x)

void jn_secret_free(char *s) {
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* The whole of a regular file of at most JN_SECRET_MAX_BYTES as a new string, its length
 * in *len; NULL with *why saying why not. A FIFO or a device could block or never end,
 * and start-up must not hang on a config. read(2), not stdio, so no buffer of the
 * library's keeps a copy. */
static char *read_small_file(const char *path, size_t *len, const char **why) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *why = strerror(errno);
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "it is not a regular file";
        close(fd);
        return NULL;
    }
    char *buf = calloc(1, JN_SECRET_MAX_BYTES + 2);
    if (!buf) abort();
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf + got, JN_SECRET_MAX_BYTES + 1 - got)) > 0 &&
           got + (size_t)n <= JN_SECRET_MAX_BYTES)
        got += (size_t)n;
    if (n < 0)
        *why = strerror(errno);
    else if (n > 0) /* the loop stopped past the limit */
        *why = "it is larger than " TEXT(JN_SECRET_MAX_BYTES) " bytes; it should hold the value "
                                                              "alone";
    else
        *why = NULL;
    close(fd);
    if (*why) {
        explicit_bzero(buf, JN_SECRET_MAX_BYTES + 2);
        free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

/* Secrets from files and from `$(cat file)` end with a line break nobody means as part
 * of the value. */
static void strip_line_breaks(char *s, size_t *len) {
    while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
        s[--*len] = '\0';
}

/* A line break would, in a header, start a header of its own. */
int jn_secret_check(const char *at, const char *source, const char *value, size_t len, jn_sb *err) {
    const char *problem = NULL;
    if (!len)
        problem = "is empty";
    else if (memchr(value, '\n', len) || memchr(value, '\r', len) || memchr(value, '\0', len))
        problem = "holds more than one line (or a NUL byte)";
    if (!problem) return 0;
    jn_sb_printf(err, "config: %s: %s %s; a secret is one non-empty line", at, source, problem);
    return -1;
}

int jn_secret_from_file(const char *at, const char *path, const char *via, char **out, jn_sb *err) {
    char source[600];
    snprintf(source, sizeof source, "the file %s%s%s", path, via ? " named by " : "",
             via ? via : "");
    size_t len;
    const char *why;
    char *v = read_small_file(path, &len, &why);
    if (!v) {
        jn_sb_printf(err, "config: %s: cannot read %s (%s)", at, source, why);
        return -1;
    }
    strip_line_breaks(v, &len);
    if (jn_secret_check(at, source, v, len, err) != 0) {
        jn_secret_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int jn_secret_from_env(const char *at, const char *var, char **out, jn_sb *err) {
    char file_var[256], source[300];
    snprintf(file_var, sizeof file_var, "%s_FILE", var);
    const char *v = getenv(var);
    if (!v && getenv(file_var))
        return jn_secret_from_file(at, getenv(file_var), file_var, out, err) == 0 ? 1 : -1;
    if (!v) return 0;
    snprintf(source, sizeof source, "the environment variable %s", var);
    size_t len = strlen(v);
    char *copy = strdup(v);
    if (!copy) abort();
    strip_line_breaks(copy, &len);
    if (jn_secret_check(at, source, copy, len, err) != 0) {
        jn_secret_free(copy);
        return -1;
    }
    *out = copy;
    return 1;
}
