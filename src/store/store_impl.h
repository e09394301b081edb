/*
 * The store's insides, shared by store.c and the verifier's logical walk
 * (verify.c) and nothing else.
 */
#ifndef QUOTERD_STORE_IMPL_H
#define QUOTERD_STORE_IMPL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

struct store {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_dbi authors;
	MDB_dbi byindex;
	MDB_dbi quotes;
	MDB_dbi words;
	MDB_dbi tags;
	MDB_dbi folded;
	MDB_dbi lengths;
	const unsigned char *bylength; /* uint32 length a quote, by index */
	const unsigned char *sorted;   /* uint32 indexes by (length, index) */
	uint64_t nquotes;
	uint64_t nauthors;
	uint64_t size;     /* of the file */
	uint64_t checksum; /* as the meta says */
	uintptr_t base;    /* the map's first byte */
	uint64_t limit;    /* bytes mapped and in the file */
};

/*
 * Whether p[0..len) lies inside the map and the file. LMDB returns data
 * at offsets and of sizes it read from the file without checking them;
 * this is the check, in two compares: p below the map wraps to a huge
 * offset.
 */
static inline int
store_inside(const struct store *s, const void *p, size_t len)
{
	uint64_t off = (uint64_t)((uintptr_t)p - s->base);

	return off <= s->limit && len <= s->limit - off;
}

struct store_author;
struct store_quote;

/* Quote q's reply, checked to lie inside the map. */
int store_get_quote(const struct store *s, uint32_t q, struct store_quote *out);
/*
 * The author record under key in dbi (authors by name, or byindex),
 * checked: inside the map, whole, a quote range inside the database.
 * Returns LMDB's code (MDB_NOTFOUND) when there is none.
 */
int store_get_author(const struct store *s, MDB_dbi dbi, MDB_val *key,
    struct store_author *a);

/*
 * Puts cur on the first key after after[0..afterlen), in key order (on
 * the first key if afterlen is 0): where a paged listing goes on from
 * its token. Returns mdb_cursor_get()'s code.
 */
int store_cursor_after(MDB_cursor *cur, const char *after, size_t afterlen,
    MDB_val *key, MDB_val *val);

#endif
