/*
 * The content checksum of a quoterd database (store_format.h), computed in
 * one place for the importer, which writes it, and the verifier.
 */
#ifndef QUOTERD_CHECKSUM_H
#define QUOTERD_CHECKSUM_H

#include <lmdb.h>
#include <stdint.h>

/*
 * Reads authors, byindex and quotes in key order through txn and sets
 * *sum. Returns 0 or an LMDB or errno code.
 */
int store_checksum(MDB_txn *txn, MDB_dbi authors, MDB_dbi byindex,
    MDB_dbi quotes, uint64_t *sum);

#endif
