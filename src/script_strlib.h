/* Bounded replacements for the string and table functions whose C loops run without the
 * instruction-count hook: string.find, match, gmatch, gsub and rep, and table.concat,
 * sort, move, insert and remove. Each charges its work to a meter the host owns before or
 * while doing it, so the host's per-call budget also stops a runaway pattern match, a
 * table.move over 10^15 slots or a string.rep of a gigabyte. Within the budget they
 * behave as Lua 5.4's own: same results, same errors. */
#ifndef JN_SCRIPT_STRLIB_H
#define JN_SCRIPT_STRLIB_H

#include <lua.h>

/* Cost units are about one VM instruction each: one pattern matching step, one table
 * element moved or compared, 16 bytes copied, 64 bytes scanned by a plain find. */
typedef struct jn_script_meter {
    /* Subtracts cost from the running call's budget. When the budget (or time) is used up
     * it raises a Lua error (luaL_error) and does not return. */
    void (*charge)(lua_State *L, void *ud, long cost);
    void *ud;
} jn_script_meter;

/* Replaces find, match, gmatch, gsub and rep in the table at string_idx, and concat,
 * sort, move, insert and remove in the table at table_idx (an index of 0 skips that
 * table). The table at table_idx must still hold the stock table.sort, which the new sort
 * calls after charging. The meter is kept as a light userdata, so it must outlive every
 * function installed; NULL (or a NULL charge) installs functions that charge nothing.
 *
 * Method calls (s:rep(n)) go through the string metatable's __index, the global string
 * table, not a sandbox's copy: that table needs the bounded functions too. Installed in
 * the global tables, they are also what package.loaded holds, so a bad argument in a call
 * from C (pcall(string.find)) is reported as 'string.find' as stock Lua does; elsewhere
 * such a message says '?'.
 *
 * Left different from stock Lua, beyond that: sort calls a __len metamethod twice (once
 * to price the sort, once in the stock sort), and an error inside a sort comparator
 * reaches an outer message handler (a traceback) from the sort call instead of from
 * inside the comparator; the error value itself is unchanged. */
void jn_script_strlib_install(lua_State *L, int string_idx, int table_idx, jn_script_meter *m);

#endif
