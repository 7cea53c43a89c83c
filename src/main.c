/* junction: one program for the whole integration pipeline. This file parses the
 * command line, loads the configuration and runs the chosen roles (one, or all of them
 * for `run`) on one libuv loop until SIGINT or SIGTERM, then lets in-flight work finish
 * and exits 0. `run --until-idle` instead stops by itself once every record is through
 * and prints a one-line summary. */
#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "consumer.h"
#include "kafka.h"
#include "log.h"
#include "paths.h"
#include "producer.h"
#include "progress.h"
#include "script.h"
#include "mock/analytics.h"
#include "mock/api.h"

#define DEFAULT_CONFIG    "examples/local.lua"
#define DEFAULT_TIMEOUT_S 300
#define IDLE_QUIET_MS     3000  /* nothing published for this long, among other things */
#define SERVICE_WAIT_MS   10000 /* how long `run` waits for Kafka and Redis to answer */

static const char usage[] =
    "usage: junction <command> [options]\n"
    "\n"
    "commands:\n"
    "  run        the whole pipeline in one process: api, produce, consume, analytics and\n"
    "             admin, with its progress on stderr (checks Kafka and Redis first)\n"
    "  api        serve the config's mock APIs from Lua scripts (examples/local.lua: the\n"
    "             seed's CRM :8081 and Inventory :8082)\n"
    "  produce    poll the APIs and publish new or changed records to Kafka\n"
    "  consume    de-duplicate in Redis, merge with Lua, deliver to analytics, commit\n"
    "  analytics  receive merged batches like the Analytics REST API (:8083), for tests\n"
    "\n"
    "Each serves /healthz, /readyz, /metrics and the dashboard on its admin port: run\n"
    ":8000, api :8001, produce :8002, consume :8003, analytics :8004 (admin.listen and\n"
    "JUNCTION_ADMIN_LISTEN set another), so the four roles run side by side.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     Lua file returning the configuration table\n"
    "                        (default: " DEFAULT_CONFIG " from the working directory, else\n"
    "                        the one installed with junction; else the built-in defaults)\n"
    "  -l, --log-level LEVEL debug, info, warn or error (overrides the config)\n"
    "      --records N       records the config's first API serves (in name order; overrides\n"
    "                        its count; run, api)\n"
    "      --until-idle      run: exit once the pipeline is idle (every record published,\n"
    "                        merged, delivered and stored), printing one summary line:\n"
    "                        published= duplicates= merged= delivered= dead_lettered= lost=\n"
    "                        seconds=; exit status 0 when lost=0, else 1\n"
    "      --timeout S       run --until-idle: give up after S seconds, exit 1 (default 300)\n"
    "  -q, --quiet           run: no progress on stderr\n"
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
    jn_progress *progress;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t deadline; /* --until-idle's --timeout */
    int deadline_on;
    const jn_config *cfg;
    uint64_t started_ns;
    int pending; /* roles of the current stop stage still stopping */
    int stage;   /* 0 running, 1 stopping the clients, 2 stopping the servers */
    int exit_code;
} app;

/* ---- stopping ---------------------------------------------------------------------- */

static void on_role_stopped(void *arg);

/* The servers go last: a consumer finishing its deliveries needs its receiver, and a
 * producer finishing a poll needs the API. */
static void stop_servers(app *a) {
    a->stage = 2;
    a->pending = 1; /* held until every stop below is issued */
    if (a->api) a->pending++, jn_api_stop(a->api, on_role_stopped, a);
    if (a->analytics) a->pending++, jn_analytics_stop(a->analytics, on_role_stopped, a);
    if (a->admin) a->pending++, jn_admin_stop(a->admin, on_role_stopped, a);
    on_role_stopped(a);
}

static void on_role_stopped(void *arg) {
    app *a = arg;
    if (--a->pending > 0) return;
    if (a->stage == 1) {
        stop_servers(a);
        return;
    }
    jn_script_host_close(a->scripts);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
}

static void stop_all(app *a) {
    if (a->stage) return;
    a->stage = 1;
    if (a->progress) jn_progress_stop(a->progress), a->progress = NULL;
    if (a->deadline_on) uv_close((uv_handle_t *)&a->deadline, NULL), a->deadline_on = 0;
    a->pending = 1;
    if (a->consumer) a->pending++, jn_consumer_stop(a->consumer, on_role_stopped, a);
    if (a->producer) a->pending++, jn_producer_stop(a->producer, on_role_stopped, a);
    on_role_stopped(a);
}

static void on_signal(uv_signal_t *h, int signum) {
    app *a = h->data;
    if (signum == SIGHUP) {
        jn_log_info("main", "SIGHUP: reloading every script");
        jn_script_reload_all(a->scripts, "SIGHUP");
        return;
    }
    if (a->stage) {
        jn_log_warn("main", "second %s: exiting now", strsignal(signum));
        exit(1);
    }
    jn_log_info("main", "%s: finishing in-flight requests, then exiting", strsignal(signum));
    stop_all(a);
}

/* ---- --until-idle ------------------------------------------------------------------ */

/* The records the config's first API serves (in name order). */
static long records_served(app *a) {
    long n = jn_api_records(a->api, a->cfg->apis[0].name);
    return n >= 0 ? n : a->cfg->apis[0].count;
}

static long records_received(app *a) {
    return (long)jn_analytics_distinct_ids(a->analytics);
}

/* Prints the summary and stops. lost counts the records the first API serves that are
 * neither in analytics nor dead-lettered nor skipped as duplicates (a duplicate's
 * processed mark in Redis says an earlier run delivered it). */
static void finish(app *a, int timed_out) {
    if (a->stage) return;
    jn_progress_counts c;
    jn_progress_read(a->producer, a->consumer, &c);
    double lost =
        (double)records_served(a) - (double)records_received(a) - c.dead_lettered - c.duplicates;
    if (lost < 0) lost = 0;
    double secs = (double)(uv_hrtime() - a->started_ns) / 1e9;
    /* The progress line ends first: both may share one terminal. */
    if (a->progress) jn_progress_stop(a->progress), a->progress = NULL;
    printf("published=%.0f duplicates=%.0f merged=%.0f delivered=%.0f dead_lettered=%.0f "
           "lost=%.0f seconds=%.1f\n",
           c.published, c.duplicates, c.merged, c.delivered, c.dead_lettered, lost, secs);
    fflush(stdout);
    a->exit_code = timed_out || lost > 0 ? 1 : 0;
    stop_all(a);
}

static void on_idle(void *arg) {
    app *a = arg;
    jn_log_info("main", "the pipeline is idle: stopping");
    finish(a, 0);
}

static void on_deadline(uv_timer_t *t) {
    app *a = t->data;
    jn_log_error("main", "--until-idle: the pipeline is not idle after %.0f s; giving up",
                 (double)(uv_hrtime() - a->started_ns) / 1e9);
    finish(a, 1);
}

/* ---- startup check: do Kafka and Redis answer? ------------------------------------- */

/* Only for `run`: the roles themselves retry an absent broker or Redis for ever, which
 * suits a service but leaves a person running the pipeline staring at a still screen.
 * A plain TCP connect is the first question asked (quick, and it names the service that
 * is absent); then Kafka is asked whether it takes junction's settings. The roles find out
 * the rest. */
typedef struct {
    const char *what, *fix; /* "Kafka", the config keys naming it */
    char where[256];        /* as configured, for the message */
    int left;               /* lookups and connects not yet answered */
    int ok;
} probe;

static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    probe probes[2];
    int nprobes, nok;
} check;

static void unreachable(const probe *pr) {
    fprintf(stderr,
            "junction: %s at %s is not reachable; start it with tools/services up "
            "(or correct %s in the config)\n",
            pr->what, pr->where, pr->fix);
    exit(1);
}

static void probe_answered(probe *pr, int ok) {
    pr->left--;
    if (pr->ok) return;
    if (ok) {
        pr->ok = 1;
        if (++check.nok == check.nprobes) {
            uv_close((uv_handle_t *)&check.timer, NULL);
            /* Connects to other addresses may still be under way: they end on their own
             * later, on the main run of the loop. */
            uv_stop(check.loop);
        }
    } else if (pr->left == 0) {
        unreachable(pr);
    }
}

typedef struct {
    probe *pr;
    uv_tcp_t tcp;
    uv_connect_t req;
} dial;

static void on_dial_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_dialed(uv_connect_t *req, int status) {
    dial *d = req->data;
    uv_close((uv_handle_t *)&d->tcp, on_dial_closed);
    probe_answered(d->pr, status == 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    probe *pr = req->data;
    free(req);
    /* Every address a name resolves to: localhost may be ::1 first, with the broker
     * listening on 127.0.0.1 only. */
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai; ai = ai->ai_next) {
        dial *d = calloc(1, sizeof *d);
        if (!d) abort();
        d->pr = pr;
        uv_tcp_init(check.loop, &d->tcp);
        d->tcp.data = d;
        d->req.data = d;
        if (uv_tcp_connect(&d->req, &d->tcp, ai->ai_addr, on_dialed) == 0)
            pr->left++;
        else
            uv_close((uv_handle_t *)&d->tcp, on_dial_closed);
    }
    if (res) uv_freeaddrinfo(res);
    probe_answered(pr, 0);
}

static void probe_host(probe *pr, const char *host, const char *port) {
    uv_getaddrinfo_t *req = calloc(1, sizeof *req);
    if (!req) abort();
    req->data = pr;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    pr->left++;
    if (uv_getaddrinfo(check.loop, req, on_resolved, host, port, &hints) != 0) {
        free(req);
        probe_answered(pr, 0);
    }
}

/* kafka.brokers is host:port[,host:port], each maybe with a scheme:// or an [IPv6]. */
static void probe_brokers(probe *pr, const char *brokers) {
    char *list = strdup(brokers), *save = NULL;
    if (!list) abort();
    pr->left++; /* held while the list is walked, so an early refusal cannot end it */
    for (char *b = strtok_r(list, ", \t", &save); b; b = strtok_r(NULL, ", \t", &save)) {
        char *s = strstr(b, "://");
        if (s) b = s + 3;
        const char *port = "9092";
        if (*b == '[') {
            char *close = strchr(++b, ']');
            if (close) {
                *close = '\0';
                if (close[1] == ':') port = close + 2;
            }
        } else {
            char *colon = strrchr(b, ':');
            if (colon) *colon = '\0', port = colon + 1;
        }
        probe_host(pr, b, port);
    }
    free(list);
    probe_answered(pr, 0);
}

static void on_kafka_checked(void *ud, int err, const char *reason) {
    (void)ud;
    if (err) {
        fprintf(stderr, "junction: %s\n", reason);
        exit(1);
    }
    uv_stop(check.loop);
}

static void on_check_timer(uv_timer_t *t) {
    (void)t;
    for (int i = 0; i < check.nprobes; i++)
        if (!check.probes[i].ok) unreachable(&check.probes[i]);
}

/* Returns once Kafka and Redis both accepted a connection; exits 1 naming the one that
 * did not when it refuses or says nothing for SERVICE_WAIT_MS. */
static void check_services(uv_loop_t *loop, const jn_config *cfg) {
    check.loop = loop;
    check.nprobes = 2;
    probe *k = &check.probes[0], *r = &check.probes[1];
    k->what = "Kafka";
    k->fix = "kafka.brokers";
    snprintf(k->where, sizeof k->where, "%s", cfg->kafka.brokers);
    r->what = "Redis";
    r->fix = "redis.host/redis.port";
    snprintf(r->where, sizeof r->where, "%s:%d", cfg->redis.host, cfg->redis.port);
    uv_timer_init(loop, &check.timer);
    uv_timer_start(&check.timer, on_check_timer, SERVICE_WAIT_MS, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->redis.port);
    probe_brokers(k, cfg->kafka.brokers);
    probe_host(r, cfg->redis.host, port);
    uv_run(loop, UV_RUN_DEFAULT);
    /* A connect says nothing of whether the brokers take the login and whether their
     * certificate is trusted: one metadata request with the roles' settings does, and a
     * refusal is one line naming it instead of roles retrying it for ever. */
    jn_kafka_client_opts kc = jn_kafka_conf_from(cfg);
    jn_kafka_brokers_check(loop, &kc, SERVICE_WAIT_MS, on_kafka_checked, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- main -------------------------------------------------------------------------- */

static void die(const char *msg) {
    fprintf(stderr, "junction: %s\n", msg);
    exit(2);
}

/* A whole non-negative number no larger than max, or -1. */
static long parse_count(const char *s, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max) return -1;
    return v;
}

/* One malloc arena for every thread. glibc gives each thread that allocates an arena of
 * its own, and memory freed in one is reused only by threads allocating there: the
 * fetch buffers librdkafka's broker thread frees stay resident in its arena while the
 * loop's arena grows with the join (peak RSS of the consumer benchmark 120 MiB with
 * per-thread arenas, 89-103 with one). librdkafka's threads then share the arena's lock
 * with the loop, short waits their per-thread caches mostly avoid. MALLOC_ARENA_MAX or
 * GLIBC_TUNABLES in the environment still decide. */
static void tune_malloc(void) {
#ifdef __GLIBC__
    const char *t = getenv("GLIBC_TUNABLES");
    if (!getenv("MALLOC_ARENA_MAX") && !(t && strstr(t, "arena_max"))) mallopt(M_ARENA_MAX, 1);
#endif
}

int main(int argc, char **argv) {
    tune_malloc();
    enum { OPT_HELP_CONFIG = 256, OPT_UNTIL_IDLE, OPT_RECORDS, OPT_TIMEOUT };
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"log-level", required_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help-config", no_argument, 0, OPT_HELP_CONFIG},
                                         {"until-idle", no_argument, 0, OPT_UNTIL_IDLE},
                                         {"records", required_argument, 0, OPT_RECORDS},
                                         {"timeout", required_argument, 0, OPT_TIMEOUT},
                                         {"quiet", no_argument, 0, 'q'},
                                         {0, 0, 0, 0}};
    uint64_t started_ns = uv_hrtime();
    const char *config_path = getenv("JUNCTION_CONFIG");
    const char *level = NULL;
    int until_idle = 0, quiet = 0;
    long records = -1, timeout_s = -1;
    int c;
    /* Options may come before or after the command: junction api --config x.lua */
    const char *command = NULL;
    for (;;) {
        while ((c = getopt_long(argc, argv, "+c:l:hVq", opts, NULL)) != -1) {
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
            case OPT_HELP_CONFIG:
                jn_config_describe();
                return 0;
            case OPT_UNTIL_IDLE:
                until_idle = 1;
                break;
            case OPT_RECORDS:
                if ((records = parse_count(optarg, 10000000)) < 0)
                    die("--records must be a whole number from 0 to 10000000");
                break;
            case OPT_TIMEOUT:
                if ((timeout_s = parse_count(optarg, 86400 * 365)) <= 0)
                    die("--timeout must be a whole number of seconds, at least 1");
                break;
            case 'q':
                quiet = 1;
                break;
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
    int run_all = !strcmp(command, "run");
    int run_api = run_all || !strcmp(command, "api");
    int run_producer = run_all || !strcmp(command, "produce");
    int run_analytics = run_all || !strcmp(command, "analytics");
    int run_consumer = run_all || !strcmp(command, "consume");
    if (!run_api && !run_producer && !run_analytics && !run_consumer) {
        fprintf(stderr, "junction: unknown command \"%s\"\n%s", command, usage);
        return 2;
    }
    if (!run_all && (until_idle || quiet || timeout_s >= 0))
        die("--until-idle, --timeout and --quiet are options of junction run");
    if (!run_api && records >= 0) die("--records is an option of junction run and junction api");
    if (timeout_s >= 0 && !until_idle) die("--timeout goes with --until-idle");
    /* The seed's pipeline lives in that file, not in the binary: from the working
     * directory, else the copy that came with junction (paths.h). */
    char *default_config = config_path ? NULL : jn_paths_find(DEFAULT_CONFIG);
    if (default_config && access(default_config, R_OK) == 0) config_path = default_config;

    jn_config cfg;
    char *err = NULL;
    int loaded = jn_config_load(&cfg, config_path, &err);
    free(default_config); /* cfg.path is a copy */
    if (loaded != 0) die(err);
    jn_config_for_command(&cfg, command); /* a command known by now */
    /* Each role runs what its section declares; a file without the section gives it
     * nothing to do, which is a mistake to name now rather than an idle process. */
    if (run_api && cfg.napis == 0)
        die("config: no API to serve; add an `apis` section (README, \"The mock APIs\"; "
            "examples/local.lua has the seed's two)");
    if (run_producer && cfg.nsources == 0)
        die("config: no source to poll; add a `sources` section (README, \"Sources\"; "
            "examples/local.lua has the seed's two)");
    if (level && jn_log_level_parse(level, &cfg.log.level) != 0)
        die("--log-level must be debug, info, warn or error");
    if (records >= 0) cfg.apis[0].count = (int)records;
    jn_log_setup(cfg.log.level, cfg.log.format);
    signal(SIGPIPE, SIG_IGN);

    app a = {0};
    a.loop = uv_default_loop();
    a.cfg = &cfg;
    a.started_ns = started_ns;
    /* Before anything starts, so a missing service leaves nothing to undo. */
    if (run_all) check_services(a.loop, &cfg);
    jn_script_opts so = {.instruction_limit = cfg.scripts.instruction_limit,
                         .time_limit_ms = cfg.scripts.time_limit_ms,
                         .memory_limit_mb = cfg.scripts.memory_limit_mb,
                         .max_file_bytes = cfg.scripts.max_file_bytes,
                         .read_paths = cfg.scripts.read_paths,
                         .env_allow = cfg.scripts.env_allow,
                         .stock_path = cfg.scripts.stock_path,
                         .allow_exec = cfg.scripts.allow_exec,
                         .allow_write = cfg.scripts.allow_write};
    a.scripts = jn_script_host_new(a.loop, &so);
    jn_log_info("main", "junction %s starting %s (config: %s)", JN_VERSION, command,
                cfg.path ? cfg.path : "built-in defaults");

    /* Listeners first: a port in use is the likeliest failure, and nothing has talked
     * to Kafka yet when it is found. Any failure exits the process: nothing lingers. */
    a.admin = jn_admin_start(a.loop, &cfg, a.scripts, &err);
    if (!a.admin) die(err);
    if (run_api) {
        a.api = jn_api_start(a.loop, a.scripts, &cfg, &err);
        if (!a.api) die(err);
        jn_admin_set_api(a.admin, a.api);
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
    if (run_producer) {
        a.producer = jn_producer_start(a.loop, a.scripts, &cfg, &err);
        if (!a.producer) die(err);
        jn_admin_set_producer(a.admin, a.producer);
    }
    if (cfg.scripts.watch) jn_script_watch(a.scripts);

    if (run_all && (!quiet || until_idle))
        a.progress = jn_progress_start(a.loop, !quiet, a.producer, a.consumer);
    if (until_idle) {
        jn_progress_on_idle(a.progress, IDLE_QUIET_MS, on_idle, &a);
        uv_timer_init(a.loop, &a.deadline);
        a.deadline.data = &a;
        a.deadline_on = 1;
        uv_timer_start(&a.deadline, on_deadline,
                       (uint64_t)(timeout_s > 0 ? timeout_s : DEFAULT_TIMEOUT_S) * 1000, 0);
    }

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
    return a.exit_code;
}
