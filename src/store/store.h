/*
 * Read-only access to a quoterd database (see store_format.h), for the
 * workers. A store is an LMDB file mapped read-only with no lock file: it
 * is never written once renamed into place, so readers need no locks.
 * Picks return pointers into the map and allocate nothing.
 */
#ifndef QUOTERD_STORE_H
#define QUOTERD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

struct store;

/* Errors of our own; any other non-zero code is an LMDB or errno code. */
enum {
	STORE_EBADMAGIC = -40001, /* an LMDB file, but not a quoterd one */
	STORE_EVERSION = -40002,  /* a quoterd file of another format */
	STORE_EEMPTY = -40003,    /* no quotes */
	STORE_ECORRUPT = -40004,  /* counts or records do not agree */
	STORE_ETRUNCATED = -40005 /* shorter than its pages say */
};

struct store_quote {
	const void *reply; /* serialized QuoteReply, inside the map */
	size_t len;
};

int store_open(const char *path, struct store **out);
/*
 * Opens the file open as fd, through /proc/self/fd, so that it is that
 * very file even if its path has since been made to name another; where
 * there is no /proc, opens path instead.
 */
int store_open_fd(int fd, const char *path, struct store **out);
void store_close(struct store *s);

/* TEMPORARY: the verifier's API, as agreed. */
struct store_info {
	uint64_t nquotes;
	uint64_t nauthors;
	uint64_t size;
	uint64_t checksum;
};
int store_verify(int fd, struct store_info *info, char *why, size_t whylen);
const char *store_strerror(int err);

/*
 * Picks a quote of the author named author[0..len) if known, otherwise of
 * a uniformly random author; then one of that author's quotes, uniformly.
 */
int store_pick(const struct store *s, const char *author, size_t len,
    struct rng *r, struct store_quote *out);

/*
 * Calls fn for each of up to max authors that follow after[0..afterlen)
 * in name order (from the first if afterlen is 0); *more tells whether
 * any author follows the last one listed. fn returns non-zero to stop.
 * Names point into the map and are not NUL-terminated.
 */
int store_authors(const struct store *s, const char *after, size_t afterlen,
    size_t max, int (*fn)(void *arg, const char *name, size_t len),
    void *arg, int *more);

uint64_t store_nquotes(const struct store *s);
uint64_t store_nauthors(const struct store *s);
/* Bytes of the mapped file. */
uint64_t store_size(const struct store *s);

#endif
