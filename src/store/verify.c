/*
 * store_verify(): the complete check of a database file that may be
 * hostile. LMDB trusts its file: it checks page numbers against the last
 * page and nothing inside a page, so a bad node size or offset makes it
 * read past the page, the map, or fault. So first every page a reader can
 * reach is checked here from the raw bytes, the way LMDB will read them
 * (lmdb_layout.h); only then is the file opened with LMDB, and every
 * record checked against the format (store_format.h) and the checksum.
 */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "checksum.h"
#include "lmdb_layout.h"
#include "postings.h"
#include "quote_service.pb-c.h"
#include "store_format.h"
#include "store_impl.h"
#include "utf8.h"
#include "words.h"

typedef unsigned long long ull; /* for printf */

struct verify {
	const unsigned char *map; /* the whole file */
	uint64_t size;
	uint64_t npages; /* pages the meta says are in use */
	uint32_t psize;
	unsigned char *seen; /* a bit a page: reached once already */
	/* The indexes as the quotes and authors say they must be, summed
	 * over (term, index) pairs, and as the indexes hold them. */
	uint64_t want_words, got_words, want_folded, got_folded;
	uint64_t term;	     /* the hash of the term being walked */
	uint64_t *hashes;    /* a quote's word hashes */
	size_t nhashes;
	char *why;
	size_t whylen;
};

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

static int fail(struct verify *v, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct verify *v, int rc, const char *fmt, ...)
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
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu is a meta page", t->name, (ull)pgno);
	if (pgno >= v->npages || n > v->npages - pgno)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu (%llu pages) lies past the last page %llu",
		    t->name, (ull)pgno, (ull)n, (ull)v->npages - 1);
	for (uint64_t i = pgno; i < pgno + n; i++) {
		if (v->seen[i / 8] & (1u << (i % 8)))
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu is reached twice", t->name,
			    (ull)i);
		v->seen[i / 8] |= (unsigned char)(1u << (i % 8));
	}
	return 0;
}

static int
check_key(struct verify *v, struct tree *t, uint64_t pgno, unsigned i,
    const unsigned char *key, size_t len, bool leaf)
{
	if (t->intkey ? len != sizeof(uint32_t) :
	    len == 0 || len > LMDB_MAX_KEYSIZE)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u has a key of %zu bytes", t->name,
		    (ull)pgno, i, len);
	/* Every key after the ones before it, and not before the branch
	 * key that led here: LMDB's binary searches assume both. */
	if (t->prev != NULL && keycmp(t, t->prev, t->prevlen, key, len) >= 0)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u is out of key order", t->name,
		    (ull)pgno, i);
	if (!leaf) {
		t->low = key;
		t->lowlen = len;
		return 0;
	}
	if (t->low != NULL && keycmp(t, key, len, t->low, t->lowlen) < 0)
		return fail(v, STORE_ECORRUPT,
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
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: overflow page %llu lies past the "
		    "last page", t->name, (ull)pgno, i, (ull)opg);
	p = v->map + opg * v->psize;
	pages = lmdb_u32(p + LMDB_PG_PAGES);
	if (lmdb_u64(p + LMDB_PG_PGNO) != opg ||
	    lmdb_u16(p + LMDB_PG_FLAGS) != LMDB_P_OVERFLOW)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: page %llu is not an overflow "
		    "page", t->name, (ull)pgno, i, (ull)opg);
	if (pages < need)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: node %u: %llu bytes on %llu overflow "
		    "pages", t->name, (ull)pgno, i, (ull)dsize, (ull)pages);
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
			return fail(v, STORE_ECORRUPT,
			    "main database: page %llu: node %u is not a named "
			    "database", (ull)pgno, i);
		for (k = 0; k < STORE_MAXDBS; k++)
			if (strlen(named[k].name) == ksize &&
			    memcmp(named[k].name, node + LMDB_NODESIZE,
			    ksize) == 0)
				break;
		if (k == STORE_MAXDBS)
			return fail(v, STORE_EBADMAGIC,
			    "main database: page %llu: node %u names a "
			    "database that is not quoterd's", (ull)pgno, i);
		memcpy(t->dbs[k], data, LMDB_DB_SIZE);
		t->found |= 1u << k;
		return 0;
	}
	if (flags == 0) {
		if (dsize > room)
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u: its %llu bytes of data "
			    "lie past the page end", t->name, (ull)pgno, i,
			    (ull)dsize);
		return 0;
	}
	if (flags == LMDB_F_BIGDATA) {
		if (room < sizeof(uint64_t))
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies past the page end",
			    t->name, (ull)pgno, i);
		return check_overflow(v, t, pgno, i, lmdb_u64(data), dsize);
	}
	return fail(v, STORE_ECORRUPT, "%s: page %llu: node %u has flags %#x",
	    t->name, (ull)pgno, i, flags);
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
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu calls itself page %llu", t->name,
		    (ull)pgno, (ull)lmdb_u64(p + LMDB_PG_PGNO));
	if (flags != LMDB_P_BRANCH && flags != LMDB_P_LEAF)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu has flags %#x, not a branch or leaf page",
		    t->name, (ull)pgno, flags);
	/* Every leaf at the depth the database records, every branch
	 * above: LMDB's cursor stack is sized by it. */
	if ((flags == LMDB_P_LEAF) != (level == t->depth))
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: a %s page at level %u of %u", t->name,
		    (ull)pgno, flags == LMDB_P_LEAF ? "leaf" : "branch",
		    level, t->depth);
	if (lower < LMDB_PAGEHDRSZ || lower > upper || upper > v->psize ||
	    (lower - LMDB_PAGEHDRSZ) % 2 != 0)
		return fail(v, STORE_ECORRUPT,
		    "%s: page %llu: free space from %u to %u is not inside "
		    "the page", t->name, (ull)pgno, lower, upper);
	n = (lower - LMDB_PAGEHDRSZ) / 2;
	/* LMDB asserts that a branch has two children or more. */
	if (n < (flags == LMDB_P_BRANCH ? 2u : 1u))
		return fail(v, STORE_ECORRUPT, "%s: page %llu has %u nodes",
		    t->name, (ull)pgno, n);
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
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies outside the node "
			    "area", t->name, (ull)pgno, i);
		if (off > v->psize - LMDB_NODESIZE)
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u lies past the page end",
			    t->name, (ull)pgno, i);
		ksize = lmdb_u16(node + LMDB_ND_KSIZE);
		if (ksize > v->psize - off - LMDB_NODESIZE)
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u: its key lies past the "
			    "page end", t->name, (ull)pgno, i);
		if (flags == LMDB_P_LEAF) {
			if ((rc = check_leaf_node(v, t, pgno, i, node,
			    v->psize - off)) != 0)
				return rc;
			continue;
		}
		/* A branch's first key is never read (LMDB's searches
		 * start at node 1) and is left empty. */
		if (i > 0 && (rc = check_key(v, t, pgno, i,
		    node + LMDB_NODESIZE, ksize, false)) != 0)
			return rc;
		child = lmdb_u16(node + LMDB_ND_LO) |
		    (uint64_t)lmdb_u16(node + LMDB_ND_HI) << 16 |
		    (uint64_t)lmdb_u16(node + LMDB_ND_FLAGS) << 32;
		if (child >= v->npages)
			return fail(v, STORE_ECORRUPT,
			    "%s: page %llu: node %u points to page %llu, past "
			    "the last page %llu", t->name, (ull)pgno, i,
			    (ull)child, (ull)v->npages - 1);
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
		return fail(v, STORE_ECORRUPT, "%s: database flags %#x, not %#x",
		    t->name, flags, want_flags);
	if (root == LMDB_P_INVALID && t->empty_ok) {
		if (t->depth != 0 || lmdb_u64(db + LMDB_DB_ENTRIES) != 0 ||
		    lmdb_u64(db + LMDB_DB_BRANCH) != 0 ||
		    lmdb_u64(db + LMDB_DB_LEAF) != 0 ||
		    lmdb_u64(db + LMDB_DB_OVERFLOW) != 0)
			return fail(v, STORE_ECORRUPT,
			    "%s: an empty database with pages", t->name);
		return 0;
	}
	if (root == LMDB_P_INVALID)
		return fail(v, t->main ? STORE_EBADMAGIC : STORE_EEMPTY,
		    "%s: the database is empty", t->name);
	if (t->depth < 1 || t->depth > LMDB_MAX_DEPTH)
		return fail(v, STORE_ECORRUPT, "%s: depth %u", t->name,
		    t->depth);
	if ((rc = walk(v, t, root, 1)) != 0)
		return rc;
	if (t->entries != lmdb_u64(db + LMDB_DB_ENTRIES) ||
	    t->branch != lmdb_u64(db + LMDB_DB_BRANCH) ||
	    t->leaf != lmdb_u64(db + LMDB_DB_LEAF) ||
	    t->overflow != lmdb_u64(db + LMDB_DB_OVERFLOW))
		return fail(v, STORE_ECORRUPT,
		    "%s: %llu entries on %llu branch, %llu leaf and %llu "
		    "overflow pages, not as its record says", t->name,
		    (ull)t->entries, (ull)t->branch, (ull)t->leaf,
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
			return fail(v, i == 0 ? MDB_INVALID : STORE_ETRUNCATED,
			    "the file is too short for meta page %d", i);
		m[i] = p + LMDB_PAGEHDRSZ;
		if (!(lmdb_u16(p + LMDB_PG_FLAGS) & LMDB_P_META) ||
		    lmdb_u32(m[i] + LMDB_MM_MAGIC) != LMDB_MAGIC)
			return fail(v, MDB_INVALID,
			    "meta page %d: not an LMDB meta page", i);
		if (lmdb_u32(m[i] + LMDB_MM_VERSION) != LMDB_DATA_VERSION)
			return fail(v, MDB_VERSION_MISMATCH,
			    "meta page %d: LMDB format version %u", i,
			    lmdb_u32(m[i] + LMDB_MM_VERSION));
		if (i == 0)
			psize = lmdb_u32(m[0] + LMDB_MM_FREE + LMDB_DB_PAD);
		if (psize < LMDB_MIN_PSIZE || psize > LMDB_MAX_PSIZE ||
		    (psize & (psize - 1)) != 0 ||
		    lmdb_u32(m[i] + LMDB_MM_FREE + LMDB_DB_PAD) != psize)
			return fail(v, STORE_ECORRUPT,
			    "meta page %d: page size %u", i,
			    lmdb_u32(m[i] + LMDB_MM_FREE + LMDB_DB_PAD));
	}
	*meta = m[lmdb_u64(m[0] + LMDB_MM_TXNID) <
	    lmdb_u64(m[1] + LMDB_MM_TXNID)];
	v->psize = psize;
	last = lmdb_u64(*meta + LMDB_MM_LASTPG);
	if (last < 1 || last >= v->size / psize)
		return fail(v, STORE_ETRUNCATED,
		    "the meta's last page %llu of %u bytes lies past the end "
		    "of the file's %llu bytes", (ull)last, psize,
		    (ull)v->size);
	v->npages = last + 1;
	return 0;
}

static int
check_pages(struct verify *v)
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
		return fail(v, STORE_ECORRUPT, "main database: depth %u",
		    t.depth);
	for (unsigned k = 0; k < STORE_MAXDBS; k++) {
		struct tree sub = {.name = named[k].name,
		    .intkey = named[k].intkey, .empty_ok = named[k].empty_ok};

		if (!(t.found & (1u << k)))
			return fail(v, STORE_EBADMAGIC,
			    "main database: no database \"%s\"",
			    named[k].name);
		if ((rc = walk_tree(v, &sub, t.dbs[k],
		    named[k].intkey ? LMDB_INTEGERKEY : 0)) != 0)
			return rc;
		if (strcmp(named[k].name, STORE_DB_META) == 0 &&
		    sub.entries != 1)
			return fail(v, STORE_ECORRUPT,
			    "meta: %llu records, not one", (ull)sub.entries);
	}
	return 0;
}

/* A UTF-8 string without NUL bytes, 1..max bytes. */
static bool
good_text(const void *p, size_t len, size_t max)
{
	return len > 0 && len <= max && memchr(p, '\0', len) == NULL &&
	    utf8_valid(p, len);
}

/* A (term, index) pair, summed over an index's pairs. */
static uint64_t
pair_hash(uint64_t term, uint32_t index)
{
	uint64_t x = term + ((uint64_t)index + 1) * 0x9e3779b97f4a7c15ULL;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int
compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Quote index's length and the words the word index must give it. */
static int
index_quote(struct verify *v, struct store *s, uint32_t index,
    const char *text)
{
	char folded[WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
	size_t len = strlen(text), pos = 0, start, wlen, flen, n = 0;
	uint32_t want;

	memcpy(&want, s->bylength + (size_t)index * 4, 4);
	if (words_length(text, len) != want)
		return fail(v, STORE_ECORRUPT,
		    "lengths: quote %u: length %u, not %u", index, want,
		    words_length(text, len));
	while (words_next(text, len, &pos, &start, &wlen)) {
		if (wlen > WORDS_MAX_WORD)
			continue;
		flen = words_fold(text + start, wlen, folded, sizeof(folded));
		if (flen > 0 && n < v->nhashes)
			v->hashes[n++] = XXH3_64bits(folded, flen);
	}
	/* Each word once, however often the quote has it. A quote has a
	 * few dozen words: insertion sort, unless it has many more. */
	if (n > 64) {
		qsort(v->hashes, n, sizeof(*v->hashes), compare_u64);
	} else {
		for (size_t i = 1; i < n; i++) {
			uint64_t x = v->hashes[i];
			size_t j = i;

			for (; j > 0 && v->hashes[j - 1] > x; j--)
				v->hashes[j] = v->hashes[j - 1];
			v->hashes[j] = x;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (i == 0 || v->hashes[i] != v->hashes[i - 1])
			v->want_words += pair_hash(v->hashes[i], index);
	return 0;
}

static void
add_word(void *arg, uint32_t index)
{
	struct verify *v = arg;

	v->got_words += pair_hash(v->term, index);
}

static void
add_folded(void *arg, uint32_t index)
{
	struct verify *v = arg;

	v->got_folded += pair_hash(v->term, index);
}

static void
add_nothing(void *arg, uint32_t index)
{
	(void)arg;
	(void)index;
}

/*
 * Walks one index: every key well-formed, every posting list exact.
 * what names it in messages.
 */
static int
check_index(struct verify *v, struct store *s, MDB_dbi dbi,
    const char *what, uint32_t limit, void (*fn)(void *, uint32_t))
{
	char folded[LMDB_MAX_KEYSIZE + 1];
	MDB_cursor *cur;
	MDB_val key, val;
	uint64_t n = 0;
	int rc;

	if ((rc = mdb_cursor_open(s->txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT), n++) {
		bool good;

		if (fn == add_nothing)
			good = words_tag_valid(key.mv_data, key.mv_size);
		else if (fn == add_word)
			good = good_text(key.mv_data, key.mv_size,
			    WORDS_FOLD_ROOM(WORDS_MAX_WORD)) &&
			    words_fold(key.mv_data, key.mv_size, folded,
			    sizeof(folded)) == key.mv_size &&
			    memcmp(folded, key.mv_data, key.mv_size) == 0;
		else
			good = good_text(key.mv_data, key.mv_size,
			    LMDB_MAX_KEYSIZE) &&
			    words_fold_name(key.mv_data, key.mv_size, folded,
			    LMDB_MAX_KEYSIZE) == key.mv_size &&
			    memcmp(folded, key.mv_data, key.mv_size) == 0;
		if (!good) {
			rc = fail(v, STORE_ECORRUPT, "%s: key %llu is not one "
			    "the importer writes", what, (ull)n);
			break;
		}
		v->term = XXH3_64bits(key.mv_data, key.mv_size);
		if (postings_check(val.mv_data, val.mv_size, limit, fn,
		    v) != 0) {
			rc = fail(v, STORE_ECORRUPT, "%s: key %llu: a bad "
			    "posting list", what, (ull)n);
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The length-sorted index: every quote once, by (length, index). */
static int
check_sorted(struct verify *v, struct store *s)
{
	uint32_t prev = 0, plen = 0, q, len;

	for (uint64_t i = 0; i < s->nquotes; i++) {
		memcpy(&q, s->sorted + i * 4, 4);
		if (q >= s->nquotes)
			return fail(v, STORE_ECORRUPT,
			    "lengths: entry %llu: quote %u of %llu", (ull)i, q,
			    (ull)s->nquotes);
		memcpy(&len, s->bylength + (size_t)q * 4, 4);
		/* Strictly ascending pairs of nquotes entries below
		 * nquotes: a permutation. */
		if (i > 0 && (len < plen || (len == plen && q <= prev)))
			return fail(v, STORE_ECORRUPT,
			    "lengths: entry %llu is out of order", (ull)i);
		prev = q;
		plen = len;
	}
	return 0;
}

static int
check_indexes(struct verify *v, struct store *s)
{
	int rc;

	if ((rc = check_sorted(v, s)) != 0 ||
	    (rc = check_index(v, s, s->words, "words", (uint32_t)s->nquotes,
	    add_word)) != 0 ||
	    (rc = check_index(v, s, s->tags, "tags", (uint32_t)s->nquotes,
	    add_nothing)) != 0 ||
	    (rc = check_index(v, s, s->folded, "folded",
	    (uint32_t)s->nauthors, add_folded)) != 0)
		return rc;
	if (v->got_words != v->want_words)
		return fail(v, STORE_ECORRUPT,
		    "words: the index is not the quotes' words");
	if (v->got_folded != v->want_folded)
		return fail(v, STORE_ECORRUPT,
		    "folded: the index is not the authors' names");
	return 0;
}

/* The author at the authors cursor, and its twin in byindex. */
static int
check_author(struct verify *v, struct store *s, uint32_t index,
    uint32_t first, const MDB_val *name, const MDB_val *rec,
    const MDB_val *key2, const MDB_val *rec2, struct store_author *a)
{
	struct store_author b;
	MDB_val again;

	char folded[LMDB_MAX_KEYSIZE + 1];
	size_t flen;

	if (!good_text(name->mv_data, name->mv_size, STORE_MAX_AUTHOR))
		return fail(v, STORE_ECORRUPT,
		    "authors: author %u: a bad name", index);
	/* In the folded index unless its folding is too long a key. */
	flen = words_fold_name(name->mv_data, name->mv_size, folded,
	    LMDB_MAX_KEYSIZE);
	if (flen > 0)
		v->want_folded += pair_hash(XXH3_64bits(folded, flen), index);
	if (rec->mv_size != sizeof(*a))
		return fail(v, STORE_ECORRUPT,
		    "authors: author %u: a record of %zu bytes", index,
		    rec->mv_size);
	memcpy(a, rec->mv_data, sizeof(*a));
	if (a->index != index || a->first != first || a->count == 0 ||
	    a->reserved != 0 || a->count > s->nquotes - first)
		return fail(v, STORE_ECORRUPT,
		    "authors: author %u: a bad record", index);
	if (key2->mv_size != sizeof(index) ||
	    memcmp(key2->mv_data, &index, sizeof(index)) != 0 ||
	    rec2->mv_size != sizeof(b) + name->mv_size)
		return fail(v, STORE_ECORRUPT,
		    "byindex: author %u: a bad record", index);
	memcpy(&b, rec2->mv_data, sizeof(b));
	if (memcmp(&b, a, sizeof(b)) != 0 ||
	    memcmp((const char *)rec2->mv_data + sizeof(b), name->mv_data,
	    name->mv_size) != 0)
		return fail(v, STORE_ECORRUPT,
		    "byindex: author %u differs from authors", index);
	/* Lookups find what the walk found. */
	if (mdb_get(s->txn, s->authors, (MDB_val *)name, &again) != 0 ||
	    again.mv_data != rec->mv_data || again.mv_size != rec->mv_size ||
	    mdb_get(s->txn, s->byindex, (MDB_val *)key2, &again) != 0 ||
	    again.mv_data != rec2->mv_data || again.mv_size != rec2->mv_size)
		return fail(v, STORE_ECORRUPT,
		    "author %u: a lookup finds another record", index);
	return 0;
}

static int
check_quote(struct verify *v, struct store *s, uint32_t index,
    const MDB_val *key, const MDB_val *val, const MDB_val *author)
{
	Quotes__QuoteReply *r;
	MDB_val again;
	uint8_t *packed = NULL;
	int rc = 0;

	if (key->mv_size != sizeof(index) ||
	    memcmp(key->mv_data, &index, sizeof(index)) != 0)
		return fail(v, STORE_ECORRUPT, "quotes: quote %u is missing",
		    index);
	if (mdb_get(s->txn, s->quotes, (MDB_val *)key, &again) != 0 ||
	    again.mv_data != val->mv_data || again.mv_size != val->mv_size)
		return fail(v, STORE_ECORRUPT,
		    "quote %u: a lookup finds another record", index);
	r = quotes__quote_reply__unpack(NULL, val->mv_size, val->mv_data);
	if (r == NULL)
		return fail(v, STORE_ECORRUPT,
		    "quotes: quote %u is not a QuoteReply", index);
	if (!good_text(r->quote, strlen(r->quote), STORE_MAX_QUOTE))
		rc = fail(v, STORE_ECORRUPT, "quotes: quote %u: a bad text",
		    index);
	else if (strlen(r->author) != author->mv_size ||
	    memcmp(r->author, author->mv_data, author->mv_size) != 0)
		rc = fail(v, STORE_ECORRUPT,
		    "quotes: quote %u: not by its author", index);
	/* Exactly the bytes the importer would write: nothing extra to
	 * send, and the reply is what its fields say. */
	else if (quotes__quote_reply__get_packed_size(r) != val->mv_size ||
	    (packed = malloc(val->mv_size)) == NULL ||
	    quotes__quote_reply__pack(r, packed) != val->mv_size ||
	    memcmp(packed, val->mv_data, val->mv_size) != 0)
		rc = fail(v, STORE_ECORRUPT,
		    "quotes: quote %u is not encoded as the importer does",
		    index);
	else
		rc = index_quote(v, s, index, r->quote);
	free(packed);
	quotes__quote_reply__free_unpacked(r, NULL);
	return rc;
}

/*
 * Every record, through LMDB now that its pages are sound: authors and
 * byindex in step (index order is name order), quotes in step with their
 * authors' ranges.
 */
static int
check_records(struct verify *v, struct store *s)
{
	MDB_cursor *ca = NULL, *cb = NULL, *cq = NULL;
	MDB_val name, rec, key2, rec2, qkey, qval;
	MDB_dbi summed[STORE_NSUMMED];
	struct store_author a = {0};
	uint32_t first = 0, qi = 0;
	uint64_t sum;
	int rc;

	if ((rc = mdb_cursor_open(s->txn, s->authors, &ca)) != 0 ||
	    (rc = mdb_cursor_open(s->txn, s->byindex, &cb)) != 0 ||
	    (rc = mdb_cursor_open(s->txn, s->quotes, &cq)) != 0)
		goto done;
	for (uint32_t i = 0; i < s->nauthors; i++) {
		MDB_cursor_op op = i == 0 ? MDB_FIRST : MDB_NEXT;

		if ((rc = mdb_cursor_get(ca, &name, &rec, op)) != 0 ||
		    (rc = mdb_cursor_get(cb, &key2, &rec2, op)) != 0) {
			rc = fail(v, STORE_ECORRUPT, "author %u is missing",
			    i);
			goto done;
		}
		if ((rc = check_author(v, s, i, first, &name, &rec, &key2,
		    &rec2, &a)) != 0)
			goto done;
		for (; qi < first + a.count; qi++) {
			op = qi == 0 ? MDB_FIRST : MDB_NEXT;
			if ((rc = mdb_cursor_get(cq, &qkey, &qval, op)) != 0) {
				rc = fail(v, STORE_ECORRUPT,
				    "quotes: quote %u is missing", qi);
				goto done;
			}
			if ((rc = check_quote(v, s, qi, &qkey, &qval,
			    &name)) != 0)
				goto done;
		}
		first += a.count;
	}
	/* store_open() matched the counts to the databases' entries. */
	if (first != s->nquotes) {
		rc = fail(v, STORE_ECORRUPT,
		    "authors: %u quotes, the meta says %llu", first,
		    (ull)s->nquotes);
		goto done;
	}
	if ((rc = check_indexes(v, s)) != 0)
		goto done;
	summed[0] = s->authors;
	summed[1] = s->byindex;
	summed[2] = s->quotes;
	summed[3] = s->words;
	summed[4] = s->tags;
	summed[5] = s->folded;
	summed[6] = s->lengths;
	if ((rc = store_checksum(s->txn, summed, &sum)) != 0)
		goto done;
	/* Anyone can compute the sum, so it guards against damage, not
	 * against a crafted file: fuzzing goes past it to what is served
	 * from a file that carries the right one. */
#ifndef QUOTERD_FUZZ
	if (sum != s->checksum)
		rc = fail(v, STORE_ECHECKSUM,
		    "content checksum %016llx, the meta says %016llx",
		    (ull)sum, (ull)s->checksum);
#endif
done:
	if (cq != NULL)
		mdb_cursor_close(cq);
	if (cb != NULL)
		mdb_cursor_close(cb);
	if (ca != NULL)
		mdb_cursor_close(ca);
	return rc;
}

int
store_verify(int fd, struct store_info *info, char *why, size_t whylen)
{
	struct verify v = {.why = why, .whylen = whylen};
	struct store *s = NULL;
	struct stat st;
	void *map = MAP_FAILED;
	int rc;

	if (whylen > 0)
		why[0] = '\0';
	if (fstat(fd, &st) != 0)
		return fail(&v, errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(&v, MDB_INVALID, "not a regular file");
	if (st.st_size == 0)
		return fail(&v, MDB_INVALID, "an empty file");
	v.size = (uint64_t)st.st_size;
	if ((uint64_t)(size_t)v.size != v.size)
		return fail(&v, EFBIG, "the file is too large to map");
	/* The walk reads the pages as LMDB will see them: mapped. */
	map = mmap(NULL, (size_t)v.size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail(&v, errno, "mmap: %s", strerror(errno));
	v.map = map;
	if ((rc = check_pages(&v)) != 0)
		goto done;

	if ((rc = store_open_fd(fd, NULL, &s)) != 0) {
		fail(&v, rc, "%s", store_strerror(rc));
		goto done;
	}
	/* The very file walked above: one LMDB read, one of ours. */
	if (s->size != v.size) {
		rc = fail(&v, STORE_ECORRUPT, "the file changed size");
		goto done;
	}
	/* A quote of STORE_MAX_QUOTE bytes has at most half as many
	 * words. */
	v.nhashes = STORE_MAX_QUOTE / 2 + 1;
	if ((v.hashes = malloc(v.nhashes * sizeof(*v.hashes))) == NULL) {
		rc = fail(&v, errno, "%s", strerror(errno));
		goto done;
	}
	if ((rc = check_records(&v, s)) != 0)
		goto done;
	info->nquotes = s->nquotes;
	info->nauthors = s->nauthors;
	info->size = s->size;
	info->checksum = s->checksum;
done:
	if (rc != 0 && whylen > 0 && why[0] == '\0')
		fail(&v, rc, "%s", store_strerror(rc));
	store_close(s);
	free(v.hashes);
	free(v.seen);
	if (map != MAP_FAILED)
		munmap(map, (size_t)v.size);
	return rc;
}
