/*
 * The first half of store_verify(): every page a reader can reach,
 * checked from the raw bytes the way LMDB will read them (lmdb_layout.h),
 * because LMDB checks page numbers against the last page and nothing
 * inside a page. Only a file that passes here is opened with LMDB.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_layout.h"
#include "store.h"
#include "store_format.h"
#include "store_impl.h"
#include "verify_impl.h"

/* One B-tree, as it is walked in key order. */
struct tree {
	const char *name;
	bool intkey;
	bool main; /* the main database: values are named databases */
	bool empty_ok;
	unsigned depth;
	uint64_t entries, branch, leaf, overflow;
	const unsigned char *prev; /* the last leaf key so far */
	size_t prevlen;
	const unsigned char *low; /* the next leaf key must be >= this */
	size_t lowlen;
	unsigned char dbs[STORE_MAXDBS][LMDB_DB_SIZE]; /* main only */
	unsigned found; /* main only: a bit for each of named[] */
};

/* The named databases, in the main database's key order. */
static const struct {
	const char *name;
	bool intkey;
	bool empty_ok; /* no tags at all, quotes without a word */
} named[STORE_MAXDBS] = {
    {STORE_DB_AUTHORS, false, false},
    {STORE_DB_BYINDEX, true, false},
    {STORE_DB_FOLDED, false, false},
    {STORE_DB_LENGTHS, true, false},
    {STORE_DB_META, false, false},
    {STORE_DB_QUOTES, true, false},
    {STORE_DB_TAGS, false, true},
    {STORE_DB_WORDS, false, true},
};

int
verify_fail(struct verify *v, int rc, const char *fmt, ...)
{
	va_list ap;

	if (v->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(v->why, v->whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* LMDB's order: integer keys as numbers, others as bytes (memcmp, then
 * the shorter first). */
static int
keycmp(const struct tree *t, const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
	int c;

	if (t->intkey) {
		uint32_t x = lmdb_u32(a), y = lmdb_u32(b);

		return (x > y) - (x < y);
	}
	if ((c = memcmp(a, b, alen < blen ? alen : blen)) != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* Marks pages [pgno, pgno + n) as reached: each in use, and only once,
 * so the walk ends and no two references share a page. */
static int
take(struct verify *v, const struct tree *t, uint64_t pgno, uint64_t n)
{
	if (pgno < 2)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu is a meta page", t->name, (ull)pgno);
	if (pgno >= v->npages || n > v->npages - pgno)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu (%llu pages) lies past the last page %llu",
		    t->name, (ull)pgno, (ull)n, (ull)v->npages - 1);
	for (uint64_t i = pgno; i < pgno + n; i++) {
		if (v->seen[i / 8] & (1u << (i % 8)))
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu is reached twice", t->name, (ull)i);
		v->seen[i / 8] |= (unsigned char)(1u << (i % 8));
	}
	return 0;
}

static int
check_key(struct verify *v, struct tree *t, uint64_t pgno, unsigned i,
    const unsigned char *key, size_t len, bool leaf)
{
	if (t->intkey ? len != sizeof(uint32_t)
		      : len == 0 || len > LMDB_MAX_KEYSIZE)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u has a key of %zu bytes", t->name,
		    (ull)pgno, i, len);
	/* Every key after the ones before it, and not before the branch
	 * key that led here: LMDB's binary searches assume both. */
	if (t->prev != NULL && keycmp(t, t->prev, t->prevlen, key, len) >= 0)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u is out of key order", t->name,
		    (ull)pgno, i);
	if (!leaf) {
		t->low = key;
		t->lowlen = len;
		return 0;
	}
	if (t->low != NULL && keycmp(t, key, len, t->low, t->lowlen) < 0)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u lies before its branch key",
		    t->name, (ull)pgno, i);
	t->low = NULL;
	t->prev = key;
	t->prevlen = len;
	return 0;
}

/* Data stored on overflow pages: they must be in the file, unshared, and
 * enough for the size. */
static int
check_overflow(struct verify *v, struct tree *t, uint64_t pgno, unsigned i,
    uint64_t opg, uint64_t dsize)
{
	uint64_t need = lmdb_ovpages(dsize, v->psize), pages;
	const unsigned char *p;

	if (opg >= v->npages)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: overflow page %llu lies past the "
		    "last page",
		    t->name, (ull)pgno, i, (ull)opg);
	p = v->map + opg * v->psize;
	pages = lmdb_u32(p + LMDB_PG_PAGES);
	if (lmdb_u64(p + LMDB_PG_PGNO) != opg ||
	    lmdb_u16(p + LMDB_PG_FLAGS) != LMDB_P_OVERFLOW)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: page %llu is not an overflow "
		    "page",
		    t->name, (ull)pgno, i, (ull)opg);
	if (pages < need)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: %llu bytes on %llu overflow "
		    "pages",
		    t->name, (ull)pgno, i, (ull)dsize, (ull)pages);
	t->overflow += pages;
	return take(v, t, opg, pages);
}

static int
check_leaf_node(struct verify *v, struct tree *t, uint64_t pgno, unsigned i,
    const unsigned char *node, uint64_t room)
{
	unsigned flags = lmdb_u16(node + LMDB_ND_FLAGS);
	size_t ksize = lmdb_u16(node + LMDB_ND_KSIZE);
	uint64_t dsize = lmdb_u16(node + LMDB_ND_LO) |
	    (uint64_t)lmdb_u16(node + LMDB_ND_HI) << 16;
	const unsigned char *data = node + LMDB_NODESIZE + ksize;
	int rc;

	/* room: bytes from the node header to the page end; the key is
	 * already known to fit. */
	room -= LMDB_NODESIZE + ksize;
	if ((rc = check_key(v, t, pgno, i, node + LMDB_NODESIZE, ksize,
		 true)) != 0)
		return rc;
	t->entries++;
	if (t->main) {
		unsigned k;

		if (flags != LMDB_F_SUBDATA || dsize != LMDB_DB_SIZE ||
		    room < LMDB_DB_SIZE)
			return verify_fail(v, STORE_ECORRUPT,
			    "main database: page %llu: node %u is not a named "
			    "database",
			    (ull)pgno, i);
		for (k = 0; k < STORE_MAXDBS; k++)
			if (strlen(named[k].name) == ksize &&
			    memcmp(named[k].name, node + LMDB_NODESIZE,
				ksize) == 0)
				break;
		if (k == STORE_MAXDBS)
			return verify_fail(v, STORE_EBADMAGIC,
			    "main database: page %llu: node %u names a "
			    "database that is not quoterd's",
			    (ull)pgno, i);
		memcpy(t->dbs[k], data, LMDB_DB_SIZE);
		t->found |= 1u << k;
		return 0;
	}
	if (flags == 0) {
		if (dsize > room)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u: its %llu bytes of data "
			    "lie past the page end",
			    t->name, (ull)pgno, i, (ull)dsize);
		return 0;
	}
	if (flags == LMDB_F_BIGDATA) {
		if (room < sizeof(uint64_t))
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies past the page end",
			    t->name, (ull)pgno, i);
		return check_overflow(v, t, pgno, i, lmdb_u64(data), dsize);
	}
	return verify_fail(v, STORE_ECORRUPT,
	    "%s: page %llu: node %u has flags %#x", t->name, (ull)pgno, i,
	    flags);
}

static int
walk(struct verify *v, struct tree *t, uint64_t pgno, unsigned level)
{
	const unsigned char *p;
	unsigned flags, lower, upper, n;
	int rc;

	if ((rc = take(v, t, pgno, 1)) != 0)
		return rc;
	p = v->map + pgno * v->psize;
	flags = lmdb_u16(p + LMDB_PG_FLAGS);
	lower = lmdb_u16(p + LMDB_PG_LOWER);
	upper = lmdb_u16(p + LMDB_PG_UPPER);
	if (lmdb_u64(p + LMDB_PG_PGNO) != pgno)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu calls itself page %llu", t->name, (ull)pgno,
		    (ull)lmdb_u64(p + LMDB_PG_PGNO));
	if (flags != LMDB_P_BRANCH && flags != LMDB_P_LEAF)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu has flags %#x, not a branch or leaf page",
		    t->name, (ull)pgno, flags);
	/* Every leaf at the depth the database records, every branch
	 * above: LMDB's cursor stack is sized by it. */
	if ((flags == LMDB_P_LEAF) != (level == t->depth))
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: a %s page at level %u of %u", t->name,
		    (ull)pgno, flags == LMDB_P_LEAF ? "leaf" : "branch", level,
		    t->depth);
	if (lower < LMDB_PAGEHDRSZ || lower > upper || upper > v->psize ||
	    (lower - LMDB_PAGEHDRSZ) % 2 != 0)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu: free space from %u to %u is not inside "
		    "the page",
		    t->name, (ull)pgno, lower, upper);
	n = (lower - LMDB_PAGEHDRSZ) / 2;
	/* LMDB asserts that a branch has two children or more. */
	if (n < (flags == LMDB_P_BRANCH ? 2u : 1u))
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: page %llu has %u nodes", t->name, (ull)pgno, n);
	if (flags == LMDB_P_BRANCH)
		t->branch++;
	else
		t->leaf++;
	for (unsigned i = 0; i < n; i++) {
		unsigned off = lmdb_u16(p + LMDB_PG_PTRS + 2 * i);
		const unsigned char *node = p + off;
		size_t ksize;
		uint64_t child;

		if (off < upper || off % 2 != 0)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies outside the node "
			    "area",
			    t->name, (ull)pgno, i);
		if (off > v->psize - LMDB_NODESIZE)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies past the page end",
			    t->name, (ull)pgno, i);
		ksize = lmdb_u16(node + LMDB_ND_KSIZE);
		if (ksize > v->psize - off - LMDB_NODESIZE)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u: its key lies past the "
			    "page end",
			    t->name, (ull)pgno, i);
		if (flags == LMDB_P_LEAF) {
			if ((rc = check_leaf_node(v, t, pgno, i, node,
				 v->psize - off)) != 0)
				return rc;
			continue;
		}
		/* A branch's first key is never read (LMDB's searches
		 * start at node 1) and is left empty. */
		if (i > 0 &&
		    (rc = check_key(v, t, pgno, i, node + LMDB_NODESIZE, ksize,
			 false)) != 0)
			return rc;
		child = lmdb_u16(node + LMDB_ND_LO) |
		    (uint64_t)lmdb_u16(node + LMDB_ND_HI) << 16 |
		    (uint64_t)lmdb_u16(node + LMDB_ND_FLAGS) << 32;
		if (child >= v->npages)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u points to page %llu, past "
			    "the last page %llu",
			    t->name, (ull)pgno, i, (ull)child,
			    (ull)v->npages - 1);
		if ((rc = walk(v, t, child, level + 1)) != 0)
			return rc;
	}
	return 0;
}

/* Walks the tree whose MDB_db record is db and checks it against it. */
static int
walk_tree(struct verify *v, struct tree *t, const unsigned char *db,
    uint16_t want_flags)
{
	uint64_t root = lmdb_u64(db + LMDB_DB_ROOT);
	uint16_t flags = lmdb_u16(db + LMDB_DB_FLAGS);
	int rc;

	t->depth = lmdb_u16(db + LMDB_DB_DEPTH);
	if (flags != want_flags)
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: database flags %#x, not %#x", t->name, flags,
		    want_flags);
	if (root == LMDB_P_INVALID && t->empty_ok) {
		if (t->depth != 0 || lmdb_u64(db + LMDB_DB_ENTRIES) != 0 ||
		    lmdb_u64(db + LMDB_DB_BRANCH) != 0 ||
		    lmdb_u64(db + LMDB_DB_LEAF) != 0 ||
		    lmdb_u64(db + LMDB_DB_OVERFLOW) != 0)
			return verify_fail(v, STORE_ECORRUPT,
			    "%s: an empty database with pages", t->name);
		return 0;
	}
	if (root == LMDB_P_INVALID)
		return verify_fail(v, t->main ? STORE_EBADMAGIC : STORE_EEMPTY,
		    "%s: the database is empty", t->name);
	if (t->depth < 1 || t->depth > LMDB_MAX_DEPTH)
		return verify_fail(v, STORE_ECORRUPT, "%s: depth %u", t->name,
		    t->depth);
	if ((rc = walk(v, t, root, 1)) != 0)
		return rc;
	if (t->entries != lmdb_u64(db + LMDB_DB_ENTRIES) ||
	    t->branch != lmdb_u64(db + LMDB_DB_BRANCH) ||
	    t->leaf != lmdb_u64(db + LMDB_DB_LEAF) ||
	    t->overflow != lmdb_u64(db + LMDB_DB_OVERFLOW))
		return verify_fail(v, STORE_ECORRUPT,
		    "%s: %llu entries on %llu branch, %llu leaf and %llu "
		    "overflow pages, not as its record says",
		    t->name, (ull)t->entries, (ull)t->branch, (ull)t->leaf,
		    (ull)t->overflow);
	return 0;
}

/* Both meta pages, as mdb_env_read_header() reads them; returns the one
 * LMDB will use (mdb_env_pick_meta()). */
static int
check_metas(struct verify *v, const unsigned char **meta)
{
	const unsigned char *m[2];
	uint64_t last;
	uint32_t psize = 0;

	for (int i = 0; i < 2; i++) {
		/* Page 1 is where page 0's page size puts it. */
		uint64_t off = i == 0 ? 0 : psize;
		const unsigned char *p = v->map + off;

		if (v->size < LMDB_PAGEHDRSZ + LMDB_META_SIZE ||
		    off > v->size - (LMDB_PAGEHDRSZ + LMDB_META_SIZE))
			return verify_fail(v,
			    i == 0 ? MDB_INVALID : STORE_ETRUNCATED,
			    "the file is too short for meta page %d", i);
		m[i] = p + LMDB_PAGEHDRSZ;
		if (!(lmdb_u16(p + LMDB_PG_FLAGS) & LMDB_P_META) ||
		    lmdb_u32(m[i] + LMDB_MM_MAGIC) != LMDB_MAGIC)
			return verify_fail(v, MDB_INVALID,
			    "meta page %d: not an LMDB meta page", i);
		if (lmdb_u32(m[i] + LMDB_MM_VERSION) != LMDB_DATA_VERSION)
			return verify_fail(v, MDB_VERSION_MISMATCH,
			    "meta page %d: LMDB format version %u", i,
			    lmdb_u32(m[i] + LMDB_MM_VERSION));
		if (i == 0)
			psize = lmdb_u32(m[0] + LMDB_MM_FREE + LMDB_DB_PAD);
		if (psize < LMDB_MIN_PSIZE || psize > LMDB_MAX_PSIZE ||
		    (psize & (psize - 1)) != 0 ||
		    lmdb_u32(m[i] + LMDB_MM_FREE + LMDB_DB_PAD) != psize)
			return verify_fail(v, STORE_ECORRUPT,
			    "meta page %d: page size %u", i,
			    lmdb_u32(m[i] + LMDB_MM_FREE + LMDB_DB_PAD));
	}
	*meta =
	    m[lmdb_u64(m[0] + LMDB_MM_TXNID) < lmdb_u64(m[1] + LMDB_MM_TXNID)];
	v->psize = psize;
	last = lmdb_u64(*meta + LMDB_MM_LASTPG);
	if (last < 1 || last >= v->size / psize)
		return verify_fail(v, STORE_ETRUNCATED,
		    "the meta's last page %llu of %u bytes lies past the end "
		    "of the file's %llu bytes",
		    (ull)last, psize, (ull)v->size);
	v->npages = last + 1;
	/* quotes-import's file ends with its last page. Every store a
	 * worker opens maps the whole file: a longer one (a sparse tail of
	 * terabytes, say) passes every other check, then leaves workers
	 * unable to map it. */
	if (v->size != v->npages * psize)
		return verify_fail(v, STORE_ECORRUPT,
		    "the file's %llu bytes run past its last page %llu of %u "
		    "bytes (%llu bytes)",
		    (ull)v->size, (ull)last, psize, (ull)(v->npages * psize));
	return 0;
}

int
verify_pages(struct verify *v)
{
	const unsigned char *meta = NULL;
	struct tree t = {.name = "main database", .main = true};
	int rc;

	if ((rc = check_metas(v, &meta)) != 0)
		return rc;
	if ((v->seen = calloc(v->npages / 8 + 1, 1)) == NULL)
		return errno;
	v->seen[0] = 3; /* the meta pages are no tree's */
	if ((rc = walk_tree(v, &t, meta + LMDB_MM_MAIN, 0)) != 0)
		return rc;
	/* One page holds quoterd's four records; a deeper main database
	 * is not one the importer writes (and store_open() needs it so). */
	if (t.depth != 1)
		return verify_fail(v, STORE_ECORRUPT, "main database: depth %u",
		    t.depth);
	for (unsigned k = 0; k < STORE_MAXDBS; k++) {
		struct tree sub = {.name = named[k].name,
		    .intkey = named[k].intkey,
		    .empty_ok = named[k].empty_ok};

		if (!(t.found & (1u << k)))
			return verify_fail(v, STORE_EBADMAGIC,
			    "main database: no database \"%s\"", named[k].name);
		if ((rc = walk_tree(v, &sub, t.dbs[k],
			 named[k].intkey ? LMDB_INTEGERKEY : 0)) != 0)
			return rc;
		if (strcmp(named[k].name, STORE_DB_META) == 0 &&
		    sub.entries != 1)
			return verify_fail(v, STORE_ECORRUPT,
			    "meta: %llu records, not one", (ull)sub.entries);
	}
	return 0;
}
