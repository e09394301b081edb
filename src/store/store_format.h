/*
 * The on-disk layout of a quoterd database, shared by the writer
 * (tools/quotes-import.c) and the reader (store.c). ARCHITECTURE.md
 * describes it in prose; bump STORE_FORMAT_VERSION on any change.
 *
 * One LMDB environment in a single file (MDB_NOSUBDIR) with eight named
 * databases. Integers are in native byte order, as LMDB's own are.
 *
 *   "meta"    "quoterd" -> struct store_meta
 *   "authors" author name (UTF-8, unique) -> struct store_author
 *   "byindex" uint32 author index (MDB_INTEGERKEY)
 *                 -> struct store_author, then the author's name
 *   "quotes"  uint32 quote index (MDB_INTEGERKEY)
 *                 -> the reply, a serialized quotes.QuoteReply
 *
 * and, from version 3 on, the indexes of the filters (words.h says what
 * a word and a folded name are):
 *
 *   "words"   folded word -> posting list of the quotes holding it
 *   "tags"    tag name -> posting list of the quotes carrying it
 *   "folded"  folded author name -> posting list of author indexes
 *   "lengths" uint32 (MDB_INTEGERKEY)
 *                 STORE_LENGTHS_BYQUOTE -> uint32[nquotes], quote q's
 *                     length in code points at [q]
 *                 STORE_LENGTHS_SORTED -> uint32[nquotes], the quote
 *                     indexes ordered by (length, index)
 *
 * Only words of at most WORDS_MAX_WORD bytes are indexed, the longest a
 * query may ask for.
 *
 * A posting list is a strictly ascending list of uint32 indexes:
 *
 *   varint count (> 0)
 *   if count > STORE_BLOCK, one skip entry a block of STORE_BLOCK
 *       entries, nblocks = ceil(count / STORE_BLOCK): uint32 the block's
 *       first index, uint32 offset of its gaps from the data start
 *   data: with skip entries, for each block the varint (gap - 1) from
 *       each of its entries to the next within the block; without, the
 *       first index as a varint, then the varint (gap - 1) of the others
 *
 * (varint: LEB128, at most 5 bytes.) The skip entries make the k-th entry
 * and a seek cost one block's decoding, not the list's.
 *
 * Authors are numbered 0..nauthors-1 in name order; each author's quotes
 * have consecutive indexes, so a pick is: find the author (by name, or by
 * a random index), then a random quote index in [first, first + count).
 *
 * The checksum in the meta (version 2 on) is XXH3_64bits, seed 0, of this
 * byte stream: for each of "authors", "byindex", "quotes" and (version 3
 * on) "words", "tags", "folded" and "lengths" in that order, each record
 * in key order as
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

#define STORE_FORMAT_VERSION  3
#define STORE_MAGIC           "QUOTERD"
#define STORE_META_KEY        "quoterd"
#define STORE_DB_META         "meta"
#define STORE_DB_AUTHORS      "authors"
#define STORE_DB_BYINDEX      "byindex"
#define STORE_DB_QUOTES       "quotes"
#define STORE_DB_WORDS        "words"
#define STORE_DB_TAGS         "tags"
#define STORE_DB_FOLDED       "folded"
#define STORE_DB_LENGTHS      "lengths"
#define STORE_MAXDBS          8
#define STORE_LENGTHS_BYQUOTE 0
#define STORE_LENGTHS_SORTED  1
#define STORE_BLOCK           64 /* posting list entries a skip entry */
/* The importer's limits, which the verifier holds every record to. */
#define STORE_MAX_AUTHOR 511         /* bytes of an author's name */
#define STORE_MAX_QUOTE  (64 * 1024) /* bytes of a quote's text */

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
