/* The config loader (src/config.c, jn_config_load) under any bytes as a config file.
 *
 * A config file is Lua, run in a sandbox under an instruction limit (10 million), a time
 * limit (2 s) and a memory ceiling (64 MiB): whatever the file holds, loading it must end
 * in a config or in an error message, never in a crash, a sanitizer report, a leak or a
 * hang (tools/fuzz runs this harness with -timeout well above the time limit, so a file
 * that escaped the limits is reported as a hang). Checked besides: an error is one
 * non-empty message, and every pipeline, source and API of a loaded config has what its
 * role cannot run without (the required keys, or their defaults). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

/* The file jn_config_load reads: one per process, rewritten for every input. */
static char path[64];

static void remove_file(void) {
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/jn_fuzz_config_%d.lua", (int)getpid());
    atexit(remove_file);
    return 0;
}

static int named(const char *s) {
    return s && *s;
}

static void check_sections(const jn_config *cfg) {
    FUZZ_CHECK(cfg->npipelines >= 0 && (cfg->npipelines == 0) == !cfg->pipelines &&
                   cfg->nsources >= 0 && (cfg->nsources == 0) == !cfg->sources && cfg->napis >= 0 &&
                   (cfg->napis == 0) == !cfg->apis,
               "section counts and arrays disagree: %d pipelines, %d sources, %d APIs",
               cfg->npipelines, cfg->nsources, cfg->napis);
    for (int i = 0; i < cfg->npipelines; i++) {
        const jn_pipeline_config *p = &cfg->pipelines[i];
        FUZZ_CHECK(named(p->name) && named(p->group_id) && named(p->transform) && p->nstreams > 0 &&
                       p->nsinks > 0,
                   "pipeline %d loaded without a name, group, transform, stream or sink", i);
        for (int k = 0; k < p->nstreams; k++)
            FUZZ_CHECK(named(p->streams[k].topic), "pipeline %s: a stream without a topic",
                       p->name);
        for (int k = 0; k < p->ntables; k++)
            FUZZ_CHECK(named(p->tables[k].topic), "pipeline %s: a table without a topic", p->name);
    }
    for (int i = 0; i < cfg->nsources; i++)
        FUZZ_CHECK(named(cfg->sources[i].name) && named(cfg->sources[i].url) &&
                       named(cfg->sources[i].topic),
                   "source %d loaded without a name, URL or topic", i);
    for (int i = 0; i < cfg->napis; i++)
        FUZZ_CHECK(named(cfg->apis[i].name) && named(cfg->apis[i].script),
                   "API %d loaded without a name or script", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    jn_config cfg;
    char *err = NULL;
    int rc = jn_config_load(&cfg, path, &err);
    if (rc == 0) {
        FUZZ_CHECK(err == NULL, "loaded, with an error: %s", err);
        check_sections(&cfg);
        jn_config_free(&cfg);
    } else {
        FUZZ_CHECK(rc == -1 && err && *err, "failed (%d) without a message", rc);
        free(err);
    }
    return 0;
}
