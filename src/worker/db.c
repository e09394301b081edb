/*
 * Reference counting for a worker's databases (see db.h).
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static void
db_free(struct db *d)
{
	for (int i = 0; i < d->nstores; i++)
		store_close(d->stores[i]);
	free(d);
}

struct db *
db_open(const char *path, int nstores, int *rc)
{
	struct db *d;
	int fd;

	/*
	 * Every store must map the same file, even if path is made to name
	 * another one meanwhile (the master swaps what its fd holds): open
	 * it once, and map each store from that descriptor. There is no
	 * fallback to the database's own path: only the file the checker
	 * passed may be mapped.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		*rc = errno;
		return NULL;
	}
	d = calloc(1, sizeof(*d) + (size_t)nstores * sizeof(d->stores[0]));
	if (d == NULL) {
		*rc = errno;
		close(fd);
		return NULL;
	}
	atomic_init(&d->refs, 1);
	atomic_init(&d->complained, 0);
	*rc = 0;
	for (; d->nstores < nstores && *rc == 0; d->nstores++)
		*rc = store_open_fd(fd, path, &d->stores[d->nstores]);
	close(fd);
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
