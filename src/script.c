/* The Lua host. Scripts run in a sandbox built per version: allow-listed globals,
 * private copies of the standard library tables (one script cannot patch string.format
 * under another), read-only views of junction and cjson, a `require` that only reaches
 * those and files beside the script, and an error on reading an undefined global so
 * typos fail loudly.
 *
 * No script can take the host down. Every path from the host into Lua runs under
 * lua_pcall; a call is bounded by an instruction count, a wall-clock time and a memory
 * ceiling; the C functions that could run long without a hook tick (pattern matching,
 * string.rep, table.sort/concat/move/insert/remove) charge their work to the same
 * budget; and once a limit is passed the hook raises again on every instruction, so a
 * pcall, xpcall or coroutine inside the script cannot swallow it. */
#include "script.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "lua_alloc.h"
#include "metrics.h"
#include "paths.h"
#include "script_lib.h"
#include "script_strlib.h"
#include "script_watchdog.h"

#define HISTORY    16
#define HOOK_EVERY 1000
/* Calls of a host whose instruction limit is at least this run without the count hook
 * until the watchdog finds them running for a tick (script_watchdog.h): the
 * instructions of that first tick, far fewer than this, go uncounted. Below it, every
 * instruction counts, as the limit is then meant to be exact. */
#define WATCHDOG_MIN_LIMIT 10000000L
/* A watched file must look the same (size, mtime, inode) on two looks this far apart
 * before it is reloaded: editors that truncate and write later, or write in pieces,
 * never get a half-written version loaded. */
#define SETTLE_MS 100

#define DEFAULT_INSTRUCTIONS 200000000L
#define DEFAULT_TIME_MS      1000L
#define DEFAULT_MEMORY_MB    1024L
#define DEFAULT_FILE_BYTES   (4L << 20)
#define DEFAULT_ENV_ALLOW    "SCRIPT_*"

enum { LIVE, KILLED_INSTRUCTIONS, KILLED_TIME, KILLED_MEMORY };

/* A rejected version that left this much garbage is collected at once (a full collection
 * of a large state costs a moment of the loop, so a plain syntax error does not pay it),
 * and the allocator is trimmed when this much of its pool (and a quarter of what is in
 * use) is free. */
#define COLLECT_WORTH ((size_t)16 << 20)
#define TRIM_WORTH    ((size_t)8 << 20)

typedef struct {
    double at;
    int ok;
    int version;
    char reason[32];
    char *error;
} reload_event;

struct jn_script {
    jn_script_host *host;
    char *name, *path, *dir, *base;
    char *shown; /* path as messages print it (jn_visible) */
    jn_script_check_cb check;
    void *ud;
    int module_ref, state_ref;
    int version;
    char sha[65];
    double loaded_at;
    int pending;
    struct stat seen; /* the file as the watcher last looked at it */
    int seen_ok, settle_tries;
    reload_event history[HISTORY];
    int nhistory; /* total ever recorded; the ring keeps the last HISTORY */
    jn_metric *m_ok, *m_err;
    jn_script *next;
};

typedef struct watcher {
    uv_fs_event_t ev;
    char *dir;
    jn_script_host *host;
    struct watcher *next;
} watcher;

struct jn_script_host {
    uv_loop_t *loop;
    lua_State *L;
    jn_script_opts opts;
    jn_script *scripts;
    watcher *watchers;
    uv_timer_t debounce;
    int debounce_init;
    jn_lua_alloc *alloc;
    size_t memory_limit;
    char **roots; /* realpath of each scripts.read_paths entry; NULL: the script's folder */
    char *stock;  /* folder of the stock scripts (require "stock.<name>") */
    int nroots;
    /* The call in progress. */
    long budget;       /* instructions left */
    uint64_t deadline; /* CLOCK_MONOTONIC_COARSE milliseconds */
    uint64_t started;  /* when the call started, on the same clock */
    /* The thread's CPU time and the clock when the hook first ran in this call (cpu_mark
     * 0: not yet), so that a call can be judged on the CPU it used (see starved). */
    uint64_t cpu_mark, wall_mark;
    int killed;     /* LIVE, or which limit it passed: raised on every instruction */
    int depth;      /* nested calls (a check calling generate) */
    unsigned ticks; /* hook ticks, for looking at the clock every 16th */
    /* Watchdog mode: whether it found the call running (the hook is on), and the
     * coroutine the call is running now, which the hook must reach too (a coroutine
     * made before the hook was set has none). Written in signal context: volatile. */
    volatile sig_atomic_t fired;
    lua_State *volatile running;
    int nomem_ref; /* "not enough memory", made before any ceiling is met */
    jn_script_meter meter;
    int open_handles;
};

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

/* ---- limits ------------------------------------------------------------------------ */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static jn_script_host *host_of(lua_State *L) {
    return *(jn_script_host **)lua_getextraspace(L);
}

static int raise_limit(lua_State *L, jn_script_host *h) {
    if (h->killed == KILLED_MEMORY) {
        /* Nothing the call does from here can grow (every instruction raises before it
         * runs), so the ceiling comes off: the allocations of unwinding (error values,
         * the traceback) would each cost an emergency collection at it. The message is
         * made in advance for the same reason; jn_script_pcall names the limit. */
        if (h->alloc) jn_lua_alloc_set_limit(h->alloc, 0);
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->nomem_ref);
        return lua_error(L);
    }
    if (h->killed == KILLED_TIME)
        return luaL_error(L,
                          "time limit of %I ms exceeded (a runaway loop or a costly "
                          "pattern?); fix the script or raise scripts.time_limit_ms",
                          (lua_Integer)h->opts.time_limit_ms);
    return luaL_error(L,
                      "instruction limit of %I exceeded (a runaway loop?); fix the script or "
                      "raise scripts.instruction_limit",
                      (lua_Integer)h->opts.instruction_limit);
}

static size_t refused(jn_script_host *h) {
    jn_lua_alloc_stats st = {0};
    if (h->alloc) jn_lua_alloc_get_stats(h->alloc, &st);
    return st.refused;
}

/* The calling thread's CPU time: what a call used, without the time it waited for a CPU. */
static uint64_t cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1; /* never 0 */
}

/* Notes the thread's CPU time and the clock, once per call (see starved). */
static void mark_cpu(jn_script_host *h) {
    if (!h->cpu_mark) h->cpu_mark = cpu_ms(), h->wall_mark = now_ms();
}

/* Whether a call past its deadline ran for less than the time limit: on a machine short
 * of CPU a process can wait seconds for one (the soak saw a products message skipped
 * so, and the table missed that version). Its time is the clock's until the hook first
 * ran (a few milliseconds in) plus the CPU time since; when that is under the limit, the
 * deadline moves to where the rest of it would end. */
static int starved(jn_script_host *h, uint64_t now) {
    if (!h->cpu_mark) return 0;
    uint64_t used =
        (h->wall_mark > h->started ? h->wall_mark - h->started : 0) + (cpu_ms() - h->cpu_mark);
    uint64_t limit = (uint64_t)h->opts.time_limit_ms;
    if (used >= limit) return 0;
    h->deadline = now + (limit - used);
    return 1;
}

/* Decides whether the call is over its limits; once it is, it stays so until the host's
 * pcall returns. (A refused allocation stops the call through on_refused.) */
static int over_limits(jn_script_host *h) {
    if (h->killed) return 1;
    uint64_t now;
    if (h->budget < 0)
        h->killed = KILLED_INSTRUCTIONS;
    else if ((now = now_ms()) > h->deadline && !starved(h, now))
        h->killed = KILLED_TIME;
    return h->killed != LIVE;
}

/* Runs every HOOK_EVERY instructions, and on every instruction of a thread once the call
 * was stopped: a pcall inside the script catches the first error, and the very next
 * instruction raises it again, until the whole call has unwound. */
static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    jn_script_host *h = host_of(L);
    mark_cpu(h);
    if (!h->killed) {
        /* A coroutine stopped in an earlier call may still tick on every instruction. */
        int every = lua_gethookcount(L);
        h->budget -= every;
        /* The clock and the allocator are looked at every 16th tick (16,000 instructions,
         * well under a millisecond): the hook runs a few times per merge call, and the
         * look costs more than the count. */
        if (h->budget >= 0 && (++h->ticks & 15) != 0) {
            if (every != HOOK_EVERY) lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
            return;
        }
        if (!over_limits(h)) {
            if (every != HOOK_EVERY) lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
            return;
        }
    }
    if (lua_gethookcount(L) != 1) lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    raise_limit(L, h);
}

/* The allocator refused a request: the call is over. Lua raises "not enough memory"
 * for it, which the script may catch; the hook then raises again at once, before the
 * script can ask (and the collector run in vain) again and again. */
static void on_refused(void *ud) {
    jn_script_host *h = ud;
    if (h->depth == 0 || h->killed) return;
    h->killed = KILLED_MEMORY;
    lua_sethook(h->L, count_hook, LUA_MASKCOUNT, 1);
    lua_State *co = h->running;
    if (co) lua_sethook(co, count_hook, LUA_MASKCOUNT, 1);
}

/* The watchdog found the call still running (signal context: only lua_sethook, which
 * Lua allows there). From the next instruction on, the call is bounded by the hook. */
static void on_watchdog(void *ud) {
    jn_script_host *h = ud;
    h->fired = 1;
    /* Marked here, not only at the first hook: a call that made a blocking C call before
     * the watchdog's tick runs its next instruction only when that returns, and would be
     * judged on the clock up to then (clock_gettime is safe in a signal handler). */
    mark_cpu(h);
    lua_sethook(h->L, count_hook, LUA_MASKCOUNT, 1);
    lua_State *co = h->running;
    if (co) lua_sethook(co, count_hook, LUA_MASKCOUNT, 1);
}

/* coroutine.resume, telling the watchdog which thread runs: a hook set on the main
 * thread does not reach a coroutine, which runs on its own. Upvalue 1 is Lua's resume. */
static int l_co_resume(lua_State *L) {
    jn_script_host *h = host_of(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (h->fired && !lua_gethook(co)) lua_sethook(co, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_State *prev = h->running;
    /* Anchored, so that a resume that raises (and leaves `running` behind until the call
     * ends) never leaves the handler a thread the collector freed. */
    static const char anchor = 0;
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor);
    h->running = co;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    h->running = prev;
    return lua_gettop(L);
}

/* coroutine.wrap's function: resumes through l_co_resume (upvalue 2) the coroutine in
 * upvalue 1, and raises its error as Lua's wrap does, with the caller's place. */
static int l_co_wrapped(lua_State *L) {
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_rotate(L, 1, 2);
    lua_call(L, n + 1, LUA_MULTRET);
    if (!lua_toboolean(L, 1)) {
        lua_State *co = lua_tothread(L, lua_upvalueindex(1));
        int st = lua_status(co);
        if (st != LUA_OK && st != LUA_YIELD) lua_resetthread(co); /* closes its variables */
        if (lua_type(L, 2) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, 2);
            lua_concat(L, 2);
        }
        lua_settop(L, 2);
        return lua_error(L);
    }
    return lua_gettop(L) - 1;
}

/* coroutine.wrap(f), made of coroutine.create (upvalue 1) and l_co_wrapped. */
static int l_co_wrap(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushcclosure(L, l_co_wrapped, 2);
    return 1;
}

/* What the bounded C functions (script_strlib.c) call for their work. */
static void meter_charge(lua_State *L, void *ud, long cost) {
    jn_script_host *h = ud;
    h->budget -= cost;
    /* A call the watchdog found running marks its CPU time here too: a long pattern may
     * keep the hook from running (see starved). */
    if (h->fired) mark_cpu(h);
    if (over_limits(h)) {
        if (lua_gethookcount(L) != 1) lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        raise_limit(L, h);
    }
}

/* A full collection that leaves the generational mode set up as it was: switching to
 * incremental and back runs a complete cycle (Lua 5.4.4 mis-times minor collections
 * after a plain LUA_GCCOLLECT in generational mode). Then the allocator hands every
 * chunk the collection emptied back to the system. */
static void collect_all(jn_script_host *h) {
    lua_gc(h->L, LUA_GCINC, 0, 0, 0);
    lua_gc(h->L, LUA_GCGEN, 0, 0);
    jn_lua_alloc_stats st;
    if (!h->alloc) return;
    jn_lua_alloc_get_stats(h->alloc, &st);
    /* Trimming walks every free block: worth it only when much is free. */
    size_t free_bytes = st.reserved > st.in_use ? st.reserved - st.in_use : 0;
    if (free_bytes > TRIM_WORTH && free_bytes > st.in_use / 4) jn_lua_alloc_trim(h->alloc);
}

static size_t in_use(jn_script_host *h) {
    jn_lua_alloc_stats st = {0};
    if (h->alloc) jn_lua_alloc_get_stats(h->alloc, &st);
    return st.in_use;
}

/* ---- sandbox ----------------------------------------------------------------------- */

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int undefined_global(lua_State *L) {
    const char *k = lua_tostring(L, 2);
    return luaL_error(L,
                      "read of undefined global '%s' (declare it with `local` or check "
                      "the spelling)",
                      k ? k : "?");
}

static int sandbox_print(lua_State *L) {
    jn_sb sb;
    jn_sb_init(&sb);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1) jn_sb_putc(&sb, '\t');
        jn_sb_append(&sb, s, len);
        lua_pop(L, 1);
    }
    jn_log_info(jn_lua_current_script(), "%s", sb.data ? sb.data : "");
    jn_sb_free(&sb);
    return 0;
}

/* Reads a script file: a regular file (not a folder, a FIFO or /dev/zero) of at most
 * max bytes. Returns the text (malloc'd) or NULL with *err set. */
static char *read_script_file(const char *path, long max, size_t *len, char **err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int open_errno = errno;
        if (fd >= 0) close(fd);
        char *shown = jn_visible(path);
        *err = jn_errorf("cannot open %s: %s", shown, strerror(open_errno));
        free(shown);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        char *shown = jn_visible(path);
        *err = jn_errorf("%s is %s, not a regular file; point the config at a .lua file", shown,
                         S_ISDIR(st.st_mode) ? "a folder" : "a device, FIFO or socket");
        free(shown);
        close(fd);
        return NULL;
    }
    jn_sb sb;
    jn_sb_init(&sb);
    char chunk[16384];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        if ((long)(sb.len + (size_t)n) > max) {
            char *shown = jn_visible(path);
            *err = jn_errorf("%s is larger than %ld bytes; scripts.max_file_bytes sets the limit",
                             shown, max);
            free(shown);
            close(fd);
            jn_sb_free(&sb);
            return NULL;
        }
        jn_sb_append(&sb, chunk, (size_t)n);
    }
    int read_errno = errno;
    close(fd);
    if (n < 0) {
        char *shown = jn_visible(path);
        *err = jn_errorf("cannot read %s: %s", shown, strerror(read_errno));
        free(shown);
        jn_sb_free(&sb);
        return NULL;
    }
    *len = sb.len;
    char *text = jn_sb_steal(&sb);
    return text ? text : xstrdup("");
}

/* load() that only takes text of bounded size and defaults to the caller's sandbox,
 * never the real _G. The parser runs without hook ticks, hence the size cap. */
static int sandbox_load(lua_State *L) {
    jn_script_host *h = host_of(L);
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "load: only strings of code (a reader function is not supported)");
    const char *code = lua_tolstring(L, 1, &len);
    const char *chunkname = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks (mode \"t\")");
    if ((long)len > h->opts.max_file_bytes)
        return luaL_error(L, "load: a chunk of %I bytes is over scripts.max_file_bytes (%I)",
                          (lua_Integer)len, (lua_Integer)h->opts.max_file_bytes);
    if (luaL_loadbufferx(L, code, len, chunkname, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4))
        lua_pushvalue(L, 4);
    else
        lua_pushvalue(L, lua_upvalueindex(1));
    lua_setupvalue(L, -2, 1);
    return 1;
}

/* Whether a script living in dir may read path: the file, links resolved, must lie under
 * one of scripts.read_paths, or under the script's own folder when none is set. A path
 * that does not resolve is left to io.open, which reports it as usual. */
static int path_allowed(jn_script_host *h, const char *dir, const char *path) {
    char real[PATH_MAX], root[PATH_MAX];
    if (!realpath(path, real)) return 1;
    /* A FIFO or a device would block the loop or never end. */
    struct stat st;
    if (stat(real, &st) == 0 && !S_ISREG(st.st_mode)) return 0;
    for (int i = 0; i < (h->roots ? h->nroots : 1); i++) {
        const char *r = h->roots ? h->roots[i] : realpath(dir, root);
        if (!r) continue;
        size_t n = strlen(r);
        if (!strncmp(real, r, n) && (real[n] == '/' || real[n] == '\0' || !strcmp(r, "/")))
            return 1;
    }
    return 0;
}

static int refuse_path(lua_State *L, const char *fn, const char *path) {
    return luaL_error(L,
                      "%s: %s is not a regular file under the folders scripts may read; "
                      "scripts.read_paths lists them",
                      fn, path);
}

/* io.open limited to reading, and to the allowed folders, unless scripts.allow_write is
 * set. Upvalues: the real io.open, the script's folder. */
static int sandbox_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
        return luaL_error(L,
                          "io.open: mode \"%s\" writes a file; scripts may only read "
                          "unless scripts.allow_write = true",
                          mode);
    if (!path_allowed(host_of(L), lua_tostring(L, lua_upvalueindex(2)), path))
        return refuse_path(L, "io.open", path);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* io.lines(path, ...) under the same folders; io.lines() would read the host's stdin. */
static int sandbox_lines(lua_State *L) {
    if (lua_isnoneornil(L, 1))
        return luaL_error(L, "io.lines: name a file (scripts cannot read standard input)");
    const char *path = luaL_checkstring(L, 1);
    if (!path_allowed(host_of(L), lua_tostring(L, lua_upvalueindex(2)), path))
        return refuse_path(L, "io.lines", path);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* os.getenv under the same allow list as junction.env: secrets live in the environment. */
static int sandbox_getenv(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (!jn_lua_env_allowed(name))
        return luaL_error(L,
                          "os.getenv: %s is not in scripts.env_allow; add the name (or a "
                          "PREFIX_* pattern) there to let scripts read it",
                          name);
    luaL_pushfail(L);
    const char *v = getenv(name);
    if (v) lua_pushstring(L, v);
    return 1;
}

/* setmetatable without __gc: a finalizer runs whenever the collector runs, outside any
 * call and so outside every limit. Upvalue: the real setmetatable. */
static int sandbox_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int t = lua_rawget(L, 2);
        lua_pop(L, 1);
        if (t != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc finalizers are not available to scripts "
                                 "(they would run outside the call limits)");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* A message handler given to xpcall. Lua calls it from inside the count hook when the
 * hook raises a limit error, and hooks are off there: a handler that loops would never be
 * stopped. So once the call is past its limits the handler is skipped and the error goes
 * through as it is. Upvalue: the script's handler. */
static int guarded_handler(lua_State *L) {
    if (host_of(L)->killed) return lua_gettop(L) > 0 ? 1 : 0;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext base) {
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)base;
}

/* xpcall(f, handler, ...) with the handler guarded as above; yields inside f work as in
 * the stock xpcall (the continuation finishes the call). */
static int sandbox_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result when f does not fail */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
    return xpcall_done(L, status, 2);
}

static int readonly_newindex(lua_State *L) {
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L,
                      "%s is read-only (every script shares it); cannot set %s.%s: keep your "
                      "own table, e.g. local my = setmetatable({}, {__index = %s})",
                      name, name, key, name);
}

static int readonly_pairs(lua_State *L) {
    lua_getglobal(L, "next");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

/* Replaces the module table at the top of the stack with a read-only view of it. */
static void make_readonly(lua_State *L, const char *name) {
    int real = lua_gettop(L);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, readonly_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, real);
}

/* require() reaching only the host's modules (as the sandbox's read-only views), .lua
 * files beside the script, and the stock scripts as "stock.<name>" (so a transform can
 * build on scripts/merge.lua instead of copying it). A module's chunk receives the
 * requiring script's state table as `...`, as the script itself does, so a stock script
 * used as a base keeps its state across reloads of the script that wraps it. Upvalues:
 * 1 env, 2 folder, 3 cache, 4 state. */
static int sandbox_require(lua_State *L) {
    jn_script_host *h = host_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (lua_getfield(L, lua_upvalueindex(3), name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    if (strstr(name, "..") || strchr(name, '/'))
        return luaL_error(L,
                          "require \"%s\": module names are dotted paths inside the "
                          "script's folder",
                          name);
    char path[1024];
    const char *folder = lua_tostring(L, lua_upvalueindex(2)), *rel = name;
    if (!strncmp(name, "stock.", 6)) folder = h->stock, rel = name + 6;
    int n = snprintf(path, sizeof path, "%s/", folder);
    for (const char *p = rel; *p && n < (int)sizeof path - 5; p++)
        path[n++] = *p == '.' ? '/' : *p;
    memcpy(path + n, ".lua", 5);
    size_t len;
    char *err = NULL;
    char *code = read_script_file(path, h->opts.max_file_bytes, &len, &err);
    if (!code) {
        lua_pushfstring(L, "require \"%s\": %s", name, err);
        free(err);
        return lua_error(L);
    }
    /* Lua names the chunk in every message and traceback line. Made before any Lua call
     * that could raise: none may skip the frees. */
    char chunkname[4 * sizeof path + 2];
    char *shown = jn_visible(path);
    snprintf(chunkname, sizeof chunkname, "@%s", shown);
    free(shown);
    int rc = luaL_loadbufferx(L, code, len, chunkname, "t");
    free(code);
    if (rc != LUA_OK) return luaL_error(L, "require \"%s\": %s", name, lua_tostring(L, -1));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setupvalue(L, -2, 1);
    lua_pushvalue(L, lua_upvalueindex(4));
    lua_pushstring(L, name);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, lua_upvalueindex(3), name);
    return 1;
}

/* Copies the named fields of global library `lib` into a new table set as env[lib]. */
static void copy_lib(lua_State *L, int env, const char *lib, const char *const *only) {
    lua_getglobal(L, lib);
    int src = lua_gettop(L);
    lua_newtable(L);
    if (only) {
        for (; *only; only++) {
            lua_getfield(L, src, *only);
            lua_setfield(L, -2, *only);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, src)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
    }
    lua_setfield(L, env, lib);
    lua_pop(L, 1);
}

/* Pushes a fresh sandbox environment for a script living in folder dir, whose state
 * table is at state_ref. */
static void push_env(jn_script_host *h, const char *dir, int state_ref) {
    lua_State *L = h->L;
    static const char *const base[] = {
        "assert", "error",        "ipairs",       "next",     "pairs",    "pcall",  "xpcall",
        "select", "tonumber",     "tostring",     "type",     "rawequal", "rawget", "rawset",
        "rawlen", "setmetatable", "getmetatable", "_VERSION", NULL};
    static const char *const os_read[] = {"clock", "date", "difftime", "getenv", "time", NULL};
    static const char *const os_write[] = {"clock",  "date",   "difftime", "getenv", "time",
                                           "remove", "rename", "tmpname",  NULL};
    static const char *const os_all[] = {"clock",  "date",   "difftime", "getenv",  "time",
                                         "remove", "rename", "tmpname",  "execute", NULL};
    static const char *const io_read[] = {"lines", "type", NULL};
    static const char *const io_write[] = {"lines", "type",   "open",   "close", "read",
                                           "write", "stdout", "stderr", NULL};

    lua_newtable(L);
    int env = lua_gettop(L);
    for (const char *const *g = base; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, env, *g);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    copy_lib(L, env, "string", NULL);
    copy_lib(L, env, "table", NULL);
    copy_lib(L, env, "math", NULL);
    copy_lib(L, env, "utf8", NULL);
    copy_lib(L, env, "coroutine", NULL);
    lua_getfield(L, env, "coroutine");
    lua_getfield(L, -1, "create");
    lua_getfield(L, -2, "resume");
    lua_pushcclosure(L, l_co_resume, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "resume");
    lua_pushcclosure(L, l_co_wrap, 2); /* create, our resume */
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
    copy_lib(L, env, "os", h->opts.allow_exec ? os_all : h->opts.allow_write ? os_write : os_read);
    copy_lib(L, env, "io", h->opts.allow_write ? io_write : io_read);
    lua_getfield(L, env, "io");
    if (h->opts.allow_exec) {
        lua_getglobal(L, "io");
        lua_getfield(L, -1, "popen");
        lua_setfield(L, -3, "popen");
        lua_pop(L, 1);
    }
    if (!h->opts.allow_write) {
        lua_getglobal(L, "io");
        lua_getfield(L, -1, "open");
        lua_pushstring(L, dir);
        lua_pushcclosure(L, sandbox_open, 2);
        lua_setfield(L, -3, "open");
        lua_pop(L, 1);
    }
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "lines");
    lua_pushstring(L, dir);
    lua_pushcclosure(L, sandbox_lines, 2);
    lua_setfield(L, -3, "lines");
    lua_pop(L, 2);
    lua_getfield(L, env, "os");
    lua_pushcfunction(L, sandbox_getenv);
    lua_setfield(L, -2, "getenv");
    lua_pop(L, 1);
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, sandbox_setmetatable, 1);
    lua_setfield(L, env, "setmetatable");
    lua_pushcfunction(L, sandbox_xpcall);
    lua_setfield(L, env, "xpcall");

    /* junction and cjson as read-only views; cjson as an instance of its own, since its
     * settings (encode_max_depth, ...) live in the instance. */
    lua_newtable(L); /* the require cache */
    int cache = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "jn.modules");
    lua_getfield(L, -1, "junction");
    make_readonly(L, "junction");
    lua_pushvalue(L, -1);
    lua_setfield(L, env, "junction");
    lua_setfield(L, cache, "junction");
    lua_getfield(L, -1, "cjson");
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    make_readonly(L, "cjson");
    lua_setfield(L, cache, "cjson");
    lua_pop(L, 2);

    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, env, "print");
    lua_pushvalue(L, env);
    lua_pushcclosure(L, sandbox_load, 1);
    lua_setfield(L, env, "load");
    lua_pushvalue(L, env);
    lua_pushstring(L, dir);
    lua_pushvalue(L, cache);
    lua_rawgeti(L, LUA_REGISTRYINDEX, state_ref);
    lua_pushcclosure(L, sandbox_require, 4);
    lua_setfield(L, env, "require");
    lua_pop(L, 1); /* cache */

    lua_newtable(L);
    lua_pushcfunction(L, undefined_global);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, env);
}

/* ---- calls ------------------------------------------------------------------------- */

int jn_script_pcall(jn_script *s, int nargs, int nresults, char **err) {
    jn_script_host *h = s->host;
    lua_State *L = h->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    const char *prev = jn_lua_current_script();
    jn_lua_set_current_script(s->name);
    /* A nested call (a check running generate) gets limits of its own and gives the outer
     * call its own back afterwards. */
    long outer_budget = h->budget;
    uint64_t outer_deadline = h->deadline, outer_started = h->started;
    uint64_t outer_cpu_mark = h->cpu_mark, outer_wall_mark = h->wall_mark;
    int outer_killed = h->killed;
    size_t refused_before = refused(h);
    if (h->depth++ == 0) {
        if (h->alloc) jn_lua_alloc_set_limit(h->alloc, h->memory_limit);
        h->fired = 0;
        h->running = NULL;
        if (h->opts.instruction_limit < WATCHDOG_MIN_LIMIT ||
            jn_watchdog_enter(on_watchdog, h) != 0)
            lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    }
    h->budget = h->opts.instruction_limit;
    h->started = now_ms();
    h->deadline = h->started + (uint64_t)h->opts.time_limit_ms;
    h->cpu_mark = 0;
    h->killed = LIVE;
    int rc = lua_pcall(L, nargs, nresults, base);
    int hit_ceiling = refused(h) != refused_before;
    if (--h->depth == 0) {
        /* Host code between calls neither pays for the hook nor meets the ceiling: an
         * allocation failing outside lua_pcall would end the process. */
        jn_watchdog_leave();
        h->running = NULL;
        lua_sethook(L, NULL, 0, 0);
        if (h->alloc) jn_lua_alloc_set_limit(h->alloc, 0);
    } else {
        h->budget = outer_budget;
        h->deadline = outer_deadline;
        h->started = outer_started;
        h->cpu_mark = outer_cpu_mark, h->wall_mark = outer_wall_mark;
        h->killed = outer_killed;
    }
    jn_lua_set_current_script(prev);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (rc == LUA_ERRMEM || hit_ceiling) {
            *err = jn_errorf("%s (memory limit of %ld MB reached; free what the script keeps or "
                             "raise scripts.memory_limit_mb)",
                             msg ? msg : "not enough memory", h->opts.memory_limit_mb);
        } else {
            *err = jn_errorf("%s", msg ? msg : "(error without a message)");
        }
        lua_pop(L, 1);
    }
    /* What the call piled up before the ceiling stopped it is garbage now: collect it
     * and give the memory back, so one bad call does not keep the process at the
     * ceiling. */
    if (hit_ceiling && h->depth == 0) collect_all(h);
    return rc == LUA_OK ? 0 : -1;
}

/* The length of a source position "<source>:<line>: " at the start of the n bytes at s,
 * or 0. The source must look like one Lua names (luaL_where): a path (a '/', a .lua
 * name, or "..." and its end when Lua cut it short) or [string "..."]; so a message such
 * as "at 12:30: closed", without a position, keeps its words. */
static size_t position_length(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ':') continue;
        size_t j = i + 1;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            j++;
        if (j == i + 1 || j + 1 >= n || s[j] != ':' || s[j + 1] != ' ') {
            if (j == i + 1 && j < n && s[j] == ' ') return 0; /* words before ": " */
            continue;
        }
        int source = memchr(s, '/', i) || (i > 4 && !memcmp(s + i - 4, ".lua", 4)) ||
                     !strncmp(s, "...", 3) || !strncmp(s, "[string ", 8);
        return source ? j + 2 : 0;
    }
    return 0;
}

size_t jn_script_error_brief(const char *err, const char **start) {
    const char *nl = strchr(err, '\n');
    size_t n = nl ? (size_t)(nl - err) : strlen(err);
    /* An error raised again on its way out carries one position per level. */
    for (size_t skip; (skip = position_length(err, n)) > 0;)
        err += skip, n -= skip;
    *start = err;
    return n;
}

/* Looks a function up through the module's metatable, as a call: __index may be Lua. */
static int lookup_function(lua_State *L) {
    lua_gettable(L, 1);
    return 1;
}

int jn_script_push_function(jn_script *s, const char *fn, char **err) {
    lua_State *L = s->host->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->module_ref);
    if (jn_lua_rawgetfield(L, -1, fn) != LUA_TFUNCTION && lua_getmetatable(L, -2)) {
        lua_pop(L, 2);
        lua_pushcfunction(L, lookup_function);
        lua_insert(L, -2);
        lua_pushstring(L, fn);
        if (jn_script_pcall(s, 2, 1, err) != 0) return -1;
    } else {
        lua_remove(L, -2);
    }
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        *err = jn_errorf("%s: the script has no function %s", s->shown, fn);
        return -1;
    }
    return 0;
}

int jn_script_call(jn_script *s, const char *fn, int nargs, int nresults, char **err) {
    lua_State *L = s->host->L;
    if (jn_script_push_function(s, fn, err) != 0) {
        lua_pop(L, nargs);
        return -1;
    }
    lua_insert(L, -nargs - 1);
    return jn_script_pcall(s, nargs, nresults, err);
}

/* ---- loading ----------------------------------------------------------------------- */

static void record(jn_script *s, int ok, const char *reason, const char *error) {
    reload_event *e = &s->history[s->nhistory % HISTORY];
    free(e->error);
    e->at = now_s();
    e->ok = ok;
    e->version = s->version;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    e->error = error ? xstrdup(error) : NULL;
    s->nhistory++;
    jn_metric_add(ok ? s->m_ok : s->m_err, 1);
}

/* The owner's check, run as a call: it reads fields of a module the script built (any
 * metatable included) and may call into the script itself. Arguments: the script as a
 * light userdata, the module. */
static int run_check(lua_State *L) {
    jn_script *s = lua_touserdata(L, 1);
    char **err = lua_touserdata(L, 2);
    lua_settop(L, 3); /* the module at the top, as the check expects */
    if (s->check(s, s->ud, err) != 0 && !*err) *err = jn_errorf("rejected by its check");
    return 0;
}

/* load_version's result when skip_same found the file as the running version: not an
 * error, nothing was loaded. */
#define VERSION_SAME 1

/* Compiles, runs and checks a new version; swaps it in only if every step passed.
 * Returns 0, VERSION_SAME, or -1 with *err. */
static int load_version(jn_script *s, const char *reason, int skip_same, char **err) {
    jn_script_host *h = s->host;
    lua_State *L = h->L;
    size_t len;
    char *code = read_script_file(s->path, h->opts.max_file_bytes, &len, err);
    if (!code) return -1;
    char sha[65];
    jn_sha256_hex(code, len, sha);
    if (skip_same && !strcmp(sha, s->sha)) {
        free(code);
        return VERSION_SAME;
    }
    char *chunkname = jn_errorf("@%s", s->shown);
    int rc = luaL_loadbufferx(L, code, len, chunkname, "t");
    free(chunkname);
    free(code);
    if (rc != LUA_OK) {
        *err = jn_errorf("%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    push_env(h, s->dir, s->state_ref);
    lua_setupvalue(L, -2, 1);
    jn_script_push_state(s);
    if (jn_script_pcall(s, 1, 1, err) != 0) return -1;
    if (!lua_istable(L, -1)) {
        int none = lua_isnil(L, -1);
        *err = jn_errorf(
            "%s must return a table of functions (end the file with `return M`), got %s%s%s",
            s->shown, none ? "nothing" : "a ", none ? "" : luaL_typename(L, -1),
            none ? " (an empty or half-saved file returns nothing)" : "");
        lua_pop(L, 1);
        return -1;
    }
    if (s->check) {
        char *check_err = NULL;
        lua_pushcfunction(L, run_check);
        lua_pushlightuserdata(L, s);
        lua_pushlightuserdata(L, &check_err);
        lua_pushvalue(L, -4);
        int prc = jn_script_pcall(s, 3, 0, err);
        if (prc != 0 || check_err) {
            if (check_err) {
                if (prc != 0) free(*err);
                *err = check_err;
            }
            lua_pop(L, 1);
            return -1;
        }
    }
    if (s->module_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->module_ref);
    s->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    memcpy(s->sha, sha, sizeof sha);
    s->version++;
    s->loaded_at = now_s();
    record(s, 1, reason, NULL);
    return 0;
}

static int reload(jn_script *s, const char *reason, int skip_same) {
    char *err = NULL;
    size_t before = in_use(s->host);
    int rc = load_version(s, reason, skip_same, &err);
    if (rc == VERSION_SAME) return 0;
    if (rc == 0) {
        jn_log_info("script", "%s: loaded version %d from %s (%s)", s->name, s->version, s->shown,
                    reason);
        return 0;
    }
    record(s, 0, reason, err);
    jn_log_error("script", "%s: reload (%s) rejected, version %d keeps running: %s", s->name,
                 reason, s->version, err);
    free(err);
    /* Whatever the rejected version built (a huge table, a generated data set) is
     * garbage now: collect it and return the memory. A call that hit the ceiling has
     * done so already. */
    if (in_use(s->host) > before + COLLECT_WORTH) collect_all(s->host);
    return -1;
}

static void free_script(jn_script *s) {
    for (int i = 0; i < HISTORY; i++)
        free(s->history[i].error);
    free(s->name), free(s->path), free(s->shown), free(s->dir), free(s->base), free(s);
}

jn_script *jn_script_add(jn_script_host *h, const char *name, const char *path,
                         jn_script_check_cb check, void *ud, char **err) {
    jn_script *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->host = h;
    s->name = xstrdup(name);
    /* From here on the script is the file found, wherever the process runs from. */
    s->path = jn_paths_find(path);
    path = s->path;
    s->shown = jn_visible(path);
    const char *slash = strrchr(path, '/');
    s->dir = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
    s->base = xstrdup(slash ? slash + 1 : path);
    s->check = check;
    s->ud = ud;
    s->module_ref = LUA_NOREF;
    lua_newtable(h->L);
    s->state_ref = luaL_ref(h->L, LUA_REGISTRYINDEX);
    char labels[200];
    snprintf(labels, sizeof labels, "script=\"%s\",result=\"ok\"", name);
    s->m_ok = jn_metrics_counter("junction_script_reloads_total",
                                 "Script loads and reloads by result", labels);
    snprintf(labels, sizeof labels, "script=\"%s\",result=\"error\"", name);
    s->m_err = jn_metrics_counter("junction_script_reloads_total",
                                  "Script loads and reloads by result", labels);
    if (load_version(s, "start", 0, err) != 0) {
        char *e = *err;
        *err = jn_errorf("script %s (%s): %s", name, s->shown, e);
        free(e);
        luaL_unref(h->L, LUA_REGISTRYINDEX, s->state_ref);
        free_script(s);
        return NULL;
    }
    jn_log_info("script", "%s: loaded version %d from %s", s->name, s->version, s->shown);
    s->next = h->scripts;
    h->scripts = s;
    return s;
}

void jn_script_remove(jn_script *s) {
    jn_script_host *h = s->host;
    for (jn_script **p = &h->scripts; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    if (s->module_ref != LUA_NOREF) luaL_unref(h->L, LUA_REGISTRYINDEX, s->module_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->state_ref);
    free_script(s);
}

int jn_script_reload(jn_script *s, const char *reason) {
    return reload(s, reason, 0);
}

int jn_script_reload_all(jn_script_host *h, const char *reason) {
    int failed = 0;
    for (jn_script *s = h->scripts; s; s = s->next)
        failed += reload(s, reason, 0) != 0;
    return failed ? -1 : 0;
}

const char *jn_script_name(const jn_script *s) {
    return s->name;
}

int jn_script_version(const jn_script *s) {
    return s->version;
}

void jn_script_push_state(jn_script *s) {
    lua_rawgeti(s->host->L, LUA_REGISTRYINDEX, s->state_ref);
}

void jn_script_push_module(jn_script *s) {
    lua_rawgeti(s->host->L, LUA_REGISTRYINDEX, s->module_ref);
}

/* ---- watching ---------------------------------------------------------------------- */

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reloads each changed script once its file has settled: it looks as it did at the last
 * event, SETTLE_MS ago. A file still changing (or missing, mid-rename) is looked at again
 * later, for at most 2 s, then loaded as it is. */
static void on_debounce(uv_timer_t *t) {
    jn_script_host *h = t->data;
    int again = 0;
    for (jn_script *s = h->scripts; s; s = s->next) {
        if (!s->pending) continue;
        struct stat st;
        int ok = stat(s->path, &st) == 0;
        if ((!ok || !s->seen_ok || !same_file(&st, &s->seen)) && s->settle_tries++ < 20) {
            s->seen_ok = ok;
            if (ok) s->seen = st;
            again = 1;
            continue;
        }
        /* Editors save through temp files and renames: an unchanged hash means nothing
         * new arrived for this script itself, unless a sibling module changed. */
        reload(s, "file changed", s->pending == 1);
        s->pending = 0;
    }
    if (again) uv_timer_start(&h->debounce, on_debounce, SETTLE_MS, 0);
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events, int status) {
    (void)events;
    watcher *w = ev->data;
    jn_script_host *h = w->host;
    if (status < 0 || !filename) return;
    size_t n = strlen(filename);
    if (n < 4 || strcmp(filename + n - 4, ".lua") != 0) return;
    int own = 0;
    for (jn_script *s = h->scripts; s; s = s->next)
        if (!strcmp(s->dir, w->dir) && !strcmp(s->base, filename)) s->pending = 1, own = 1;
    if (!own) /* a module some script of this folder may require */
        for (jn_script *s = h->scripts; s; s = s->next)
            if (!strcmp(s->dir, w->dir)) s->pending = 2;
    for (jn_script *s = h->scripts; s; s = s->next)
        if (s->pending) {
            s->seen_ok = stat(s->path, &s->seen) == 0;
            s->settle_tries = 0;
        }
    uv_timer_start(&h->debounce, on_debounce, SETTLE_MS, 0);
}

int jn_script_watch(jn_script_host *h) {
    for (jn_script *s = h->scripts; s; s = s->next) {
        int seen = 0;
        for (watcher *w = h->watchers; w; w = w->next)
            seen |= !strcmp(w->dir, s->dir);
        if (seen) continue;
        watcher *w = calloc(1, sizeof *w);
        if (!w) abort();
        w->dir = xstrdup(s->dir);
        w->host = h;
        uv_fs_event_init(h->loop, &w->ev);
        w->ev.data = w;
        int rc = uv_fs_event_start(&w->ev, on_fs_event, w->dir, 0);
        if (rc < 0) {
            char *shown = jn_visible(w->dir);
            jn_log_warn("script",
                        "cannot watch %s for changes (%s); reload with SIGHUP or "
                        "POST /api/reload instead",
                        shown, uv_strerror(rc));
            free(shown);
            uv_close((uv_handle_t *)&w->ev, (uv_close_cb)free);
            free(w->dir);
            continue;
        }
        w->next = h->watchers;
        h->watchers = w;
    }
    return 0;
}

/* ---- life -------------------------------------------------------------------------- */

jn_script_host *jn_script_host_new(uv_loop_t *loop, const jn_script_opts *opts) {
    jn_script_host *h = calloc(1, sizeof *h);
    if (!h) abort();
    h->loop = loop;
    h->opts = *opts;
    if (h->opts.instruction_limit <= 0) h->opts.instruction_limit = DEFAULT_INSTRUCTIONS;
    if (h->opts.time_limit_ms <= 0) h->opts.time_limit_ms = DEFAULT_TIME_MS;
    if (h->opts.memory_limit_mb <= 0) h->opts.memory_limit_mb = DEFAULT_MEMORY_MB;
    if (h->opts.max_file_bytes <= 0) h->opts.max_file_bytes = DEFAULT_FILE_BYTES;
    h->opts.read_paths = NULL; /* not kept: resolved into roots below */
    h->opts.env_allow = NULL;
    h->opts.stock_path = NULL;
    if (opts->stock_path && *opts->stock_path) {
        h->stock = xstrdup(opts->stock_path);
    } else {
        /* The scripts/ that came with this binary; a junction without one (copied alone)
         * looks in the working directory, as it always did. */
        const char *home = jn_paths_home();
        jn_sb sb;
        jn_sb_init(&sb);
        if (home) {
            jn_sb_puts(&sb, home);
            jn_sb_putc(&sb, '/');
        }
        jn_sb_puts(&sb, "scripts");
        h->stock = jn_sb_steal(&sb);
    }
    jn_lua_set_env_allow(opts->env_allow ? opts->env_allow : DEFAULT_ENV_ALLOW);
    h->memory_limit = (size_t)h->opts.memory_limit_mb << 20;
    if (opts->read_paths && *opts->read_paths) {
        char *list = xstrdup(opts->read_paths), *save = NULL;
        for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            while (*p == ' ')
                p++;
            char real[PATH_MAX];
            if (!*p) continue;
            if (!realpath(p, real)) {
                int e = errno;
                char *shown = jn_visible(p);
                jn_log_warn("script",
                            "scripts.read_paths: %s does not resolve (%s); scripts cannot "
                            "read under it",
                            shown, strerror(e));
                free(shown);
                continue;
            }
            h->roots = realloc(h->roots, sizeof *h->roots * (size_t)(h->nroots + 1));
            if (!h->roots) abort();
            h->roots[h->nroots++] = xstrdup(real);
        }
        free(list);
        /* Folders named but none usable: nothing may be read, rather than everything. */
        if (!h->roots) h->roots = calloc(1, sizeof *h->roots);
    }
    h->meter.charge = meter_charge;
    h->meter.ud = h;
    h->L = jn_lua_alloc_newstate();
    if (!h->L) abort();
    h->alloc = jn_lua_alloc_of(h->L);
    if (h->alloc) jn_lua_alloc_on_refuse(h->alloc, on_refused, h);
    lua_pushliteral(h->L, "not enough memory");
    h->nomem_ref = luaL_ref(h->L, LUA_REGISTRYINDEX);
    /* Generational GC: map and merge calls make short-lived tables per record, which
     * minor collections free without re-marking the long-lived sandboxes and modules.
     * Measured on 100,000 records decoded one by one, mapped to {key, value, headers} and
     * encoded: 20,254 instructions per record incremental, 19,879 generational (-1.9%),
     * wall 169.7 vs 163.4 ms; a page decoded whole then mapped was even (20,434 vs
     * 20,373). Scripts have no collectgarbage; the host's own full collections (after a
     * rejected version or a call that hit the memory ceiling) go through collect_all,
     * which Lua 5.4.4 does not mis-time afterwards as it does a plain LUA_GCCOLLECT in
     * this mode. */
    lua_gc(h->L, LUA_GCGEN, 0, 0);
    *(jn_script_host **)lua_getextraspace(h->L) = h;
    luaL_openlibs(h->L);
    /* Every string shares one metatable; hide it so no script can patch string methods
     * under the others (("x"):upper() still works through the hidden __index). */
    lua_pushliteral(h->L, "");
    lua_getmetatable(h->L, -1);
    lua_pushboolean(h->L, 0);
    lua_setfield(h->L, -2, "__metatable");
    lua_pop(h->L, 2);
    /* The bounded pattern matching, string.rep and table functions go into the real
     * library tables: sandboxes copy them from there, and string methods (s:find(...))
     * reach the real string table through the strings' metatable. */
    lua_getglobal(h->L, "string");
    lua_getglobal(h->L, "table");
    jn_script_strlib_install(h->L, lua_absindex(h->L, -2), lua_absindex(h->L, -1), &h->meter);
    lua_pop(h->L, 2);
    lua_newtable(h->L);
    luaL_requiref(h->L, "junction", luaopen_junction, 0);
    lua_setfield(h->L, -2, "junction");
    luaL_requiref(h->L, "cjson", luaopen_cjson, 0);
    lua_setfield(h->L, -2, "cjson");
    lua_setfield(h->L, LUA_REGISTRYINDEX, "jn.modules");
    uv_timer_init(loop, &h->debounce);
    h->debounce.data = h;
    return h;
}

lua_State *jn_script_host_lua(jn_script_host *h) {
    return h->L;
}

static void on_closed(uv_handle_t *hd) {
    jn_script_host *h = hd->data;
    if (hd->type == UV_FS_EVENT) {
        watcher *w = (watcher *)hd;
        h = w->host;
        free(w->dir);
        free(w);
    }
    if (--h->open_handles > 0) return;
    for (jn_script *s = h->scripts, *n; s; s = n) {
        n = s->next;
        free_script(s);
    }
    jn_lua_alloc_close(h->L);
    for (int i = 0; i < h->nroots; i++)
        free(h->roots[i]);
    free(h->roots);
    free(h->stock);
    free(h);
}

void jn_script_host_close(jn_script_host *h) {
    h->open_handles = 1;
    for (watcher *w = h->watchers, *n; w; w = n) {
        n = w->next;
        h->open_handles++;
        uv_close((uv_handle_t *)&w->ev, on_closed);
    }
    h->watchers = NULL;
    uv_close((uv_handle_t *)&h->debounce, on_closed);
}

void jn_script_host_status_json(jn_script_host *h, jn_sb *out) {
    jn_sb_putc(out, '[');
    for (jn_script *s = h->scripts; s; s = s->next) {
        if (s != h->scripts) jn_sb_putc(out, ',');
        jn_sb_puts(out, "{\"name\":");
        jn_sb_json_string(out, s->name, strlen(s->name));
        jn_sb_puts(out, ",\"path\":");
        jn_sb_json_string(out, s->path, strlen(s->path));
        jn_sb_printf(out, ",\"version\":%d,\"sha256\":\"%s\",\"loaded_at\":%.3f", s->version,
                     s->sha, s->loaded_at);
        const reload_event *last_err = NULL;
        jn_sb_puts(out, ",\"history\":[");
        int first = s->nhistory > HISTORY ? s->nhistory - HISTORY : 0;
        for (int i = s->nhistory - 1; i >= first; i--) {
            const reload_event *e = &s->history[i % HISTORY];
            if (!e->ok && !last_err) last_err = e;
            if (i != s->nhistory - 1) jn_sb_putc(out, ',');
            jn_sb_printf(out, "{\"at\":%.3f,\"result\":\"%s\",\"version\":%d,\"reason\":", e->at,
                         e->ok ? "ok" : "error", e->version);
            jn_sb_json_string(out, e->reason, strlen(e->reason));
            if (e->error) {
                jn_sb_puts(out, ",\"error\":");
                jn_sb_json_string(out, e->error, strlen(e->error));
            }
            jn_sb_putc(out, '}');
        }
        jn_sb_puts(out, "],\"last_error\":");
        if (last_err)
            jn_sb_json_string(out, last_err->error, strlen(last_err->error));
        else
            jn_sb_puts(out, "null");
        jn_sb_putc(out, '}');
    }
    jn_sb_putc(out, ']');
}
