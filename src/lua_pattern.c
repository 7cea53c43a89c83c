/* The Lua 5.4 pattern matcher behind the bounded string.find, match, gmatch and gsub.
 *
 * A backtracking matcher over (subject, pattern) byte ranges. Where it recurses matters
 * beyond the result: Lua stops a match that nests more than 200 deep with "pattern too
 * complex", so this matcher nests exactly where that limit is counted (opening and
 * closing a capture, and each try of an item with '?', '*', '+' or '-' whose first
 * character matched) and loops everywhere else. Malformed patterns are reported when the
 * match reaches the bad part, not up front, because Lua only notices them then: "a[" finds
 * nothing in "b" but is an error on "a".
 *
 * An error sets m->error and every function returns failure straight up the recursion;
 * the places that would try another alternative check BROKEN first, so no further work or
 * charging happens after one. */
#include "lua_pattern.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define ESC '%'

#define BROKEN(m) ((m)->error[0] != '\0')

/* Comparing a backreference (memcmp) or scanning a set costs far less per byte than a
 * matching step; long ones are charged a step per BYTES_PER_STEP bytes, so a pattern with a
 * 10,000-character set cannot do 10,000 times the work it is charged for. */
#define BYTES_PER_STEP 16

static void set_error(jn_lua_pattern *m, const char *msg) {
    snprintf(m->error, sizeof m->error, "%s", msg);
}

/* Counts n steps; on crossing the threshold the callback runs (and may not return). The
 * count is reset before the call so a longjmp leaves m consistent. */
static void tick(jn_lua_pattern *m, long n) {
    m->steps += n;
    if (m->steps >= JN_LUA_PATTERN_CHARGE_EVERY) {
        long due = m->steps;
        m->steps = 0;
        if (m->charge) m->charge(m->ud, due);
    }
}

void jn_lua_pattern_charge(jn_lua_pattern *m, long steps) {
    if (steps > 0) tick(m, steps);
}

void jn_lua_pattern_flush(jn_lua_pattern *m) {
    long due = m->steps;
    m->steps = 0;
    if (due > 0 && m->charge) m->charge(m->ud, due);
}

void jn_lua_pattern_init(jn_lua_pattern *m, const char *s, size_t ls, const char *p, size_t lp,
                         jn_lua_pattern_charge_fn charge, void *ud) {
    m->src = s;
    m->src_end = s + ls;
    m->pat = p;
    m->pat_end = p + lp;
    m->charge = charge;
    m->ud = ud;
    m->steps = 0;
    m->depth = JN_LUA_PATTERN_MAXDEPTH;
    m->level = 0;
    m->error[0] = '\0';
}

int jn_lua_pattern_is_plain(const char *p, size_t lp) {
    static const char specials[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++)
        if (memchr(specials, p[i], sizeof specials - 1)) return 0;
    return 1;
}

/* ---- single characters ------------------------------------------------------------- */

/* Whether c is in class %cl. A letter that names no class, or any other character, stands
 * for itself (so "%." is a dot); an upper-case class letter is the complement. */
static int in_class(unsigned char cl, unsigned char c) {
    int in;
    switch (tolower(cl)) {
    case 'a':
        in = isalpha(c);
        break;
    case 'c':
        in = iscntrl(c);
        break;
    case 'd':
        in = isdigit(c);
        break;
    case 'g':
        in = isgraph(c);
        break;
    case 'l':
        in = islower(c);
        break;
    case 'p':
        in = ispunct(c);
        break;
    case 's':
        in = isspace(c);
        break;
    case 'u':
        in = isupper(c);
        break;
    case 'w':
        in = isalnum(c);
        break;
    case 'x':
        in = isxdigit(c);
        break;
    case 'z':
        in = (c == 0);
        break; /* still accepted by Lua 5.4, though no longer documented */
    default:
        return cl == c;
    }
    in = in != 0;
    return isupper(cl) ? !in : in;
}

/* Whether c is in the set that opens at p ('[') and closes at close (its ']'). */
static int in_set(const char *p, const char *close, unsigned char c) {
    int want = 1;
    p++;
    if (*p == '^') {
        want = 0;
        p++;
    }
    for (; p < close; p++) {
        if (*p == ESC) {
            p++;
            if (in_class((unsigned char)*p, c)) return want;
        } else if (p + 2 < close && p[1] == '-') {
            /* A range; a '-' first or last in the set is itself. */
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* Where the single-character item starting at p (< pat_end) ends, or NULL with an error.
 * The first character of a set, after any '^', is taken literally even when it is ']'. */
static const char *item_end(jn_lua_pattern *m, const char *p) {
    const char *end = m->pat_end, *start = p;
    char c = *p++;
    if (c == ESC) {
        if (p == end) {
            set_error(m, "malformed pattern (ends with '%')");
            return NULL;
        }
        return p + 1;
    }
    if (c == '[') {
        if (p < end && *p == '^') p++;
        do {
            if (p == end) {
                set_error(m, "malformed pattern (missing ']')");
                return NULL;
            }
            c = *p++;
            if (c == ESC && p < end) p++; /* "%]" does not close the set */
        } while (p == end || *p != ']');
        tick(m, (p - start) / BYTES_PER_STEP);
        return p + 1;
    }
    return p;
}

/* Whether the subject character at s matches the item p..ep. */
static int item_matches(jn_lua_pattern *m, const char *s, const char *p, const char *ep) {
    if (s >= m->src_end) return 0;
    unsigned char c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case ESC:
        return in_class((unsigned char)p[1], c);
    case '[':
        tick(m, (ep - p) / BYTES_PER_STEP);
        return in_set(p, ep - 1, c);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the items that consume no single character ------------------------------------ */

/* %bxy at s, with p just after "%b": the end of the balanced run, or NULL. */
static const char *match_balance(jn_lua_pattern *m, const char *s, const char *p) {
    if (p + 1 >= m->pat_end) {
        set_error(m, "malformed pattern (missing arguments to '%b')");
        return NULL;
    }
    if (s >= m->src_end || *s != p[0]) return NULL;
    char open = p[0], close = p[1];
    long nest = 1;
    while (++s < m->src_end) {
        tick(m, 1);
        /* Close is tested first, so %bxx pairs each x with the next. */
        if (*s == close) {
            if (--nest == 0) return s + 1;
        } else if (*s == open) {
            nest++;
        }
    }
    return NULL;
}

/* %1..%9 at s: the end of a copy of that capture, or NULL. */
static const char *match_backref(jn_lua_pattern *m, const char *s, char digit) {
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->capture[i].len == JN_LUA_PATTERN_CAP_OPEN) {
        snprintf(m->error, sizeof m->error, "invalid capture index %%%d", i + 1);
        return NULL;
    }
    ptrdiff_t len = m->capture[i].len;
    /* A position capture has no text; Lua never matches a reference to one. */
    if (len < 0) return NULL;
    tick(m, 1 + len / BYTES_PER_STEP);
    if (m->src_end - s < len || memcmp(m->capture[i].init, s, (size_t)len) != 0) return NULL;
    return s + len;
}

/* ---- backtracking ------------------------------------------------------------------ */

static const char *match_at(jn_lua_pattern *m, const char *s, const char *p);

static const char *open_capture(jn_lua_pattern *m, const char *s, const char *p, ptrdiff_t kind) {
    if (m->level >= JN_LUA_PATTERN_MAXCAPTURES) {
        set_error(m, "too many captures");
        return NULL;
    }
    m->capture[m->level].init = s;
    m->capture[m->level].len = kind;
    m->level++;
    const char *r = match_at(m, s, p);
    if (!r) m->level--; /* the rest failed: forget this capture */
    return r;
}

static const char *close_capture(jn_lua_pattern *m, const char *s, const char *p) {
    int i = m->level - 1;
    while (i >= 0 && m->capture[i].len != JN_LUA_PATTERN_CAP_OPEN)
        i--;
    if (i < 0) {
        set_error(m, "invalid pattern capture");
        return NULL;
    }
    m->capture[i].len = s - m->capture[i].init;
    const char *r = match_at(m, s, p);
    if (!r) m->capture[i].len = JN_LUA_PATTERN_CAP_OPEN; /* reopen for other alternatives */
    return r;
}

/* Item p..ep repeated as often as possible from s, then fewer until the rest matches. */
static const char *match_greedy(jn_lua_pattern *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (item_matches(m, s + n, p, ep)) {
        n++;
        tick(m, 1);
    }
    for (; n >= 0; n--) {
        const char *r = match_at(m, s + n, ep + 1);
        if (r || BROKEN(m)) return r;
    }
    return NULL;
}

/* Item p..ep repeated as rarely as possible from s: the rest is tried after each. */
static const char *match_lazy(jn_lua_pattern *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *r = match_at(m, s, ep + 1);
        if (r || BROKEN(m)) return r;
        if (!item_matches(m, s, p, ep)) return NULL;
        s++;
        tick(m, 1);
    }
}

/* The end of a match of pattern p..pat_end at subject s, or NULL (no match, or an error
 * set in m). Each call is one level of the depth Lua limits. */
static const char *match_at(jn_lua_pattern *m, const char *s, const char *p) {
    if (m->depth == 0) {
        set_error(m, "pattern too complex");
        return NULL;
    }
    m->depth--;
    const char *pe = m->pat_end, *r = NULL;
    for (;;) {
        tick(m, 1);
        if (p == pe) {
            r = s;
            break;
        }
        if (*p == '(') {
            if (p + 1 < pe && p[1] == ')')
                r = open_capture(m, s, p + 2, JN_LUA_PATTERN_CAP_POSITION);
            else
                r = open_capture(m, s, p + 1, JN_LUA_PATTERN_CAP_OPEN);
            break;
        }
        if (*p == ')') {
            r = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == pe) { /* anywhere else '$' is itself */
            r = s == m->src_end ? s : NULL;
            break;
        }
        if (*p == ESC && p + 1 < pe) {
            char next = p[1];
            if (next == 'b') {
                s = match_balance(m, s, p + 2);
                if (!s) break;
                p += 4;
                continue;
            }
            if (next == 'f') {
                p += 2;
                if (p == pe || *p != '[') {
                    set_error(m, "missing '[' after '%f' in pattern");
                    break;
                }
                const char *ep = item_end(m, p);
                if (!ep) break;
                /* A frontier: the previous character (or \0 at the start) is not in the
                 * set and the current one (or \0 at the end) is. */
                tick(m, (ep - p) / BYTES_PER_STEP);
                unsigned char before = s == m->src ? 0 : (unsigned char)s[-1];
                unsigned char here = s < m->src_end ? (unsigned char)*s : 0;
                if (in_set(p, ep - 1, before) || !in_set(p, ep - 1, here)) break;
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)next)) {
                s = match_backref(m, s, next);
                if (!s) break;
                p += 2;
                continue;
            }
        }
        /* A single-character item, maybe with a quantifier after it. */
        const char *ep = item_end(m, p);
        if (!ep) break;
        char q = ep < pe ? *ep : '\0';
        if (!item_matches(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* zero repetitions will do */
                p = ep + 1;
                continue;
            }
            break;
        }
        if (q == '?') {
            r = match_at(m, s + 1, ep + 1);
            if (r || BROKEN(m)) break;
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            r = match_greedy(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            r = match_greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            r = match_lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return BROKEN(m) ? NULL : r;
}

/* ---- public ------------------------------------------------------------------------ */

int jn_lua_pattern_match(jn_lua_pattern *m, const char *at, const char **end) {
    m->level = 0;
    m->depth = JN_LUA_PATTERN_MAXDEPTH;
    m->error[0] = '\0';
    const char *r = match_at(m, at, m->pat);
    if (BROKEN(m)) return JN_LUA_PATTERN_ERROR;
    if (!r) return JN_LUA_PATTERN_NOMATCH;
    *end = r;
    return JN_LUA_PATTERN_MATCH;
}

int jn_lua_pattern_count(const jn_lua_pattern *m, int whole) {
    return m->level == 0 && whole ? 1 : m->level;
}

int jn_lua_pattern_capture(jn_lua_pattern *m, int i, const char *s, const char *e, const char **str,
                           size_t *len) {
    if (i >= m->level) {
        if (i != 0) {
            snprintf(m->error, sizeof m->error, "invalid capture index %%%d", i + 1);
            return JN_LUA_PATTERN_ERROR;
        }
        *str = s;
        *len = (size_t)(e - s);
        return JN_LUA_PATTERN_STRING;
    }
    const jn_lua_pattern_cap *c = &m->capture[i];
    if (c->len == JN_LUA_PATTERN_CAP_OPEN) {
        set_error(m, "unfinished capture");
        return JN_LUA_PATTERN_ERROR;
    }
    if (c->len == JN_LUA_PATTERN_CAP_POSITION) {
        *str = NULL;
        *len = (size_t)(c->init - m->src) + 1;
        return JN_LUA_PATTERN_POSITION;
    }
    *str = c->init;
    *len = (size_t)c->len;
    return JN_LUA_PATTERN_STRING;
}
