/*
 * A worker's open database, reference counted: the worker holds one
 * reference to the database new calls use, each call in progress holds
 * one, and every reply slice gRPC still holds (they point into the map)
 * holds another, released on whichever thread gRPC drops the slice. The
 * maps are closed with the last reference.
 *
 * An LMDB read transaction serves one thread at a time, so a database
 * holds one store (map and transaction) per call thread; the page cache
 * is shared, so this costs address space, not memory.
 */
#ifndef QUOTERD_DB_H
#define QUOTERD_DB_H

#include <stdatomic.h>

#include "store.h"

struct db {
	atomic_uint refs;
	atomic_int complained; /* a store error has been logged */
	int nstores;
	struct store *stores[]; /* one for each call thread */
};

/*
 * Opens the checked database open as fd nstores times; the caller still
 * closes fd. Returns NULL with a store error in *rc.
 */
struct db *db_open(int fd, int nstores, int *rc);
struct db *db_ref(struct db *d);
/* Takes void * so that it can be a gRPC slice destructor. */
void db_unref(void *d);

#endif
