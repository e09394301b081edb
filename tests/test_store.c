/*
 * Unit tests for src/store/store.c: databases built by the real importer
 * ($QUOTERD_BUILD/quotes-import) read back byte for byte; store_pick()
 * follows the selection rule (a known author always, otherwise an author
 * chosen uniformly, then one of that author's quotes uniformly); and
 * store_open() refuses every kind of bad file with the right error,
 * without crashing, since a worker maps whatever path it is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Replies are decoded the way a client would, to check them byte-exact. */
#include "quote_service.pb-c.h"
#include "rng.h"
#include "store.h"
#include "store_format.h"
#include "testutil.h"

/* 0.999 quantiles of chi-square: with a fixed seed the tests are
 * repeatable, and a fair pick exceeds these once in a thousand seeds. */
#define CHI2_9DOF_999  27.877
#define CHI2_49DOF_999 85.351

struct fixture {
	char dir[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (tmpdir_create(fx->dir, "test_store") != 0) {
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

static void
path_in(const struct fixture *fx, const char *name, char *out)
{
	path_join(fx->dir, name, out);
}

static void
copy_file(const char *from, const char *to)
{
	size_t len;
	char *buf = read_file(from, &len);

	write_file(to, buf, len);
	free(buf);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		fail_msg("%s: %s", path, strerror(errno));
	return st.st_size;
}

/* Builds OUT from the text-format file IN with the real importer, the
 * only writer of the format, so the tests read what production reads. */
static void
import(const struct fixture *fx, const char *in, const char *out)
{
	const char *args[] = {"-q", "-o", out, in, NULL};
	char log[PATH_MAX];
	int status;

	path_in(fx, "import.log", log);
	status = run_importer(args, NULL, 0, log, log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *text = read_file(log, NULL);

		print_error("%s", text);
		free(text);
		fail_msg("quotes-import failed, status %#x", status);
	}
}

/* Writes the quotes in text format and imports them into name. */
static void
import_quotes(const struct fixture *fx, const struct quote *q, size_t n,
    const char *name)
{
	char in[PATH_MAX], out[PATH_MAX];
	FILE *f;

	path_in(fx, "input.txt", in);
	path_in(fx, name, out);
	if ((f = fopen(in, "w")) == NULL)
		fail_msg("%s: %s", in, strerror(errno));
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s~%s\n", q[i].text, q[i].author);
	assert_int_equal(fclose(f), 0);
	import(fx, in, out);
}

static struct store *
open_ok(const char *path)
{
	struct store *s = NULL;
	int rc = store_open(path, &s);

	if (rc != 0)
		fail_msg("store_open %s: %s (%d)", path, store_strerror(rc),
		    rc);
	assert_non_null(s);
	return s;
}

static Quotes__QuoteReply *
pick(const struct store *s, const char *author, size_t len, struct rng *r)
{
	struct store_quote q;
	Quotes__QuoteReply *reply;
	int rc;

	if ((rc = store_pick(s, author, len, r, &q)) != 0)
		fail_msg("store_pick: %s (%d)", store_strerror(rc), rc);
	assert_non_null(q.reply);
	reply = quotes__quote_reply__unpack(NULL, q.len, q.reply);
	assert_non_null(reply);
	return reply;
}

static size_t
author_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	fail_msg("unexpected author '%s'", name);
	return 0; /* not reached; an index the caller can always use */
}

static double
chi_square(const unsigned *counts, size_t k, double total)
{
	double expect = total / (double)k, chi2 = 0;

	for (size_t i = 0; i < k; i++) {
		double d = (double)counts[i] - expect;

		chi2 += d * d / expect;
	}
	return chi2;
}

/* Non-ASCII text and names, a quote holding '~', an author whose name
 * is a prefix of another's, and authors of very different sizes. */
static const struct quote sample[] = {
    {"S\xc3\xb8ren Kierkegaard",
	"Life can only be understood backwards; but it must be lived "
	"forwards."},
    {"S\xc3\xb8ren Kierkegaard", "Anxiety is the dizziness of freedom."},
    {"S\xc3\xb8ren Kierkegaard",
	"Once you label me you negate me \xe2\x80\x94 so don't."},
    {"Mark Twain", "The report of my death was an exaggeration."},
    {"Mark Twain", "When angry, count four; when very angry, swear."},
    {"Mark Twain", "Man is the only animal that blushes. Or needs to."},
    {"Mark Twain",
	"Always do right. This will gratify some people "
	"and astonish the rest."},
    {"Mark", "A name that is a prefix of another."},
    {"Oscar Wilde", "I can resist everything except temptation."},
    {"Anonymous", "Approximately ~ 42, give or take."},
    {"\xe6\x9d\x8e\xe7\x99\xbd",
	"\xe5\xba\x8a\xe5\x89\x8d\xe6\x98\x8e\xe6\x9c\x88\xe5\x85\x89"},
    {"Emoji \xf0\x9f\x98\x80 Fan", "Smile \xf0\x9f\x98\x80 and wave."},
};
#define NSAMPLE (sizeof(sample) / sizeof(sample[0]))

static const char *const sample_authors[] = {"S\xc3\xb8ren Kierkegaard",
    "Mark Twain", "Mark", "Oscar Wilde", "Anonymous",
    "\xe6\x9d\x8e\xe7\x99\xbd", "Emoji \xf0\x9f\x98\x80 Fan"};
#define NSAMPLE_AUTHORS (sizeof(sample_authors) / sizeof(sample_authors[0]))

/* Imports the sample as q.mdb, whose path goes to db, and opens it. */
static struct store *
open_sample(const struct fixture *fx, char *db)
{
	import_quotes(fx, sample, NSAMPLE, "q.mdb");
	path_in(fx, "q.mdb", db);
	return open_ok(db);
}

static void
test_round_trip(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX];
	struct store *s;
	struct rng r;

	s = open_sample(fx, db);
	assert_int_equal(store_nquotes(s), NSAMPLE);
	assert_int_equal(store_nauthors(s), NSAMPLE_AUTHORS);
	assert_int_equal(store_size(s), (uint64_t)file_size(db));

	/* 100 picks a quote: missing one would take odds of about e^-100,
	 * were the seed not fixed anyway. */
	rng_seed(&r, 1);
	expect_author_quotes(s, &r, sample, NSAMPLE, 100);
	store_close(s);
}

/* The reply bytes are exactly what a client decodes and re-encodes: no
 * unknown fields, nothing after the message. */
static void
test_reply_encoding(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX];
	struct store *s;
	struct rng r;

	s = open_sample(fx, db);
	rng_seed(&r, 2);
	for (int k = 0; k < 200; k++) {
		struct store_quote q;
		Quotes__QuoteReply *reply;
		uint8_t buf[1024];
		size_t n;

		assert_int_equal(store_pick(s, "", 0, &r, &q), 0);
		reply = quotes__quote_reply__unpack(NULL, q.len, q.reply);
		assert_non_null(reply);
		assert_int_equal(reply->base.n_unknown_fields, 0);
		n = quotes__quote_reply__get_packed_size(reply);
		assert_true(n <= sizeof(buf));
		assert_int_equal(quotes__quote_reply__pack(reply, buf), n);
		assert_int_equal(n, q.len);
		assert_memory_equal(buf, q.reply, n);
		quotes__quote_reply__free_unpacked(reply, NULL);
	}
	store_close(s);
}

/* The author is s[0..len), not a C string: bytes after len are ignored. */
static void
test_author_length_bounded(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX];
	struct store *s;
	struct rng r;

	s = open_sample(fx, db);
	rng_seed(&r, 3);
	for (int k = 0; k < 200; k++) {
		Quotes__QuoteReply *reply;

		reply = pick(s, "Mark Twain and friends", 10, &r);
		assert_string_equal(reply->author, "Mark Twain");
		quotes__quote_reply__free_unpacked(reply, NULL);
		/* "Mark" is an author of its own, not a prefix match. */
		reply = pick(s, "Mark Twain", 4, &r);
		assert_string_equal(reply->author, "Mark");
		quotes__quote_reply__free_unpacked(reply, NULL);
	}
	store_close(s);
}

/* Names that are not authors, however close, choose among all authors. */
static void
test_unknown_author_spreads(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX], longname[600];
	struct {
		const char *name;
		size_t len;
	} unknown[] = {
	    {"Nobody", 6},
	    {"mark twain", 10},  /* matching is exact, case included */
	    {"Mark Twai", 9},    /* a prefix of an author */
	    {"Mark Twain ", 11}, /* requests are not trimmed */
	    {"S\xc3\xb8ren", 6},
	    {"\xff\xfe", 2}, /* not UTF-8: workers check, not the store */
	    {"", 0}, {NULL, 0},
	    {"Mark Twain", 0}, /* len 0 is "no author", whatever the bytes */
	    {longname, sizeof(longname)}, /* longer than an LMDB key */
	};
	struct store *s;
	struct rng r;

	memset(longname, 'a', sizeof(longname));
	s = open_sample(fx, db);
	rng_seed(&r, 4);
	for (size_t u = 0; u < sizeof(unknown) / sizeof(unknown[0]); u++) {
		unsigned counts[NSAMPLE_AUTHORS] = {0};

		for (int k = 0; k < 700; k++) {
			Quotes__QuoteReply *reply;

			reply = pick(s, unknown[u].name, unknown[u].len, &r);
			counts[author_index(sample_authors, NSAMPLE_AUTHORS,
			    reply->author)]++;
			quotes__quote_reply__free_unpacked(reply, NULL);
		}
		/* Expect 100 each; a pick tied to one author would give 700. */
		for (size_t a = 0; a < NSAMPLE_AUTHORS; a++)
			if (counts[a] < 50 || counts[a] > 160)
				fail_msg("request %zu: author '%s' picked "
					 "%u of 700 times",
				    u, sample_authors[a], counts[a]);
	}
	store_close(s);
}

/*
 * Ten authors with 1 to 50 quotes: random picks must be uniform over
 * authors, not over quotes, or a prolific author would crowd out the
 * rest (here the one-quote author would get 1/172 of picks, not 1/10).
 */
static const unsigned skewed_counts[10] = {1, 2, 3, 5, 8, 13, 20, 30, 40, 50};

static struct store *
open_skewed(const struct fixture *fx, const char *names[10])
{
	static char namebuf[10][32], textbuf[200][48];
	struct quote *q;
	char db[PATH_MAX];
	size_t n = 0;
	struct store *s;

	q = calloc(200, sizeof(*q));
	assert_non_null(q);
	for (int a = 0; a < 10; a++) {
		snprintf(namebuf[a], sizeof(namebuf[a]), "Author %02d", a);
		names[a] = namebuf[a];
		for (unsigned i = 0; i < skewed_counts[a]; i++) {
			snprintf(textbuf[n], sizeof(textbuf[n]),
			    "Quote %u of author %d", i, a);
			q[n].author = namebuf[a];
			q[n].text = textbuf[n];
			n++;
		}
	}
	import_quotes(fx, q, n, "skewed.mdb");
	free(q);
	path_in(fx, "skewed.mdb", db);
	s = open_ok(db);
	assert_int_equal(store_nquotes(s), n);
	assert_int_equal(store_nauthors(s), 10);
	return s;
}

static void
check_author_chi_square(const struct store *s, const char *names[10],
    const char *author, size_t len, uint64_t seed)
{
	enum { PICKS = 100000 };
	unsigned counts[10] = {0};
	struct rng r;
	double chi2;

	rng_seed(&r, seed);
	for (int k = 0; k < PICKS; k++) {
		Quotes__QuoteReply *reply = pick(s, author, len, &r);

		counts[author_index(names, 10, reply->author)]++;
		quotes__quote_reply__free_unpacked(reply, NULL);
	}
	chi2 = chi_square(counts, 10, PICKS);
	print_message("chi-square over authors ('%.*s'): %.3f\n", (int)len,
	    author ? author : "", chi2);
	assert_true(chi2 < CHI2_9DOF_999);
}

static void
test_empty_author_uniform_over_authors(void **state)
{
	const char *names[10];
	struct store *s = open_skewed(*state, names);

	check_author_chi_square(s, names, "", 0, 42);
	store_close(s);
}

static void
test_unknown_author_uniform_over_authors(void **state)
{
	const char *names[10];
	struct store *s = open_skewed(*state, names);

	check_author_chi_square(s, names, "Nobody", 6, 43);
	store_close(s);
}

/* Within an author, every quote is equally likely. */
static void
test_quotes_uniform_within_author(void **state)
{
	enum { PICKS = 50000 };
	const char *names[10];
	struct store *s = open_skewed(*state, names);
	unsigned counts[50] = {0};
	struct rng r;
	double chi2;

	rng_seed(&r, 44);
	for (int k = 0; k < PICKS; k++) {
		Quotes__QuoteReply *reply = pick(s, names[9], 9, &r);
		unsigned i;
		int a;

		assert_string_equal(reply->author, names[9]);
		assert_int_equal(sscanf(reply->quote, "Quote %u of author %d",
				     &i, &a),
		    2);
		assert_int_equal(a, 9);
		assert_true(i < 50);
		counts[i]++;
		quotes__quote_reply__free_unpacked(reply, NULL);
	}
	chi2 = chi_square(counts, 50, PICKS);
	print_message("chi-square over one author's quotes: %.3f\n", chi2);
	assert_true(chi2 < CHI2_49DOF_999);
	store_close(s);
}

/* A seed fixes the picks: what makes every test here repeatable. */
static void
test_same_seed_same_picks(void **state)
{
	const char *names[10];
	struct store *s = open_skewed(*state, names);
	struct rng a, b;

	rng_seed(&a, 7);
	rng_seed(&b, 7);
	for (int k = 0; k < 1000; k++) {
		struct store_quote qa, qb;

		assert_int_equal(store_pick(s, NULL, 0, &a, &qa), 0);
		assert_int_equal(store_pick(s, NULL, 0, &b, &qb), 0);
		assert_ptr_equal(qa.reply, qb.reply);
		assert_int_equal(qa.len, qb.len);
	}
	store_close(s);
}

/* store_open_fd maps the file behind the descriptor, not whatever its
 * path names by then (the master and workers rely on it across swaps). */
static void
test_open_fd_keeps_file(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX], other[PATH_MAX];
	struct store *s;
	int fd;

	s = open_sample(fx, db);
	store_close(s);
	assert_true((fd = open(db, O_RDONLY | O_CLOEXEC)) >= 0);
	import_quotes(fx, sample, 2, "other.mdb");
	path_in(fx, "other.mdb", other);
	assert_int_equal(rename(other, db), 0);
	assert_int_equal(store_open_fd(fd, &s), 0);
	assert_int_equal(store_nquotes(s), NSAMPLE);
	store_close(s);
	close(fd);
	/* The path now names the two-quote file. */
	s = open_ok(db);
	assert_int_equal(store_nquotes(s), 2);
	store_close(s);
}

/* Two stores open on one file at once, as workers have them. */
static void
test_two_opens(void **state)
{
	struct fixture *fx = *state;
	char db[PATH_MAX];
	struct store *s1, *s2;
	struct rng r;

	s1 = open_sample(fx, db);
	s2 = open_ok(db);
	rng_seed(&r, 5);
	store_close(s1);
	for (int k = 0; k < 100; k++) {
		Quotes__QuoteReply *reply = pick(s2, "Oscar Wilde", 11, &r);

		assert_string_equal(reply->quote,
		    "I can resist everything except temptation.");
		quotes__quote_reply__free_unpacked(reply, NULL);
	}
	store_close(s2);
	/* Read-only, no lock: nothing may appear beside the database. */
	path_in(fx, "q.mdb-lock", db);
	assert_int_equal(access(db, F_OK), -1);
}

static void
test_close_null(void **state)
{
	(void)state;
	store_close(NULL);
}

/* --- store_open() errors --- */

static void
expect_open_error(const char *path, int want)
{
	struct store *s = (struct store *)1;
	int rc = store_open(path, &s);
	const char *msg = store_strerror(rc);

	assert_null(s);
	assert_non_null(msg);
	assert_true(*msg != '\0');
	if (rc != want)
		fail_msg("store_open %s: got %d (%s), want %d (%s)", path, rc,
		    msg, want, store_strerror(want));
}

/* Any error will do, as long as it is one and is explained. */
static int
expect_some_open_error(const char *path)
{
	struct store *s = (struct store *)1;
	int rc = store_open(path, &s);
	const char *msg = store_strerror(rc);

	assert_null(s);
	if (rc == 0)
		fail_msg("store_open %s succeeded", path);
	assert_non_null(msg);
	assert_true(*msg != '\0');
	return rc;
}

static void
test_open_missing(void **state)
{
	char path[PATH_MAX];

	path_in(*state, "no-such.mdb", path);
	expect_open_error(path, ENOENT);
	path_in(*state, "no-such-dir/q.mdb", path);
	expect_open_error(path, ENOENT);
}

static void
test_open_directory(void **state)
{
	char path[PATH_MAX];

	path_in(*state, "adir", path);
	assert_int_equal(mkdir(path, 0755), 0);
	expect_open_error(path, EISDIR);
}

static void
test_open_empty_file(void **state)
{
	char path[PATH_MAX];

	path_in(*state, "empty.mdb", path);
	write_file(path, "", 0);
	expect_open_error(path, MDB_INVALID);
	/* A reader must not turn it into a new environment either. */
	assert_int_equal(file_size(path), 0);
}

static void
test_open_not_lmdb(void **state)
{
	static const char text[] =
	    "Take my wife \xe2\x80\x94 please.~Henny Youngman\n";
	char path[PATH_MAX];
	char *buf;
	struct rng r;
	size_t sizes[] = {1, 100, 4096, 8192, 65536};

	rng_seed(&r, 6);
	buf = malloc(65536);
	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			buf[k] = (char)rng_next(&r);
		path_in(*state, "random.mdb", path);
		write_file(path, buf, sizes[i]);
		expect_some_open_error(path);
	}
	/* A quotes file given where the database was meant. */
	for (size_t k = 0; k < 65536; k++)
		buf[k] = text[k % (sizeof(text) - 1)];
	path_in(*state, "quotes.txt", path);
	write_file(path, buf, 65536);
	expect_some_open_error(path);
	write_file(path, text, sizeof(text) - 1);
	expect_some_open_error(path);
	free(buf);
}

/* Creates an LMDB file the way any other program would. */
static void
make_lmdb(const char *path, const char *dbname, const char *key,
    const void *val, size_t vallen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v = {vallen, (void *)val};

	txn = lmdb_write_begin(path);
	assert_int_equal(mdb_dbi_open(txn, dbname, dbname ? MDB_CREATE : 0,
			     &dbi),
	    0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	lmdb_write_end(txn);
}

static void
test_open_foreign_lmdb(void **state)
{
	struct store_meta m;
	char path[PATH_MAX];

	path_in(*state, "foreign.mdb", path);
	make_lmdb(path, NULL, "hello", "world", 5);
	expect_open_error(path, STORE_EBADMAGIC);

	/* "meta" as a plain key, not a named database. */
	path_in(*state, "foreign2.mdb", path);
	make_lmdb(path, NULL, STORE_DB_META, "x", 1);
	expect_open_error(path, STORE_EBADMAGIC);

	/* A "meta" database without our key. */
	path_in(*state, "foreign3.mdb", path);
	make_lmdb(path, STORE_DB_META, "other", "x", 1);
	expect_open_error(path, STORE_EBADMAGIC);

	/* Our meta with another magic. */
	memset(&m, 0, sizeof(m));
	memcpy(m.magic, "NOTOURS", 8);
	m.version = STORE_FORMAT_VERSION;
	m.nquotes = m.nauthors = 1;
	path_in(*state, "foreign4.mdb", path);
	make_lmdb(path, STORE_DB_META, STORE_META_KEY, &m, sizeof(m));
	expect_open_error(path, STORE_EBADMAGIC);

	/* Our meta, but none of the other databases. */
	memcpy(m.magic, STORE_MAGIC, sizeof(STORE_MAGIC));
	path_in(*state, "foreign5.mdb", path);
	make_lmdb(path, STORE_DB_META, STORE_META_KEY, &m, sizeof(m));
	expect_open_error(path, STORE_EBADMAGIC);
}

/* Rewrites one record of a database in place with LMDB's write API, as
 * damage or a foreign writer might; MDB_NOLOCK, the file is ours alone. */
static void
patch_record(const char *path, const char *dbname, unsigned dbflags,
    const void *key, size_t keylen, void (*edit)(void *, size_t *, void *),
    void *arg)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {keylen, (void *)key}, v;
	unsigned char buf[1024] = {0};
	size_t len;

	txn = lmdb_write_begin(path);
	assert_int_equal(mdb_dbi_open(txn, dbname, dbflags, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_true(v.mv_size <= sizeof(buf));
	memcpy(buf, v.mv_data, v.mv_size);
	len = v.mv_size;
	edit(buf, &len, arg);
	v.mv_size = len;
	v.mv_data = buf;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	lmdb_write_end(txn);
}

struct meta_edit {
	uint32_t *version;
	uint64_t nquotes_add, nauthors_add;
	bool zero_quotes, zero_authors;
	ptrdiff_t size_add;
};

static void
edit_meta(void *data, size_t *len, void *arg)
{
	struct meta_edit *e = arg;
	struct store_meta m;

	assert_int_equal(*len, sizeof(m));
	memcpy(&m, data, sizeof(m));
	if (e->version)
		m.version = *e->version;
	m.nquotes += e->nquotes_add;
	m.nauthors += e->nauthors_add;
	if (e->zero_quotes)
		m.nquotes = 0;
	if (e->zero_authors)
		m.nauthors = 0;
	memcpy(data, &m, sizeof(m));
	*len = (size_t)((ptrdiff_t)*len + e->size_add);
}

/* Imports the sample, copies it to name, and applies e to its meta. */
static void
patched_db(const struct fixture *fx, const char *name, struct meta_edit *e,
    char *path)
{
	char orig[PATH_MAX];

	path_in(fx, "orig.mdb", orig);
	if (access(orig, F_OK) != 0)
		import_quotes(fx, sample, NSAMPLE, "orig.mdb");
	path_in(fx, name, path);
	copy_file(orig, path);
	patch_record(path, STORE_DB_META, 0, STORE_META_KEY,
	    sizeof(STORE_META_KEY) - 1, edit_meta, e);
}

static void
test_open_patch_noop(void **state)
{
	struct meta_edit e = {0};
	char path[PATH_MAX];
	struct store *s;

	/* The patching itself leaves a good database good. */
	patched_db(*state, "same.mdb", &e, path);
	s = open_ok(path);
	assert_int_equal(store_nquotes(s), NSAMPLE);
	assert_int_equal(store_nauthors(s), NSAMPLE_AUTHORS);
	store_close(s);
}

static void
test_open_version(void **state)
{
	uint32_t v99 = 99, v0 = 0, v1 = 1;
	struct meta_edit e = {.version = &v99};
	char path[PATH_MAX];

	patched_db(*state, "v99.mdb", &e, path);
	expect_open_error(path, STORE_EVERSION);
	e.version = &v0;
	patched_db(*state, "v0.mdb", &e, path);
	expect_open_error(path, STORE_EVERSION);
	/* A version 1 meta: no checksum, 8 bytes shorter. The version
	 * is read before the size, which differs from one to another. */
	e = (struct meta_edit){.version = &v1, .size_add = -8};
	patched_db(*state, "v1.mdb", &e, path);
	expect_open_error(path, STORE_EVERSION);
	/* This version's meta of another size is nobody's. */
	e = (struct meta_edit){.size_add = 8};
	patched_db(*state, "long.mdb", &e, path);
	expect_open_error(path, STORE_EBADMAGIC);
	e = (struct meta_edit){.size_add = -1};
	patched_db(*state, "short1.mdb", &e, path);
	expect_open_error(path, STORE_EBADMAGIC);
	/* Too short to even hold a version. */
	e = (struct meta_edit){
	    .size_add = -(ptrdiff_t)(sizeof(struct store_meta) - 4)};
	patched_db(*state, "short.mdb", &e, path);
	expect_open_error(path, STORE_EBADMAGIC);
}

static void
test_open_empty_meta(void **state)
{
	struct meta_edit e = {.zero_quotes = true};
	char path[PATH_MAX];

	patched_db(*state, "noquotes.mdb", &e, path);
	expect_open_error(path, STORE_EEMPTY);
	e = (struct meta_edit){.zero_authors = true};
	patched_db(*state, "noauthors.mdb", &e, path);
	expect_open_error(path, STORE_EEMPTY);
}

static void
test_open_counts_mismatch(void **state)
{
	struct meta_edit e = {.nquotes_add = 1};
	char path[PATH_MAX];

	patched_db(*state, "q+1.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
	e = (struct meta_edit){.nquotes_add = (uint64_t)-1};
	patched_db(*state, "q-1.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
	e = (struct meta_edit){.nauthors_add = 1};
	patched_db(*state, "a+1.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
	e = (struct meta_edit){.nauthors_add = (uint64_t)-1};
	patched_db(*state, "a-1.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
	/* More authors than quotes cannot be. */
	e = (struct meta_edit){.nauthors_add = NSAMPLE};
	patched_db(*state, "a>q.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
	/* Beyond the 32-bit quote indexes. */
	e = (struct meta_edit){.nquotes_add = (uint64_t)UINT32_MAX};
	patched_db(*state, "huge.mdb", &e, path);
	expect_open_error(path, STORE_ECORRUPT);
}

struct author_edit {
	uint32_t first, count;
	bool set_first, set_count;
};

static void
edit_author(void *data, size_t *len, void *arg)
{
	struct author_edit *e = arg;
	struct store_author a;

	assert_true(*len >= sizeof(a));
	memcpy(&a, data, sizeof(a));
	if (e->set_first)
		a.first = e->first;
	if (e->set_count)
		a.count = e->count;
	memcpy(data, &a, sizeof(a));
}

/* An author record pointing outside the quotes is refused at pick time,
 * not followed. */
static void
test_pick_corrupt_author(void **state)
{
	struct fixture *fx = *state;
	struct author_edit edits[] = {
	    {.count = 0, .set_count = true},
	    {.first = NSAMPLE, .set_first = true},
	    {.first = UINT32_MAX, .set_first = true},
	    {.count = UINT32_MAX, .set_count = true},
	};
	char orig[PATH_MAX], path[PATH_MAX];

	import_quotes(fx, sample, NSAMPLE, "orig.mdb");
	path_in(fx, "orig.mdb", orig);
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		struct store_quote q;
		struct store *s;
		struct rng r;
		uint32_t index = 0;
		int rc, ncorrupt;

		/* By name. */
		path_in(fx, "byname.mdb", path);
		copy_file(orig, path);
		patch_record(path, STORE_DB_AUTHORS, 0, "Mark Twain", 10,
		    edit_author, &edits[i]);
		s = open_ok(path);
		rng_seed(&r, 8);
		rc = store_pick(s, "Mark Twain", 10, &r, &q);
		assert_int_equal(rc, STORE_ECORRUPT);
		assert_int_equal(store_pick(s, "Oscar Wilde", 11, &r, &q), 0);
		store_close(s);

		/* By index, as random picks find authors: one author in
		 * seven is bad, so some of the picks must meet it. */
		path_in(fx, "byindex.mdb", path);
		copy_file(orig, path);
		patch_record(path, STORE_DB_BYINDEX, MDB_INTEGERKEY, &index,
		    sizeof(index), edit_author, &edits[i]);
		s = open_ok(path);
		rng_seed(&r, 9);
		ncorrupt = 0;
		for (int k = 0; k < 200; k++) {
			rc = store_pick(s, "", 0, &r, &q);
			assert_true(rc == 0 || rc == STORE_ECORRUPT);
			ncorrupt += rc != 0;
		}
		assert_in_range(ncorrupt, 1, 199);
		store_close(s);
	}
}

/* LMDB trusts the page numbers in its meta; a short file must be refused
 * before anything touches a page past its end (SIGBUS). */
static void
test_open_truncated(void **state)
{
	struct fixture *fx = *state;
	char orig[PATH_MAX], path[PATH_MAX];
	off_t size;
	long psize = sysconf(_SC_PAGESIZE);

	import_quotes(fx, sample, NSAMPLE, "orig.mdb");
	path_in(fx, "orig.mdb", orig);
	size = file_size(orig);
	path_in(fx, "half.mdb", path);
	copy_file(orig, path);
	assert_int_equal(truncate(path, size / 2), 0);
	expect_open_error(path, STORE_ETRUNCATED);

	path_in(fx, "lastbyte.mdb", path);
	copy_file(orig, path);
	assert_int_equal(truncate(path, size - 1), 0);
	expect_open_error(path, STORE_ETRUNCATED);

	/* Every other length, down to nothing: an error, never a crash.
	 * LMDB's pages are at least 4 KiB; step by a fraction of one. */
	if (psize < 4096)
		psize = 4096;
	for (off_t len = 0; len < size; len += psize / 4) {
		char name[64];

		snprintf(name, sizeof(name), "cut%lld.mdb", (long long)len);
		path_in(fx, name, path);
		copy_file(orig, path);
		assert_int_equal(truncate(path, len), 0);
		expect_some_open_error(path);
		assert_int_equal(unlink(path), 0);
	}
}

static void
test_strerror(void **state)
{
	static const int codes[] = {STORE_EBADMAGIC, STORE_EVERSION,
	    STORE_EEMPTY, STORE_ECORRUPT, STORE_ETRUNCATED, STORE_EBOUNDS,
	    STORE_ECHECKSUM, MDB_INVALID, MDB_NOTFOUND, ENOENT, EISDIR, EACCES};
	enum { N = sizeof(codes) / sizeof(codes[0]) };

	(void)state;
	for (size_t i = 0; i < N; i++) {
		const char *m = store_strerror(codes[i]);

		assert_non_null(m);
		assert_true(*m != '\0');
		/* Each error explains itself differently. */
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(m, store_strerror(codes[j]));
	}
}

/*
 * Format 3's filters, on a corpus whose quotes are numbered in their text
 * ("q7 ...") so that a reply names its quote. Database order is author
 * order: "A" (q0..q9), then "B" (q10..q19), then "b" (q20..q24); every
 * quote holds "common", the even ones "even", q3 and q13 "rare"; q_i is
 * 20 + i code points long (the padding, after a space, is é, two bytes
 * each).
 */
#define NF 25

static void
import_filtered(const struct fixture *fx, char *db)
{
	char in[PATH_MAX], log[PATH_MAX];
	const char *args[] = {"-q", "-o", db, "--tag", "all", in, NULL};
	FILE *f;
	int status;

	path_in(fx, "filtered.txt", in);
	path_in(fx, "filtered.mdb", db);
	path_in(fx, "import.log", log);
	assert_non_null(f = fopen(in, "w"));
	for (int i = 0; i < NF; i++) {
		char text[128];
		int n = snprintf(text, sizeof(text), "q%d common%s%s", i,
		    i % 2 == 0 ? " even" : "", i % 10 == 3 ? " rare" : "");
		int len = n + 1;

		n += snprintf(text + n, sizeof(text) - (size_t)n, " ");
		for (; len < 20 + i; len++)
			n += snprintf(text + n, sizeof(text) - (size_t)n, "é");
		fprintf(f, "%s~%s\n", text, i < 10 ? "A" : i < 20 ? "B" : "b");
	}
	assert_int_equal(fclose(f), 0);
	status = run_importer(args, NULL, 0, log, log);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The number of the quote in a reply. */
static int
quote_number(const struct store_quote *q)
{
	Quotes__QuoteReply *r =
	    quotes__quote_reply__unpack(NULL, q->len, q->reply);
	int n;

	assert_non_null(r);
	assert_int_equal(sscanf(r->quote, "q%d", &n), 1);
	quotes__quote_reply__free_unpacked(r, NULL);
	return n;
}

static struct store_filter
word_filter(const char *w, uint32_t lo, uint32_t hi)
{
	struct store_filter f;

	memset(&f, 0, sizeof(f));
	if (w != NULL) {
		f.words[0].p = w;
		f.words[0].len = strlen(w);
		f.nwords = 1;
	}
	f.min_length = lo;
	f.max_length = hi;
	return f;
}

static bool
in_filter(int i, const char *w, uint32_t lo, uint32_t hi)
{
	uint32_t len = 20 + (uint32_t)i;

	if (w != NULL && strcmp(w, "common") != 0 &&
	    !(strcmp(w, "even") == 0 && i % 2 == 0) &&
	    !(strcmp(w, "rare") == 0 && i % 10 == 3))
		return false;
	return len >= lo && (hi == 0 || len <= hi);
}

static void
test_filtered_pick(void **state)
{
	static const struct {
		const char *w;
		uint32_t lo, hi;
	} cases[] = {{"even", 0, 0}, {"rare", 0, 0}, {NULL, 25, 30},
	    {"even", 25, 35}, {"rare", 24, 40}, {NULL, 44, 0},
	    {"nowhere", 0, 0}, {NULL, 50, 0}, {"rare", 0, 22}, {"common", 0, 0},
	    {NULL, 0, 0}};
	char db[PATH_MAX];
	struct store *s;
	struct rng r;

	import_filtered(*state, db);
	s = open_ok(db);
	rng_seed(&r, 15);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct store_filter f =
		    word_filter(cases[c].w, cases[c].lo, cases[c].hi);
		int seen[NF] = {0}, want = 0, got = 0;
		struct store_quote q;

		for (int i = 0; i < NF; i++)
			want +=
			    in_filter(i, cases[c].w, cases[c].lo, cases[c].hi);
		if (want == 0) {
			assert_int_equal(store_pick_filtered(s, &f, &r, &q),
			    STORE_ENOMATCH);
			continue;
		}
		for (int k = 0; k < 60 * want; k++) {
			int n;

			assert_int_equal(store_pick_filtered(s, &f, &r, &q), 0);
			n = quote_number(&q);
			assert_true(
			    in_filter(n, cases[c].w, cases[c].lo, cases[c].hi));
			got += seen[n]++ == 0;
		}
		assert_int_equal(got, want);
	}
	store_close(s);
}

static int
collect(void *arg, const struct store_quote *q)
{
	int *list = arg;

	list[++list[0]] = quote_number(q);
	return 0;
}

static void
test_search(void **state)
{
	struct store_filter f = word_filter("even", 22, 0);
	char db[PATH_MAX];
	struct store *s;
	uint64_t total;
	uint32_t next = 0;
	int list[NF + 1] = {0}, want = 0;

	import_filtered(*state, db);
	s = open_ok(db);
	/* Pages of two, in database order, each quote once. */
	do {
		assert_int_equal(store_search(s, &f, next, 2, collect, list,
				     &next, &total),
		    0);
		assert_int_equal(total, 12);
	} while (next != UINT32_MAX);
	for (int i = 0; i < NF; i++)
		if (in_filter(i, "even", 22, 0))
			assert_int_equal(list[++want], i);
	assert_int_equal(list[0], want);
	/* An author's range with a word. */
	assert_int_equal(store_find_author(s, "B", 1, 1, &f), 0);
	list[0] = 0;
	assert_int_equal(store_search(s, &f, 0, 100, collect, list, &next,
			     &total),
	    0);
	assert_int_equal(total, 5);
	assert_int_equal(list[1], 10);
	assert_int_equal(list[5], 18);
	assert_int_equal(next, UINT32_MAX);
	store_close(s);
}

static void
test_find_author(void **state)
{
	struct store_filter f;
	char db[PATH_MAX];
	struct store *s;

	import_filtered(*state, db);
	s = open_ok(db);
	memset(&f, 0, sizeof(f));
	assert_int_equal(store_find_author(s, "b", 1, 1, &f), 0);
	assert_int_equal(f.nauthors, 1);
	assert_int_equal(f.first[0], 20);
	assert_int_equal(f.count[0], 5);
	/* No exact " B ": both B and b fold to it. */
	assert_int_equal(store_find_author(s, " B ", 3, 1, &f), STORE_ENOMATCH);
	assert_int_equal(store_find_author(s, " B ", 3, 0, &f), 0);
	assert_int_equal(f.nauthors, 2);
	assert_int_equal(f.first[0] + f.first[1], 10 + 20);
	assert_int_equal(store_find_author(s, "C", 1, 0, &f), STORE_ENOMATCH);
	assert_int_equal(f.nauthors, 0);
	store_close(s);
}

static void
test_daily(void **state)
{
	struct store_filter f = word_filter("even", 0, 0);
	struct store_quote q;
	char db[PATH_MAX];
	struct store *s;
	int seen[NF] = {0};

	import_filtered(*state, db);
	s = open_ok(db);
	/* 13 candidates over 13 days: each once; then the cycle again. */
	for (int d = 0; d < 13; d++) {
		int n;

		assert_int_equal(store_daily(s, &f, 20000 + d, &q), 0);
		n = quote_number(&q);
		assert_true(n % 2 == 0);
		assert_int_equal(seen[n]++, 0);
		assert_int_equal(store_daily(s, &f, 20000 + d + 13, &q), 0);
		assert_int_equal(quote_number(&q), n);
	}
	f = word_filter("nowhere", 0, 0);
	assert_int_equal(store_daily(s, &f, 1, &q), STORE_ENOMATCH);
	store_close(s);
}

static int
tag_seen(void *arg, const char *name, size_t len, uint32_t count)
{
	int *n = arg;

	assert_int_equal(len, 3);
	assert_memory_equal(name, "all", 3);
	assert_int_equal(count, NF);
	(*n)++;
	return 0;
}

static void
test_tags(void **state)
{
	char db[PATH_MAX];
	struct store *s;
	int n = 0, more;

	import_filtered(*state, db);
	s = open_ok(db);
	assert_int_equal(store_tags(s, NULL, 0, 10, tag_seen, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_int_equal(more, 0);
	assert_int_equal(store_tags(s, "all", 3, 10, tag_seen, &n, &more), 0);
	assert_int_equal(n, 1);
	store_close(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_filtered_pick),
	    T(test_search),
	    T(test_find_author),
	    T(test_daily),
	    T(test_tags),
	    T(test_round_trip),
	    T(test_reply_encoding),
	    T(test_author_length_bounded),
	    T(test_unknown_author_spreads),
	    T(test_empty_author_uniform_over_authors),
	    T(test_unknown_author_uniform_over_authors),
	    T(test_quotes_uniform_within_author),
	    T(test_same_seed_same_picks),
	    T(test_open_fd_keeps_file),
	    T(test_two_opens),
	    T(test_close_null),
	    T(test_open_missing),
	    T(test_open_directory),
	    T(test_open_empty_file),
	    T(test_open_not_lmdb),
	    T(test_open_foreign_lmdb),
	    T(test_open_patch_noop),
	    T(test_open_version),
	    T(test_open_empty_meta),
	    T(test_open_counts_mismatch),
	    T(test_pick_corrupt_author),
	    T(test_open_truncated),
	    T(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
