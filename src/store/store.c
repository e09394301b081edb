/*
 * The quote store: opens and validates a database, then serves picks from
 * one read-only transaction held for the store's lifetime. The file never
 * changes under a reader (it is replaced by rename, not rewritten), so the
 * transaction's snapshot, and every pointer handed out, stay valid until
 * store_close().
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_format.h"

struct store {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi authors;
	MDB_dbi byindex;
	MDB_dbi quotes;
	uint64_t nquotes;
	uint64_t nauthors;
	uint64_t size;
};

const char *
store_strerror(int err)
{
	switch (err) {
	case STORE_EBADMAGIC:
		return "not a quoterd database";
	case STORE_EVERSION:
		return "unsupported database format version";
	case STORE_EEMPTY:
		return "database holds no quotes";
	case STORE_ECORRUPT:
		return "database is corrupt";
	case STORE_ETRUNCATED:
		return "database file is truncated";
	case MDB_INVALID:
		return "not an LMDB file";
	default:
		return mdb_strerror(err);
	}
}

static int
open_dbi(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi,
    uint64_t *entries)
{
	MDB_stat st;
	int rc;

	rc = mdb_dbi_open(txn, name, flags, dbi);
	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
		return STORE_EBADMAGIC;
	if (rc != 0)
		return rc;
	if ((rc = mdb_stat(txn, *dbi, &st)) != 0)
		return rc;
	*entries = st.ms_entries;
	return 0;
}

static int
check_meta(struct store *s, uint64_t file_size)
{
	MDB_dbi meta;
	MDB_val key = {sizeof(STORE_META_KEY) - 1, (void *)STORE_META_KEY};
	MDB_val val;
	MDB_envinfo info;
	MDB_stat envstat;
	struct store_meta m;
	uint64_t n, nauthors2;
	int rc;

	/* LMDB maps the file and trusts its page numbers: a truncated file
	 * would fault (SIGBUS) on first touch, so refuse it here. */
	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &envstat)) != 0)
		return rc;
	if ((uint64_t)(info.me_last_pgno + 1) * envstat.ms_psize > file_size)
		return STORE_ETRUNCATED;

	if ((rc = open_dbi(s->txn, STORE_DB_META, 0, &meta, &n)) != 0)
		return rc;
	rc = mdb_get(s->txn, meta, &key, &val);
	if (rc == MDB_NOTFOUND)
		return STORE_EBADMAGIC;
	if (rc != 0)
		return rc;
	if (val.mv_size != sizeof(m))
		return val.mv_size < sizeof(m.magic) + sizeof(m.version)
		    ? STORE_EBADMAGIC
		    : STORE_EVERSION;
	memcpy(&m, val.mv_data, sizeof(m));
	if (memcmp(m.magic, STORE_MAGIC, sizeof(STORE_MAGIC)) != 0)
		return STORE_EBADMAGIC;
	if (m.version != STORE_FORMAT_VERSION)
		return STORE_EVERSION;
	if (m.nquotes == 0 || m.nauthors == 0)
		return STORE_EEMPTY;
	if (m.nauthors > m.nquotes || m.nquotes > UINT32_MAX)
		return STORE_ECORRUPT;

	if ((rc = open_dbi(s->txn, STORE_DB_AUTHORS, 0, &s->authors,
	    &n)) != 0)
		return rc;
	if ((rc = open_dbi(s->txn, STORE_DB_BYINDEX, MDB_INTEGERKEY,
	    &s->byindex, &nauthors2)) != 0)
		return rc;
	if (n != m.nauthors || nauthors2 != m.nauthors)
		return STORE_ECORRUPT;
	if ((rc = open_dbi(s->txn, STORE_DB_QUOTES, MDB_INTEGERKEY, &s->quotes,
	    &n)) != 0)
		return rc;
	if (n != m.nquotes)
		return STORE_ECORRUPT;
	s->nquotes = m.nquotes;
	s->nauthors = m.nauthors;
	return 0;
}

int
store_open(const char *path, struct store **out)
{
	struct store *s;
	struct stat st;
	mdb_filehandle_t fd;
	int rc;

	*out = NULL;
	if (stat(path, &st) != 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	/* An empty file is how LMDB starts a new environment; a reader must
	 * not mistake it for a database. */
	if (st.st_size == 0)
		return MDB_INVALID;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return errno;
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS)) != 0)
		goto fail;
	/*
	 * MDB_NOLOCK: the file is immutable, so there is no writer to
	 * exclude and no lock file to create beside it. MDB_NOTLS: the
	 * transaction is not tied to the thread that opened it.
	 * MDB_NORDAHEAD: picks touch random pages.
	 */
	rc = mdb_env_open(s->env, path,
	    MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD,
	    0);
	if (rc != 0)
		goto fail;
	/* The file LMDB opened, which the path may no longer name. */
	if ((rc = mdb_env_get_fd(s->env, &fd)) != 0)
		goto fail;
	if (fstat(fd, &st) != 0) {
		rc = errno;
		goto fail;
	}
	s->size = (uint64_t)st.st_size;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn)) != 0)
		goto fail;
	if ((rc = check_meta(s, s->size)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

int
store_open_fd(int fd, const char *path, struct store **out)
{
	char self[64];
	int rc;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if ((rc = store_open(self, out)) == ENOENT)
		rc = store_open(path, out);
	return rc;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->txn != NULL)
		mdb_txn_abort(s->txn);
	if (s->env != NULL)
		mdb_env_close(s->env);
	free(s);
}

static int
get_author(const struct store *s, MDB_dbi dbi, MDB_val *key,
    struct store_author *a)
{
	MDB_val val;
	int rc;

	if ((rc = mdb_get(s->txn, dbi, key, &val)) != 0)
		return rc;
	if (val.mv_size < sizeof(*a))
		return STORE_ECORRUPT;
	/* LMDB aligns values to 2 bytes only: copy, don't cast. */
	memcpy(a, val.mv_data, sizeof(*a));
	if (a->count == 0 || (uint64_t)a->first + a->count > s->nquotes)
		return STORE_ECORRUPT;
	return 0;
}

int
store_pick(const struct store *s, const char *author, size_t len,
    struct rng *r, struct store_quote *out)
{
	struct store_author a;
	MDB_val key, val;
	uint32_t index;
	int rc = MDB_NOTFOUND;

	if (len > 0) {
		key.mv_size = len;
		key.mv_data = (void *)author;
		rc = get_author(s, s->authors, &key, &a);
		if (rc != 0 && rc != MDB_NOTFOUND && rc != MDB_BAD_VALSIZE)
			return rc;
	}
	if (rc != 0) {
		index = (uint32_t)rng_below(r, s->nauthors);
		key.mv_size = sizeof(index);
		key.mv_data = &index;
		if ((rc = get_author(s, s->byindex, &key, &a)) != 0)
			return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	}
	index = a.first + (uint32_t)rng_below(r, a.count);
	key.mv_size = sizeof(index);
	key.mv_data = &index;
	if ((rc = mdb_get(s->txn, s->quotes, &key, &val)) != 0)
		return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	out->reply = val.mv_data;
	out->len = val.mv_size;
	return 0;
}

int
store_authors(const struct store *s, const char *after, size_t afterlen,
    size_t max, int (*fn)(void *arg, const char *name, size_t len),
    void *arg, int *more)
{
	MDB_cursor *cur;
	MDB_val key = {afterlen, (void *)after}, val;
	size_t n = 0;
	int rc;

	*more = 0;
	if ((rc = mdb_cursor_open(s->txn, s->authors, &cur)) != 0)
		return rc;
	if (afterlen > 0) {
		/* The first name at or after the token; skip it if equal. */
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == 0 && key.mv_size == afterlen &&
		    memcmp(key.mv_data, after, afterlen) == 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	}
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (n == max) {
			*more = 1;
			break;
		}
		if (fn(arg, key.mv_data, key.mv_size) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

uint64_t
store_nquotes(const struct store *s)
{
	return s->nquotes;
}

uint64_t
store_nauthors(const struct store *s)
{
	return s->nauthors;
}

uint64_t
store_size(const struct store *s)
{
	return s->size;
}
