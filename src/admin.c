/* Admin endpoints. Kept apart from the data servers so a flood of API traffic and a
 * person checking /metrics never share a listener. */
#include "admin.h"

#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "http_auth.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "secret.h"

/* web/dashboard.html, compiled in by CMake (build/generated/dashboard_html.c) so the binary
 * and the container image serve the page without carrying or finding extra files. */
extern const unsigned char jn_dashboard_html[];
extern const size_t jn_dashboard_html_len;

struct jn_admin {
    jn_http_server *http;
    char *token; /* admin.token, or NULL */
    jn_script_host *scripts;
    jn_api *api;
    jn_producer *producer;
    jn_consumer *consumer;
    jn_analytics *analytics;
    uint64_t started_ns;
    jn_metric *m_rss, *m_lua;
};

enum { A_DASHBOARD, A_HEALTH, A_READY, A_METRICS, A_STATUS, A_RELOAD, A_FAULTS };

static const jn_route routes[] = {
    [A_DASHBOARD] = {"/", JN_METHOD(HTTP_GET)},
    [A_HEALTH] = {"/healthz", JN_METHOD(HTTP_GET)},
    [A_READY] = {"/readyz", JN_METHOD(HTTP_GET)},
    [A_METRICS] = {"/metrics", JN_METHOD(HTTP_GET)},
    [A_STATUS] = {"/api/status", JN_METHOD(HTTP_GET)},
    [A_RELOAD] = {"/api/reload", JN_METHOD(HTTP_POST)},
    [A_FAULTS] = {"/api/faults/:service", JN_METHOD(HTTP_PUT)},
};

static const jn_http_routes table = {
    routes, sizeof routes / sizeof routes[0],
    "the admin server serves / (the dashboard), /healthz, /readyz, /metrics, /api/status, "
    "POST /api/reload and PUT /api/faults/<api>",
    1};

static void set_json(jn_http_response *res, int status, jn_sb *sb) {
    res->status = status;
    res->body = jn_rbuf_from_sb(sb);
}

static void status_json(jn_admin *a, jn_sb *sb) {
    jn_sb_printf(sb, "{\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%.3f,\"scripts\":", JN_VERSION,
                 (int)getpid(), (double)(uv_hrtime() - a->started_ns) / 1e9);
    jn_script_host_status_json(a->scripts, sb);
    if (a->api) {
        jn_sb_puts(sb, ",\"api\":");
        jn_api_status_json(a->api, sb);
    }
    if (a->producer) {
        jn_sb_puts(sb, ",\"producer\":");
        jn_producer_status_json(a->producer, sb);
    }
    if (a->consumer) {
        jn_sb_puts(sb, ",\"consumer\":");
        jn_consumer_status_json(a->consumer, sb);
    }

    if (a->analytics) {
        jn_sb_puts(sb, ",\"analytics\":");
        jn_analytics_stats_json(a->analytics, sb);
    }
    jn_sb_putc(sb, '}');
}

static void handle(void *ud, const jn_http_request *req, jn_http_response *res) {
    jn_admin *a = ud;
    jn_route_match m;
    int r = jn_http_route(&table, req, res, &m);
    if (r < 0) return;
    jn_sb sb;
    jn_sb_init(&sb);
    if ((r == A_RELOAD || r == A_FAULTS) && jn_http_guard(req, a->token, "admin.token", res))
        return;
    switch (r) {
    case A_DASHBOARD:
        jn_http_respond(res, 200, (const char *)jn_dashboard_html, jn_dashboard_html_len);
        res->content_type = "text/html; charset=utf-8";
        /* The page is tied to this binary's /api/status: never let a browser keep an old one. */
        snprintf(res->headers, sizeof res->headers, "Cache-Control: no-store\r\n");
        break;
    case A_HEALTH:
    case A_READY: {
        const char *why = r == A_READY && a->consumer ? jn_consumer_not_ready(a->consumer) : NULL;
        if (!why && r == A_READY && a->producer) why = jn_producer_not_ready(a->producer);
        if (why) {
            jn_sb_puts(&sb, "{\"status\":\"not ready\",\"reason\":");
            jn_sb_json_string(&sb, why, strlen(why));
            jn_sb_putc(&sb, '}');
            set_json(res, 503, &sb);
            break;
        }
        jn_sb_puts(&sb, r == A_HEALTH ? "{\"status\":\"ok\"}" : "{\"status\":\"ready\"}");
        set_json(res, 200, &sb);
        break;
    }
    case A_METRICS: {
        long pages = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
            fclose(f);
        }
        jn_metric_set(a->m_rss, (double)rss * (double)sysconf(_SC_PAGESIZE));
        lua_State *L = jn_script_host_lua(a->scripts);
        jn_metric_set(a->m_lua, (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
                                    (double)lua_gc(L, LUA_GCCOUNTB, 0));
        jn_metrics_render(&sb);
        res->content_type = "text/plain; version=0.0.4; charset=utf-8";
        set_json(res, 200, &sb);
        break;
    }
    case A_STATUS:
        status_json(a, &sb);
        set_json(res, 200, &sb);
        break;
    case A_RELOAD: {
        int rc = jn_script_reload_all(a->scripts, "POST /api/reload");
        jn_sb_printf(&sb, "{\"ok\":%s,\"scripts\":", rc == 0 ? "true" : "false");
        jn_script_host_status_json(a->scripts, &sb);
        jn_sb_putc(&sb, '}');
        set_json(res, rc == 0 ? 200 : 422, &sb);
        break;
    }
    case A_FAULTS: {
        char *err = NULL;
        int rc = a->api ? jn_api_set_faults(a->api, m.param, req->body, req->body_len, &err) : 0;
        if (!a->api) {
            jn_http_respond_error(res, 404,
                                  "no API runs in this process (junction api serves them)");
        } else if (rc == 0) {
            jn_api_status_json(a->api, &sb);
            set_json(res, 200, &sb);
        } else {
            jn_http_respond_error(res, rc == JN_ENOENT ? 404 : 400, err ? err : "bad faults");
        }
        free(err);
        break;
    }
    }
}

jn_admin *jn_admin_start(uv_loop_t *loop, const jn_config *cfg, jn_script_host *scripts,
                         char **err) {
    if (!jn_http_is_loopback(cfg->admin.listen.host) && !cfg->admin.token) {
        *err = jn_errorf("admin: listening on %s:%d, beyond loopback, needs admin.token "
                         "(JUNCTION_ADMIN_TOKEN or JUNCTION_ADMIN_TOKEN_FILE): anyone who can "
                         "reach the port could reload scripts and inject faults",
                         cfg->admin.listen.host, cfg->admin.listen.port);
        return NULL;
    }
    jn_admin *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->scripts = scripts;
    if (cfg->admin.token) {
        a->token = strdup(cfg->admin.token);
        if (!a->token) abort();
    }
    a->started_ns = uv_hrtime();
    a->m_rss = jn_metrics_gauge("junction_process_resident_memory_bytes",
                                "Resident memory of this process", "");
    a->m_lua = jn_metrics_gauge("junction_script_memory_bytes",
                                "Memory the scripts' Lua state holds (their state included)", "");
    jn_http_server_opts o = {
        .name = "admin",
        .listen = cfg->admin.listen,
        .max_body = 65536,
        .request_timeout_ms = cfg->api.request_timeout_ms,
        .keepalive_timeout_ms = cfg->api.keepalive_timeout_ms,
        .max_connections = 256,
    };
    a->http = jn_http_server_start(loop, &o, handle, a, err);
    if (!a->http) {
        jn_secret_free(a->token);
        free(a);
        return NULL;
    }
    return a;
}

void jn_admin_set_api(jn_admin *a, jn_api *api) {
    a->api = api;
}

void jn_admin_set_producer(jn_admin *a, jn_producer *p) {
    a->producer = p;
}

void jn_admin_set_consumer(jn_admin *a, jn_consumer *c) {
    a->consumer = c;
}

void jn_admin_set_analytics(jn_admin *a, jn_analytics *an) {
    a->analytics = an;
}

typedef struct {
    jn_admin *a;
    void (*done)(void *);
    void *arg;
} stop_ctx;

static void on_stopped(void *arg) {
    stop_ctx *c = arg;
    jn_secret_free(c->a->token);
    free(c->a);
    if (c->done) c->done(c->arg);
    free(c);
}

void jn_admin_stop(jn_admin *a, void (*done)(void *), void *arg) {
    stop_ctx *c = malloc(sizeof *c);
    if (!c) abort();
    *c = (stop_ctx){a, done, arg};
    jn_http_server_stop(a->http, on_stopped, c);
}
