/* Leveled logging to stderr, as text or JSON lines.
 * Every line names the component that wrote it so a person can grep one role. */
#ifndef JN_LOG_H
#define JN_LOG_H

#include <stdarg.h>

typedef enum { JN_LOG_DEBUG, JN_LOG_INFO, JN_LOG_WARN, JN_LOG_ERROR } jn_log_level;
typedef enum { JN_LOG_TEXT, JN_LOG_JSON } jn_log_format;

void jn_log_setup(jn_log_level level, jn_log_format format);
int jn_log_enabled(jn_log_level level);
/* Returns 0 and sets *out when name is debug|info|warn|error. */
int jn_log_level_parse(const char *name, jn_log_level *out);
const char *jn_log_level_name(jn_log_level level);

void jn_log_write(jn_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jn_log_vwrite(jn_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define jn_log_debug(c, ...)                                                                       \
    do {                                                                                           \
        if (jn_log_enabled(JN_LOG_DEBUG)) jn_log_write(JN_LOG_DEBUG, c, __VA_ARGS__);              \
    } while (0)
#define jn_log_info(c, ...)  jn_log_write(JN_LOG_INFO, c, __VA_ARGS__)
#define jn_log_warn(c, ...)  jn_log_write(JN_LOG_WARN, c, __VA_ARGS__)
#define jn_log_error(c, ...) jn_log_write(JN_LOG_ERROR, c, __VA_ARGS__)

#endif
