/* The config loader (src/config.c, jn_config_load) under any bytes as a config file.
 *
 * A config file is Lua, run in a sandbox under an instruction limit (10 million), a time
 * limit (2 s) and a memory ceiling (64 MiB): whatever the file holds, loading it must end
 * in a config or in an error message, never in a crash, a sanitizer report, a leak or a
 * hang (tools/fuzz runs this harness with -timeout well above the time limit, so a file
 * that escaped the limits is reported as a hang). Checked besides: an error is one
 * non-empty message, and a loaded config has a pipeline and an API (the defaults fill
 * in what a file leaves out). */
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
        FUZZ_CHECK(cfg.npipelines > 0 && cfg.napis > 0, "loaded with %d pipelines, %d APIs",
                   cfg.npipelines, cfg.napis);
        jn_config_free(&cfg);
    } else {
        FUZZ_CHECK(rc == -1 && err && *err, "failed (%d) without a message", rc);
        free(err);
    }
    return 0;
}
