/* Where junction finds the files that come with it: the stock scripts (scripts/) and the
 * example configurations (examples/), which `cmake --install` puts under
 * <prefix>/share/junction beside <prefix>/bin/junction. */
#ifndef JN_PATHS_H
#define JN_PATHS_H

/* The folder holding the scripts/ and examples/ that came with this binary:
 * <bindir>/../share/junction of the running executable when it has a scripts/ folder (an
 * installed junction), else the source tree it was built from (a binary run from its
 * build tree); NULL when neither is there. Looked up once; the result is kept. */
const char *jn_paths_home(void);

/* The file a relative path in a configuration names: path itself when it is absolute or
 * exists from the working directory (a relative path means what it does in a shell),
 * else <home>/path when that exists (so "scripts/orders.lua" finds the stock script from any
 * directory), else path unchanged, for the caller's error to name as given. malloc'd. */
char *jn_paths_find(const char *path);

#endif
