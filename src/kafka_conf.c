/* The common part of the Kafka glue: librdkafka configurations, secret values kept out
 * of messages, librdkafka's log events and the wake-up pipe (see kafka_conf.h).
 *
 * Why secret values are blanked here although librdkafka 2.0 already prints
 * "[redacted]" for the properties it marks sensitive in its configuration dump: its mark
 * covers the properties it knows as sensitive, not every line a debug context may echo
 * (a property's value in a CONFWARN, a rejected value in an error string), and the rule
 * the deployment is promised is junction's: no secret in any log line or message. The
 * cost is a few strstr per log line, which only debug makes numerous. */
#define _GNU_SOURCE /* pipe2 */
#include "kafka_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"

#define HIDDEN "(hidden)"

int jn_kafka_conf_is_secret(const char *name) {
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "sasl.oauthbearer") ||
           strstr(name, ".pem");
}

/* ---- error codes ------------------------------------------------------------------- */

int jn_kafka_code(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : JN_EKAFKA(e);
}

/* The inverse of JN_EKAFKA. */
static rd_kafka_resp_err_t kafka_err(int code) {
    return code == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR : (rd_kafka_resp_err_t)(-11000 - code);
}

const char *jn_kafka_strerror(int code) {
    return rd_kafka_err2str(kafka_err(code));
}

const char *jn_kafka_errname(int code) {
    return rd_kafka_err2name(kafka_err(code));
}

/* ---- secret values ------------------------------------------------------------------ */

void jn_kafka_secrets_add(jn_kafka_secrets *s, const char *const *properties) {
    for (const char *const *p = properties; p && p[0] && p[1]; p += 2) {
        if (!*p[1] || !jn_kafka_conf_is_secret(p[0])) continue;
        s->values = realloc(s->values, (size_t)(s->n + 1) * sizeof *s->values);
        if (!s->values || !(s->values[s->n] = strdup(p[1]))) abort();
        s->n++;
    }
}

void jn_kafka_secrets_free(jn_kafka_secrets *s) {
    for (int i = 0; i < s->n; i++) {
        explicit_bzero(s->values[i], strlen(s->values[i]));
        free(s->values[i]);
    }
    free(s->values);
    s->values = NULL;
    s->n = 0;
}

/* The length of the longest secret starting at text, or 0. */
static size_t secret_at(const jn_kafka_secrets *s, const char *text) {
    size_t best = 0;
    for (int i = 0; i < s->n; i++) {
        size_t len = strlen(s->values[i]);
        if (len > best && !strncmp(text, s->values[i], len)) best = len;
    }
    return best;
}

static int holds_secret(const jn_kafka_secrets *s, const char *text) {
    for (int i = 0; s && text && i < s->n; i++)
        if (strstr(text, s->values[i])) return 1;
    return 0;
}

/* text with every secret value in it replaced, appended to sb. */
static void hide_into(const jn_kafka_secrets *s, const char *text, jn_sb *sb) {
    for (const char *t = text; *t;) {
        size_t len = secret_at(s, t);
        if (len) {
            jn_sb_puts(sb, HIDDEN);
            t += len;
        } else {
            jn_sb_putc(sb, *t++);
        }
    }
}

const char *jn_kafka_secrets_hide(const jn_kafka_secrets *s, const char *text, char *buf,
                                  size_t n) {
    if (n == 0 || !holds_secret(s, text)) return text;
    jn_sb sb;
    jn_sb_init(&sb);
    hide_into(s, text, &sb);
    snprintf(buf, n, "%s", sb.data);
    jn_sb_free(&sb);
    return buf;
}

char *jn_kafka_secrets_hidden(const jn_kafka_secrets *s, char *text) {
    if (!holds_secret(s, text)) return text;
    jn_sb sb;
    jn_sb_init(&sb);
    hide_into(s, text, &sb);
    explicit_bzero(text, strlen(text));
    free(text);
    return jn_sb_steal(&sb);
}

/* ---- configurations ----------------------------------------------------------------- */

/* Sets name=value; otherwise librdkafka's reason in why, secrets blanked (its reason may
 * echo the value: `Invalid value "x" for ...`), and -1. */
static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                    const jn_kafka_secrets *s, char *why, size_t n) {
    char reason[512], tmp[512];
    if (rd_kafka_conf_set(conf, name, value, reason, sizeof reason) == RD_KAFKA_CONF_OK) return 0;
    jn_kafka_secrets own = {0};
    const char *const pair[] = {name, value, NULL};
    jn_kafka_secrets_add(&own, pair); /* a value that is not in s yet */
    const char *r =
        jn_kafka_secrets_hide(&own, jn_kafka_secrets_hide(s, reason, tmp, sizeof tmp), why, n);
    if (r != why) snprintf(why, n, "%s", r);
    jn_kafka_secrets_free(&own);
    return -1;
}

static int set_pairs(rd_kafka_conf_t *conf, const char *who, const char *const *pairs,
                     const jn_kafka_secrets *s, char **err) {
    for (const char *const *p = pairs; p && p[0] && p[1]; p += 2) {
        char why[512];
        if (conf_set(conf, p[0], p[1], s, why, sizeof why) == 0) continue;
        /* The value also hidden when it is another property's secret (put into the wrong
         * property by mistake). */
        *err = jn_kafka_secrets_hidden(
            s, jn_errorf("kafka: %s: property %s=%s rejected: %s", who, p[0],
                         jn_kafka_conf_is_secret(p[0]) ? HIDDEN : p[1], why));
        return -1;
    }
    return 0;
}

jn_kafka_client_opts jn_kafka_conf_from(const jn_config *cfg) {
    return (jn_kafka_client_opts){.brokers = cfg->kafka.brokers,
                                  .client_id = cfg->kafka.client_id,
                                  .properties = (const char *const *)cfg->kafka.properties};
}

rd_kafka_conf_t *jn_kafka_conf_build(const jn_kafka_client_opts *c, const char *who,
                                     const char *const *own, int events, jn_kafka_secrets *secrets,
                                     char **err) {
    jn_kafka_secrets_add(secrets, c->properties);
    /* Log lines are queued for the owner, who serves them on the loop, instead of being
     * printed from librdkafka's threads. */
    const char *const base[] = {"log.queue", "true", NULL};
    const char *const brokers[] = {"bootstrap.servers", c->brokers, NULL};
    const char *const client_id[] = {"client.id", c->client_id, NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* A pair with a NULL value ends its list: brokers and client id left out are unset. */
    if (set_pairs(conf, who, base, secrets, err) || set_pairs(conf, who, brokers, secrets, err) ||
        set_pairs(conf, who, client_id, secrets, err) || set_pairs(conf, who, own, secrets, err) ||
        set_pairs(conf, who, c->properties, secrets, err)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (events) rd_kafka_conf_set_events(conf, events);
    return conf;
}

rd_kafka_t *jn_kafka_conf_client(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *who,
                                 const jn_kafka_secrets *secrets, char **err) {
    char reason[512], shown[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, reason, sizeof reason);
    if (rk) return rk;
    rd_kafka_conf_destroy(conf); /* still ours on failure */
    *err = jn_errorf("kafka: cannot create the %s: %s", who,
                     jn_kafka_secrets_hide(secrets, reason, shown, sizeof shown));
    return NULL;
}

int jn_kafka_conf_check(const char *name, const char *value, char *why, size_t n) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_set(conf, name, value, NULL, why, n);
    rd_kafka_conf_destroy(conf);
    return rc;
}

const char *jn_kafka_conf_hint(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
        return "check kafka.sasl.mechanism, kafka.sasl.username and kafka.sasl.password "
               "(KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE)";
    case RD_KAFKA_RESP_ERR__SSL:
        return "check kafka.ssl.ca_file (KAFKA_SSL_CA_FILE): it must hold the CA that signed the "
               "broker's certificate, and the broker's address must be a name in that "
               "certificate";
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return "the user logged in but may not do this: its ACLs on the cluster must allow it";
    default:
        return "";
    }
}

/* ---- log lines ------------------------------------------------------------------------- */

void jn_kafka_conf_log(const jn_kafka_secrets *secrets, int level, const char *fac,
                       const char *line) {
    /* A broker failure is both logged as FAIL and sent as an error event with the same
     * text; the error event is reported, so the log copy would only double every line. */
    if (level < 7 && strcmp(fac, "FAIL") == 0) return;
    /* librdkafka uses syslog levels: 0..3 error, 4 warning, 5..6 notice/info, 7 debug. */
    jn_log_level l = level <= 3   ? JN_LOG_ERROR
                     : level == 4 ? JN_LOG_WARN
                     : level <= 6 ? JN_LOG_INFO
                                  : JN_LOG_DEBUG;
    if (!jn_log_enabled(l)) return;
    char buf[2048];
    jn_log_write(l, "kafka", "%s: %s", fac, jn_kafka_secrets_hide(secrets, line, buf, sizeof buf));
}

void jn_kafka_conf_log_event(const jn_kafka_secrets *secrets, rd_kafka_event_t *ev) {
    const char *fac, *str;
    int level;
    if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
        jn_kafka_conf_log(secrets, level, fac, str);
}

/* ---- the wake-up pipe ------------------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)events;
    jn_kafka_wake *w = h->data;
    if (status < 0) jn_log_warn("kafka", "wake-up pipe: %s", uv_strerror(status));
    /* Pipe first, queues second (in on_wake): a byte written while the owner drains
     * then wakes us again (at worst for nothing) instead of being swallowed after it
     * looked. */
    char buf[256];
    for (;;) {
        ssize_t n = read(w->fds[0], buf, sizeof buf);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break; /* EAGAIN: empty */
    }
    w->on_wake(w);
}

int jn_kafka_wake_start(jn_kafka_wake *w, uv_loop_t *loop, void (*on_wake)(jn_kafka_wake *),
                        void *data) {
    w->fds[0] = w->fds[1] = -1;
    w->on_wake = on_wake;
    w->on_closed = NULL;
    w->data = data;
    int rc = pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : uv_translate_sys_error(errno);
    if (rc == 0) rc = uv_poll_init(loop, &w->poll, w->fds[0]);
    if (rc != 0) {
        if (w->fds[0] >= 0) close(w->fds[0]);
        if (w->fds[1] >= 0) close(w->fds[1]);
        w->fds[0] = w->fds[1] = -1;
        return rc;
    }
    w->poll.data = w;
    /* Neither can fail: a handle just made for a valid descriptor, and a timer. */
    uv_poll_start(&w->poll, UV_READABLE, on_poll);
    uv_timer_init(loop, &w->timer);
    w->timer.data = data;
    w->open = 2;
    return 0;
}

void jn_kafka_wake_kick(jn_kafka_wake *w) {
    /* EAGAIN means the pipe is full, hence readable already: nothing lost. */
    ssize_t n = write(w->fds[1], "1", 1);
    (void)n;
}

void jn_kafka_wake_watch(jn_kafka_wake *w, rd_kafka_queue_t *q) {
    rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
    /* Events queued before the pipe was attached would not cause a write. */
    jn_kafka_wake_kick(w);
}

void jn_kafka_wake_unwatch(rd_kafka_queue_t *q) {
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
}

static void on_handle_closed(uv_handle_t *h) {
    jn_kafka_wake *w = h->data;
    if (--w->open > 0) return;
    /* The poll handle no longer watches the descriptor and librdkafka no longer writes
     * to it: safe to close both ends. */
    close(w->fds[0]);
    close(w->fds[1]);
    w->fds[0] = w->fds[1] = -1;
    if (w->on_closed) w->on_closed(w);
}

void jn_kafka_wake_close(jn_kafka_wake *w, void (*on_closed)(jn_kafka_wake *)) {
    w->on_closed = on_closed;
    uv_timer_stop(&w->timer);
    w->timer.data = w; /* no more owner's callbacks: now it is ours to count */
    uv_close((uv_handle_t *)&w->timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->poll, on_handle_closed);
}
