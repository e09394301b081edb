/*
 * Unit tests for src/common/rng.c: a seed fixes the whole sequence (tests
 * and reproductions depend on it), distinct seeds give distinct streams
 * (workers must not share one), and rng_below() stays in range and is
 * uniform, since store picks rely on it for fairness between authors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rng.h"

/* The 0.999 quantile of chi-square with 9 degrees of freedom: a fair
 * generator exceeds it once in a thousand seeds, and the seed is fixed. */
#define CHI2_9DOF_999 27.877

static void
test_same_seed_same_sequence(void **state)
{
	struct rng a, b;

	(void)state;
	rng_seed(&a, 42);
	rng_seed(&b, 42);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(rng_next(&a), rng_next(&b));
	/* rng_below() draws from the same stream, so it repeats too. */
	rng_seed(&a, 7);
	rng_seed(&b, 7);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(rng_below(&a, 1000 + (uint64_t)i),
		    rng_below(&b, 1000 + (uint64_t)i));
}

static void
test_reseed_restarts(void **state)
{
	struct rng r;
	uint64_t first[16];

	(void)state;
	rng_seed(&r, 0);
	for (int i = 0; i < 16; i++)
		first[i] = rng_next(&r);
	rng_seed(&r, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(rng_next(&r), first[i]);
}

static void
test_different_seeds_differ(void **state)
{
	static const uint64_t seeds[] = {0, 1, 2, 3, 42, 0xffffffffULL,
	    UINT64_MAX, UINT64_MAX - 1};
	enum { NSEEDS = sizeof(seeds) / sizeof(seeds[0]), N = 64 };
	uint64_t out[NSEEDS][N];
	struct rng r;

	(void)state;
	for (size_t i = 0; i < NSEEDS; i++) {
		rng_seed(&r, seeds[i]);
		for (int k = 0; k < N; k++)
			out[i][k] = rng_next(&r);
	}
	/* Neighbouring seeds too: splitmix64 must spread them apart, so no
	 * two sequences share even their first output. */
	for (size_t i = 0; i < NSEEDS; i++)
		for (size_t j = i + 1; j < NSEEDS; j++) {
			int same = 0;

			for (int k = 0; k < N; k++)
				same += out[i][k] == out[j][k];
			assert_int_equal(same, 0);
		}
}

static void
test_zero_seed_not_stuck(void **state)
{
	struct rng r;
	uint64_t prev;

	(void)state;
	/* An all-zero xoshiro state would output zeros forever. */
	rng_seed(&r, 0);
	prev = rng_next(&r);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = rng_next(&r);

		assert_true(x != prev);
		prev = x;
	}
}

static void
test_seed_random(void **state)
{
	struct rng a, b;
	int same = 0;

	(void)state;
	assert_int_equal(rng_seed_random(&a), 0);
	assert_int_equal(rng_seed_random(&b), 0);
	for (int i = 0; i < 8; i++)
		same += rng_next(&a) == rng_next(&b);
	assert_true(same < 8);
}

static void
test_below_one(void **state)
{
	struct rng r;

	(void)state;
	rng_seed(&r, 1);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(rng_below(&r, 1), 0);
}

static void
test_below_in_range(void **state)
{
	static const uint64_t ns[] = {1, 2, 3, 7, 10, 1000, 1ULL << 32,
	    (1ULL << 32) + 1, 1ULL << 63, (1ULL << 63) + 1, UINT64_MAX / 3 * 2,
	    UINT64_MAX - 1, UINT64_MAX};
	struct rng r;

	(void)state;
	rng_seed(&r, 12345);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		for (int k = 0; k < 20000; k++)
			assert_true(rng_below(&r, ns[i]) < ns[i]);
}

/*
 * n of 2/3 of the range is where shortcuts show: reducing by modulo puts
 * results below n/2 twice as often as above it, and multiplying without
 * the rejection step gives half the results two raw draws and the others
 * one (for this n, the odd ones below n/2 and the even ones above). Fair:
 * 15000 of 30000 for both counts, sigma about 87; the biases give 20000.
 */
static void
test_below_large_n_balanced(void **state)
{
	const uint64_t n = UINT64_MAX / 3 * 2;
	struct rng r;
	int low = 0, doubled = 0;
	const int draws = 30000;

	(void)state;
	rng_seed(&r, 99);
	for (int i = 0; i < draws; i++) {
		uint64_t x = rng_below(&r, n);

		assert_true(x < n);
		low += x < n / 2;
		doubled += (x < n / 2) == (x & 1);
	}
	assert_in_range(low, 15000 - 600, 15000 + 600);
	assert_in_range(doubled, 15000 - 600, 15000 + 600);
}

static void
test_below_two_hits_both(void **state)
{
	struct rng r;
	int seen[2] = {0, 0};

	(void)state;
	rng_seed(&r, 5);
	for (int i = 0; i < 1000; i++)
		seen[rng_below(&r, 2)]++;
	assert_true(seen[0] > 0 && seen[1] > 0);
}

static void
test_below_chi_square(void **state)
{
	enum { N = 100000, K = 10 };
	uint64_t counts[K] = {0};
	double chi2 = 0, expect = (double)N / K;
	struct rng r;

	(void)state;
	rng_seed(&r, 42);
	for (int i = 0; i < N; i++) {
		uint64_t x = rng_below(&r, K);

		assert_true(x < K);
		counts[x]++;
	}
	for (int k = 0; k < K; k++) {
		double d = (double)counts[k] - expect;

		chi2 += d * d / expect;
	}
	print_message("chi-square over rng_below(10): %.3f\n", chi2);
	assert_true(chi2 < CHI2_9DOF_999);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_seed_same_sequence),
	    cmocka_unit_test(test_reseed_restarts),
	    cmocka_unit_test(test_different_seeds_differ),
	    cmocka_unit_test(test_zero_seed_not_stuck),
	    cmocka_unit_test(test_seed_random),
	    cmocka_unit_test(test_below_one),
	    cmocka_unit_test(test_below_in_range),
	    cmocka_unit_test(test_below_large_n_balanced),
	    cmocka_unit_test(test_below_two_hits_both),
	    cmocka_unit_test(test_below_chi_square),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
