/*
 * Tests for src/common/metrics.c and src/metrics/exposition.c: bucket
 * bounds, per-thread records that add up, slots that keep their counts,
 * a dead worker's calls that leave the in-flight gauge, and text that follows
 * the exposition format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exposition.h"
#include "metrics.h"

static struct metrics *
create(int slots, int threads)
{
	struct metrics *m;

	assert_int_equal(metrics_create(slots, threads, &m), 0);
	return m;
}

/* The value of the sample line that starts with prefix, or -1. */
static double
sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

static void
test_shape(void **state)
{
	struct metrics *m = create(4, 2), *bad;

	(void)state;
	assert_non_null(metrics_thread(m, 3, 1));
	assert_null(metrics_thread(m, 4, 0));
	assert_null(metrics_thread(m, 0, 2));
	assert_null(metrics_thread(m, -1, 0));
	assert_null(metrics_thread(NULL, 0, 0));
	/* Records of different threads never share a cache line. */
	assert_true((uintptr_t)metrics_thread(m, 0, 1) -
		(uintptr_t)metrics_thread(m, 0, 0) >=
	    64);
	assert_int_equal((uintptr_t)metrics_thread(m, 1, 1) % 64, 0);
	assert_int_not_equal(metrics_create(0, 1, &bad), 0);
	metrics_close(m);
}

static void
test_buckets(void **state)
{
	struct metrics *m = create(1, 1);
	struct metrics_thread *t = metrics_thread(m, 0, 0);

	(void)state;
	metrics_call(t, METRICS_GET_QUOTE, 0, 10000);      /* le 1e-05 */
	metrics_call(t, METRICS_GET_QUOTE, 0, 10001);      /* le 2.5e-05 */
	metrics_call(t, METRICS_GET_QUOTE, 0, 1000000000); /* le 1 */
	metrics_call(t, METRICS_GET_QUOTE, 0, 1000000001); /* +Inf */
	metrics_call(t, METRICS_GET_QUOTE, 99, 5);         /* UNKNOWN */
	assert_int_equal(metrics_get(&t->buckets[METRICS_GET_QUOTE][0]), 2);
	assert_int_equal(metrics_get(&t->buckets[METRICS_GET_QUOTE][1]), 1);
	assert_int_equal(metrics_get(&t->buckets[METRICS_GET_QUOTE][15]), 1);
	assert_int_equal(metrics_get(&t->buckets[METRICS_GET_QUOTE][16]), 1);
	assert_int_equal(metrics_get(&t->calls[METRICS_GET_QUOTE][0]), 4);
	assert_int_equal(metrics_get(&t->calls[METRICS_GET_QUOTE][2]), 1);
	assert_string_equal(metrics_bucket_le(0), "1e-05");
	assert_string_equal(metrics_bucket_le(METRICS_BUCKETS - 1), "+Inf");
	assert_string_equal(metrics_code_name(16), "UNAUTHENTICATED");
	assert_null(metrics_code_name(17));
	metrics_close(m);
}

static void
test_render_sums_threads_and_slots(void **state)
{
	struct metrics *m = create(3, 2);
	struct metrics_master *mm = metrics_master(m);
	char *text;
	size_t len;

	(void)state;
	for (int slot = 0; slot < 3; slot++)
		for (int th = 0; th < 2; th++) {
			struct metrics_thread *t = metrics_thread(m, slot, th);

			for (int i = 0; i < 10 * (slot + 1) + th; i++) {
				metrics_add(&t->started, 1);
				metrics_call(t, METRICS_GET_QUOTE, 0, 20000);
			}
			metrics_add(&t->started, 1);
			metrics_call(t, METRICS_OTHER, 12, 1000);
		}
	/* One call still in flight. */
	metrics_add(&metrics_thread(m, 2, 1)->started, 1);
	metrics_set(&mm->workers, 3);
	metrics_add(&mm->swaps_refused, 2);
	/* Only slots the master handed out are summed. */
	metrics_slot_taken(m, 1);
	metrics_slot_taken(m, 0);
	metrics_slot_taken(m, 3); /* past the block: nothing */
	metrics_slot_taken(NULL, 0);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_true(sample(text,
			"quoterd_calls_total{method=\"/quotes."
			"Quoter/GetQuote\",code=\"OK\"}") == 10 + 11 + 20 + 21);
	free(text);
	metrics_slot_taken(m, 2);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	/* 10+11 + 20+21 + 30+31 */
	assert_true(sample(text,
			"quoterd_calls_total{method=\"/quotes."
			"Quoter/GetQuote\",code=\"OK\"}") == 123);
	assert_true(sample(text,
			"quoterd_calls_total{method=\"other\","
			"code=\"UNIMPLEMENTED\"}") == 6);
	/* Codes never seen are left out, but for OK. */
	assert_null(strstr(text, "code=\"DATA_LOSS\""));
	assert_non_null(strstr(text,
	    "method=\"/quotes.Quoter/ListAuthors\","
	    "code=\"OK\"} 0\n"));
	assert_true(sample(text, "quoterd_calls_in_flight") == 1);
	/* Buckets are cumulative: 20 us is past the first bound. */
	assert_true(sample(text,
			"quoterd_call_duration_seconds_bucket{method="
			"\"/quotes.Quoter/GetQuote\",le=\"1e-05\"}") == 0);
	assert_true(sample(text,
			"quoterd_call_duration_seconds_bucket{method="
			"\"/quotes.Quoter/GetQuote\",le=\"2.5e-05\"}") == 123);
	assert_true(sample(text,
			"quoterd_call_duration_seconds_bucket{method="
			"\"/quotes.Quoter/GetQuote\",le=\"+Inf\"}") == 123);
	assert_true(sample(text,
			"quoterd_call_duration_seconds_count{method="
			"\"/quotes.Quoter/GetQuote\"}") == 123);
	assert_true(sample(text, "quoterd_workers") == 3);
	assert_true(
	    sample(text, "quoterd_database_swaps_total{result=\"refused\"}") ==
	    2);
	assert_true(sample(text, "process_open_fds") > 0);
	assert_non_null(strstr(text,
	    "# TYPE quoterd_call_duration_seconds "
	    "histogram\n"));
	assert_int_equal(text[len - 1], '\n');
	free(text);
	metrics_close(m);
}

/* A reaped worker's unfinished calls leave the gauge; its counts stay. */
static void
test_worker_gone_ends_its_calls(void **state)
{
	struct metrics *m = create(2, 2);
	struct metrics_thread *t = metrics_thread(m, 1, 0);
	char *text;
	size_t len;

	(void)state;
	metrics_slot_taken(m, 0);
	metrics_slot_taken(m, 1);
	for (int i = 0; i < 5; i++)
		metrics_add(&t->started, 1);
	for (int i = 0; i < 3; i++)
		metrics_call(t, METRICS_GET_QUOTE, 0, 20000);
	/* In flight elsewhere: a live worker's call stays. */
	metrics_add(&metrics_thread(m, 0, 1)->started, 1);
	metrics_worker_gone(m, 1);
	metrics_worker_gone(m, 2); /* past the block: nothing */
	metrics_worker_gone(NULL, 0);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_true(sample(text, "quoterd_calls_in_flight") == 1);
	free(text);
	/* Its replacement takes the record: one call ends, one stays. */
	metrics_add(&t->started, 1);
	metrics_add(&t->started, 1);
	metrics_call(t, METRICS_GET_QUOTE, 0, 20000);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_true(sample(text, "quoterd_calls_in_flight") == 2);
	assert_true(sample(text,
			"quoterd_calls_total{method=\"/quotes."
			"Quoter/GetQuote\",code=\"OK\"}") == 4);
	free(text);
	/* And it dies too: earlier workers' calls are not written off twice. */
	metrics_worker_gone(m, 1);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_true(sample(text, "quoterd_calls_in_flight") == 1);
	free(text);
	/* Calls that started on one thread and ended on another were all
	 * finished: nothing of them is written off, so the live worker's
	 * call is still in flight. */
	for (int i = 0; i < 4; i++) {
		metrics_add(&metrics_thread(m, 1, 0)->started, 1);
		metrics_call(metrics_thread(m, 1, 1), METRICS_GET_QUOTE, 0, 1);
	}
	metrics_worker_gone(m, 1);
	text = exposition_render(m, getpid(), &len);
	assert_non_null(text);
	assert_true(sample(text, "quoterd_calls_in_flight") == 1);
	free(text);
	metrics_close(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shape),
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_render_sums_threads_and_slots),
	    cmocka_unit_test(test_worker_gone_ends_its_calls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
