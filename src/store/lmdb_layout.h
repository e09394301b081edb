/*
 * LMDB's on-disk layout (liblmdb 0.9, mdb.c: MDB_page, MDB_node, MDB_meta,
 * MDB_db) as a 64-bit build writes it, for the verifier, which reads a
 * hostile file from raw bytes, and for the tests, which craft such files.
 * Byte offsets, not structs: the file is read through bounds checks and
 * memcpy, never cast, so a page can sit at any offset of any buffer.
 */
#ifndef QUOTERD_LMDB_LAYOUT_H
#define QUOTERD_LMDB_LAYOUT_H

#include <stdint.h>
#include <string.h>

#define LMDB_MAGIC        0xBEEFC0DEu
#define LMDB_DATA_VERSION 1
#define LMDB_MIN_PSIZE    512    /* ours: no real file has less */
#define LMDB_MAX_PSIZE    0x8000 /* mp_lower/mp_upper are 16-bit */
#define LMDB_MAX_DEPTH    32     /* CURSOR_STACK */
#define LMDB_MAX_KEYSIZE  511    /* MDB_MAXKEYSIZE */
#define LMDB_P_INVALID    UINT64_MAX

/* Page header (MDB_page), PAGEHDRSZ bytes, then the node offsets. */
#define LMDB_PAGEHDRSZ 16
#define LMDB_PG_PGNO   0  /* uint64 */
#define LMDB_PG_FLAGS  10 /* uint16 */
#define LMDB_PG_LOWER  12 /* uint16: end of the node offsets */
#define LMDB_PG_UPPER  14 /* uint16: start of the nodes */
#define LMDB_PG_PAGES  12 /* uint32, overflow pages only */
#define LMDB_PG_PTRS   16 /* uint16 node offsets from the page start */

#define LMDB_P_BRANCH   0x01
#define LMDB_P_LEAF     0x02
#define LMDB_P_OVERFLOW 0x04
#define LMDB_P_META     0x08

/*
 * A node (MDB_node): lo and hi are the data size (leaf) or the low 32 bits
 * of the child page (branch, whose flags are then its high 16 bits); the
 * key follows the header, then the data, or with F_BIGDATA the uint64
 * number of its first overflow page.
 */
#define LMDB_NODESIZE 8
#define LMDB_ND_LO    0
#define LMDB_ND_HI    2
#define LMDB_ND_FLAGS 4
#define LMDB_ND_KSIZE 6

#define LMDB_F_BIGDATA 0x01
#define LMDB_F_SUBDATA 0x02
#define LMDB_F_DUPDATA 0x04

/* A database record (MDB_db): in the meta, and as a named database's
 * value in the main database. */
#define LMDB_DB_SIZE     48
#define LMDB_DB_PAD      0  /* uint32; the page size in the free DB's */
#define LMDB_DB_FLAGS    4  /* uint16 */
#define LMDB_DB_DEPTH    6  /* uint16 */
#define LMDB_DB_BRANCH   8  /* uint64 pages */
#define LMDB_DB_LEAF     16 /* uint64 pages */
#define LMDB_DB_OVERFLOW 24 /* uint64 pages */
#define LMDB_DB_ENTRIES  32 /* uint64 */
#define LMDB_DB_ROOT     40 /* uint64 page, LMDB_P_INVALID if empty */

#define LMDB_INTEGERKEY 0x08

/* The meta (MDB_meta), after the page header of pages 0 and 1. */
#define LMDB_MM_MAGIC   0   /* uint32 */
#define LMDB_MM_VERSION 4   /* uint32 */
#define LMDB_MM_MAPSIZE 16  /* uint64 */
#define LMDB_MM_FREE    24  /* MDB_db; its pad is the page size */
#define LMDB_MM_MAIN    72  /* MDB_db */
#define LMDB_MM_LASTPG  120 /* uint64 */
#define LMDB_MM_TXNID   128 /* uint64 */
#define LMDB_META_SIZE  136

static inline uint16_t
lmdb_u16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
lmdb_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
lmdb_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Overflow pages that data of size bytes takes (OVPAGES). */
static inline uint64_t
lmdb_ovpages(uint64_t size, uint32_t psize)
{
	return (LMDB_PAGEHDRSZ - 1 + size) / psize + 1;
}

#endif
