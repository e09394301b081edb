/*
 * The content checksum of a quoterd database (store_format.h), computed in
 * one place for the importer, which writes it, and the verifier.
 */
#ifndef QUOTERD_CHECKSUM_H
#define QUOTERD_CHECKSUM_H

#include <lmdb.h>
#include <stdint.h>

/* The databases summed, in the order store_format.h gives. */
#define STORE_NSUMMED 7

/*
 * Reads the databases dbis[0..STORE_NSUMMED) (authors, byindex, quotes,
 * words, tags, folded, lengths) in key order through txn and sets *sum.
 * Returns 0 or an LMDB or errno code.
 */
int store_checksum(MDB_txn *txn, const MDB_dbi *dbis, uint64_t *sum);

#endif
