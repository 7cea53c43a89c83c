/* A size-class pool for Lua. Blocks up to SMALL_MAX bytes are rounded up to a multiple of
 * 16 (malloc's alignment, so any Lua object or userdata fits as it would from malloc) and
 * come from that class's free list, or else are cut from the current chunk. Larger blocks
 * go to realloc/free. Lua passes a block's size back on every free and realloc, so the
 * pool needs no header per block.
 *
 * Freed small blocks stay on their free list, not going back to the OS on their own: a
 * batch of 100,000 records decoded at once holds ~70 MB of small objects, and once the GC
 * frees them that memory stays reserved for the next batch. So a state keeps its peak
 * (collectgarbage("count") shows live bytes, the process RSS shows the peak) until the host
 * calls jn_lua_alloc_trim, which unmaps the chunks left with no live block, or
 * jn_lua_alloc_close, which returns all of it.
 *
 * Chunks are CHUNK_SIZE bytes mapped at CHUNK_SIZE alignment, so the chunk of any block is
 * its address with the low bits cleared. Nothing on the hot path uses that: trim walks the
 * free lists counting free blocks per chunk and class, a chunk whose free bytes equal all
 * it ever handed out holds no live block, and a second walk (only of the lists that mix
 * such blocks with others, and only up to the last of them) takes those out. The hot path
 * only gained the ceiling's compare on allocation. */
#include "lua_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

#define GRAIN     16
#define SMALL_MAX 512
#define NCLASS    (SMALL_MAX / GRAIN)
/* 1 MiB: big enough that mapping one is rare next to the blocks cut from it (the unused
 * rest is only address space, pages are touched as blocks are cut), small enough that
 * a chunk often ends up with no live block once a burst of garbage is collected. */
#define CHUNK_SIZE ((size_t)1 << 20)

/* Class c holds blocks of (c + 1) * GRAIN bytes; sizes 1..SMALL_MAX map to 0..NCLASS-1. */
#define CLASS_OF(n)   (((n)-1) / GRAIN)
#define CLASS_SIZE(c) (((size_t)(c) + 1) * GRAIN)

typedef struct block {
    struct block *next;
} block;

/* The head of each chunk. nfree and doomed are only meaningful during a trim. */
typedef struct chunk {
    struct chunk *next;
    uint32_t doomed;        /* no live block: to be unmapped */
    uint32_t nfree[NCLASS]; /* free blocks per class (at most 2^16 of 16 bytes) */
} chunk;

/* The blocks after the head keep GRAIN alignment. */
#define CHUNK_HEAD  ((sizeof(chunk) + GRAIN - 1) / GRAIN * GRAIN)
#define CHUNK_BYTES (CHUNK_SIZE - CHUNK_HEAD) /* what a chunk can hand out */
#define CHUNK_OF(p) ((chunk *)((uintptr_t)(p) & ~(uintptr_t)(CHUNK_SIZE - 1)))

#define NO_LIMIT SIZE_MAX

struct jn_lua_alloc {
    block *free[NCLASS];
    char *bump, *end; /* the uncut rest of the newest chunk */
    size_t in_use;
    size_t limit; /* NO_LIMIT when none, so the hot path needs only one compare */
    chunk *chunks;
    size_t reserved, refused;
    int pool;
    void (*on_refuse)(void *ud);
    void *on_refuse_ud;
};

jn_lua_alloc *jn_lua_alloc_new(int pool) {
    jn_lua_alloc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->pool = pool;
    a->limit = NO_LIMIT;
    return a;
}

static void unmap_chunk(chunk *c) {
    UNPOISON(c, CHUNK_SIZE); /* ASan's shadow outlives the mapping; whatever is mapped here
                                next must not inherit the poison */
    munmap(c, CHUNK_SIZE);
}

void jn_lua_alloc_free(jn_lua_alloc *a) {
    if (!a) return;
    for (chunk *c = a->chunks, *n; c; c = n) {
        n = c->next;
        unmap_chunk(c);
    }
    free(a);
}

void jn_lua_alloc_on_refuse(jn_lua_alloc *a, void (*fn)(void *ud), void *ud) {
    a->on_refuse = fn;
    a->on_refuse_ud = ud;
}

void jn_lua_alloc_get_stats(const jn_lua_alloc *a, jn_lua_alloc_stats *out) {
    out->in_use = a->in_use;
    out->reserved = a->reserved;
    out->limit = a->limit == NO_LIMIT ? 0 : a->limit;
    out->refused = a->refused;
}

void jn_lua_alloc_set_limit(jn_lua_alloc *a, size_t bytes) {
    a->limit = bytes ? bytes : NO_LIMIT;
}

jn_lua_alloc *jn_lua_alloc_of(lua_State *L) {
    void *ud;
    return lua_getallocf(L, &ud) == jn_lua_alloc_fn ? ud : NULL;
}

static void push_free(jn_lua_alloc *a, void *p, size_t c) {
    block *b = p;
    b->next = a->free[c];
    a->free[c] = b;
    POISON(b, CLASS_SIZE(c));
}

/* A chunk at hint, just below the newest chunk and so aligned like it: the kernel grants
 * a hint when that space is free (in the unit test, for 253 chunks of 260, while a first
 * try with no hint was aligned for 3 of 283). Otherwise, and for a pool's first chunk,
 * twice the size is mapped anywhere and the aligned half kept. */
static chunk *map_chunk(char *hint) {
    const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
    char *p;
    if (hint) {
        p = mmap(hint, CHUNK_SIZE, prot, flags, -1, 0);
        if (p == MAP_FAILED) return NULL;
        if (((uintptr_t)p & (CHUNK_SIZE - 1)) == 0) return (chunk *)p;
        munmap(p, CHUNK_SIZE);
    }
    p = mmap(NULL, 2 * CHUNK_SIZE, prot, flags, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *c = (char *)CHUNK_OF(p + CHUNK_SIZE - 1);
    if (c > p) munmap(p, (size_t)(c - p));
    if (c + CHUNK_SIZE < p + 2 * CHUNK_SIZE)
        munmap(c + CHUNK_SIZE, (size_t)(p + 2 * CHUNK_SIZE - (c + CHUNK_SIZE)));
    return (chunk *)c;
}

/* Starts a new chunk. The old one's uncut tail is a multiple of GRAIN smaller than the
 * block that did not fit, so it becomes a free block of a smaller class, not waste (and
 * every byte a full chunk can hand out is then a live or a free block, which trim counts
 * on). */
static int new_chunk(jn_lua_alloc *a) {
    chunk *c = map_chunk(a->chunks ? (char *)a->chunks - CHUNK_SIZE : NULL);
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
    POISON(a->bump, CHUNK_BYTES);
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
    /* Written so that neither side can wrap, whatever the limit and the request. */
    if (nsize > osize && (a->in_use > a->limit || nsize - osize > a->limit - a->in_use)) {
        a->refused++;
        if (a->on_refuse) a->on_refuse(a->on_refuse_ud);
        return NULL;
    }
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
 * cases stay short enough to need no stack frame, everything else (and any allocation
 * the ceiling would refuse) takes slow_path. The ceiling's compare made an allocation 22
 * instructions instead of 17 (a free went from 19 to 18), measured with callgrind on a
 * million free-and-allocate pairs from warm free lists; a Lua script making 60,000 small
 * tables went from 23.9 to 25.2 instructions per allocator call. */
void *jn_lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize) {
    jn_lua_alloc *a = ud;
    if (a->pool) {
        if (!ptr) {
            if (nsize - 1 < SMALL_MAX) { /* 1..SMALL_MAX; 0 wraps around */
                block **head = &a->free[CLASS_OF(nsize)];
                block *b = *head;
                size_t use = a->in_use + nsize; /* no wrap: nsize is small */
                if (b && use <= a->limit) {
                    UNPOISON(b, CLASS_SIZE(CLASS_OF(nsize)));
                    *head = b->next;
                    a->in_use = use;
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

/* ---- trim ------------------------------------------------------------------------- */

/* Free blocks are poisoned in the ASan build; trim reads and rewrites only their links. */
static block *link_get(block *b) {
    UNPOISON(b, sizeof *b);
    block *n = b->next;
    POISON(b, sizeof *b);
    return n;
}

static void link_set(block *b, block *n) {
    UNPOISON(b, sizeof *b);
    b->next = n;
    POISON(b, sizeof *b);
}

/* Takes the blocks of doomed chunks off class k's list, keeping the others in their
 * order (the most recently freed, likely still in cache, stay first). ngone says how many
 * there are, so the walk stops after the last one; links are rewritten only where a run
 * of doomed blocks is cut out. */
static void unlink_doomed(jn_lua_alloc *a, size_t k, size_t ngone) {
    block *last = NULL; /* the last block kept */
    block *b = a->free[k];
    int cut = 0; /* doomed blocks since last */
    while (ngone) {
        block *n = link_get(b);
        if (CHUNK_OF(b)->doomed) {
            ngone--;
            cut = 1;
        } else {
            if (cut && last)
                link_set(last, b);
            else if (cut)
                a->free[k] = b;
            last = b;
            cut = 0;
        }
        b = n;
    }
    if (last) /* the walk ended on a doomed block, so there is a cut */
        link_set(last, b);
    else
        a->free[k] = b;
}

/* Unmaps the chunks with no live block; returns the bytes unmapped. */
static size_t trim_chunks(jn_lua_alloc *a) {
    if (!a->chunks) return 0;
    chunk *cur = a->end ? (chunk *)(a->end - CHUNK_SIZE) : NULL;
    size_t total[NCLASS]; /* free blocks per class */
    for (chunk *c = a->chunks; c; c = c->next)
        memset(c->nfree, 0, sizeof c->nfree);
    for (size_t k = 0; k < NCLASS; k++) {
        size_t n = 0;
        for (block *b = a->free[k]; b; b = link_get(b), n++)
            CHUNK_OF(b)->nfree[k]++;
        total[k] = n;
    }
    /* A full chunk handed out CHUNK_BYTES (its last tail went on a free list too); the
     * current one handed out what lies below bump. */
    size_t gone[NCLASS] = {0}, ndoomed = 0; /* free blocks per class in doomed chunks */
    for (chunk *c = a->chunks; c; c = c->next) {
        size_t cut = c == cur ? (size_t)(a->bump - (char *)c) - CHUNK_HEAD : CHUNK_BYTES;
        size_t nbytes = 0;
        for (size_t k = 0; k < NCLASS; k++)
            nbytes += c->nfree[k] * CLASS_SIZE(k);
        c->doomed = nbytes == cut;
        if (!c->doomed) continue;
        ndoomed++;
        for (size_t k = 0; k < NCLASS; k++)
            gone[k] += c->nfree[k];
    }
    if (!ndoomed) return 0;
    for (size_t k = 0; k < NCLASS; k++) {
        if (gone[k] == total[k])
            a->free[k] = NULL; /* nothing to keep: no walk */
        else if (gone[k])
            unlink_doomed(a, k, gone[k]);
    }
    size_t released = 0;
    for (chunk **l = &a->chunks, *c; (c = *l);) {
        if (!c->doomed) {
            l = &c->next;
            continue;
        }
        *l = c->next;
        if (c == cur) a->bump = a->end = NULL; /* the next small block maps a new chunk */
        unmap_chunk(c);
        released += CHUNK_SIZE;
    }
    a->reserved -= released;
    return released;
}

size_t jn_lua_alloc_trim(jn_lua_alloc *a) {
    size_t released = a->pool ? trim_chunks(a) : 0;
#if defined(__GLIBC__)
    /* Freed blocks above the mmap threshold are unmapped by free() already; this returns
     * the free pages inside glibc's heaps (all of Lua's blocks in malloc mode). */
    malloc_trim(0);
#endif
    return released;
}

/* ---- states ------------------------------------------------------------------------ */

/* What luaL_newstate's handlers do: report an error raised outside any pcall (Lua aborts
 * when this returns), and drop warnings until a script sends "@on". */
int jn_lua_alloc_panic(lua_State *L) {
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
    lua_atpanic(L, jn_lua_alloc_panic);
    lua_setwarnf(L, warn_off, L);
    return L;
}

void jn_lua_alloc_close(lua_State *L) {
    void *ud;
    lua_Alloc f = lua_getallocf(L, &ud);
    lua_close(L);
    if (f == jn_lua_alloc_fn) jn_lua_alloc_free(ud);
}
