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
#include <unistd.h>

#include "lmdb_layout.h"
#include "store_format.h"
#include "store_impl.h"

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
	case STORE_EBOUNDS:
		return "record lies outside the file";
	case STORE_ECHECKSUM:
		return "database content does not match its checksum";
	case STORE_ENOMATCH:
		return "no quote matches";
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
	if (envstat.ms_psize == 0 ||
	    info.me_last_pgno >= file_size / envstat.ms_psize)
		return STORE_ETRUNCATED;

	if ((rc = open_dbi(s->txn, STORE_DB_META, 0, &s->meta, &n)) != 0)
		return rc;
	rc = mdb_get(s->txn, s->meta, &key, &val);
	if (rc == MDB_NOTFOUND)
		return STORE_EBADMAGIC;
	if (rc != 0)
		return rc;
	/* The magic and version first: another version's meta may well
	 * have another size. Any other size is not ours. */
	memset(&m, 0, sizeof(m));
	memcpy(&m, val.mv_data,
	    val.mv_size < sizeof(m) ? val.mv_size : sizeof(m));
	if (val.mv_size < offsetof(struct store_meta, reserved) ||
	    memcmp(m.magic, STORE_MAGIC, sizeof(STORE_MAGIC)) != 0)
		return STORE_EBADMAGIC;
	if (m.version != STORE_FORMAT_VERSION)
		return STORE_EVERSION;
	if (val.mv_size != sizeof(m))
		return STORE_EBADMAGIC;
	if (m.nquotes == 0 || m.nauthors == 0)
		return STORE_EEMPTY;
	if (m.nauthors > m.nquotes || m.nquotes > UINT32_MAX)
		return STORE_ECORRUPT;

	if ((rc = open_dbi(s->txn, STORE_DB_AUTHORS, 0, &s->authors, &n)) != 0)
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
	if ((rc = open_dbi(s->txn, STORE_DB_WORDS, 0, &s->words, &n)) != 0 ||
	    (rc = open_dbi(s->txn, STORE_DB_TAGS, 0, &s->tags, &n)) != 0 ||
	    (rc = open_dbi(s->txn, STORE_DB_FOLDED, 0, &s->folded, &n)) != 0)
		return rc;
	if ((rc = open_dbi(s->txn, STORE_DB_LENGTHS, MDB_INTEGERKEY,
		 &s->lengths, &n)) != 0)
		return rc;
	if (n != 2)
		return STORE_ECORRUPT;
	s->nquotes = m.nquotes;
	s->nauthors = m.nauthors;
	s->checksum = m.checksum;
	return 0;
}

/*
 * Finds where LMDB mapped the file, which its API does not tell, so that
 * picks can check what they return. The main database's first key lies
 * at a known offset of its root page: read that page's header from the
 * file, then ask LMDB for the key.
 */
static int
find_map(struct store *s, int fd)
{
	unsigned char meta[2][LMDB_PAGEHDRSZ + LMDB_META_SIZE];
	unsigned char hdr[LMDB_PG_PTRS + 2];
	MDB_envinfo info;
	MDB_stat st;
	MDB_cursor *cur;
	MDB_dbi main;
	MDB_val key, val;
	const unsigned char *m;
	uint64_t root, pos;
	uint16_t node0;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0)
		return rc;
	if (pread(fd, meta[0], sizeof(meta[0]), 0) != sizeof(meta[0]) ||
	    pread(fd, meta[1], sizeof(meta[1]), st.ms_psize) != sizeof(meta[1]))
		return STORE_ETRUNCATED;
	/* The meta LMDB picks (mdb_env_pick_meta). */
	m = meta[lmdb_u64(meta[0] + LMDB_PAGEHDRSZ + LMDB_MM_TXNID) <
		lmdb_u64(meta[1] + LMDB_PAGEHDRSZ + LMDB_MM_TXNID)] +
	    LMDB_PAGEHDRSZ;
	root = lmdb_u64(m + LMDB_MM_MAIN + LMDB_DB_ROOT);
	/* check_meta() made (me_last_pgno + 1) * psize fit the file. */
	if (root > info.me_last_pgno)
		return STORE_ECORRUPT;
	if (pread(fd, hdr, sizeof(hdr), (off_t)(root * st.ms_psize)) !=
	    sizeof(hdr))
		return STORE_ETRUNCATED;
	node0 = lmdb_u16(hdr + LMDB_PG_PTRS);
	if (lmdb_u16(hdr + LMDB_PG_FLAGS) != LMDB_P_LEAF ||
	    lmdb_u16(hdr + LMDB_PG_LOWER) < sizeof(hdr) ||
	    node0 > st.ms_psize - LMDB_NODESIZE)
		return STORE_ECORRUPT;
	pos = root * st.ms_psize + node0 + LMDB_NODESIZE;

	if ((rc = mdb_dbi_open(s->txn, NULL, 0, &main)) != 0 ||
	    (rc = mdb_cursor_open(s->txn, main, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc;
	if ((uintptr_t)key.mv_data < pos)
		return STORE_ECORRUPT;
	s->base = (uintptr_t)key.mv_data - (uintptr_t)pos;
	s->limit = s->size < info.me_mapsize ? s->size : info.me_mapsize;
	return 0;
}

/* The two length arrays, which picks read directly. */
static int
find_lengths(struct store *s)
{
	const unsigned char **at[2] = {&s->bylength, &s->sorted};
	uint32_t k;
	MDB_val key = {sizeof(k), &k}, val;
	int rc;

	for (k = 0; k < 2; k++) {
		if ((rc = mdb_get(s->txn, s->lengths, &key, &val)) != 0)
			return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
		if (!store_inside(s, val.mv_data, val.mv_size))
			return STORE_EBOUNDS;
		if (val.mv_size != s->nquotes * sizeof(uint32_t))
			return STORE_ECORRUPT;
		*at[k] = val.mv_data;
	}
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
	/* Map the file's size, not the size its meta asks for: nothing
	 * past the file can be reached, and the map is no larger than
	 * need be. LMDB raises it to the meta's last page if need be. */
	if ((rc = mdb_env_set_mapsize(s->env, (size_t)st.st_size)) != 0)
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
	if ((rc = find_map(s, fd)) != 0)
		goto fail;
	if ((rc = find_lengths(s)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

/* Opens path if it is the very file open as fd. */
static int
open_same(const char *path, int fd, struct store **out)
{
	struct stat want, got;
	mdb_filehandle_t lfd;
	int rc;

	if (fstat(fd, &want) != 0)
		return errno;
	if ((rc = store_open(path, out)) != 0)
		return rc;
	if (mdb_env_get_fd((*out)->env, &lfd) != 0 || fstat(lfd, &got) != 0 ||
	    got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
		store_close(*out);
		*out = NULL;
		return ESTALE;
	}
	return 0;
}

int
store_open_fd(int fd, struct store **out)
{
	char self[64];

	/* LMDB opens by name only: this process's own name for fd, checked
	 * to be the same file once open. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return open_same(self, fd, out);
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

int
store_get_author(const struct store *s, MDB_dbi dbi, MDB_val *key,
    struct store_author *a)
{
	MDB_val val;
	int rc;

	if ((rc = mdb_get(s->txn, dbi, key, &val)) != 0)
		return rc;
	if (!store_inside(s, val.mv_data, val.mv_size))
		return STORE_EBOUNDS;
	if (val.mv_size < sizeof(*a))
		return STORE_ECORRUPT;
	/* LMDB aligns values to 2 bytes only: copy, don't cast. */
	memcpy(a, val.mv_data, sizeof(*a));
	if (a->count == 0 || (uint64_t)a->first + a->count > s->nquotes)
		return STORE_ECORRUPT;
	return 0;
}

int
store_pick(const struct store *s, const char *author, size_t len, struct rng *r,
    struct store_quote *out)
{
	struct store_author a;
	MDB_val key;
	uint32_t index;
	int rc = MDB_NOTFOUND;

	if (len > 0) {
		key.mv_size = len;
		key.mv_data = (void *)author;
		rc = store_get_author(s, s->authors, &key, &a);
		if (rc != 0 && rc != MDB_NOTFOUND && rc != MDB_BAD_VALSIZE)
			return rc;
	}
	if (rc != 0) {
		index = (uint32_t)rng_below(r, s->nauthors);
		key.mv_size = sizeof(index);
		key.mv_data = &index;
		if ((rc = store_get_author(s, s->byindex, &key, &a)) != 0)
			return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	}
	return store_get_quote(s, a.first + (uint32_t)rng_below(r, a.count),
	    out);
}

int
store_get_quote(const struct store *s, uint32_t q, struct store_quote *out)
{
	MDB_val key = {sizeof(q), &q}, val;
	int rc;

	if ((rc = mdb_get(s->txn, s->quotes, &key, &val)) != 0)
		return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	if (!store_inside(s, val.mv_data, val.mv_size))
		return STORE_EBOUNDS;
	out->reply = val.mv_data;
	out->len = val.mv_size;
	return 0;
}

int
store_cursor_after(MDB_cursor *cur, const char *after, size_t afterlen,
    MDB_val *key, MDB_val *val)
{
	int rc;

	if (afterlen == 0)
		return mdb_cursor_get(cur, key, val, MDB_FIRST);
	/* The first key at or after the token; skip it if equal. */
	key->mv_size = afterlen;
	key->mv_data = (void *)after;
	rc = mdb_cursor_get(cur, key, val, MDB_SET_RANGE);
	if (rc == 0 && key->mv_size == afterlen &&
	    memcmp(key->mv_data, after, afterlen) == 0)
		rc = mdb_cursor_get(cur, key, val, MDB_NEXT);
	return rc;
}

int
store_authors(const struct store *s, const char *after, size_t afterlen,
    size_t max, int (*fn)(void *arg, const char *name, size_t len), void *arg,
    int *more)
{
	MDB_cursor *cur;
	MDB_val key, val;
	size_t n = 0;
	int rc;

	*more = 0;
	if ((rc = mdb_cursor_open(s->txn, s->authors, &cur)) != 0)
		return rc;
	rc = store_cursor_after(cur, after, afterlen, &key, &val);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (n == max) {
			*more = 1;
			break;
		}
		if (!store_inside(s, key.mv_data, key.mv_size)) {
			rc = STORE_EBOUNDS;
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
