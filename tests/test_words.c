/*
 * Unit tests for src/common/words.c: what a word is, how words and names
 * fold, code point lengths and tag names, on ASCII and beyond.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "words.h"

/* The words of s, folded, joined by '|'. */
static void
split(const char *s, char *out, size_t cap)
{
	size_t pos = 0, start, wlen, o = 0, n;

	out[0] = '\0';
	while (words_next(s, strlen(s), &pos, &start, &wlen)) {
		if (o > 0)
			out[o++] = '|';
		n = words_fold(s + start, wlen, out + o, cap - o - 1);
		assert_true(n > 0);
		o += n;
		out[o] = '\0';
	}
}

static void
test_words(void **state)
{
	char out[256];

	(void)state;
	split("Hello, world! It's 2024.", out, sizeof(out));
	assert_string_equal(out, "hello|world|it|s|2024");
	split("snake_case and--dashes", out, sizeof(out));
	assert_string_equal(out, "snake|case|and|dashes");
	split("  ", out, sizeof(out));
	assert_string_equal(out, "");
	/* Letters and numbers of any script; punctuation and symbols
	 * split. */
	split("Straße, ΩΜΈΓΑ; 日本語…naïve ½ ⅷ €5", out, sizeof(out));
	assert_string_equal(out, "strasse|ωμέγα|日本語|naïve|½|ⅷ|5");
	/* Full folding, as Python's casefold(): ǅ, ﬁ, final sigma. */
	split("ǅemal ﬁsh ΟΔΟΣ", out, sizeof(out));
	assert_string_equal(out, "ǆemal|fish|οδοσ");
}

/*
 * ASCII takes shortcuts here and in the importer (its own classes and
 * tolower()): for every ASCII character, alone and between others, they
 * must say what utf8proc says, a word being letters (L*) and numbers
 * (N*), folded by full case folding.
 */
static void
test_ascii_as_utf8proc(void **state)
{
	(void)state;
	for (int c = 0; c < 0x80; c++) {
		utf8proc_category_t cat = utf8proc_category(c);
		bool word = (cat >= UTF8PROC_CATEGORY_LU &&
				cat <= UTF8PROC_CATEGORY_LO) ||
		    (cat >= UTF8PROC_CATEGORY_ND &&
			cat <= UTF8PROC_CATEGORY_NO);
		utf8proc_uint8_t *want = NULL;
		char s[4] = {'a', (char)c, 'b', '\0'}, out[16];
		size_t pos = 0, start, wlen, n = 0;

		assert_true(utf8proc_map((const utf8proc_uint8_t *)s + 1, 1,
				&want, UTF8PROC_CASEFOLD) >= 0);
		/* "a", c, "b": one word if c is a word character, else
		 * two. */
		while (words_next(s, 3, &pos, &start, &wlen))
			n++;
		if (word) {
			assert_int_equal(n, 1);
			assert_int_equal(words_fold(s + 1, 1, out, sizeof(out)),
			    strlen((char *)want));
			assert_memory_equal(out, want, strlen((char *)want));
		} else {
			assert_int_equal(n, 2);
		}
		free(want);
	}
}

static void
test_fold_room(void **state)
{
	char out[8];

	(void)state;
	/* Too small: 0, never a cut word. */
	assert_int_equal(words_fold("abcdefghij", 10, out, sizeof(out)), 0);
	assert_int_equal(words_fold("ßßßß", 8, out, sizeof(out)), 8);
	assert_int_equal(words_fold("ßßßßß", 10, out, sizeof(out)), 0);
}

static void
test_fold_name(void **state)
{
	char out[64];
	size_t n;

	(void)state;
	n = words_fold_name("  Mark \t TWAIN\u3000",
	    strlen("  Mark \t TWAIN"
		   "\u3000"),
	    out, sizeof(out));
	assert_int_equal(n, 10);
	assert_memory_equal(out, "mark twain", 10);
	assert_int_equal(words_fold_name(" \t ", 3, out, sizeof(out)), 0);
	n = words_fold_name("Zoë Ångström", strlen("Zoë Ångström"), out,
	    sizeof(out));
	assert_int_equal(n, strlen("zoë ångström"));
	assert_memory_equal(out, "zoë ångström", n);
}

static void
test_length(void **state)
{
	(void)state;
	assert_int_equal(words_length("", 0), 0);
	assert_int_equal(words_length("abc", 3), 3);
	assert_int_equal(words_length("naïve日本語😀", strlen("naïve日本語😀")),
	    9);
	/* Past the eight-byte steps. */
	assert_int_equal(words_length("ééééééééé", 18), 9);
}

static void
test_tags(void **state)
{
	(void)state;
	assert_true(words_tag_valid("wisdom", 6));
	assert_true(words_tag_valid("a-1", 3));
	assert_true(words_tag_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
	assert_false(words_tag_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
	assert_false(words_tag_valid("", 0));
	assert_false(words_tag_valid("Wisdom", 6));
	assert_false(words_tag_valid("a b", 3));
	assert_false(words_tag_valid("a_b", 3));
	assert_false(words_tag_valid("é", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words),
	    cmocka_unit_test(test_ascii_as_utf8proc),
	    cmocka_unit_test(test_fold_room),
	    cmocka_unit_test(test_fold_name),
	    cmocka_unit_test(test_length),
	    cmocka_unit_test(test_tags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
