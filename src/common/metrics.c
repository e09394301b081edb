/*
 * The shared block of counters (see metrics.h): its shape, the names the
 * exposition gives its parts, and the one function on the call path.
 */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

struct metrics {
	void *base;
	size_t size;
	int nslots, nthreads;
	struct metrics_master *master;
	struct metrics_thread *threads; /* nslots x nthreads */
};

static const uint64_t bucket_ns[METRICS_BUCKETS - 1] = {10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000};

static const char *const bucket_le[METRICS_BUCKETS] = {"1e-05", "2.5e-05",
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"};

static const char *const method_names[METRICS_METHODS] =
    {[METRICS_GET_QUOTE] = "/quotes.Quoter/GetQuote",
	[METRICS_LIST_AUTHORS] = "/quotes.Quoter/ListAuthors",
	[METRICS_HEALTH_CHECK] = "/grpc.health.v1.Health/Check",
	[METRICS_HEALTH_WATCH] = "/grpc.health.v1.Health/Watch",
	[METRICS_REFLECTION] =
	    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	[METRICS_REFLECTION_ALPHA] =
	    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	[METRICS_SEARCH_QUOTES] = "/quotes.Quoter/SearchQuotes",
	[METRICS_LIST_TAGS] = "/quotes.Quoter/ListTags",
	[METRICS_QUOTE_OF_THE_DAY] = "/quotes.Quoter/GetQuoteOfTheDay",
	/* A client names unknown methods: never a label of its choosing. */
	[METRICS_OTHER] = "other"};

/* As grpc/status.h names them. */
static const char *const code_names[METRICS_CODES] = {"OK", "CANCELLED",
    "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};

int
metrics_create(int nslots, int nthreads, struct metrics **out)
{
	struct metrics *m;
	size_t head = sizeof(struct metrics_master);
	size_t n = (size_t)nslots * (size_t)nthreads;

	*out = NULL;
	if (nslots <= 0 || nthreads <= 0)
		return EINVAL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return errno;
	m->size = head + n * sizeof(struct metrics_thread);
	/* Anonymous shared pages: zero-filled, allocated only once a
	 * worker slot is used. */
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m->base == MAP_FAILED) {
		int err = errno;

		free(m);
		return err;
	}
	m->nslots = nslots;
	m->nthreads = nthreads;
	m->master = m->base;
	m->threads = (struct metrics_thread *)((char *)m->base + head);
	*out = m;
	return 0;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	munmap(m->base, m->size);
	free(m);
}

int
metrics_nthreads(const struct metrics *m)
{
	return m->nthreads;
}

struct metrics_master *
metrics_master(struct metrics *m)
{
	return m->master;
}

struct metrics_thread *
metrics_thread(struct metrics *m, int slot, int thread)
{
	if (m == NULL || slot < 0 || slot >= m->nslots || thread < 0 ||
	    thread >= m->nthreads)
		return NULL;
	return &m->threads[(size_t)slot * (size_t)m->nthreads + (size_t)thread];
}

void
metrics_worker_gone(struct metrics *m, int slot)
{
	struct metrics_thread *t, *first = metrics_thread(m, slot, 0);
	uint64_t started = 0, ended = 0;

	if (first == NULL)
		return;
	/* Summed over the slot's threads: a call is counted as started by
	 * the thread it arrived on and as ended by the one that ends it. */
	for (int j = 0; (t = metrics_thread(m, slot, j)) != NULL; j++) {
		started += metrics_get(&t->started);
		for (int k = 0; k < METRICS_METHODS; k++)
			for (int c = 0; c < METRICS_CODES; c++)
				ended += metrics_get(&t->calls[k][c]);
	}
	/* Cumulative, like started: those of earlier workers of the slot
	 * are in it already. */
	metrics_set(&first->abandoned, started > ended ? started - ended : 0);
}

const char *
metrics_method_name(enum metrics_method method)
{
	return method_names[method];
}

const char *
metrics_code_name(int code)
{
	return code >= 0 && code < METRICS_CODES ? code_names[code] : NULL;
}

const char *
metrics_bucket_le(int bucket)
{
	return bucket_le[bucket];
}

void
metrics_call(struct metrics_thread *t, enum metrics_method method, int code,
    uint64_t ns)
{
	int b = 0;

	if (code < 0 || code >= METRICS_CODES)
		code = 2; /* UNKNOWN */
	while (b < METRICS_BUCKETS - 1 && ns > bucket_ns[b])
		b++;
	metrics_add(&t->calls[method][code], 1);
	metrics_add(&t->buckets[method][b], 1);
	metrics_add(&t->duration_ns[method], ns);
}

void
metrics_slot_taken(struct metrics *m, int slot)
{
	if (m == NULL || slot < 0 || slot >= m->nslots)
		return;
	if (metrics_get(&m->master->slots_taken) < (uint64_t)slot + 1)
		metrics_set(&m->master->slots_taken, (uint64_t)slot + 1);
}

int
metrics_nslots_taken(struct metrics *m)
{
	uint64_t n = metrics_get(&m->master->slots_taken);

	return n < (uint64_t)m->nslots ? (int)n : m->nslots;
}
