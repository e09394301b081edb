/*
 * Reference counting for a worker's databases (see db.h).
 */
#include "db.h"

#include <errno.h>
#include <stdlib.h>

struct db *
db_open(const char *path, const char *fallback, int *rc)
{
	struct db *d;

	if ((d = malloc(sizeof(*d))) == NULL) {
		*rc = errno;
		return NULL;
	}
	*rc = store_open(path, &d->store);
	if ((*rc == ENOENT || *rc == EACCES) && fallback != NULL)
		*rc = store_open(fallback, &d->store);
	if (*rc != 0) {
		free(d);
		return NULL;
	}
	atomic_init(&d->refs, 1);
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

	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
		store_close(d->store);
		free(d);
	}
}
