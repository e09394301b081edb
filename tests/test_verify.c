/*
 * Unit tests for store_verify() (src/store/verify.c) and the bounds
 * checks of store_pick(): files crafted from real databases (the importer
 * writes them) with one lie each, read back through LMDB's layout as
 * lmdb_layout.h defines it, must be refused with a reason; and a file
 * with any one byte flipped is refused or, if accepted, serves only the
 * replies of the original. Every check runs in a child process, so that
 * a crash is a failed test, not a dead test runner.
 */
#include <errno.h>
#include <lmdb.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmdb_layout.h"
#include "rng.h"
#include "store.h"
#include "store_format.h"
#include "testutil.h"

struct fixture {
	char dir[PATH_MAX];
};

/* A database file in memory, to be damaged. */
struct dbfile {
	unsigned char *buf;
	size_t len;
	uint32_t psize;
	uint64_t extend; /* if above len: the file's size, the rest a hole */
};

/* What a child's store_verify() said. */
struct verdict {
	int rc;
	char why[256];
	struct store_info info;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (tmpdir_create(fx->dir, "test_verify") != 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = tmpdir_remove(fx->dir);

	free(fx);
	return rc;
}

/* Imports the text-format file in (quote~author lines) into dir/name. */
static void
import_text(const struct fixture *fx, const char *text, const char *name,
    char *out)
{
	char in[PATH_MAX], log[PATH_MAX];
	const char *args[] = {"-q", "-o", out, in, NULL};
	int status;

	path_join(fx->dir, "input.txt", in);
	path_join(fx->dir, "import.log", log);
	path_join(fx->dir, name, out);
	write_file(in, text, strlen(text));
	status = run_importer(args, NULL, 0, log, log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("quotes-import failed, status %#x", status);
}

static const char small[] =
    "I can resist everything except temptation.~Oscar Wilde\n"
    "Brevity is the soul of wit.~William Shakespeare\n"
    "To be, or not to be, that is the question.~William Shakespeare\n";

static void
load_small(const struct fixture *fx, struct dbfile *d)
{
	char path[PATH_MAX];

	import_text(fx, small, "small.mdb", path);
	d->buf = (unsigned char *)read_file(path, &d->len);
	d->psize =
	    lmdb_u32(d->buf + LMDB_PAGEHDRSZ + LMDB_MM_FREE + LMDB_DB_PAD);
	d->extend = 0;
}

/* etc/quotes.txt, the bundled sample. */
static void
load_sample(const struct fixture *fx, struct dbfile *d, char *path)
{
	char src[PATH_MAX];
	const char *dir = getenv("QUOTERD_SRC");
	char *text;

	snprintf(src, sizeof(src), "%s/etc/quotes.txt", dir ? dir : ".");
	text = read_file(src, NULL);
	import_text(fx, text, "sample.mdb", path);
	free(text);
	d->buf = (unsigned char *)read_file(path, &d->len);
	d->psize =
	    lmdb_u32(d->buf + LMDB_PAGEHDRSZ + LMDB_MM_FREE + LMDB_DB_PAD);
	d->extend = 0;
}

/* Quotes in etc/quotes.txt: its non-blank lines. */
static uint64_t
sample_lines(void)
{
	char src[PATH_MAX];
	const char *dir = getenv("QUOTERD_SRC");
	char *text, *p;
	uint64_t n = 0;

	snprintf(src, sizeof(src), "%s/etc/quotes.txt", dir ? dir : ".");
	text = read_file(src, NULL);
	for (p = text; *p != '\0'; p++)
		if (*p != '\n' && (p[1] == '\n' || p[1] == '\0'))
			n++;
	free(text);
	return n;
}

/* Enough quotes that the quotes database has branch pages. */
static void
load_big(const struct fixture *fx, struct dbfile *d)
{
	char path[PATH_MAX], line[128];
	size_t cap = 4000 * sizeof(line), len = 0;
	char *text = malloc(cap);

	assert_non_null(text);
	for (int i = 0; i < 4000; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "Quote number %d, which says little.~Author %d\n", i,
		    i % 97);
	import_text(fx, text, "big.mdb", path);
	free(text);
	d->buf = (unsigned char *)read_file(path, &d->len);
	d->psize =
	    lmdb_u32(d->buf + LMDB_PAGEHDRSZ + LMDB_MM_FREE + LMDB_DB_PAD);
	d->extend = 0;
}

static unsigned char *
page(const struct dbfile *d, uint64_t pgno)
{
	assert_true(pgno < d->len / d->psize);
	return d->buf + pgno * d->psize;
}

/* The meta LMDB uses: the one with the higher transaction id. */
static unsigned char *
meta(const struct dbfile *d)
{
	unsigned char *m0 = page(d, 0) + LMDB_PAGEHDRSZ;
	unsigned char *m1 = page(d, 1) + LMDB_PAGEHDRSZ;

	return lmdb_u64(m0 + LMDB_MM_TXNID) < lmdb_u64(m1 + LMDB_MM_TXNID) ? m1
									   : m0;
}

static unsigned
nkeys(const unsigned char *p)
{
	return (lmdb_u16(p + LMDB_PG_LOWER) - LMDB_PAGEHDRSZ) / 2;
}

static unsigned char *
node(unsigned char *p, unsigned i)
{
	assert_true(i < nkeys(p));
	return p + lmdb_u16(p + LMDB_PG_PTRS + 2 * i);
}

static void
put16(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* The MDB_db record of a named database, in the main root page. */
static unsigned char *
dbrec(const struct dbfile *d, const char *name)
{
	unsigned char *root =
	    page(d, lmdb_u64(meta(d) + LMDB_MM_MAIN + LMDB_DB_ROOT));

	for (unsigned i = 0; i < nkeys(root); i++) {
		unsigned char *n = node(root, i);

		if (lmdb_u16(n + LMDB_ND_KSIZE) == strlen(name) &&
		    memcmp(n + LMDB_NODESIZE, name, strlen(name)) == 0)
			return n + LMDB_NODESIZE + strlen(name);
	}
	fail_msg("no database %s", name);
	return NULL;
}

static unsigned char *
root_page(const struct dbfile *d, const char *name)
{
	return page(d, lmdb_u64(dbrec(d, name) + LMDB_DB_ROOT));
}

/* Runs store_verify() on d in a child, on a memfd; a crash fails. */
static struct verdict
verify_child(const struct dbfile *d)
{
	struct verdict v;
	int fds[2], status;
	pid_t pid;

	memset(&v, 0, sizeof(v));
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		int fd = memfd_create("test_verify", MFD_CLOEXEC);

		close(fds[0]);
		if (fd < 0 || write(fd, d->buf, d->len) != (ssize_t)d->len ||
		    (d->extend > d->len &&
			ftruncate(fd, (off_t)d->extend) != 0))
			_exit(3);
		v.rc = store_verify(fd, &v.info, v.why, sizeof(v.why));
		if (write(fds[1], &v, sizeof(v)) != sizeof(v))
			_exit(3);
		_exit(0);
	}
	assert_true(pid > 0);
	close(fds[1]);
	assert_int_equal(read(fds[0], &v, sizeof(v)), sizeof(v));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("store_verify's child died, status %#x", status);
	return v;
}

/* d must be refused with rc and a reason containing why. */
static void
expect_refused(const struct dbfile *d, int rc, const char *why)
{
	struct verdict v = verify_child(d);

	if (v.rc != rc || strstr(v.why, why) == NULL)
		fail_msg("got %d (%s) \"%s\", want %d (%s) \"%s\"", v.rc,
		    store_strerror(v.rc), v.why, rc, store_strerror(rc), why);
}

static void
expect_ok(const struct dbfile *d)
{
	struct verdict v = verify_child(d);

	if (v.rc != 0)
		fail_msg("refused: %s: %s", store_strerror(v.rc), v.why);
}

/* A fresh copy of orig to damage. */
static struct dbfile
copy(const struct dbfile *orig)
{
	struct dbfile d = *orig;

	d.buf = malloc(orig->len);
	assert_non_null(d.buf);
	memcpy(d.buf, orig->buf, orig->len);
	return d;
}

static void
test_verify_good(void **state)
{
	struct dbfile d = {0};
	struct verdict v;
	char path[PATH_MAX];

	load_sample(*state, &d, path);
	v = verify_child(&d);
	if (v.rc != 0)
		fail_msg("%s: %s", store_strerror(v.rc), v.why);
	assert_int_equal(v.info.nquotes, sample_lines());
	assert_in_range(v.info.nauthors, 2, v.info.nquotes);
	assert_int_equal(v.info.size, d.len);
	assert_true(v.info.checksum != 0);
	free(d.buf);

	/* Overflow pages and branch pages are sound too. */
	load_big(*state, &d);
	assert_int_not_equal(lmdb_u16(root_page(&d, STORE_DB_QUOTES) +
				 LMDB_PG_FLAGS),
	    LMDB_P_LEAF);
	expect_ok(&d);
	free(d.buf);
}

/* A leaf node whose value runs past its page: the size LMDB would hand
 * to a worker as the reply's length. */
static void
test_value_past_page(void **state)
{
	struct dbfile orig = {0}, d = {0};
	unsigned char *n;

	load_small(*state, &orig);
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_QUOTES), 0);
	put16(n + LMDB_ND_HI, 1); /* + 64 KiB */
	expect_refused(&d, STORE_ECORRUPT, "quotes: page");
	expect_refused(&d, STORE_ECORRUPT, "past the page end");
	free(d.buf);

	/* The same by one byte. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_QUOTES), 0);
	put16(n + LMDB_ND_LO,
	    (uint16_t)(d.psize - (n - root_page(&d, STORE_DB_QUOTES)) -
		LMDB_NODESIZE - 4 + 1));
	expect_refused(&d, STORE_ECORRUPT, "past the page end");
	free(d.buf);

	/* A wrapped size: 0xffffffff. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_AUTHORS), 1);
	put16(n + LMDB_ND_LO, 0xffff);
	put16(n + LMDB_ND_HI, 0xffff);
	expect_refused(&d, STORE_ECORRUPT, "4294967295 bytes");
	free(d.buf);

	/* A key past its page. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_AUTHORS), 0);
	put16(n + LMDB_ND_KSIZE, 0xfff0);
	expect_refused(&d, STORE_ECORRUPT, "key lies past the page end");
	free(d.buf);
	free(orig.buf);
}

static void
test_node_offset(void **state)
{
	struct dbfile orig = {0}, d = {0};
	unsigned char *p;

	load_small(*state, &orig);
	/* Past the page end, where a node header cannot fit. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_QUOTES);
	put16(p + LMDB_PG_PTRS, (uint16_t)(d.psize - 4));
	expect_refused(&d, STORE_ECORRUPT, "node 0 lies past the page end");
	free(d.buf);

	/* Past the page altogether (65535 > any page). */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_AUTHORS);
	put16(p + LMDB_PG_PTRS + 2, 0xfffe);
	expect_refused(&d, STORE_ECORRUPT, "node 1 lies past the page end");
	free(d.buf);

	/* Into the header and offsets. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_META);
	put16(p + LMDB_PG_PTRS, 4);
	expect_refused(&d, STORE_ECORRUPT, "outside the node area");
	free(d.buf);

	/* Free-space bounds out of the page. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_BYINDEX);
	put16(p + LMDB_PG_UPPER, (uint16_t)(d.psize + 2));
	expect_refused(&d, STORE_ECORRUPT, "not inside the page");
	free(d.buf);
	free(orig.buf);
}

static void
test_page_past_file(void **state)
{
	struct dbfile orig = {0}, d = {0};
	unsigned char *p, *n;
	uint64_t npages;

	load_big(*state, &orig);
	npages = orig.len / orig.psize;

	/* A root past the file. */
	d = copy(&orig);
	put64(dbrec(&d, STORE_DB_AUTHORS) + LMDB_DB_ROOT, npages + 10);
	expect_refused(&d, STORE_ECORRUPT, "past the last page");
	free(d.buf);

	/* A branch's child past the file (high bits set: 2^32 + 5). */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_QUOTES);
	n = node(p, 1);
	put16(n + LMDB_ND_FLAGS, 1);
	expect_refused(&d, STORE_ECORRUPT, "points to page");
	free(d.buf);

	/* A branch's child that is a meta page. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_QUOTES), 1);
	put16(n + LMDB_ND_LO, 1);
	put16(n + LMDB_ND_HI, 0);
	put16(n + LMDB_ND_FLAGS, 0);
	expect_refused(&d, STORE_ECORRUPT, "page 1 is a meta page");
	free(d.buf);

	/* The meta's last page past the file, which is the same. */
	d = copy(&orig);
	put64(meta(&d) + LMDB_MM_LASTPG, npages);
	expect_refused(&d, STORE_ETRUNCATED, "past the end of the file");
	free(d.buf);
	free(orig.buf);
}

/* A quote too big for a page lives on overflow pages, which the node
 * names: they must be there, be overflow pages, and be enough. */
static void
test_overflow(void **state)
{
	struct fixture *fx = *state;
	struct dbfile orig = {0}, d = {0};
	char path[PATH_MAX], *text;
	unsigned char *n, *op;
	uint64_t opg;

	text = malloc(8000);
	assert_non_null(text);
	memset(text, 'a', 6000);
	strcpy(text + 6000, "~Long Winded\nShort.~Brief\n");
	import_text(fx, text, "overflow.mdb", path);
	free(text);
	orig.buf = (unsigned char *)read_file(path, &orig.len);
	orig.psize =
	    lmdb_u32(orig.buf + LMDB_PAGEHDRSZ + LMDB_MM_FREE + LMDB_DB_PAD);
	expect_ok(&orig);
	/* Authors in name order: Brief's quote is 0, Long Winded's 1. */
	n = node(root_page(&orig, STORE_DB_QUOTES), 1);
	assert_int_equal(lmdb_u16(n + LMDB_ND_FLAGS), LMDB_F_BIGDATA);
	opg = lmdb_u64(n + LMDB_NODESIZE + 4);

	/* Too few pages for the size. */
	d = copy(&orig);
	op = page(&d, opg);
	assert_int_equal(lmdb_u16(op + LMDB_PG_FLAGS), LMDB_P_OVERFLOW);
	memset(op + LMDB_PG_PAGES, 0, 4);
	op[LMDB_PG_PAGES] = 1;
	expect_refused(&d, STORE_ECORRUPT, "on 1 overflow pages");
	free(d.buf);

	/* A size that needs more pages than there are. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_QUOTES), 1);
	put16(n + LMDB_ND_HI, 0x7fff);
	expect_refused(&d, STORE_ECORRUPT, "overflow pages");
	free(d.buf);

	/* Pages past the file. */
	d = copy(&orig);
	op = page(&d, opg);
	memset(op + LMDB_PG_PAGES, 0xff, 4);
	expect_refused(&d, STORE_ECORRUPT, "past the last page");
	free(d.buf);

	/* A leaf page where the overflow page should be. */
	d = copy(&orig);
	n = node(root_page(&d, STORE_DB_QUOTES), 1);
	put64(n + LMDB_NODESIZE + 4,
	    lmdb_u64(dbrec(&d, STORE_DB_META) + LMDB_DB_ROOT));
	expect_refused(&d, STORE_ECORRUPT, "is not an overflow page");
	free(d.buf);
	free(orig.buf);
}

static void
test_cycle(void **state)
{
	struct dbfile orig = {0}, d = {0};
	unsigned char *p, *n;
	uint64_t self;

	load_big(*state, &orig);
	/* A branch whose last child is itself: a walk that did not mark
	 * pages would never end. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_QUOTES);
	self = lmdb_u64(p + LMDB_PG_PGNO);
	n = node(p, nkeys(p) - 1);
	put16(n + LMDB_ND_LO, (uint16_t)self);
	put16(n + LMDB_ND_HI, (uint16_t)(self >> 16));
	expect_refused(&d, STORE_ECORRUPT, "reached twice");
	free(d.buf);

	/* Two databases sharing a root. */
	d = copy(&orig);
	memcpy(dbrec(&d, STORE_DB_BYINDEX) + LMDB_DB_ROOT,
	    dbrec(&d, STORE_DB_QUOTES) + LMDB_DB_ROOT, 8);
	expect_refused(&d, STORE_ECORRUPT, "");
	free(d.buf);
	free(orig.buf);
}

static void
test_truncated(void **state)
{
	struct dbfile orig = {0}, d = {0};

	load_small(*state, &orig);
	d = copy(&orig);
	d.len = orig.len / 2;
	expect_refused(&d, STORE_ETRUNCATED, "past the end of the file");
	d.len = orig.len - 1;
	expect_refused(&d, STORE_ETRUNCATED, "past the end of the file");
	d.len = orig.psize + 20; /* half of meta page 1 */
	expect_refused(&d, STORE_ETRUNCATED, "meta page 1");
	d.len = 100;
	expect_refused(&d, MDB_INVALID, "meta page 0");
	free(d.buf);
	free(orig.buf);
}

/* A file longer than its last page: quotes-import writes none, and a
 * worker would map all of it (a sparse tail of 15 TB passed before). */
static void
test_past_last_page(void **state)
{
	struct dbfile d = {0};
	char path[PATH_MAX];

	load_sample(*state, &d, path);
	assert_int_equal(d.len % d.psize, 0);
	assert_int_equal(d.len / d.psize,
	    lmdb_u64(meta(&d) + LMDB_MM_LASTPG) + 1);
	expect_ok(&d);
	d.extend = d.len + 1;
	expect_refused(&d, STORE_ECORRUPT, "run past its last page");
	d.extend = d.len + d.psize;
	expect_refused(&d, STORE_ECORRUPT, "run past its last page");
	d.extend = 15ULL << 40;
	expect_refused(&d, STORE_ECORRUPT,
	    "the file's 16492674416640 bytes run past its last page");
	free(d.buf);
}

static void
test_meta_pages(void **state)
{
	struct dbfile orig = {0}, d = {0};

	load_small(*state, &orig);
	for (int i = 0; i < 2; i++) {
		size_t off = (size_t)i * orig.psize + LMDB_PAGEHDRSZ;

		/* Its magic. */
		d = copy(&orig);
		d.buf[off + LMDB_MM_MAGIC + 1] ^= 0x20;
		expect_refused(&d, MDB_INVALID, "not an LMDB meta page");
		free(d.buf);
		/* Its page size. */
		d = copy(&orig);
		d.buf[off + LMDB_MM_FREE + LMDB_DB_PAD + 1] ^= 0x01;
		expect_refused(&d, STORE_ECORRUPT, "page size");
		free(d.buf);
	}
	/* The main root of the meta in use. */
	d = copy(&orig);
	meta(&d)[LMDB_MM_MAIN + LMDB_DB_ROOT] ^= 0x04;
	expect_refused(&d, STORE_ECORRUPT, "main database");
	free(d.buf);
	/* The older meta in use: its main database is empty, and its last
	 * page is 1, so the file runs past it. */
	d = copy(&orig);
	put64(meta(&d) + LMDB_MM_TXNID, 0);
	expect_refused(&d, STORE_ECORRUPT, "run past its last page 1");
	/* With its last page the file's, what is left is the emptiness. */
	put64(meta(&d) + LMDB_MM_LASTPG, d.len / d.psize - 1);
	expect_refused(&d, STORE_EBADMAGIC, "empty");
	free(d.buf);
	free(orig.buf);
}

static void
test_root_page(void **state)
{
	struct dbfile orig = {0}, d = {0};
	unsigned char *p;

	load_small(*state, &orig);
	/* The main root's flags: not a page type. */
	d = copy(&orig);
	p = page(&d, lmdb_u64(meta(&d) + LMDB_MM_MAIN + LMDB_DB_ROOT));
	p[LMDB_PG_FLAGS] ^= 0x10;
	expect_refused(&d, STORE_ECORRUPT, "not a branch or leaf page");
	free(d.buf);
	/* A root that calls itself another page. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_AUTHORS);
	p[LMDB_PG_PGNO] ^= 0x01;
	expect_refused(&d, STORE_ECORRUPT, "calls itself page");
	free(d.buf);
	/* A root page's node count. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_QUOTES);
	put16(p + LMDB_PG_LOWER, lmdb_u16(p + LMDB_PG_LOWER) + 2);
	expect_refused(&d, STORE_ECORRUPT, "quotes: page");
	free(d.buf);
	/* Keys out of order. */
	d = copy(&orig);
	p = root_page(&d, STORE_DB_QUOTES);
	memcpy(p + LMDB_PG_PTRS, p + LMDB_PG_PTRS + 2, 2);
	expect_refused(&d, STORE_ECORRUPT, "out of key order");
	free(d.buf);
	free(orig.buf);
}

/* Finds bytes in d, which must be there once. */
static size_t
find_bytes(const struct dbfile *d, const void *bytes, size_t len)
{
	unsigned char *p = memmem(d->buf, d->len, bytes, len);

	assert_non_null(p);
	assert_null(
	    memmem(p + 1, d->len - (size_t)(p - d->buf) - 1, bytes, len));
	return (size_t)(p - d->buf);
}

static size_t
find_text(const struct dbfile *d, const char *text)
{
	return find_bytes(d, text, strlen(text));
}

static void
test_quote_text(void **state)
{
	struct dbfile orig = {0}, d = {0};

	load_small(*state, &orig);
	/* Still UTF-8, still a QuoteReply: only the checksum knows. */
	d = copy(&orig);
	d.buf[find_text(&d, "soul of wit")] = 'S';
	expect_refused(&d, STORE_ECHECKSUM, "content checksum");
	free(d.buf);
	/* Invalid UTF-8 in a quote. */
	d = copy(&orig);
	d.buf[find_text(&d, "soul of wit")] = 0xff;
	expect_refused(&d, STORE_ECORRUPT, "quote 1: a bad text");
	free(d.buf);
	/* An author's name in byindex (after its record: the first
	 * author, one quote) that disagrees with authors. */
	d = copy(&orig);
	d.buf[find_bytes(&d, "\0\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0Oscar", 21) +
	    16] = 'o';
	expect_refused(&d, STORE_ECORRUPT, "byindex: author 0");
	free(d.buf);
	free(orig.buf);
}

/* Rewrites the meta record with LMDB's write API, as another writer
 * would: version, and the record's size. */
static void
rewrite_meta(const char *path, uint32_t version, size_t size)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {sizeof(STORE_META_KEY) - 1, (void *)STORE_META_KEY}, v;
	unsigned char buf[128] = {0};

	assert_true(size <= sizeof(buf));
	txn = lmdb_write_begin(path);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_META, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	memcpy(buf, v.mv_data, v.mv_size);
	memcpy(buf + offsetof(struct store_meta, version), &version,
	    sizeof(version));
	v.mv_size = size;
	v.mv_data = buf;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	lmdb_write_end(txn);
}

static void
test_meta_record(void **state)
{
	struct fixture *fx = *state;
	struct dbfile d = {0};
	char path[PATH_MAX];

	/* A version 1 file: its meta had no checksum. */
	import_text(fx, small, "v1.mdb", path);
	rewrite_meta(path, 1, offsetof(struct store_meta, checksum));
	d.buf = (unsigned char *)read_file(path, &d.len);
	expect_refused(&d, STORE_EVERSION, "unsupported database format");
	free(d.buf);
	/* Version 2: no indexes. */
	import_text(fx, small, "v2.mdb", path);
	rewrite_meta(path, 2, sizeof(struct store_meta));
	d.buf = (unsigned char *)read_file(path, &d.len);
	expect_refused(&d, STORE_EVERSION, "unsupported database format");
	free(d.buf);

	/* This version, of the wrong size either way. */
	import_text(fx, small, "long.mdb", path);
	rewrite_meta(path, STORE_FORMAT_VERSION, sizeof(struct store_meta) + 1);
	d.buf = (unsigned char *)read_file(path, &d.len);
	expect_refused(&d, STORE_EBADMAGIC, "not a quoterd database");
	free(d.buf);
	import_text(fx, small, "short.mdb", path);
	rewrite_meta(path, STORE_FORMAT_VERSION, sizeof(struct store_meta) - 8);
	d.buf = (unsigned char *)read_file(path, &d.len);
	expect_refused(&d, STORE_EBADMAGIC, "not a quoterd database");
	free(d.buf);
}

/*
 * Rewrites (or, with val NULL, deletes) one record of a named database
 * with LMDB's write API, as a buggy writer would: the pages stay sound,
 * so only the verifier's logical checks can tell.
 */
static void
rewrite_record(const char *path, const char *db, unsigned flags,
    const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

	txn = lmdb_write_begin(path);
	assert_int_equal(mdb_dbi_open(txn, db, flags, &dbi), 0);
	if (val == NULL)
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	else
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	lmdb_write_end(txn);
}

/* Imports small, rewrites one record, and expects why. */
static void
index_refused(const struct fixture *fx, const char *db, unsigned flags,
    const void *key, size_t klen, const void *val, size_t vlen, const char *why)
{
	struct dbfile d = {0};
	char path[PATH_MAX];

	import_text(fx, small, "index.mdb", path);
	rewrite_record(path, db, flags, key, klen, val, vlen);
	d.buf = (unsigned char *)read_file(path, &d.len);
	expect_refused(&d, STORE_ECORRUPT, why);
	free(d.buf);
}

/*
 * The indexes of format 3: each damage below keeps the file a sound LMDB
 * file, and each is refused with a reason before the checksum is
 * compared. small's quotes, in database order: 0 Oscar Wilde's, 1 and 2
 * William Shakespeare's.
 */
static void
test_index_damage(void **state)
{
	struct fixture *fx = *state;
	/* Posting lists: count, then the first index and gaps - 1. */
	static const unsigned char past[] = {1, 3},
				   unordered[] = {2, 2, 0xff, 0x0f},
				   trailing[] = {1, 0, 0}, short_[] = {2, 1},
				   zero[] = {0}, one[] = {1, 1},
				   both[] = {2, 1, 0}, first2[] = {2, 0, 0};
	uint32_t lengths[3] = {41, 27, 42}, sorted[3] = {1, 2, 0};
	uint32_t k;

	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, past, sizeof(past),
	    "words: key");
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, unordered,
	    sizeof(unordered), "words: key");
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, trailing,
	    sizeof(trailing), "a bad posting list");
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, short_, sizeof(short_),
	    "a bad posting list");
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, zero, sizeof(zero),
	    "a bad posting list");
	/* Well-formed, but not what the quotes say. */
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, both, sizeof(both),
	    "words: the index is not the quotes' words");
	index_refused(fx, STORE_DB_WORDS, 0, "wit", 3, NULL, 0,
	    "words: the index is not the quotes' words");
	index_refused(fx, STORE_DB_WORDS, 0, "nowhere", 7, one, sizeof(one),
	    "words: the index is not the quotes' words");
	/* A key folding would change. */
	index_refused(fx, STORE_DB_WORDS, 0, "Wit", 3, one, sizeof(one),
	    "words: key");
	index_refused(fx, STORE_DB_TAGS, 0, "Bad Tag", 7, one, sizeof(one),
	    "tags: key");
	index_refused(fx, STORE_DB_TAGS, 0, "fine", 4, past, sizeof(past),
	    "tags: key 0: a bad posting list");
	index_refused(fx, STORE_DB_FOLDED, 0, "oscar wilde", 11, first2,
	    sizeof(first2), "folded: the index is not the authors' names");
	index_refused(fx, STORE_DB_FOLDED, 0, "Oscar Wilde", 11, one,
	    sizeof(one), "folded: key");
	/* Author indexes are below nauthors (2), not nquotes. */
	index_refused(fx, STORE_DB_FOLDED, 0, "oscar wilde", 11, past,
	    sizeof(past), "folded: key 0: a bad posting list");
	k = STORE_LENGTHS_BYQUOTE;
	index_refused(fx, STORE_DB_LENGTHS, MDB_INTEGERKEY, &k, sizeof(k),
	    lengths, sizeof(lengths), "lengths: quote");
	k = STORE_LENGTHS_SORTED;
	index_refused(fx, STORE_DB_LENGTHS, MDB_INTEGERKEY, &k, sizeof(k),
	    sorted, sizeof(sorted), "lengths: entry");
	sorted[0] = 7;
	index_refused(fx, STORE_DB_LENGTHS, MDB_INTEGERKEY, &k, sizeof(k),
	    sorted, sizeof(sorted), "lengths: entry 0: quote 7");
}

/* A value that lies past the file reaches store_pick() when nothing
 * verified the file: it must say so, not hand out the pointer. */
static void
test_pick_bounds(void **state)
{
	struct fixture *fx = *state;
	struct dbfile d = {0};
	struct store *s;
	struct store_quote q;
	struct rng r;
	char path[PATH_MAX];
	unsigned char *n;

	load_small(fx, &d);
	/* Quote 0 is Oscar Wilde's only one: authors are in name order. */
	n = node(root_page(&d, STORE_DB_QUOTES), 0);
	assert_int_equal(lmdb_u32(n + LMDB_NODESIZE), 0);
	put16(n + LMDB_ND_HI, 0x7fff);
	path_join(fx->dir, "bounds.mdb", path);
	write_file(path, d.buf, d.len);
	assert_int_equal(store_open(path, &s), 0);
	rng_seed(&r, 1);
	assert_int_equal(store_pick(s, "Oscar Wilde", 11, &r, &q),
	    STORE_EBOUNDS);
	assert_int_equal(store_pick(s, "William Shakespeare", 19, &r, &q), 0);
	store_close(s);
	free(d.buf);
}

/* The replies of the original database, to compare picks with. */
struct replies {
	size_t n;
	MDB_val v[512];
	void *mem;
};

static void
read_replies(const char *path, struct replies *rs)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t total = 0, off = 0;
	int rc;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, STORE_MAXDBS), 0);
	assert_int_equal(mdb_env_open(env, path,
			     MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY, 0644),
	    0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_QUOTES, MDB_INTEGERKEY,
			     &dbi),
	    0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	rs->n = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		assert_true(rs->n < sizeof(rs->v) / sizeof(rs->v[0]));
		rs->v[rs->n++] = v;
		total += v.mv_size;
	}
	assert_int_equal(rc, MDB_NOTFOUND);
	rs->mem = malloc(total);
	assert_non_null(rs->mem);
	for (size_t i = 0; i < rs->n; i++) {
		memcpy((char *)rs->mem + off, rs->v[i].mv_data,
		    rs->v[i].mv_size);
		rs->v[i].mv_data = (char *)rs->mem + off;
		off += rs->v[i].mv_size;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static bool
known_reply(const struct replies *rs, const struct store_quote *q)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].mv_size == q->len &&
		    memcmp(rs->v[i].mv_data, q->reply, q->len) == 0)
			return true;
	return false;
}

struct names {
	char name[128][512];
	size_t len[128];
	size_t n;
};

static int
add_name(void *arg, const char *name, size_t len)
{
	struct names *nm = arg;

	if (nm->n < 128 && len <= sizeof(nm->name[0])) {
		memcpy(nm->name[nm->n], name, len);
		nm->len[nm->n++] = len;
	}
	return 0;
}

/*
 * In a child: verifies the file; if accepted, opens it and picks every
 * author's quotes and random ones. Exit 0: refused; 1: accepted, every
 * reply one of rs; 2: a reply that is not; 3: an accepted file that
 * fails to serve.
 */
static int
flip_child(const struct dbfile *d, const struct replies *rs)
{
	static struct names nm;
	struct store_info info;
	struct store *s;
	struct store_quote q;
	struct rng r;
	char why[256];
	int fd, more;

	if ((fd = memfd_create("flip", MFD_CLOEXEC)) < 0 ||
	    write(fd, d->buf, d->len) != (ssize_t)d->len)
		return 3;
	if (store_verify(fd, &info, why, sizeof(why)) != 0)
		return 0;
	if (store_open_fd(fd, &s) != 0)
		return 3;
	nm.n = 0;
	if (store_authors(s, NULL, 0, 128, add_name, &nm, &more) != 0 ||
	    nm.n != info.nauthors)
		return 3;
	rng_seed(&r, 5);
	for (size_t i = 0; i < nm.n; i++)
		for (int k = 0; k < 3; k++) {
			if (store_pick(s, nm.name[i], nm.len[i], &r, &q) != 0)
				return 3;
			if (!known_reply(rs, &q))
				return 2;
		}
	for (int k = 0; k < 50; k++) {
		if (store_pick(s, "", 0, &r, &q) != 0)
			return 3;
		if (!known_reply(rs, &q))
			return 2;
	}
	store_close(s);
	return 1;
}

/* Every one-byte flip of the sample: refused, or harmless. */
static void
test_flip_loop(void **state)
{
	struct dbfile orig = {0};
	struct replies rs;
	struct rng r;
	char path[PATH_MAX];
	unsigned counts[4] = {0};
	enum { FLIPS = 1500 };

	load_sample(*state, &orig, path);
	read_replies(path, &rs);
	rng_seed(&r, 20261129);
	for (int i = 0; i < FLIPS; i++) {
		size_t off = (size_t)rng_below(&r, orig.len);
		unsigned char bit = (unsigned char)(1u << rng_below(&r, 8));
		int status;
		pid_t pid;

		orig.buf[off] ^= bit;
		if ((pid = fork()) == 0)
			_exit(flip_child(&orig, &rs));
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		orig.buf[off] ^= bit;
		if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
			fail_msg("flip of bit %#x at byte %zu: status %#x", bit,
			    off, status);
		counts[WEXITSTATUS(status)]++;
	}
	print_message("%d flips: %u refused, %u accepted and harmless\n", FLIPS,
	    counts[0], counts[1]);
	/* Most of the file is pages the flips reach: most are refused. */
	assert_true(counts[0] > FLIPS / 4);
	free(rs.mem);
	free(orig.buf);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_verify_good),
	    T(test_value_past_page),
	    T(test_node_offset),
	    T(test_page_past_file),
	    T(test_overflow),
	    T(test_cycle),
	    T(test_truncated),
	    T(test_past_last_page),
	    T(test_meta_pages),
	    T(test_root_page),
	    T(test_quote_text),
	    T(test_meta_record),
	    T(test_index_damage),
	    T(test_pick_bounds),
	    T(test_flip_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
