/*
 * The on-disk layout of a quoterd database, shared by the writer
 * (tools/quotes-import.c) and the reader (store.c). ARCHITECTURE.md
 * describes it in prose; bump STORE_FORMAT_VERSION on any change.
 *
 * One LMDB environment in a single file (MDB_NOSUBDIR) with four named
 * databases. Integers are in native byte order, as LMDB's own are.
 *
 *   "meta"    "quoterd" -> struct store_meta
 *   "authors" author name (UTF-8, unique) -> struct store_author
 *   "byindex" uint32 author index (MDB_INTEGERKEY)
 *                 -> struct store_author, then the author's name
 *   "quotes"  uint32 quote index (MDB_INTEGERKEY)
 *                 -> the reply, a serialized quotes.QuoteReply
 *
 * Authors are numbered 0..nauthors-1 in name order; each author's quotes
 * have consecutive indexes, so a pick is: find the author (by name, or by
 * a random index), then a random quote index in [first, first + count).
 *
 * The checksum in the meta (version 2 on) is XXH3_64bits, seed 0, of this
 * byte stream: for each of "authors", "byindex" and "quotes" in that
 * order, each record in key order as
 *
 *   u64 key length, key bytes, u64 value length, value bytes
 *
 * with the lengths little-endian. It covers everything a reader serves;
 * store_checksum() (checksum.h) is its one implementation, used by the
 * importer to write it and by store_verify() to check it.
 */
#ifndef QUOTERD_STORE_FORMAT_H
#define QUOTERD_STORE_FORMAT_H

#include <stdint.h>

#define STORE_FORMAT_VERSION 2
#define STORE_MAGIC "QUOTERD"
#define STORE_META_KEY "quoterd"
#define STORE_DB_META "meta"
#define STORE_DB_AUTHORS "authors"
#define STORE_DB_BYINDEX "byindex"
#define STORE_DB_QUOTES "quotes"
#define STORE_MAXDBS 4
/* The importer's limits, which the verifier holds every record to. */
#define STORE_MAX_AUTHOR 511	     /* bytes of an author's name */
#define STORE_MAX_QUOTE (64 * 1024) /* bytes of a quote's text */

struct store_meta {
	char magic[8]; /* STORE_MAGIC, NUL-padded */
	uint32_t version;
	uint32_t reserved;
	uint64_t nquotes;
	uint64_t nauthors;
	uint64_t created;  /* Unix time of the import */
	uint64_t checksum; /* of the content, see above */
};

struct store_author {
	uint32_t first; /* index of the author's first quote */
	uint32_t count; /* number of quotes, > 0 */
	uint32_t index; /* the author's own index */
	uint32_t reserved;
};

#endif
