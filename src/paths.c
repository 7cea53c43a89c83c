/* Finding the files that come with junction from wherever it runs. Configurations name
 * scripts by relative paths ("scripts/orders.lua", examples/local.lua's among them) and scripts
 * require stock ones; read from the working directory alone, they would be found only
 * from the repository's root. The executable's own path (libuv reads /proc/self/exe,
 * links resolved) tells where it was installed; the build tree's binary has no installed
 * files beside it, so the source tree, named at compile time, stands in for them. */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* Both come from CMakeLists.txt: the install's data folder relative to its bin folder
 * (GNUInstallDirs: "../share/junction"), and the source tree. */
#ifndef JN_HOME_FROM_BINDIR
#define JN_HOME_FROM_BINDIR "../share/junction"
#endif

static char home[PATH_MAX];
static int home_known; /* 0 not looked up yet, 1 found, -1 none */

/* Whether dir holds a scripts/ folder; if so its real path goes into home. */
static int take_if_home(const char *dir) {
    char scripts[PATH_MAX];
    struct stat st;
    if (snprintf(scripts, sizeof scripts, "%s/scripts", dir) >= (int)sizeof scripts) return 0;
    if (stat(scripts, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    return realpath(dir, home) != NULL;
}

const char *jn_paths_home(void) {
    if (home_known) return home_known > 0 ? home : NULL;
    home_known = -1;
    char exe[PATH_MAX], dir[PATH_MAX];
    size_t n = sizeof exe;
    if (uv_exepath(exe, &n) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(dir, sizeof dir, "%s/%s", exe, JN_HOME_FROM_BINDIR) < (int)sizeof dir &&
                take_if_home(dir))
                home_known = 1;
        }
    }
#ifdef JN_SOURCE_HOME
    if (home_known < 0 && take_if_home(JN_SOURCE_HOME)) home_known = 1;
#endif
    return home_known > 0 ? home : NULL;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

char *jn_paths_find(const char *path) {
    if (!*path || path[0] == '/' || access(path, F_OK) == 0) return xstrdup(path);
    const char *h = jn_paths_home();
    char full[PATH_MAX];
    if (h && snprintf(full, sizeof full, "%s/%s", h, path) < (int)sizeof full &&
        access(full, F_OK) == 0)
        return xstrdup(full);
    return xstrdup(path);
}
