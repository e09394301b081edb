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
	STORE_EBADMAGIC = -40001,  /* an LMDB file, but not a quoterd one */
	STORE_EVERSION = -40002,   /* a quoterd file of another format */
	STORE_EEMPTY = -40003,     /* no quotes */
	STORE_ECORRUPT = -40004,   /* counts, records or pages are wrong */
	STORE_ETRUNCATED = -40005, /* shorter than its pages say */
	STORE_EBOUNDS = -40006,    /* a record lies outside the file */
	STORE_ECHECKSUM = -40007,  /* content and checksum disagree */
	STORE_ENOMATCH = -40008    /* no quote satisfies the filter */
};

struct store_quote {
	const void *reply; /* serialized QuoteReply, inside the map */
	size_t len;
};

int store_open(const char *path, struct store **out);
/*
 * Opens the file open as fd (a checked database the master handed over),
 * that very file even if its path has since been made to name another;
 * ESTALE if what opens is not that file. The caller still closes fd.
 */
int store_open_fd(int fd, struct store **out);
void store_close(struct store *s);
const char *store_strerror(int err);

/*
 * Whatever store_open() accepts, picks are bounds-checked: a record that
 * would lie outside the map is STORE_EBOUNDS, never a pointer. But LMDB
 * itself trusts the file's pages, so a hostile file can still crash the
 * process that opens it; store_verify() is the complete check.
 */
struct store_info {
	uint64_t nquotes;
	uint64_t nauthors;
	uint64_t size;     /* bytes of the file */
	uint64_t checksum; /* the content checksum in the meta record */
};
/*
 * Checks, completely, the database open as fd: every page a reader could
 * ever touch, every record, and the content checksum. Returns 0 and fills
 * *info, or an error code (store_strerror) with a specific reason in
 * why[0..whylen) such as "page 17: node 3 lies past the page end".
 * It reads a hostile file: run it in a process whose death means
 * "refused" (the master's checker child), never in the master.
 */
int store_verify(int fd, struct store_info *info, char *why, size_t whylen);

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
    size_t max, int (*fn)(void *arg, const char *name, size_t len), void *arg,
    int *more);

/*
 * Filters (format 3): which quotes a filtered pick, a search or the quote
 * of the day may choose from. Zero fields are no constraint. Words are
 * folded (words_fold()); they and tags point into the caller's memory.
 */
#define STORE_MAX_WORDS 16
#define STORE_MAX_TAGS  16
/* Authors whose names fold alike that one loose match covers. */
#define STORE_MAX_NAMESAKES 8

struct store_key {
	const char *p;
	size_t len;
};

struct store_filter {
	uint32_t nauthors; /* 0: any author; else these quote ranges */
	uint32_t first[STORE_MAX_NAMESAKES];
	uint32_t count[STORE_MAX_NAMESAKES];
	uint32_t min_length, max_length; /* code points; 0: no bound */
	struct store_key words[STORE_MAX_WORDS];
	size_t nwords;
	struct store_key tags[STORE_MAX_TAGS];
	size_t ntags;
};

/*
 * Sets f's authors to the author named name[0..len) exactly, or, unless
 * exact, failing that to the authors whose names match it after folding
 * (words_fold_name()). STORE_ENOMATCH if there is none.
 */
int store_find_author(const struct store *s, const char *name, size_t len,
    int exact, struct store_filter *f);
/*
 * Picks a quote satisfying f. With authors and no other constraint, an
 * author uniformly, then one of its quotes; with nothing at all, the
 * rule of store_pick(); otherwise uniformly over the quotes that match.
 * STORE_ENOMATCH if none does. Allocates nothing.
 */
int store_pick_filtered(const struct store *s, const struct store_filter *f,
    struct rng *r, struct store_quote *out);
/*
 * Calls fn for each of up to max quotes matching f whose index is at
 * least from, in index order; *next is the index after the last one
 * listed if more follow, else UINT32_MAX; *total counts every match.
 */
int
store_search(const struct store *s, const struct store_filter *f, uint32_t from,
    size_t max, int (*fn)(void *arg, const struct store_quote *q), void *arg,
    uint32_t *next, uint64_t *total);
/*
 * The quote of day day (days since 1970-01-01) among the quotes matching
 * f: the same for the same database on any machine, a bijection of the
 * day modulo the number of matches keyed by the content checksum, so no
 * quote repeats within fewer days than there are matches.
 */
int store_daily(const struct store *s, const struct store_filter *f,
    int64_t day, struct store_quote *out);
/*
 * As store_authors(), for tags: fn gets each name and its quote count.
 */
int store_tags(const struct store *s, const char *after, size_t afterlen,
    size_t max,
    int (*fn)(void *arg, const char *name, size_t len, uint32_t count),
    void *arg, int *more);

uint64_t store_nquotes(const struct store *s);
uint64_t store_nauthors(const struct store *s);
/* Bytes of the mapped file. */
uint64_t store_size(const struct store *s);

#endif
