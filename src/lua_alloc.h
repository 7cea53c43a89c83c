/* Memory for the program's Lua states. Decoding a record makes two tables and a few
 * strings and every map or merge call makes more small tables, so glibc malloc was a
 * large share of all instructions; a pool of size classes per state is much cheaper.
 * Each state is used by one thread only, so the pool takes no locks: every function here
 * must be called on the thread that runs the state.
 *
 * A script can ask for any amount of memory (string.rep("x", 1 << 30) is one call), so
 * the host can put a ceiling on a state while it runs script code, and give back what a
 * runaway call left behind with jn_lua_alloc_trim once the garbage is collected. */
#ifndef JN_LUA_ALLOC_H
#define JN_LUA_ALLOC_H

#include <lua.h>
#include <stddef.h>

typedef struct jn_lua_alloc jn_lua_alloc;

typedef struct {
    size_t in_use;   /* bytes Lua holds (the sizes it asked for) */
    size_t reserved; /* bytes of the pool's chunks, mapped from the OS (0 without a pool) */
    size_t limit;    /* the ceiling on in_use, 0 when there is none */
    size_t refused;  /* requests refused because of the ceiling, since jn_lua_alloc_new */
} jn_lua_alloc_stats;

/* pool = 0 passes every request to realloc/free (what the sanitizer build uses, so ASan
 * sees each Lua block on its own). */
jn_lua_alloc *jn_lua_alloc_new(int pool);
/* Releases every chunk; the state using it must be closed already. */
void jn_lua_alloc_free(jn_lua_alloc *a);
/* The lua_Alloc function; ud is the jn_lua_alloc. */
void *jn_lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);
void jn_lua_alloc_get_stats(const jn_lua_alloc *a, jn_lua_alloc_stats *out);

/* The allocator of L, or NULL if L was not made on jn_lua_alloc_fn. */
jn_lua_alloc *jn_lua_alloc_of(lua_State *L);

/* A ceiling on in_use; 0 removes it. O(1), so the host can arm it around each script call
 * and clear it after. While it is set, any request that would grow in_use past it returns
 * NULL and adds one to refused: Lua then runs an emergency collection, asks again and
 * raises "not enough memory" (LUA_ERRMEM; the buffers of string.rep, table.concat and the
 * like raise it without collecting first). A script can catch that error, so compare
 * refused before and after a call to know it hit the ceiling. Frees and shrinks are never
 * refused; a ceiling set below in_use refuses all growth until enough is freed. Host code
 * that calls the Lua API outside a protected call must not run under a ceiling: a memory
 * error there would panic. */
void jn_lua_alloc_set_limit(jn_lua_alloc *a, size_t bytes);
/* fn(ud) runs on every refusal, inside the allocation Lua asked for: it may only note
 * the fact (and set a hook, which lua_sethook allows at any time). */
void jn_lua_alloc_on_refuse(jn_lua_alloc *a, void (*fn)(void *ud), void *ud);

/* Gives memory back to the OS: unmaps every pool chunk whose blocks are all free (taking
 * those blocks off the free lists), then has glibc return its free pages (malloc_trim),
 * where Lua's blocks over 512 bytes live, and all of them without a pool. Returns the
 * bytes of pool chunks unmapped (glibc does not say what it released). Meant for after a
 * full collection (lua_gc(L, LUA_GCCOLLECT, 0)) once a call hit the ceiling or a big load
 * failed, not for every call: it walks every free block, O(free blocks + chunks), and the
 * pool then maps and faults in new chunks to grow again. */
size_t jn_lua_alloc_trim(jn_lua_alloc *a);

/* A new state on its own allocator (pooled except in the sanitizer build), with the
 * panic and warning handlers luaL_newstate would set. NULL when out of memory. */
lua_State *jn_lua_alloc_newstate(void);
/* The panic handler every state of the program gets (also the config's, which has an
 * allocator of its own): reports an error raised outside any pcall; Lua then aborts. */
int jn_lua_alloc_panic(lua_State *L);
/* lua_close, then frees the state's allocator. */
void jn_lua_alloc_close(lua_State *L);

#endif
