/* junction: one program for the whole integration pipeline. This file parses the
 * command line, loads the configuration and runs the chosen role on one libuv loop
 * until SIGINT or SIGTERM, then lets in-flight work finish and exits 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "analytics.h"
#include "api.h"
#include "config.h"
#include "consumer.h"
#include "log.h"
#include "producer.h"
#include "script.h"

#define DEFAULT_CONFIG "examples/local.lua"

static const char usage[] =
    "usage: junction <command> [--config FILE] [--log-level LEVEL]\n"
    "\n"
    "commands:\n"
    "  api        serve the CRM (:8081) and Inventory (:8082) mock APIs from Lua scripts\n"
    "  produce    poll the APIs and publish new or changed records to Kafka\n"
    "  consume    de-duplicate in Redis, merge with Lua, deliver to analytics, commit\n"
    "  analytics  receive merged batches like the Analytics REST API (:8083), for tests\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     Lua file returning the configuration table\n"
    "                        (default: " DEFAULT_CONFIG " when it exists, else built-in defaults)\n"
    "  -l, --log-level LEVEL debug, info, warn or error (overrides the config)\n"
    "      --help-config     list every configuration key, its default and its variable\n"
    "  -h, --help            show this help\n"
    "  -V, --version         print the version\n"
    "\n"
    "signals: SIGHUP reloads every script; SIGINT/SIGTERM stop after in-flight requests.\n";

typedef struct {
    uv_loop_t *loop;
    jn_script_host *scripts;
    jn_admin *admin;
    jn_api *api;
    jn_producer *producer;
    jn_analytics *analytics;
    jn_consumer *consumer;
    uv_signal_t sigint, sigterm, sighup;
    int pending; /* roles still stopping */
    int stopping;
} app;

static void on_role_stopped(void *arg) {
    app *a = arg;
    if (--a->pending > 0) return;
    jn_script_host_close(a->scripts);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
}

static void stop_all(app *a) {
    if (a->stopping) return;
    a->stopping = 1;
    a->pending = 1; /* held until every stop below is issued */
    if (a->consumer) a->pending++, jn_consumer_stop(a->consumer, on_role_stopped, a);
    if (a->producer) a->pending++, jn_producer_stop(a->producer, on_role_stopped, a);
    if (a->api) a->pending++, jn_api_stop(a->api, on_role_stopped, a);
    if (a->analytics) a->pending++, jn_analytics_stop(a->analytics, on_role_stopped, a);
    if (a->admin) a->pending++, jn_admin_stop(a->admin, on_role_stopped, a);
    on_role_stopped(a);
}

static void on_signal(uv_signal_t *h, int signum) {
    app *a = h->data;
    if (signum == SIGHUP) {
        jn_log_info("main", "SIGHUP: reloading every script");
        jn_script_reload_all(a->scripts, "SIGHUP");
        return;
    }
    if (a->stopping) {
        jn_log_warn("main", "second %s: exiting now", strsignal(signum));
        exit(1);
    }
    jn_log_info("main", "%s: finishing in-flight requests, then exiting", strsignal(signum));
    stop_all(a);
}

static void die(const char *msg) {
    fprintf(stderr, "junction: %s\n", msg);
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"log-level", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},         {"version", no_argument, 0, 'V'},
        {"help-config", no_argument, 0, 'H'},  {0, 0, 0, 0}};
    const char *config_path = getenv("JUNCTION_CONFIG");
    const char *level = NULL;
    int c;
    /* Options may come before or after the command: junction api --config x.lua */
    const char *command = NULL;
    for (;;) {
        while ((c = getopt_long(argc, argv, "+c:l:hV", opts, NULL)) != -1) {
            switch (c) {
            case 'c':
                config_path = optarg;
                break;
            case 'l':
                level = optarg;
                break;
            case 'h':
                fputs(usage, stdout);
                return 0;
            case 'V':
                printf("junction %s\n", JN_VERSION);
                return 0;
            case 'H':
                jn_config_describe();
                return 0;
            default:
                fputs(usage, stderr);
                return 2;
            }
        }
        if (command || optind >= argc) break;
        command = argv[optind++];
    }
    if (!command) {
        fputs(usage, stderr);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "junction: unexpected argument \"%s\"\n%s", argv[optind], usage);
        return 2;
    }
    int run_api = !strcmp(command, "api"), run_producer = !strcmp(command, "produce");
    int run_analytics = !strcmp(command, "analytics"), run_consumer = !strcmp(command, "consume");
    if (!run_api && !run_producer && !run_analytics && !run_consumer) {
        fprintf(stderr, "junction: unknown command \"%s\"\n%s", command, usage);
        return 2;
    }
    if (!config_path && access(DEFAULT_CONFIG, R_OK) == 0) config_path = DEFAULT_CONFIG;

    jn_config cfg;
    char *err = NULL;
    if (jn_config_load(&cfg, config_path, &err) != 0) die(err);
    if (level && jn_log_level_parse(level, &cfg.log.level) != 0)
        die("--log-level must be debug, info, warn or error");
    jn_log_setup(cfg.log.level, cfg.log.format);
    signal(SIGPIPE, SIG_IGN);

    app a = {0};
    a.loop = uv_default_loop();
    jn_script_opts so = {cfg.scripts.instruction_limit, cfg.scripts.allow_exec,
                         cfg.scripts.allow_write};
    a.scripts = jn_script_host_new(a.loop, &so);
    jn_log_info("main", "junction %s starting %s (config: %s)", JN_VERSION, command,
                cfg.path ? cfg.path : "built-in defaults");

    a.admin = jn_admin_start(a.loop, &cfg, a.scripts, &err);
    if (!a.admin) die(err);
    if (run_api) {
        a.api = jn_api_start(a.loop, a.scripts, &cfg, &err);
        if (!a.api) die(err);
        jn_admin_set_api(a.admin, a.api);
    }
    if (run_producer) {
        a.producer = jn_producer_start(a.loop, a.scripts, &cfg, &err);
        if (!a.producer) die(err);
        jn_admin_set_producer(a.admin, a.producer);
    }
    if (run_analytics) {
        a.analytics = jn_analytics_start(a.loop, &cfg, &err);
        if (!a.analytics) die(err);
        jn_admin_set_analytics(a.admin, a.analytics);
    }
    if (run_consumer) {
        a.consumer = jn_consumer_start(a.loop, a.scripts, &cfg, &err);
        if (!a.consumer) die(err);
        jn_admin_set_consumer(a.admin, a.consumer);
    }
    if (cfg.scripts.watch) jn_script_watch(a.scripts);

    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sighup);
    a.sigint.data = a.sigterm.data = a.sighup.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sighup, on_signal, SIGHUP);

    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    jn_config_free(&cfg);
    jn_log_info("main", "stopped");
    return 0;
}
