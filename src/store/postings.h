/*
 * Posting lists (store_format.h): written by quotes-import, read by the
 * store's filtered picks and checked by the verifier. Reading never goes
 * past the list's bytes, whatever they hold: a list that does not decode
 * sets bad and reads as ended.
 */
#ifndef QUOTERD_POSTINGS_H
#define QUOTERD_POSTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cursor over one list. */
struct postings {
	const unsigned char *skip; /* nblocks entries, or NULL */
	const unsigned char *data, *end;
	const unsigned char *at; /* the next gap to decode */
	uint32_t count, nblocks;
	uint32_t pos;   /* index of the current entry; count: ended */
	uint32_t cur;   /* its value */
	uint32_t limit; /* values must be below this */
	bool bad;
};

/*
 * Opens the list p[0..len) with values below limit, at its first entry.
 * Returns -1 (and sets bad) if its header does not fit.
 */
int
postings_open(struct postings *pl, const void *p, size_t len, uint32_t limit);
/* Moves to the next entry; false at the end (or if bad). */
bool postings_next(struct postings *pl);
/* Moves to entry k < count; false if bad. */
bool postings_nth(struct postings *pl, uint32_t k);
/* Moves to the first entry >= target, forward or back; false if none. */
bool postings_seek(struct postings *pl, uint32_t target);

/*
 * The verifier's check of the list p[0..len): it decodes exactly, with
 * its skip entries where its blocks are, values ascending and below
 * limit, nothing after it; fn sees each value. 0 if so, else -1.
 */
int postings_check(const void *p, size_t len, uint32_t limit,
    void (*fn)(void *arg, uint32_t v), void *arg);

/* Bytes postings_encode() writes for v[0..n). */
size_t postings_size(const uint32_t *v, uint32_t n);
/* Writes v[0..n) (n > 0, strictly ascending) to out; returns bytes. */
size_t postings_encode(const uint32_t *v, uint32_t n, unsigned char *out);

#endif
