/* buf.c: what a message shows of a name (jn_sb_visible, jn_visible) and of what a client
 * sent (jn_sb_echo). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void assert_visible(const char *in, size_t len, const char *want) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_puts(&sb, "<");
    jn_sb_visible(&sb, in, len);
    jn_sb_puts(&sb, ">");
    assert_string_equal(sb.data, want);
    jn_sb_free(&sb);
}

static void test_control_characters_become_hex_escapes(void **state) {
    (void)state;
    assert_visible("/srv/a\001b/crm.lua", 16, "</srv/a\\x01b/crm.lua>");
    assert_visible("\n\t\r\033\177", 5, "<\\x0a\\x09\\x0d\\x1b\\x7f>");
    assert_visible("a\0b", 3, "<a\\x00b>");
}

/* Printable ASCII, spaces and UTF-8 pass as they are: only what cannot be seen changes. */
static void test_other_bytes_pass_unchanged(void **state) {
    (void)state;
    assert_visible("", 0, "<>");
    assert_visible("/home/José/my scripts/crm.lua", strlen("/home/José/my scripts/crm.lua"),
                   "</home/José/my scripts/crm.lua>");
    assert_visible("a\\x01", 5, "<a\\x01>");
    char *v = jn_visible("x\037y");
    assert_string_equal(v, "x\\x1fy");
    free(v);
    v = jn_visible("");
    assert_string_equal(v, "");
    free(v);
}

static void assert_echo(const char *in, size_t max, const char *want) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_echo(&sb, in, strlen(in), max);
    assert_string_equal(sb.data ? sb.data : "", want);
    jn_sb_free(&sb);
}

/* Up to max bytes as they are, else cut and marked with "..."; never half a character,
 * and what cannot be seen still shows as \xNN. */
static void test_echo_cuts_long_text_on_a_character_boundary(void **state) {
    (void)state;
    assert_echo("short", 5, "short");
    assert_echo("", 5, "");
    assert_echo("abcdefgh", 5, "abcde...");
    /* "é" is the two bytes at 4 and 5: a cut at 5 would split it, so it falls before. */
    assert_echo("abcdéf", 5, "abcd...");
    assert_echo("abcdéf", 6, "abcdé...");
    assert_echo("a\001bcdef", 3, "a\\x01b...");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters_become_hex_escapes),
        cmocka_unit_test(test_other_bytes_pass_unchanged),
        cmocka_unit_test(test_echo_cuts_long_text_on_a_character_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
