/* The error-message helper of error.h, on the string builder of buf.h. */
#include "error.h"

#include "buf.h"

char *jn_verrorf(const char *fmt, va_list ap) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_vprintf(&sb, fmt, ap);
    return jn_sb_steal(&sb);
}

char *jn_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = jn_verrorf(fmt, ap);
    va_end(ap);
    return s;
}
