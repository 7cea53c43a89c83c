/* Leveled logging. One line per call, written with a single write(2) so lines from
 * several processes sharing a terminal or a container log never interleave. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static jn_log_level min_level = JN_LOG_INFO;
static jn_log_format out_format = JN_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void jn_log_setup(jn_log_level level, jn_log_format format) {
    min_level = level;
    out_format = format;
}

int jn_log_enabled(jn_log_level level) {
    return level >= min_level;
}

int jn_log_level_parse(const char *name, jn_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (jn_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *jn_log_level_name(jn_log_level level) {
    return level_names[level];
}

void jn_log_write(jn_log_level level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jn_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}

void jn_log_vwrite(jn_log_level level, const char *component, const char *fmt, va_list ap) {
    if (level < min_level) return;
    char msg[4096];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) return;

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    jn_sb sb;
    jn_sb_init(&sb);
    if (out_format == JN_LOG_JSON) {
        jn_sb_printf(&sb, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
        jn_sb_json_string(&sb, component, strlen(component));
        jn_sb_puts(&sb, ",\"msg\":");
        jn_sb_json_string(&sb, msg, strlen(msg));
        jn_sb_puts(&sb, "}\n");
    } else {
        jn_sb_printf(&sb, "%s %-5s %s: %s\n", ts, level_names[level], component, msg);
    }
    ssize_t w = write(STDERR_FILENO, sb.data, sb.len);
    (void)w;
    jn_sb_free(&sb);
}
