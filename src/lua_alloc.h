/* Memory for the program's Lua states. Decoding a record makes two tables and a few
 * strings and every map or merge call makes more small tables, so glibc malloc was a
 * large share of all instructions; a pool of size classes per state is much cheaper.
 * Each state is used by one thread only, so the pool takes no locks. */
#ifndef JN_LUA_ALLOC_H
#define JN_LUA_ALLOC_H

#include <lua.h>
#include <stddef.h>

typedef struct jn_lua_alloc jn_lua_alloc;

typedef struct {
    size_t in_use;   /* bytes Lua holds (the sizes it asked for) */
    size_t reserved; /* bytes taken from malloc for the pool's chunks */
} jn_lua_alloc_stats;

/* pool = 0 passes every request to realloc/free (what the sanitizer build uses, so ASan
 * sees each Lua block on its own). */
jn_lua_alloc *jn_lua_alloc_new(int pool);
/* Releases every chunk; the state using it must be closed already. */
void jn_lua_alloc_free(jn_lua_alloc *a);
/* The lua_Alloc function; ud is the jn_lua_alloc. */
void *jn_lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);
void jn_lua_alloc_get_stats(const jn_lua_alloc *a, jn_lua_alloc_stats *out);

/* A new state on its own allocator (pooled except in the sanitizer build), with the
 * panic and warning handlers luaL_newstate would set. NULL when out of memory. */
lua_State *jn_lua_alloc_newstate(void);
/* lua_close, then frees the state's allocator. */
void jn_lua_alloc_close(lua_State *L);

#endif
