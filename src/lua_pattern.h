/* A matcher for Lua 5.4 patterns (reference manual §6.4.1) that counts its work. Scripts
 * run on the host's only event loop, and the standard library's matcher runs without hook
 * ticks, so one string.find with a backtracking pattern could block every connection for
 * seconds. This one charges its steps to a callback every JN_LUA_PATTERN_CHARGE_EVERY
 * steps; the callback may longjmp out (raise a Lua error) to stop the match.
 *
 * Pure C without Lua: all state lives in the caller's jn_lua_pattern (on the C stack or
 * in memory Lua manages), nothing is malloc'd, so a longjmp out of the callback leaks
 * nothing. Results, errors and their order are those of Lua 5.4's string library. */
#ifndef JN_LUA_PATTERN_H
#define JN_LUA_PATTERN_H

#include <stddef.h>

#define JN_LUA_PATTERN_MAXCAPTURES  32   /* Lua's LUA_MAXCAPTURES */
#define JN_LUA_PATTERN_MAXDEPTH     200  /* nested matches before "pattern too complex" */
#define JN_LUA_PATTERN_CHARGE_EVERY 4096 /* steps between calls of the charge callback */

/* Capture lengths that are not lengths. */
#define JN_LUA_PATTERN_CAP_OPEN     (-1) /* '(' seen, ')' not yet */
#define JN_LUA_PATTERN_CAP_POSITION (-2) /* '()' */

/* Results of jn_lua_pattern_match. */
#define JN_LUA_PATTERN_ERROR   (-1) /* malformed pattern: message in error */
#define JN_LUA_PATTERN_NOMATCH 0
#define JN_LUA_PATTERN_MATCH   1

/* Kinds of captures returned by jn_lua_pattern_capture (or JN_LUA_PATTERN_ERROR). */
#define JN_LUA_PATTERN_STRING   0
#define JN_LUA_PATTERN_POSITION 1

/* Called with the steps done since the last call; may not return. */
typedef void (*jn_lua_pattern_charge_fn)(void *ud, long steps);

typedef struct {
    const char *init;
    ptrdiff_t len; /* bytes, or JN_LUA_PATTERN_CAP_OPEN / _POSITION */
} jn_lua_pattern_cap;

typedef struct {
    const char *src, *src_end; /* subject */
    const char *pat, *pat_end; /* pattern, without the '^' anchor (callers strip it) */
    jn_lua_pattern_charge_fn charge;
    void *ud;
    long steps; /* done but not yet charged */
    int depth;  /* nested matches still allowed */
    int level;  /* captures opened so far in the current attempt */
    jn_lua_pattern_cap capture[JN_LUA_PATTERN_MAXCAPTURES];
    char error[64]; /* message of the last JN_LUA_PATTERN_ERROR, as Lua words it */
} jn_lua_pattern;

/* Prepares m for subject s and pattern p (both may hold zero bytes; neither is copied, so
 * both must outlive m). charge may be NULL. */
void jn_lua_pattern_init(jn_lua_pattern *m, const char *s, size_t ls, const char *p, size_t lp,
                         jn_lua_pattern_charge_fn charge, void *ud);

/* Matches the whole pattern against the subject starting at `at` (src <= at <= src_end),
 * without moving on to later starts. On JN_LUA_PATTERN_MATCH *end is where the match ends
 * and the captures stay readable until the next call. */
int jn_lua_pattern_match(jn_lua_pattern *m, const char *at, const char **end);

/* How many values the last match yields: its captures, or when it has none and whole is
 * set, one (the whole match). */
int jn_lua_pattern_count(const jn_lua_pattern *m, int whole);

/* Capture i (0-based) of the last match, which ran from s to e. A pattern without
 * captures has the whole match as capture 0. Returns JN_LUA_PATTERN_STRING with *str and
 * *len set, JN_LUA_PATTERN_POSITION with *len the 1-based position, or JN_LUA_PATTERN_ERROR
 * ("invalid capture index %n", "unfinished capture") with the message in m->error. */
int jn_lua_pattern_capture(jn_lua_pattern *m, int i, const char *s, const char *e, const char **str,
                           size_t *len);

/* Adds steps of work done outside the matcher (copying results) to the count, calling
 * the charge callback when JN_LUA_PATTERN_CHARGE_EVERY is reached. */
void jn_lua_pattern_charge(jn_lua_pattern *m, long steps);

/* Charges whatever is counted but not charged yet. */
void jn_lua_pattern_flush(jn_lua_pattern *m);

/* 1 when p has none of the characters that make a pattern special ("^$*+?.([%-"), so
 * string.find may search for it as plain text. */
int jn_lua_pattern_is_plain(const char *p, size_t lp);

#endif
