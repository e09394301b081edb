/*
 * Helpers shared by the cmocka tests: a temporary directory per test,
 * small file I/O that fails the test on error, and running the real
 * quotes-import ($QUOTERD_BUILD/quotes-import) as a child.
 */
#ifndef QUOTERD_TESTUTIL_H
#define QUOTERD_TESTUTIL_H

#include <stddef.h>

#include <lmdb.h>

#include "rng.h"
#include "store.h"

/* A quote as the tests write it and expect it back. */
struct quote {
	const char *author;
	const char *text;
};

/* Makes $TMPDIR/NAME.XXXXXX (or under /tmp) into dir[PATH_MAX]. */
int tmpdir_create(char *dir, const char *name);
/* Removes dir and everything below it. */
int tmpdir_remove(const char *dir);
/* out[PATH_MAX] = dir/name. */
void path_join(const char *dir, const char *name, char *out);
void write_file(const char *path, const void *data, size_t len);
/* The whole file, NUL-terminated; *lenp (if not NULL) is its length. */
char *read_file(const char *path, size_t *lenp);
/*
 * Runs quotes-import with args (NULL-terminated, without argv[0]):
 * standard input from stdin_data (or /dev/null if NULL), standard output
 * to outp and standard error to errp (the same path for both is fine).
 * Returns the wait status.
 */
int run_importer(const char *const *args, const char *stdin_data,
    size_t stdin_len, const char *outp, const char *errp);

/*
 * Opens the LMDB file at path for writing, as a foreign writer would
 * (MDB_NOLOCK: the file is the test's alone), and begins a write
 * transaction; lmdb_write_end() commits it and closes the file.
 */
MDB_txn *lmdb_write_begin(const char *path);
void lmdb_write_end(MDB_txn *txn);

/*
 * Reads the quotes of every author in q[0..n) back through the store:
 * each author is picked by name picks_per_quote times per quote it has,
 * every reply must decode to one of that author's quotes in q, byte for
 * byte, and every quote in q must come up. With the seed fixed this is
 * repeatable; with e.g. 60 picks a quote, a fair pick misses a quote
 * with odds of about e^-60.
 */
void expect_author_quotes(const struct store *s, struct rng *r,
    const struct quote *q, size_t n, size_t picks_per_quote);

#endif
