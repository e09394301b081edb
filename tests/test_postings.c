/*
 * Unit tests for src/store/postings.c: lists of every size around a
 * block round-trip, the k-th entry and seeks (forward and back) agree
 * with the list, and damaged lists are refused, never read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "postings.h"
#include "rng.h"
#include "store_format.h"

#define LIMIT 1000000

static void
nothing(void *arg, uint32_t v)
{
	uint32_t *n = arg;

	(void)v;
	(*n)++;
}

/* A random ascending list of n values below LIMIT. */
static uint32_t *
make_list(struct rng *r, uint32_t n)
{
	uint32_t *v = malloc(n * sizeof(*v)), x = 0;

	assert_non_null(v);
	for (uint32_t i = 0; i < n; i++) {
		x += (uint32_t)rng_below(r, i % 7 == 0 ? 3000 : 3) + (i > 0);
		v[i] = x;
	}
	assert_true(x < LIMIT);
	return v;
}

static void
test_round_trip(void **state)
{
	static const uint32_t sizes[] = {1, 2, 63, 64, 65, 128, 129, 300};
	struct rng r;

	(void)state;
	rng_seed(&r, 15);
	for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
		uint32_t n = sizes[t], *v = make_list(&r, n), seen = 0;
		size_t size = postings_size(v, n);
		unsigned char *buf = malloc(size);
		struct postings pl;
		uint32_t i = 0;

		assert_int_equal(postings_encode(v, n, buf), size);
		assert_int_equal(postings_check(buf, size, LIMIT, nothing,
				     &seen),
		    0);
		assert_int_equal(seen, n);
		assert_int_equal(postings_open(&pl, buf, size, LIMIT), 0);
		assert_int_equal(pl.count, n);
		do
			assert_int_equal(pl.cur, v[i++]);
		while (postings_next(&pl));
		assert_int_equal(i, n);
		/* Random access, in any order. */
		for (int k = 0; k < 200; k++) {
			uint32_t j = (uint32_t)rng_below(&r, n);
			uint32_t target = v[j] - (j > 0 && v[j] > v[j - 1] + 1);

			assert_true(postings_nth(&pl, j));
			assert_int_equal(pl.cur, v[j]);
			assert_true(postings_seek(&pl, target));
			assert_int_equal(pl.cur, v[j]);
		}
		assert_false(postings_seek(&pl, v[n - 1] + 1));
		assert_false(postings_nth(&pl, n));
		/* A limit the values reach: refused. */
		assert_int_equal(postings_check(buf, size, v[n - 1], nothing,
				     &seen),
		    -1);
		/* Cut short anywhere: refused, and no read past the end
		 * (the sanitizer build would tell). */
		for (size_t cut = 0; cut < size; cut++) {
			unsigned char *c = malloc(cut ? cut : 1);

			memcpy(c, buf, cut);
			assert_int_equal(postings_check(c, cut, LIMIT, nothing,
					     &seen),
			    -1);
			free(c);
		}
		free(buf);
		free(v);
	}
}

static void
test_damaged_skip(void **state)
{
	struct rng r;
	uint32_t *v, seen = 0, off;
	unsigned char *buf;
	size_t size;

	(void)state;
	rng_seed(&r, 16);
	v = make_list(&r, 200);
	size = postings_size(v, 200);
	buf = malloc(size);
	postings_encode(v, 200, buf);
	/* Block 1's offset moved by one: the gaps no longer line up. */
	memcpy(&off, buf + 2 + 8 + 4, 4);
	off++;
	memcpy(buf + 2 + 8 + 4, &off, 4);
	assert_int_equal(postings_check(buf, size, LIMIT, nothing, &seen), -1);
	/* An offset past the data: a seek there ends the list as bad. */
	off = 0xffffff;
	memcpy(buf + 2 + 8 + 4, &off, 4);
	{
		struct postings pl;

		assert_int_equal(postings_open(&pl, buf, size, LIMIT), 0);
		assert_false(postings_nth(&pl, 70));
		assert_true(pl.bad);
	}
	free(buf);
	free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_damaged_skip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
