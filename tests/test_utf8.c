/*
 * Unit tests for src/common/utf8.c: utf8_valid() must accept exactly the
 * well-formed UTF-8 of RFC 3629 (what proto3 string fields may hold) and
 * refuse overlongs, surrogates, code points above U+10FFFF, truncated or
 * stray sequences and bytes that never occur in UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

/* Literals with explicit lengths, so that embedded NULs count. */
#define VALID(lit)   assert_true(utf8_valid(lit, sizeof(lit) - 1))
#define INVALID(lit) assert_false(utf8_valid(lit, sizeof(lit) - 1))

static void
test_empty(void **state)
{
	(void)state;
	assert_true(utf8_valid("", 0));
	/* len, not the NUL, bounds the check: nothing past it is read. */
	assert_true(utf8_valid("\xff", 0));
}

static void
test_ascii(void **state)
{
	char all[128];

	(void)state;
	VALID("Take my wife - please.");
	/* NUL is a valid code point; the importer refuses it separately. */
	for (int i = 0; i < 128; i++)
		all[i] = (char)i;
	assert_true(utf8_valid(all, sizeof(all)));
}

static void
test_two_byte(void **state)
{
	(void)state;
	VALID("\xc2\x80");     /* U+0080, the smallest */
	VALID("S\xc3\xb8ren"); /* U+00F8 */
	VALID("\xdf\xbf");     /* U+07FF, the largest */
	VALID("a\xc3\xa9z\xc3\xa9");
}

static void
test_three_byte(void **state)
{
	(void)state;
	VALID("\xe0\xa0\x80"); /* U+0800, the smallest */
	VALID("\xe2\x80\x94"); /* U+2014 EM DASH */
	VALID("\xed\x9f\xbf"); /* U+D7FF, just below the surrogates */
	VALID("\xee\x80\x80"); /* U+E000, just above them */
	VALID("\xef\xbb\xbf"); /* U+FEFF, the BOM */
	VALID("\xef\xbf\xbf"); /* U+FFFF */
}

static void
test_four_byte(void **state)
{
	(void)state;
	VALID("\xf0\x90\x80\x80"); /* U+10000, the smallest */
	VALID("\xf0\x9f\x98\x80"); /* U+1F600 */
	VALID("\xf3\xbf\xbf\xbf");
	VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF, the largest */
	VALID("x\xf0\x9f\x98\x80y\xe2\x80\x94z\xc3\xb8");
}

static void
test_overlong(void **state)
{
	(void)state;
	INVALID("\xc0\x80"); /* NUL in two bytes */
	INVALID("\xc1\xbf");
	INVALID("\xc0\xaf"); /* '/', the classic exploit */
	INVALID("\xe0\x80\x80");
	INVALID("\xe0\x9f\xbf"); /* U+07FF in three bytes */
	INVALID("\xf0\x80\x80\x80");
	INVALID("\xf0\x8f\xbf\xbf"); /* U+FFFF in four bytes */
}

static void
test_surrogates(void **state)
{
	(void)state;
	INVALID("\xed\xa0\x80"); /* U+D800 */
	INVALID("\xed\xaf\xbf"); /* U+DBFF */
	INVALID("\xed\xb0\x80"); /* U+DC00 */
	INVALID("\xed\xbf\xbf"); /* U+DFFF */
	/* A CESU-8 pair is two surrogates, not one code point. */
	INVALID("\xed\xa0\xbd\xed\xb8\x80");
}

static void
test_above_max(void **state)
{
	(void)state;
	INVALID("\xf4\x90\x80\x80"); /* U+110000 */
	INVALID("\xf4\xbf\xbf\xbf");
}

static void
test_truncated(void **state)
{
	(void)state;
	INVALID("\xc3");
	INVALID("abc\xc3");
	INVALID("\xe2\x80");
	INVALID("abc\xe2");
	INVALID("\xf0\x9f\x98");
	INVALID("\xf0\x9f");
	INVALID("\xf0");
	/* Cut short by len, with the rest of the sequence beyond it. */
	assert_false(utf8_valid("\xe2\x80\x94", 2));
	assert_false(utf8_valid("\xf0\x9f\x98\x80", 3));
	assert_true(utf8_valid("\xe2\x80\x94", 3));
	/* A lead byte followed by something other than a continuation. */
	INVALID("\xc3"
		"a");
	INVALID("\xe2\x80"
		"a");
	INVALID("\xe2"
		"a\x80");
	INVALID("\xf0\x9f\x98"
		"a");
	INVALID("\xf0\x9f"
		"a\x80");
	INVALID("\xe2\xc3\xb8");
}

static void
test_stray_continuation(void **state)
{
	(void)state;
	INVALID("\x80");
	INVALID("\xbf");
	INVALID("a\x80z");
	/* One continuation byte too many after a complete sequence. */
	INVALID("\xc3\xb8\x80");
	INVALID("\xe2\x80\x94\x80");
	INVALID("\xf0\x9f\x98\x80\x80");
}

static void
test_never_valid_bytes(void **state)
{
	char buf[4];

	(void)state;
	for (int b = 0xf5; b <= 0xff; b++) {
		buf[0] = (char)b;
		buf[1] = buf[2] = buf[3] = (char)0x80;
		assert_false(utf8_valid(buf, 1));
		assert_false(utf8_valid(buf, 4));
	}
	INVALID("ok\xfe");
	INVALID("\xff\xfe");
}

/*
 * Every lead byte with every second byte, the rest continuation bytes:
 * the expected answer comes from decoding the code point, so the test
 * does not repeat the validator's byte ranges but checks them against
 * RFC 3629's definition.
 */
static void
test_exhaustive_two_bytes(void **state)
{
	char buf[4];

	(void)state;
	for (int a = 0x80; a <= 0xff; a++) {
		for (int b = 0; b <= 0xff; b++) {
			uint32_t cp = 0, min = 0;
			size_t len;
			bool want;

			if ((a & 0xe0) == 0xc0) {
				len = 2;
				cp = (uint32_t)(a & 0x1f) << 6 | (b & 0x3f);
				min = 0x80;
			} else if ((a & 0xf0) == 0xe0) {
				len = 3;
				cp = (uint32_t)(a & 0x0f) << 12 |
				    (uint32_t)(b & 0x3f) << 6;
				min = 0x800;
			} else if ((a & 0xf8) == 0xf0) {
				len = 4;
				cp = (uint32_t)(a & 0x07) << 18 |
				    (uint32_t)(b & 0x3f) << 12;
				min = 0x10000;
			} else {
				len = 2; /* a is no lead byte at all */
			}
			want = min != 0 && (b & 0xc0) == 0x80 && cp >= min &&
			    cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
			buf[0] = (char)a;
			buf[1] = (char)b;
			buf[2] = buf[3] = (char)0x80;
			if (utf8_valid(buf, len) != want)
				fail_msg("%02x %02x: expected %s", a, b,
				    want ? "valid" : "invalid");
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_ascii),
	    cmocka_unit_test(test_two_byte),
	    cmocka_unit_test(test_three_byte),
	    cmocka_unit_test(test_four_byte),
	    cmocka_unit_test(test_overlong),
	    cmocka_unit_test(test_surrogates),
	    cmocka_unit_test(test_above_max),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_stray_continuation),
	    cmocka_unit_test(test_never_valid_bytes),
	    cmocka_unit_test(test_exhaustive_two_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
