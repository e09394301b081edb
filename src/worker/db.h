/*
 * A worker's open database, reference counted: the call thread holds one
 * reference to its current database, and every reply slice gRPC still
 * holds (they point into the map) holds another, released on whichever
 * thread gRPC drops the slice. The map is closed with the last reference.
 */
#ifndef QUOTERD_DB_H
#define QUOTERD_DB_H

#include <stdatomic.h>

#include "store.h"

struct db {
	struct store *store;
	atomic_uint refs;
};

/*
 * Opens path, or fallback where path does not exist (a /proc path on a
 * system without /proc). Returns NULL with a store error in *rc.
 */
struct db *db_open(const char *path, const char *fallback, int *rc);
struct db *db_ref(struct db *d);
/* Takes void * so that it can be a gRPC slice destructor. */
void db_unref(void *d);

#endif
