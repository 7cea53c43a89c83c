/* `junction consume`: every pipeline of the config (see pipeline.h), each its own group
 * member with its own readers, Redis connection and sinks, on the one loop. */
#include "consumer.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

struct jn_consumer {
    jn_pipeline **p;
    int n;
    int stopping; /* pipelines still stopping */
    void (*done)(void *);
    void *done_arg;
};

jn_consumer *jn_consumer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err) {
    if (cfg->npipelines == 0) {
        *err = jn_errorf("config: no pipeline to consume; add a `pipelines` section (README, "
                         "\"Pipelines\"; examples/local.lua has the seed's)");
        return NULL;
    }
    jn_consumer *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->p = calloc((size_t)cfg->npipelines, sizeof *c->p);
    if (!c->p) abort();
    for (int i = 0; i < cfg->npipelines; i++) {
        c->p[i] = jn_pipeline_start(loop, scripts, cfg, &cfg->pipelines[i], err);
        if (!c->p[i]) {
            /* The failed one undid itself; the ones started before it stop (each frees
             * itself once closed), and c goes with the last of them. */
            if (c->n == 0) {
                free(c->p);
                free(c);
            } else {
                jn_consumer_stop(c, NULL, NULL);
            }
            return NULL;
        }
        c->n++;
    }
    return c;
}

static void on_pipeline_stopped(void *arg) {
    jn_consumer *c = arg;
    if (--c->stopping > 0) return;
    void (*done)(void *) = c->done;
    void *done_arg = c->done_arg;
    free(c->p);
    free(c);
    if (done) done(done_arg);
}

void jn_consumer_stop(jn_consumer *c, void (*done)(void *), void *arg) {
    if (c->stopping) return;
    c->done = done;
    c->done_arg = arg;
    c->stopping = c->n;
    for (int i = 0; i < c->n; i++)
        jn_pipeline_stop(c->p[i], on_pipeline_stopped, c);
}

/* The first pipeline's fields at the top (what a config of one pipeline reads first), and
 * every pipeline under "pipelines". */
void jn_consumer_status_json(jn_consumer *c, jn_sb *out) {
    jn_sb first;
    jn_sb_init(&first);
    jn_pipeline_status_json(c->p[0], &first);
    /* {"name":...,<fields>} -> <fields> + pipelines */
    jn_sb_append(out, first.data, first.len - 1);
    jn_sb_free(&first);
    jn_sb_puts(out, ",\"pipelines\":[");
    for (int i = 0; i < c->n; i++) {
        if (i) jn_sb_putc(out, ',');
        jn_pipeline_status_json(c->p[i], out);
    }
    jn_sb_puts(out, "]}");
}

const char *jn_consumer_not_ready(const jn_consumer *c) {
    for (int i = 0; i < c->n; i++) {
        const char *why = jn_pipeline_not_ready(c->p[i]);
        if (why) return why;
    }
    return NULL;
}

int64_t jn_consumer_topic_read(const jn_consumer *c, const char *topic) {
    int64_t least = -1;
    for (int i = 0; i < c->n; i++) {
        int64_t n = jn_pipeline_topic_read(c->p[i], topic);
        if (n >= 0 && (least < 0 || n < least)) least = n;
    }
    return least;
}

void jn_consumer_totals(const jn_consumer *c, jn_pipeline_totals *out) {
    *out = (jn_pipeline_totals){0};
    for (int i = 0; i < c->n; i++)
        jn_pipeline_add_totals(c->p[i], out);
}
