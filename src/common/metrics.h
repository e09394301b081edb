/*
 * The counters behind /metrics: one block of shared memory that the
 * master maps before it forks anything, so every worker, and the metrics
 * process that renders them, see the same pages. Each call thread of
 * each worker slot owns a cache line aligned record that only it writes
 * (plain relaxed loads and stores, no lock and no atomic read-modify-
 * write on the call path); the master owns the instance-wide gauges. A
 * scrape sums the records. A slot's record outlives its worker, so a
 * worker that retires or dies keeps the calls it counted, and its
 * replacement adds to them; the calls it started and never finished are
 * written off once it is reaped (metrics_worker_gone()), so that they do
 * not stay in flight.
 */
#ifndef QUOTERD_METRICS_H
#define QUOTERD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The methods calls are counted by; "other" is any unknown method. */
enum metrics_method {
	METRICS_GET_QUOTE,
	METRICS_LIST_AUTHORS,
	METRICS_HEALTH_CHECK,
	METRICS_HEALTH_WATCH,
	METRICS_REFLECTION,
	METRICS_REFLECTION_ALPHA,
	METRICS_SEARCH_QUOTES,
	METRICS_LIST_TAGS,
	METRICS_QUOTE_OF_THE_DAY,
	METRICS_OTHER,
	METRICS_METHODS
};

#define METRICS_CODES 17 /* gRPC status codes 0..16 */
/* Upper bounds of the duration buckets, in ns; +Inf is the last. */
#define METRICS_BUCKETS 17

typedef _Atomic uint64_t metrics_counter;

struct metrics_thread {
	metrics_counter calls[METRICS_METHODS][METRICS_CODES];
	metrics_counter buckets[METRICS_METHODS][METRICS_BUCKETS];
	metrics_counter duration_ns[METRICS_METHODS];
	metrics_counter started; /* calls given to the thread */
	/* Calls the slot's workers died in, in its first thread's record
	 * (a call may end on another thread than the one it started on):
	 * written by the master only, once no worker writes the slot. */
	metrics_counter abandoned;
} __attribute__((aligned(64)));

/* Written by the master only. */
struct metrics_master {
	metrics_counter workers;
	metrics_counter worker_restarts;
	metrics_counter generation;
	metrics_counter quotes;
	metrics_counter authors;
	metrics_counter swaps_ok;
	metrics_counter swaps_refused;
	metrics_counter loaded_at; /* Unix time, s */
	/* One past the highest worker slot ever handed out: a scrape sums
	 * only these, not the whole block, which is sized for the most
	 * workers there could ever be. */
	metrics_counter slots_taken;
} __attribute__((aligned(64)));

struct metrics;

/* Maps the block for nslots workers of nthreads call threads each. */
int metrics_create(int nslots, int nthreads, struct metrics **out);
void metrics_close(struct metrics *m);
int metrics_nthreads(const struct metrics *m);
struct metrics_master *metrics_master(struct metrics *m);
/* Worker slot's call thread's record; NULL past the block's shape. */
struct metrics_thread *metrics_thread(struct metrics *m, int slot, int thread);
/*
 * By the master, once the worker that wrote the records of slot is
 * reaped and before another is given them: its calls started and never
 * finished are no longer in flight. Its finished calls keep counting. Not on
 * the call path; m NULL or slot out of range: nothing.
 */
void metrics_worker_gone(struct metrics *m, int slot);
/* The master gives slot to a worker (before it forks it). */
void metrics_slot_taken(struct metrics *m, int slot);
/* Slots a scrape must sum: 0 to this, exclusive. */
int metrics_nslots_taken(struct metrics *m);
const char *metrics_method_name(enum metrics_method method);
const char *metrics_code_name(int code);
/* Bucket upper bounds, in seconds, as the exposition spells them. */
const char *metrics_bucket_le(int bucket);

static inline void
metrics_add(metrics_counter *c, uint64_t n)
{
	/* One writer per counter: a load and a store, no locked add. */
	atomic_store_explicit(c,
	    atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

static inline void
metrics_set(metrics_counter *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t
metrics_get(metrics_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Counts one finished call that took ns nanoseconds. */
void metrics_call(struct metrics_thread *t, enum metrics_method method,
    int code, uint64_t ns);

/* Monotonic nanoseconds, for call durations. */
static inline uint64_t
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
