/*
 * Unit tests for src/worker/wire.c: string fields are judged by every
 * byte the wire carries, NULs and invalid UTF-8 included, also inside
 * nested messages; other fields and unknown ones are skipped; bytes that
 * are not a message are refused without reading past them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quote_service.pb-c.h"
#include "wire.h"

#define QUOTE (&quotes__quote_request__descriptor)
#define LIST  (&quotes__list_authors_request__descriptor)
#define REFL  (&grpc__reflection__v1alpha__server_reflection_request__descriptor)

/* Literals with explicit lengths, so that embedded NULs count. */
#define CHECK(desc, lit)                                                       \
	wire_check_strings(desc, (const uint8_t *)(lit), sizeof(lit) - 1)

static void
test_valid(void **state)
{
	(void)state;
	assert_int_equal(CHECK(QUOTE, ""), WIRE_OK);
	assert_int_equal(CHECK(QUOTE, "\x0a\x0aMark Twain"), WIRE_OK);
	assert_int_equal(CHECK(QUOTE, "\x0a\x03\xe6\x9d\x8e"), WIRE_OK);
	/* page_size (varint), then page_token */
	assert_int_equal(CHECK(LIST,
			     "\x08\x96\x01\x12\x01"
			     "A"),
	    WIRE_OK);
}

static void
test_nul_anywhere(void **state)
{
	(void)state;
	assert_int_equal(CHECK(QUOTE, "\x0a\x0cMark Twain\x00\xff"), WIRE_NUL);
	assert_int_equal(CHECK(QUOTE, "\x0a\x01\x00"), WIRE_NUL);
	assert_int_equal(CHECK(LIST,
			     "\x12\x02"
			     "A\x00"),
	    WIRE_NUL);
	/* The last of a repeated field counts too. */
	assert_int_equal(CHECK(QUOTE,
			     "\x0a\x01"
			     "A\x0a\x02"
			     "B\x00"),
	    WIRE_NUL);
}

static void
test_utf8(void **state)
{
	(void)state;
	assert_int_equal(CHECK(QUOTE, "\x0a\x0bMark Twain\xff"), WIRE_UTF8);
	/* An overlong NUL is not a way around the NUL check. */
	assert_int_equal(CHECK(QUOTE, "\x0a\x02\xc0\x80"), WIRE_UTF8);
}

static void
test_nested(void **state)
{
	(void)state;
	/* file_containing_extension (5): containing_type (1) */
	assert_int_equal(CHECK(REFL,
			     "\x2a\x05\x0a\x03"
			     "A\x00"
			     "B"),
	    WIRE_NUL);
	assert_int_equal(CHECK(REFL,
			     "\x2a\x05\x0a\x03"
			     "ABC"),
	    WIRE_OK);
	assert_int_equal(CHECK(REFL, "\x0a\x02h\x00\x3a\x00"), WIRE_NUL);
}

static void
test_other_fields_skipped(void **state)
{
	(void)state;
	/* Bytes, not strings: unknown field 9 and fixed-width fields. */
	assert_int_equal(CHECK(QUOTE, "\x4a\x02\x00\xff"), WIRE_OK);
	assert_int_equal(CHECK(QUOTE,
			     "\x49\x00\x00\x00\x00\x00\x00\x00\x00"
			     "\x4d\x00\x00\x00\x00"),
	    WIRE_OK);
	/* A string field sent with another wire type is not a string. */
	assert_int_equal(CHECK(QUOTE, "\x08\x00"), WIRE_OK);
}

static void
test_malformed(void **state)
{
	(void)state;
	assert_int_equal(CHECK(QUOTE,
			     "\x0a\x05"
			     "abc"),
	    WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x0a"), WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x08\x80"), WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x00\x00"), WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x0b\x0c"), WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x09\x00"), WIRE_MALFORMED);
	assert_int_equal(CHECK(QUOTE, "\x0d\x00"), WIRE_MALFORMED);
	assert_int_equal(
	    CHECK(QUOTE, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
	    WIRE_MALFORMED);
}

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(wire_strerror(WIRE_NUL),
	    "a string field holds a NUL byte");
	assert_non_null(wire_strerror((enum wire_result)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_nul_anywhere),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_nested),
	    cmocka_unit_test(test_other_fields_skipped),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
