/* jn_paths: the folder of the files that come with junction (here, a test binary in the
 * build tree: the source tree) and how a relative path of a configuration finds a file,
 * from the working directory first and from that folder after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

typedef struct {
    char dir[64];       /* an empty working directory of the test's own */
    char old[PATH_MAX]; /* the working directory to go back to */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_paths_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_non_null(getcwd(f->old, sizeof f->old));
    assert_int_equal(chdir(f->dir), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    assert_int_equal(chdir(f->old), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/scripts/crm.lua", f->dir);
    remove(path);
    snprintf(path, sizeof path, "%s/scripts", f->dir);
    rmdir(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int exists(const char *dir, const char *rel) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return access(path, R_OK) == 0;
}

/* Run from the build tree, the home is the source tree, whatever the working directory:
 * it holds the stock scripts and the example configs. The answer is kept. */
static void test_home_is_the_source_tree_from_the_build_tree(void **state) {
    (void)state;
    const char *home = jn_paths_home();
    assert_non_null(home);
    assert_int_equal(home[0], '/');
    assert_true(exists(home, "scripts/crm.lua"));
    assert_true(exists(home, "scripts/merge.lua"));
    assert_true(exists(home, "examples/local.lua"));
    assert_true(exists(home, "tests/unit/test_paths.c"));
    assert_ptr_equal(jn_paths_home(), home);
}

/* A path the working directory lacks is found in the home; the stock scripts are found
 * from an empty folder. */
static void test_a_missing_relative_path_is_found_in_the_home(void **state) {
    (void)state;
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/scripts/crm.lua", jn_paths_home());
    char *got = jn_paths_find("scripts/crm.lua");
    assert_string_equal(got, want);
    free(got);
}

/* A relative path that exists from the working directory keeps meaning that file (the
 * user's own scripts/ comes before the stock one), as an absolute path always does. */
static void test_the_working_directory_comes_first(void **state) {
    (void)state;
    assert_int_equal(mkdir("scripts", 0700), 0);
    FILE *fp = fopen("scripts/crm.lua", "w");
    assert_non_null(fp);
    fputs("return {}\n", fp);
    fclose(fp);
    char *got = jn_paths_find("scripts/crm.lua");
    assert_string_equal(got, "scripts/crm.lua");
    free(got);
    got = jn_paths_find("/nonexistent/scripts/crm.lua");
    assert_string_equal(got, "/nonexistent/scripts/crm.lua");
    free(got);
}

/* Found nowhere: the path as given, for the error that follows to name it. */
static void test_a_path_found_nowhere_is_returned_as_given(void **state) {
    (void)state;
    char *got = jn_paths_find("scripts/no_such_script.lua");
    assert_string_equal(got, "scripts/no_such_script.lua");
    free(got);
    got = jn_paths_find("");
    assert_string_equal(got, "");
    free(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_home_is_the_source_tree_from_the_build_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_relative_path_is_found_in_the_home, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_working_directory_comes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_path_found_nowhere_is_returned_as_given, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
