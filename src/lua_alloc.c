/* A size-class pool for Lua. Blocks up to SMALL_MAX bytes are rounded up to a multiple of
 * 16 (malloc's alignment, so any Lua object or userdata fits as it would from malloc) and
 * come from that class's free list, or else are cut from the current chunk. Larger blocks
 * go to realloc/free. Lua passes a block's size back on every free and realloc, so the
 * pool needs no header per block.
 *
 * Freed small blocks stay on their free list until the state is closed, never going back
 * to malloc: a batch of 100,000 records decoded at once holds ~70 MB of small objects,
 * and once the GC frees them that memory stays reserved for the next batch. So a state
 * keeps its peak (collectgarbage("count") shows live bytes, the process RSS shows the
 * peak); lua_close (jn_lua_alloc_close) returns all of it. */
#include "lua_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* ASan checks each malloc'd block on its own but cannot see the blocks inside a chunk,
 * so states use malloc directly in that build. A pool made anyway (the unit test)
 * poisons its free blocks so stale reads and writes still show. */
#define DEFAULT_POOL   0
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define DEFAULT_POOL   1
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN      16
#define SMALL_MAX  512
#define NCLASS     (SMALL_MAX / GRAIN)
#define CHUNK_SIZE (64 * 1024)
/* A chunk starts with its link, padded so the blocks after it keep GRAIN alignment. */
#define CHUNK_HEAD GRAIN

/* Class c holds blocks of (c + 1) * GRAIN bytes; sizes 1..SMALL_MAX map to 0..NCLASS-1. */
#define CLASS_OF(n)   (((n)-1) / GRAIN)
#define CLASS_SIZE(c) (((size_t)(c) + 1) * GRAIN)

typedef struct block {
    struct block *next;
} block;

typedef struct chunk {
    struct chunk *next;
} chunk;

struct jn_lua_alloc {
    block *free[NCLASS];
    char *bump, *end; /* the uncut rest of the newest chunk */
    chunk *chunks;
    size_t in_use, reserved;
    int pool;
};

jn_lua_alloc *jn_lua_alloc_new(int pool) {
    jn_lua_alloc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->pool = pool;
    return a;
}

void jn_lua_alloc_free(jn_lua_alloc *a) {
    if (!a) return;
    for (chunk *c = a->chunks, *n; c; c = n) {
        UNPOISON(c, CHUNK_SIZE);
        n = c->next;
        free(c);
    }
    free(a);
}

void jn_lua_alloc_get_stats(const jn_lua_alloc *a, jn_lua_alloc_stats *out) {
    out->in_use = a->in_use;
    out->reserved = a->reserved;
}

static void push_free(jn_lua_alloc *a, void *p, size_t c) {
    block *b = p;
    b->next = a->free[c];
    a->free[c] = b;
    POISON(b, CLASS_SIZE(c));
}

/* Starts a new chunk. The old one's uncut tail is a multiple of GRAIN smaller than the
 * block that did not fit, so it becomes a free block of a smaller class, not waste. */
static int new_chunk(jn_lua_alloc *a) {
    chunk *c = malloc(CHUNK_SIZE);
    if (!c) return -1;
    size_t tail = (size_t)(a->end - a->bump);
    if (tail >= GRAIN) {
        UNPOISON(a->bump, tail);
        push_free(a, a->bump, CLASS_OF(tail));
    }
    c->next = a->chunks;
    a->chunks = c;
    a->reserved += CHUNK_SIZE;
    a->bump = (char *)c + CHUNK_HEAD;
    a->end = (char *)c + CHUNK_SIZE;
    POISON(a->bump, (size_t)(a->end - a->bump));
    return 0;
}

static void *small_get(jn_lua_alloc *a, size_t c) {
    block *b = a->free[c];
    size_t n = CLASS_SIZE(c);
    if (b) {
        UNPOISON(b, n);
        a->free[c] = b->next;
        return b;
    }
    if ((size_t)(a->end - a->bump) < n && new_chunk(a) != 0) return NULL;
    void *p = a->bump;
    a->bump += n;
    UNPOISON(p, n);
    return p;
}

static void *get(jn_lua_alloc *a, size_t n) {
    return n <= SMALL_MAX ? small_get(a, CLASS_OF(n)) : malloc(n);
}

static void put(jn_lua_alloc *a, void *p, size_t n) {
    if (n <= SMALL_MAX)
        push_free(a, p, CLASS_OF(n));
    else
        free(p);
}

/* The lua_Alloc contract: with ptr NULL, osize is only a hint of the object's type (not
 * a size) and nsize 0 asks for nothing; otherwise osize is exactly the size the block was
 * last given. nsize 0 frees. A NULL return leaves the old block as it was. */
static __attribute__((noinline)) void *slow_path(jn_lua_alloc *a, void *ptr, size_t osize,
                                                 size_t nsize) {
    if (!ptr) osize = 0;
    if (!a->pool) {
        if (nsize == 0) {
            free(ptr);
            a->in_use -= osize;
            return NULL;
        }
        void *p = realloc(ptr, nsize);
        if (p) a->in_use += nsize - osize;
        return p;
    }
    if (nsize == 0) {
        if (ptr) put(a, ptr, osize);
        a->in_use -= osize;
        return NULL;
    }
    void *p;
    if (ptr && osize > SMALL_MAX && nsize > SMALL_MAX) {
        p = realloc(ptr, nsize);
    } else if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX &&
               CLASS_OF(osize) == CLASS_OF(nsize)) {
        p = ptr; /* the block already has room */
    } else {
        p = get(a, nsize);
        if (p && ptr) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            put(a, ptr, osize);
        }
    }
    if (p) a->in_use += nsize - osize;
    return p;
}

/* Most calls make a small block or free one, and a free list has one ready; those two
 * cases stay short enough to need no stack frame, everything else takes slow_path. */
void *jn_lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize) {
    jn_lua_alloc *a = ud;
    if (a->pool) {
        if (!ptr) {
            if (nsize - 1 < SMALL_MAX) { /* 1..SMALL_MAX; 0 wraps around */
                block **head = &a->free[CLASS_OF(nsize)];
                block *b = *head;
                if (b) {
                    UNPOISON(b, CLASS_SIZE(CLASS_OF(nsize)));
                    *head = b->next;
                    a->in_use += nsize;
                    return b;
                }
            }
        } else if (nsize == 0 && osize <= SMALL_MAX) {
            push_free(a, ptr, CLASS_OF(osize));
            a->in_use -= osize;
            return NULL;
        }
    }
    return slow_path(a, ptr, osize, nsize);
}

/* ---- states ------------------------------------------------------------------------ */

/* What luaL_newstate's handlers do: report an error raised outside any pcall (Lua aborts
 * when this returns), and drop warnings until a script sends "@on". */
static int panic(lua_State *L) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
            msg ? msg : "error object is not a string");
    fflush(stderr);
    return 0;
}

static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);

/* A one-piece message "@on" or "@off" switches warnings; any other "@..." is ignored. */
static int warn_control(lua_State *L, const char *msg, int tocont) {
    if (tocont || msg[0] != '@') return 0;
    if (strcmp(msg, "@on") == 0) lua_setwarnf(L, warn_on, L);
    if (strcmp(msg, "@off") == 0) lua_setwarnf(L, warn_off, L);
    return 1;
}

static void warn_off(void *ud, const char *msg, int tocont) {
    warn_control(ud, msg, tocont);
}

/* The rest of a message sent in pieces; the last piece ends the line. */
static void warn_more(void *ud, const char *msg, int tocont) {
    fputs(msg, stderr);
    if (!tocont) {
        fputs("\n", stderr);
        lua_setwarnf(ud, warn_on, ud);
    }
}

static void warn_on(void *ud, const char *msg, int tocont) {
    if (warn_control(ud, msg, tocont)) return;
    fputs("Lua warning: ", stderr);
    warn_more(ud, msg, tocont);
    if (tocont) lua_setwarnf(ud, warn_more, ud);
}

lua_State *jn_lua_alloc_newstate(void) {
    jn_lua_alloc *a = jn_lua_alloc_new(DEFAULT_POOL);
    if (!a) return NULL;
    lua_State *L = lua_newstate(jn_lua_alloc_fn, a);
    if (!L) {
        jn_lua_alloc_free(a);
        return NULL;
    }
    lua_atpanic(L, panic);
    lua_setwarnf(L, warn_off, L);
    return L;
}

void jn_lua_alloc_close(lua_State *L) {
    void *ud;
    lua_Alloc f = lua_getallocf(L, &ud);
    lua_close(L);
    if (f == jn_lua_alloc_fn) jn_lua_alloc_free(ud);
}
