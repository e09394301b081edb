/*
 * The content checksum (store_format.h): XXH3 over every record of the
 * served databases, lengths in a fixed byte order so that the stream, and
 * so the sum, is defined independently of the machine that writes it.
 */
#include "checksum.h"

#include <errno.h>
#include <xxhash.h>

static void
put_len(XXH3_state_t *st, size_t len)
{
	unsigned char le[8];
	uint64_t v = len;

	for (int i = 0; i < 8; i++, v >>= 8)
		le[i] = (unsigned char)v;
	XXH3_64bits_update(st, le, sizeof(le));
}

static int
sum_db(MDB_txn *txn, MDB_dbi dbi, XXH3_state_t *st)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		put_len(st, key.mv_size);
		XXH3_64bits_update(st, key.mv_data, key.mv_size);
		put_len(st, val.mv_size);
		XXH3_64bits_update(st, val.mv_data, val.mv_size);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_checksum(MDB_txn *txn, const MDB_dbi *dbis, uint64_t *sum)
{
	XXH3_state_t *st;
	int rc = 0;

	if ((st = XXH3_createState()) == NULL)
		return ENOMEM;
	XXH3_64bits_reset(st);
	for (int i = 0; i < STORE_NSUMMED && rc == 0; i++)
		rc = sum_db(txn, dbis[i], st);
	if (rc == 0)
		*sum = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return rc;
}
