/*
 * Unit tests for tools/import_index.c, the importer's filter indexes:
 * the index of a set of quotes is the same, record for record, however
 * its quotes are shared between the two parts (two threads index them
 * from either end), and its words are words.c's (words_next(),
 * words_fold()) for ASCII quotes, which take a path of their own, and
 * other quotes alike.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "../tools/import_index.h"
#include "postings.h"
#include "store_format.h"
#include "testutil.h"
#include "words.h"

#include "mixed_words.h"

#define NQUOTES  3000
#define NAUTHORS 40

struct corpus {
	char *text[NQUOTES];
	size_t len[NQUOTES];
	char *author[NAUTHORS];
	char dir[PATH_MAX];
};

static const char *const tags[] = {"alpha", "b-2", "zz", "t"};

static uint32_t
next(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

/* One of mixed_seps, or a line break, which a fortune keeps inside a
 * quote and the index must split at like any separator. */
static const char *
separator(uint32_t r)
{
	r %= NMIXED_SEPS + 1;
	return r == NMIXED_SEPS ? "\n" : mixed_seps[r];
}

static int
setup(void **state)
{
	struct corpus *c = calloc(1, sizeof(*c));
	uint32_t x = 7;

	if (c == NULL)
		return -1;
	if (tmpdir_create(c->dir, "test_import_index") != 0)
		return -1;
	for (size_t q = 0; q < NQUOTES; q++) {
		char buf[1024];
		size_t o = 0;
		unsigned n = 1 + next(&x) % 14;

		for (unsigned k = 0; k < n; k++) {
			if (next(&x) % 40 == 0) {
				/* 63, 64 and 65 letters: the last is no word.
				 */
				size_t len = 63 + next(&x) % 3;

				memset(buf + o, next(&x) % 2 ? 'W' : 'w', len);
				o += len;
			} else if (next(&x) % 4 == 0) {
				o += (size_t)sprintf(buf + o, "%u",
				    next(&x) % 100000);
			} else {
				o += (size_t)sprintf(buf + o, "%s",
				    mixed_words[next(&x) % NMIXED_WORDS]);
			}
			o +=
			    (size_t)sprintf(buf + o, "%s", separator(next(&x)));
		}
		c->text[q] = strndup(buf, o);
		c->len[q] = o;
	}
	for (size_t a = 0; a < NAUTHORS; a++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%s  Author\t%zu",
		    a % 3       ? "Ünïcödé"
			: a % 2 ? "MARK"
				: "mark",
		    a / 2);
		c->author[a] = strdup(buf);
	}
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct corpus *c = *state;

	tmpdir_remove(c->dir);
	for (size_t q = 0; q < NQUOTES; q++)
		free(c->text[q]);
	for (size_t a = 0; a < NAUTHORS; a++)
		free(c->author[a]);
	free(c);
	return 0;
}

/* Quote q's tags: none, some, or all. */
static void
add_tags(struct index *ix, unsigned part, uint32_t q)
{
	for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++)
		if ((q >> t) % 3 == 0)
			assert_int_equal(index_add_tag(ix, part, q, tags[t],
					     strlen(tags[t])),
			    0);
}

/*
 * Builds the index with quotes [0, split) in part 0, ascending, and the
 * rest in part 1, descending; sorts the parts first if sort; writes it
 * to DIR/name.
 */
static void
build(const struct corpus *c, const char *name, uint32_t split, bool sort)
{
	char path[PATH_MAX];
	struct index *ix = index_new(NQUOTES);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi w, t, f, l;

	assert_non_null(ix);
	for (uint32_t q = 0; q < split; q++) {
		assert_int_equal(index_add_quote(ix, 0, q, c->text[q],
				     c->len[q]),
		    0);
		add_tags(ix, 0, q);
	}
	for (uint32_t q = NQUOTES; q-- > split;) {
		assert_int_equal(index_add_quote(ix, 1, q, c->text[q],
				     c->len[q]),
		    0);
		add_tags(ix, 1, q);
	}
	for (uint32_t a = 0; a < NAUTHORS; a++)
		assert_int_equal(index_add_author(ix, a, c->author[a],
				     strlen(c->author[a])),
		    0);
	if (sort) {
		assert_int_equal(index_sort(ix, 0), 0);
		assert_int_equal(index_sort(ix, 1), 0);
	}
	path_join(c->dir, name, path);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 256 << 20), 0);
	assert_int_equal(mdb_env_open(env, path,
			     MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0644),
	    0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_WORDS, MDB_CREATE, &w), 0);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_TAGS, MDB_CREATE, &t), 0);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_FOLDED, MDB_CREATE, &f), 0);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_LENGTHS,
			     MDB_CREATE | MDB_INTEGERKEY, &l),
	    0);
	assert_int_equal(index_write(ix, txn, w, t, f, l), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	index_free(ix);
}

/* A read transaction on DIR/name, and a database of it. */
static MDB_env *
open_db(const struct corpus *c, const char *name, MDB_txn **txn)
{
	char path[PATH_MAX];
	MDB_env *env;

	path_join(c->dir, name, path);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, path,
			     MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY, 0644),
	    0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, txn), 0);
	return env;
}

/* Every record of db in a and b is the same, in the same order. */
static void
expect_same_db(MDB_txn *a, MDB_txn *b, const char *db, size_t *nrecords)
{
	MDB_dbi da, dbb;
	MDB_cursor *ca, *cb;
	MDB_val ka, va, kb, vb;
	int ra, rb;

	assert_int_equal(mdb_dbi_open(a, db, 0, &da), 0);
	assert_int_equal(mdb_dbi_open(b, db, 0, &dbb), 0);
	assert_int_equal(mdb_cursor_open(a, da, &ca), 0);
	assert_int_equal(mdb_cursor_open(b, dbb, &cb), 0);
	*nrecords = 0;
	for (ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST),
	    rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
	     ra == 0 && rb == 0; ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT),
	    rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT)) {
		assert_int_equal(ka.mv_size, kb.mv_size);
		assert_memory_equal(ka.mv_data, kb.mv_data, ka.mv_size);
		assert_int_equal(va.mv_size, vb.mv_size);
		assert_memory_equal(va.mv_data, vb.mv_data, va.mv_size);
		(*nrecords)++;
	}
	assert_int_equal(ra, MDB_NOTFOUND);
	assert_int_equal(rb, MDB_NOTFOUND);
	mdb_cursor_close(ca);
	mdb_cursor_close(cb);
}

/* However the quotes are shared between the parts, and whether or not
 * the parts were sorted by their threads, the indexes are the same. */
static void
test_parts(void **state)
{
	const struct corpus *c = *state;
	static const uint32_t splits[] = {0, 1, 17, NQUOTES / 2, NQUOTES - 1};
	static const char *const dbs[] = {STORE_DB_WORDS, STORE_DB_TAGS,
	    STORE_DB_FOLDED, STORE_DB_LENGTHS};
	MDB_env *ref, *env;
	MDB_txn *rt, *txn;
	size_t n;

	build(c, "ref.mdb", NQUOTES, false);
	ref = open_db(c, "ref.mdb", &rt);
	for (size_t k = 0; k < 2 * sizeof(splits) / sizeof(splits[0]); k++) {
		char name[32];

		snprintf(name, sizeof(name), "split%zu.mdb", k);
		build(c, name, splits[k / 2], k % 2);
		env = open_db(c, name, &txn);
		for (size_t d = 0; d < sizeof(dbs) / sizeof(dbs[0]); d++) {
			expect_same_db(rt, txn, dbs[d], &n);
			assert_true(n > 0);
		}
		mdb_txn_abort(txn);
		mdb_env_close(env);
	}
	mdb_txn_abort(rt);
	mdb_env_close(ref);
}

/* A (word, quote) pair as words.c has them. */
struct pair {
	char word[WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
	size_t len;
	uint32_t q;
};

/* LMDB's key order, then the quote. */
static int
compare_pairs(const void *va, const void *vb)
{
	const struct pair *a = va, *b = vb;
	int c = memcmp(a->word, b->word, a->len < b->len ? a->len : b->len);

	if (c != 0)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return (a->q > b->q) - (a->q < b->q);
}

/* The words database holds words.c's words, each with the quotes that
 * have it, ASCII quotes or not, and the lengths are words_length()'s. */
static void
test_words_as_words_c(void **state)
{
	const struct corpus *c = *state;
	size_t npairs = 0, cap = 1024, at = 0;
	struct pair *pairs = malloc(cap * sizeof(*pairs));
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val key, val;
	uint32_t k = STORE_LENGTHS_BYQUOTE;
	int rc;

	assert_non_null(pairs);
	for (uint32_t q = 0; q < NQUOTES; q++) {
		size_t pos = 0, start, wlen;

		while (words_next(c->text[q], c->len[q], &pos, &start, &wlen)) {
			if (wlen > WORDS_MAX_WORD)
				continue;
			if (npairs == cap) {
				cap *= 2;
				pairs = realloc(pairs, cap * sizeof(*pairs));
				assert_non_null(pairs);
			}
			pairs[npairs].len = words_fold(c->text[q] + start, wlen,
			    pairs[npairs].word, sizeof(pairs[npairs].word));
			assert_true(pairs[npairs].len > 0);
			pairs[npairs++].q = q;
		}
	}
	qsort(pairs, npairs, sizeof(*pairs), compare_pairs);

	build(c, "words.mdb", NQUOTES / 3, true);
	env = open_db(c, "words.mdb", &txn);
	assert_int_equal(mdb_dbi_open(txn, STORE_DB_WORDS, 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct postings pl;
		bool more;

		assert_int_equal(postings_open(&pl, val.mv_data, val.mv_size,
				     NQUOTES),
		    0);
		do {
			/* The next pair, past a word twice in a quote. */
			while (at > 0 && at < npairs &&
			    compare_pairs(&pairs[at], &pairs[at - 1]) == 0)
				at++;
			assert_true(at < npairs);
			assert_int_equal(key.mv_size, pairs[at].len);
			assert_memory_equal(key.mv_data, pairs[at].word,
			    key.mv_size);
			assert_int_equal(pl.cur, pairs[at].q);
			at++;
			more = postings_next(&pl);
		} while (more);
		assert_false(pl.bad);
	}
	assert_int_equal(rc, MDB_NOTFOUND);
	while (at > 0 && at < npairs &&
	    compare_pairs(&pairs[at], &pairs[at - 1]) == 0)
		at++;
	assert_int_equal(at, npairs);
	mdb_cursor_close(cur);

	assert_int_equal(mdb_dbi_open(txn, STORE_DB_LENGTHS, 0, &dbi), 0);
	key.mv_size = sizeof(k);
	key.mv_data = &k;
	assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
	assert_int_equal(val.mv_size, NQUOTES * sizeof(uint32_t));
	for (uint32_t q = 0; q < NQUOTES; q++) {
		uint32_t len;

		memcpy(&len, (const char *)val.mv_data + q * sizeof(len),
		    sizeof(len));
		assert_int_equal(len, words_length(c->text[q], c->len[q]));
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	free(pairs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_words_as_words_c, setup,
		teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
