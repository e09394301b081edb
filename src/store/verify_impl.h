/*
 * The state of one store_verify() run, shared by its two halves:
 * verify_pages.c (the raw pages, before LMDB may read them) and verify.c
 * (the records and indexes, through LMDB).
 */
#ifndef QUOTERD_VERIFY_IMPL_H
#define QUOTERD_VERIFY_IMPL_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned long long ull; /* for printf */

struct verify {
	const unsigned char *map; /* the whole file */
	uint64_t size;
	uint64_t npages; /* pages the meta says are in use */
	uint32_t psize;
	unsigned char *seen; /* a bit a page: reached once already */
	/* The indexes as the quotes and authors say they must be, summed
	 * over (term, index) pairs, and as the indexes hold them. */
	uint64_t want_words, got_words, want_folded, got_folded;
	uint64_t term;    /* the hash of the term being walked */
	uint64_t *hashes; /* a quote's word hashes */
	size_t nhashes;
	char *why;
	size_t whylen;
};

/* Writes why into v and returns rc, so that a check ends in one line. */
int verify_fail(struct verify *v, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every page a reader can reach, from the raw map: 0 or a store code. */
int verify_pages(struct verify *v);

#endif
