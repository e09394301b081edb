/*
 * Reference counting for a worker's databases (see db.h).
 */
#include "db.h"

#include <errno.h>
#include <stdlib.h>

static void
db_free(struct db *d)
{
	for (int i = 0; i < d->nstores; i++)
		store_close(d->stores[i]);
	free(d);
}

struct db *
db_open(int fd, int nstores, int *rc)
{
	struct db *d;

	d = calloc(1, sizeof(*d) + (size_t)nstores * sizeof(d->stores[0]));
	if (d == NULL) {
		*rc = errno;
		return NULL;
	}
	atomic_init(&d->refs, 1);
	atomic_init(&d->complained, 0);
	*rc = 0;
	/* Every store maps the one file behind fd: the one the checker
	 * passed, whatever its path names by now. */
	for (; d->nstores < nstores && *rc == 0; d->nstores++)
		*rc = store_open_fd(fd, &d->stores[d->nstores]);
	if (*rc != 0) {
		d->nstores--; /* the one that failed */
		db_free(d);
		return NULL;
	}
	return d;
}

struct db *
db_ref(struct db *d)
{
	atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
	return d;
}

void
db_unref(void *arg)
{
	struct db *d = arg;

	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
		db_free(d);
}
