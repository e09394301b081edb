/*
 * Unit tests for tools/quotes-import.c, run as the real program
 * ($QUOTERD_BUILD/quotes-import) with its output captured: every parse
 * rule of the text and fortune formats, the exact message each bad input
 * gets ("quotes-import: FILE:LINE: reason"), exit statuses, and the
 * promise that a failed import leaves OUT untouched and no temporary file
 * behind. Imported databases are read back through the store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "quote_service.pb-c.h"
#include "rng.h"
#include "store.h"
#include "testutil.h"
#include "mixed_words.h"

struct fixture {
	char dir[PATH_MAX];   /* inputs and captured output */
	char dbdir[PATH_MAX]; /* only databases, so leftovers show */
	char out[PATH_MAX];   /* dbdir/q.mdb, the default OUT */
	int status;           /* exit status of the last run */
	char *stdout_;        /* and what it wrote */
	char *stderr_;
};

static void
path_in(const struct fixture *fx, const char *name, char *out)
{
	path_join(fx->dir, name, out);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (tmpdir_create(fx->dir, "test_quotes_import") != 0) {
		free(fx);
		return -1;
	}
	path_in(fx, "db", fx->dbdir);
	path_in(fx, "db/q.mdb", fx->out);
	if (mkdir(fx->dbdir, 0755) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = tmpdir_remove(fx->dir);

	free(fx->stdout_);
	free(fx->stderr_);
	free(fx);
	return rc;
}

/* Writes a string literal (NULs included) to name in the fixture dir. */
#define INPUT(fx, name, lit, path)                                             \
	do {                                                                   \
		path_in((fx), (name), (path));                                 \
		write_file((path), (lit), sizeof(lit) - 1);                    \
	} while (0)

/*
 * Runs quotes-import with args (NULL-terminated), stdin from stdin_data
 * through a pipe (or /dev/null if NULL), stdout and stderr captured into
 * fx. Returns the exit status; a crash or sanitizer abort fails the test.
 */
static int
run_v(struct fixture *fx, const char *stdin_data, size_t stdin_len,
    const char *const *args)
{
	char outp[PATH_MAX], errp[PATH_MAX];
	int status;

	path_in(fx, "stdout", outp);
	path_in(fx, "stderr", errp);
	status = run_importer(args, stdin_data, stdin_len, outp, errp);
	free(fx->stdout_);
	free(fx->stderr_);
	fx->stdout_ = read_file(outp, NULL);
	fx->stderr_ = read_file(errp, NULL);
	/* Sanitizers exit 1 too, which some tests expect: look for them. */
	if (strstr(fx->stderr_, "Sanitizer") != NULL ||
	    strstr(fx->stderr_, "runtime error:") != NULL)
		fail_msg("quotes-import: sanitizer report:\n%s", fx->stderr_);
	if (!WIFEXITED(status))
		fail_msg("quotes-import died, status %#x; stderr:\n%s", status,
		    fx->stderr_);
	fx->status = WEXITSTATUS(status);
	return fx->status;
}

#define run(fx, ...) run_v((fx), NULL, 0, (const char *[]){__VA_ARGS__, NULL})
#define run_stdin(fx, data, len, ...)                                          \
	run_v((fx), (data), (len), (const char *[]){__VA_ARGS__, NULL})

static void
expect_status(const struct fixture *fx, int want)
{
	if (fx->status != want)
		fail_msg("exit status %d, want %d; stderr:\n%s", fx->status,
		    want, fx->stderr_);
}

static void
expect_stderr_has(const struct fixture *fx, const char *want)
{
	if (strstr(fx->stderr_, want) == NULL)
		fail_msg("stderr lacks \"%s\"; it is:\n%s", want, fx->stderr_);
}

static void
expect_stderr(const struct fixture *fx, const char *want)
{
	if (strcmp(fx->stderr_, want) != 0)
		fail_msg("stderr is:\n%s\nwant:\n%s", fx->stderr_, want);
}

/* The summary's fixed part; size and time vary. */
static void
expect_summary(const struct fixture *fx, const char *out, size_t nquotes,
    size_t nauthors, const char *skipped)
{
	char want[PATH_MAX + 256];
	size_t n;

	n = (size_t)snprintf(want, sizeof(want),
	    "quotes-import: wrote %s: %zu quote%s, %zu author%s, %s, ", out,
	    nquotes, nquotes == 1 ? "" : "s", nauthors,
	    nauthors == 1 ? "" : "s", skipped);
	if (strncmp(fx->stdout_, want, n) != 0)
		fail_msg("stdout is:\n%s\nwant it to start:\n%s", fx->stdout_,
		    want);
	n = strlen(fx->stdout_);
	assert_true(n > 3 && strcmp(fx->stdout_ + n - 3, " s\n") == 0);
	assert_non_null(strstr(fx->stdout_, " MiB, "));
	assert_ptr_equal(strchr(fx->stdout_, '\n'), fx->stdout_ + n - 1);
}

/*
 * A failed import's whole stderr: one message per bad line, then the
 * verdict. lines are the messages' "FILE:LINE: reason", NULL-terminated.
 */
static void
expect_rejected(const struct fixture *fx, const char *const *lines, size_t nbad,
    const char *out)
{
	char want[8192];
	size_t n = 0;

	expect_status(fx, 1);
	for (; *lines != NULL; lines++)
		n += (size_t)snprintf(want + n, sizeof(want) - n,
		    "quotes-import: %s\n", *lines);
	snprintf(want + n, sizeof(want) - n,
	    "quotes-import: %zu invalid line%s, %s not written "
	    "(--skip-invalid imports the rest)\n",
	    nbad, nbad == 1 ? "" : "s", out);
	expect_stderr(fx, want);
	assert_string_equal(fx->stdout_, "");
}

/* Names in dir, sorted, joined by ' ': what a failed import leaves. */
static void
expect_dir(const char *dir, const char *want)
{
	struct dirent **names;
	char got[4096] = "";
	int n;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		fail_msg("%s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 &&
		    strcmp(names[i]->d_name, "..") != 0) {
			if (*got)
				strncat(got, " ",
				    sizeof(got) - strlen(got) - 1);
			strncat(got, names[i]->d_name,
			    sizeof(got) - strlen(got) - 1);
		}
		free(names[i]);
	}
	free(names);
	if (strcmp(got, want) != 0)
		fail_msg("%s holds \"%s\", want \"%s\"", dir, got, want);
}

static size_t
nauthors_of(const struct quote *q, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (strcmp(q[j].author, q[i].author) == 0)
				break;
		count += j == i;
	}
	return count;
}

/*
 * Reads db back through the store: exactly these quotes, byte for byte,
 * each under its author. Every author is picked by name often enough
 * that each of its quotes must show up (the seed is fixed, so this is
 * repeatable), and nothing else may.
 */
static void
expect_db(const char *db, const struct quote *q, size_t n)
{
	struct store *s = NULL;
	struct rng r;
	int rc;

	if ((rc = store_open(db, &s)) != 0)
		fail_msg("store_open %s: %s", db, store_strerror(rc));
	assert_int_equal(store_nquotes(s), n);
	assert_int_equal(store_nauthors(s), nauthors_of(q, n));
	rng_seed(&r, 1);
	expect_author_quotes(s, &r, q, n, 60);
	store_close(s);
}

/* Imports one quote into OUT, for a failing import to leave alone;
 * returns the file's bytes. */
static char *
existing_out(struct fixture *fx, size_t *len)
{
	char in[PATH_MAX];

	INPUT(fx, "orig.txt", "Original~A\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	return read_file(fx->out, len);
}

/* OUT holds exactly what existing_out() wrote, and nothing else is new. */
static void
expect_out_kept(const struct fixture *fx, char *before, size_t blen)
{
	size_t alen;
	char *after = read_file(fx->out, &alen);

	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);
	free(before);
	expect_dir(fx->dbdir, "q.mdb");
}

#define NQ(a) (sizeof(a) / sizeof(a[0]))

static void
test_basic(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Mark Twain", "The report of my death was an exaggeration."},
	    {"Oscar Wilde", "I can resist everything except temptation."},
	    {"Mark Twain", "Man is the only animal that blushes."},
	    {"S\xc3\xb8ren Kierkegaard",
		"Once you label me you negate me \xe2\x80\x94 so don't."},
	};
	char in[PATH_MAX];
	struct stat st;
	mode_t mask;

	INPUT(fx, "in.txt",
	    "The report of my death was an exaggeration.~Mark Twain\n"
	    "I can resist everything except temptation.~Oscar Wilde\n"
	    "Man is the only animal that blushes.~Mark Twain\n"
	    "Once you label me you negate me \xe2\x80\x94 so don't."
	    "~S\xc3\xb8ren Kierkegaard",
	    in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	expect_stderr(fx, "");
	expect_summary(fx, fx->out, 4, 3, "0 skipped");
	expect_db(fx->out, want, NQ(want));
	expect_dir(fx->dbdir, "q.mdb");
	/* Readable as any new file is, not mkstemp's private 0600, and
	 * read-only: workers map it, nothing may change it in place. */
	mask = umask(0);
	umask(mask);
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0444 & ~mask);
}

static void
test_default_output(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], cwd[PATH_MAX];

	INPUT(fx, "in.txt", "Q~A\n", in);
	/* OUT defaults to quotes.mdb in the working directory; the child
	 * inherits ours, so move there for the run. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dbdir), 0);
	run(fx, "-q", in);
	assert_int_equal(chdir(cwd), 0);
	expect_status(fx, 0);
	expect_dir(fx->dbdir, "quotes.mdb");
}

static void
test_quiet(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX];

	INPUT(fx, "in.txt", "Q~A\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	assert_string_equal(fx->stdout_, "");
	expect_stderr(fx, "");
	run(fx, "--quiet", "--output", fx->out, in);
	expect_status(fx, 0);
	assert_string_equal(fx->stdout_, "");
}

static void
test_no_tilde(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l2[PATH_MAX + 64];

	INPUT(fx, "in.txt", "Good~Author\nNo tilde here\n", in);
	snprintf(l2, sizeof(l2), "%s:2: no '~' between quote and author", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l2, NULL}, 1, fx->out);
	expect_dir(fx->dbdir, "");
}

static void
test_empty_parts(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l[6][PATH_MAX + 64];

	/* White space alone is empty too, on either side. */
	INPUT(fx, "in.txt",
	    "~Author\n"
	    "  \t ~ Author\n"
	    "Quote~\n"
	    "Quote~ \t \n"
	    "~\n"
	    " ~ \n",
	    in);
	snprintf(l[0], sizeof(l[0]), "%s:1: empty quote", in);
	snprintf(l[1], sizeof(l[1]), "%s:2: empty quote", in);
	snprintf(l[2], sizeof(l[2]), "%s:3: empty author", in);
	snprintf(l[3], sizeof(l[3]), "%s:4: empty author", in);
	snprintf(l[4], sizeof(l[4]), "%s:5: empty quote", in);
	snprintf(l[5], sizeof(l[5]), "%s:6: empty quote", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx,
	    (const char *[]){l[0], l[1], l[2], l[3], l[4], l[5], NULL}, 6,
	    fx->out);
}

static void
test_invalid_utf8(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l[5][PATH_MAX + 64];

	INPUT(fx, "in.txt",
	    "Caf\xe9~Latin-1 Writer\n" /* Latin-1, not UTF-8 */
	    "Fine~S\xf8ren\n"          /* in the author */
	    "Overlong \xc0\xaf~A\n"
	    "Surrogate \xed\xa0\x80~A\n"
	    "Truncated \xe2\x80~A\n"
	    "Valid \xe2\x80\x94 dash~S\xc3\xb8ren\n",
	    in);
	for (int i = 0; i < 5; i++)
		snprintf(l[i], sizeof(l[i]), "%s:%d: invalid UTF-8", in, i + 1);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx,
	    (const char *[]){l[0], l[1], l[2], l[3], l[4], NULL}, 5, fx->out);
}

static void
test_nul_byte(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l1[PATH_MAX + 64], l2[PATH_MAX + 64];

	INPUT(fx, "in.txt", "Quo\0te~Author\nQuote~Au\0thor\nOK~A\n", in);
	snprintf(l1, sizeof(l1), "%s:1: NUL byte in line", in);
	snprintf(l2, sizeof(l2), "%s:2: NUL byte in line", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l1, l2, NULL}, 2, fx->out);
}

static char *
long_line(size_t textlen, const char *author)
{
	size_t alen = strlen(author);
	char *buf = malloc(textlen + alen + 3);

	assert_non_null(buf);
	memset(buf, 'x', textlen);
	buf[textlen] = '~';
	memcpy(buf + textlen + 1, author, alen);
	buf[textlen + 1 + alen] = '\n';
	buf[textlen + 2 + alen] = '\0';
	return buf;
}

/* 64 KiB is the longest line; one byte more is refused, not cut. */
static void
test_long_line(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l2[PATH_MAX + 64];
	char *at = long_line(65536 - 2, "A");   /* "x...x~A": 65536 bytes */
	char *over = long_line(65536 - 1, "B"); /* 65537 bytes */
	char *both;
	size_t alen = strlen(at), olen = strlen(over);
	struct quote want = {"A", NULL};

	both = malloc(alen + olen + 1);
	assert_non_null(both);
	memcpy(both, at, alen);
	memcpy(both + alen, over, olen + 1);
	path_in(fx, "in.txt", in);
	write_file(in, both, alen + olen);
	snprintf(l2, sizeof(l2), "%s:2: line longer than 65536 bytes", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l2, NULL}, 1, fx->out);

	/* The longest line goes in whole. */
	write_file(in, at, alen);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	at[65536 - 2] = '\0';
	want.text = at;
	expect_db(fx->out, &want, 1);
	free(at);
	free(over);
	free(both);
}

/* Authors are LMDB keys, at most 511 bytes. */
static void
test_long_author(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l1[PATH_MAX + 64], name[513];
	char line[600];
	struct quote want = {name, "Q"};

	memset(name, 'n', sizeof(name) - 1);
	name[512] = '\0';
	snprintf(line, sizeof(line), "Q~%s\n", name);
	path_in(fx, "in.txt", in);
	write_file(in, line, strlen(line));
	snprintf(l1, sizeof(l1), "%s:1: author name longer than 511 bytes", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l1, NULL}, 1, fx->out);

	name[511] = '\0';
	snprintf(line, sizeof(line), "Q~%s\n", name);
	write_file(in, line, strlen(line));
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_db(fx->out, &want, 1);
}

/* Names never hold '~', quotes may: the split is at the last one. */
static void
test_last_tilde(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Author", "Approximately ~42, give or take"},
	    {"Author", "a~b~c"},
	    {"Other", "ends in a tilde~"},
	};
	char in[PATH_MAX], l4[PATH_MAX + 64];

	INPUT(fx, "in.txt",
	    "Approximately ~42, give or take~Author\n"
	    "a~b~c~Author\n"
	    "ends in a tilde~~Other\n",
	    in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_db(fx->out, want, NQ(want));

	/* A '~' after the name leaves the name empty. */
	INPUT(fx, "in2.txt", "Q~A\nQ~A\nQ~A\nQuote~Author~\n", in);
	snprintf(l4, sizeof(l4), "%s:4: empty author", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l4, NULL}, 1, fx->out);
}

static void
test_trim(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Mark  Twain", "Inner  spaces\tstay"},
	    {"Mark  Twain", "Outer ones go"},
	    {"A", "\xe2\x80\x94"},
	};
	char in[PATH_MAX];

	INPUT(fx, "in.txt",
	    "  \tInner  spaces\tstay  ~  Mark  Twain \t \n"
	    " \tOuter ones go\t~\tMark  Twain \n"
	    " \xe2\x80\x94 ~ A \n",
	    in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_db(fx->out, want, NQ(want));
}

static void
test_crlf(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Author One", "First"},
	    {"Author Two", "Second"},
	    {"Author One", "Third"},
	};
	char in[PATH_MAX], l3[PATH_MAX + 64];

	INPUT(fx, "in.txt",
	    "First~Author One\r\nSecond~Author Two\r\n\r\nThird~Author One",
	    in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 3, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	/* Line numbers still count CRLF lines. */
	INPUT(fx, "in2.txt", "A~B\r\n\r\nbad\r\n", in);
	snprintf(l3, sizeof(l3), "%s:3: no '~' between quote and author", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l3, NULL}, 1, fx->out);
}

static void
test_bom(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Author", "Quote"},
	    {"Author", "Second"},
	};
	char in[PATH_MAX];

	/* The BOM would otherwise start the first quote. */
	INPUT(fx, "in.txt", "\xef\xbb\xbfQuote~Author\nSecond~Author\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_db(fx->out, want, NQ(want));
}

/* A lone CR ends a line, as CRLF and LF do: a CR-only (old Mac) file is
 * its lines, not one long line split at its last '~'. */
static void
test_cr_only(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Author One", "First"},
	    {"Author Two", "Second"},
	    {"Author One", "Third"},
	};
	static const struct quote fwant[] = {
	    {"Author", "Line one\nLine two"},
	    {"Other", "Second"},
	};
	char in[PATH_MAX], l[2][PATH_MAX + 64], *before;
	size_t blen;

	INPUT(fx, "in.txt",
	    "First~Author One\rSecond~Author Two\r\rThird~Author One\r", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 3, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	/* Mixed line ends, each one line: CRLF, CR, LF, CR, CRLF, CR. */
	before = existing_out(fx, &blen);
	INPUT(fx, "in2.txt", "A~B\r\nC~D\rbad\nE~F\r\r\nworse\r", in);
	snprintf(l[0], sizeof(l[0]), "%s:3: no '~' between quote and author",
	    in);
	snprintf(l[1], sizeof(l[1]), "%s:6: no '~' between quote and author",
	    in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[0], l[1], NULL}, 2, fx->out);
	expect_out_kept(fx, before, blen);

	INPUT(fx, "fortunes",
	    "Line one\rLine two\r-- Author\r%\rSecond\r\r-- Other\r", in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "0 skipped");
	expect_db(fx->out, fwant, NQ(fwant));
}

static int
tag_count(void *arg, const char *name, size_t len, uint32_t count)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 256 - n, "%.*s=%u ", (int)len, name, count);
	return 0;
}

/* --tag tags the inputs after it, tags accumulate, and a fortune file is
 * tagged with its name without extension unless that is no tag name. */
static void
test_tags(void **state)
{
	struct fixture *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], w[PATH_MAX], u[PATH_MAX];
	char got[256] = "";
	struct store *s = NULL;
	int more;

	INPUT(fx, "a.txt", "One~A\nTwo~A\n", a);
	INPUT(fx, "b.txt", "Three~B\n", b);
	run(fx, "-q", "-o", fx->out, a, "--tag", "x", "--tag", "y-2", b);
	expect_status(fx, 0);
	assert_int_equal(store_open(fx->out, &s), 0);
	assert_int_equal(store_tags(s, NULL, 0, 10, tag_count, got, &more), 0);
	assert_string_equal(got, "x=1 y-2=1 ");
	store_close(s);

	INPUT(fx, "wisdom.u8", "Know thyself.\n-- Thales\n%\n", w);
	INPUT(fx, "Upper.u8", "Be.\n-- Someone\n", u);
	run(fx, "-q", "-f", "fortune", "-o", fx->out, w, "--tag", "x", u);
	expect_status(fx, 0);
	assert_int_equal(store_open(fx->out, &s), 0);
	got[0] = '\0';
	assert_int_equal(store_tags(s, NULL, 0, 10, tag_count, got, &more), 0);
	assert_string_equal(got, "wisdom=1 x=1 ");
	store_close(s);
}

/* Unicode white space is trimmed like ASCII's, so a name of only a
 * no-break space is empty, not an invisible author. */
static void
test_unicode_space(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Mark Twain", "Quote"},
	    {"Mark\xc2\xa0Twain", "Inner\xe3\x80\x80kept"},
	};
	char in[PATH_MAX], l[4][PATH_MAX + 64], *before;
	size_t blen;

	/* U+00A0, U+2003, U+202F, U+3000, U+2028: trimmed at the ends,
	 * kept inside. */
	INPUT(fx, "in.txt",
	    "\xc2\xa0Quote\xe2\x80\x83~\xe2\x80\xafMark Twain\xc2\xa0\n"
	    "\xe3\x80\x80 Inner\xe3\x80\x80kept ~ Mark\xc2\xa0Twain"
	    "\xe2\x80\xa8\n"
	    "\xc2\xa0\xe2\x80\xa9\n", /* blank */
	    in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	before = existing_out(fx, &blen);
	INPUT(fx, "in2.txt",
	    "Quote~\xc2\xa0\n"
	    "\xe2\x80\x80\xe2\x80\x8a~Author\n"
	    "\xe1\x9a\x80 \xe2\x81\x9f~\xe3\x80\x80\n"
	    "Fine~A\n",
	    in);
	snprintf(l[0], sizeof(l[0]), "%s:1: empty author", in);
	snprintf(l[1], sizeof(l[1]), "%s:2: empty quote", in);
	snprintf(l[2], sizeof(l[2]), "%s:3: empty quote", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[0], l[1], l[2], NULL}, 3,
	    fx->out);
	expect_out_kept(fx, before, blen);

	before = existing_out(fx, &blen);
	INPUT(fx, "fortunes", "Fine\n-- A\n%\nQuote\n-- \xc2\xa0\n%\n", in);
	snprintf(l[3], sizeof(l[3]), "%s:4: empty author", in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[3], NULL}, 1, fx->out);
	expect_out_kept(fx, before, blen);
}

/* Text-format lines may hold tab but no other C0 control, DEL or C1
 * control: no client can show them, and they are not text. */
static void
test_control_chars(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"A\tB", "Tab\tinside"},
	    {"A", "Latin \xc2\xa0 and \xc2\xa9"},
	};
	static const char *const reasons[] = {
	    "control character U+0007",
	    "control character U+0008",
	    "control character U+000B",
	    "control character U+000C",
	    "control character U+001B",
	    "control character U+007F",
	    "control character U+0080",
	    "control character U+0085",
	    "control character U+009F",
	    "control character U+0001",
	};
	char in[PATH_MAX], l[10][PATH_MAX + 64], *before;
	char want_err[10 * (PATH_MAX + 80)];
	size_t blen, n = 0;

	INPUT(fx, "in.txt",
	    "Tab\tinside~A\tB\n"
	    "Bell\a~A\n"
	    "Back\bspace~A\n"
	    "\vVT~A\n"
	    "FF~A\f\n"
	    "Esc \x1b[1m~A\n"
	    "Del\x7f~A\n"
	    "C1 \xc2\x80~A\n"
	    "NEL~A\xc2\x85\n"
	    "C1 \xc2\x9f~A\n"
	    "\x01\n" /* not blank */
	    "Latin \xc2\xa0 and \xc2\xa9~A\n",
	    in);
	for (int i = 0; i < 10; i++)
		snprintf(l[i], sizeof(l[i]), "%s:%d: %s", in, i + 2,
		    reasons[i]);
	before = existing_out(fx, &blen);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx,
	    (const char *[]){l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
		l[8], l[9], NULL},
	    10, fx->out);
	expect_out_kept(fx, before, blen);

	/* --skip-invalid reports and counts them, and imports the rest. */
	run(fx, "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 0);
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(want_err + n, sizeof(want_err) - n,
		    "quotes-import: %s\n", l[i]);
	expect_stderr(fx, want_err);
	expect_summary(fx, fx->out, 2, 2, "10 skipped");
	expect_db(fx->out, want, NQ(want));
}

/*
 * Every byte a line may not hold alone, at every place in a line, in
 * the text and in the name: lines are checked eight bytes at a time when
 * they are all printable ASCII, and that check must let none of these
 * through, wherever it falls in a block or in the tail after the last
 * one. A tab is allowed anywhere.
 */
static void
test_refused_anywhere(void **state)
{
	struct fixture *fx = *state;
	static const char good[] = "xxxxxxxxxxxxxxxxxxxx~Author\n";
	const size_t linelen = sizeof(good) - 1, tilde = 20;
	char in[PATH_MAX], skipped[32], *buf, *at;
	size_t nbad = 0, ngood = 0;

	buf = malloc(256 * linelen * linelen);
	assert_non_null(buf);
	at = buf;
	for (size_t pos = 0; pos < linelen - 1; pos++) {
		if (pos == tilde)
			continue;
		for (unsigned b = 0; b < 256; b++) {
			bool ok = (b >= 0x20 && b < 0x7f) || b == '\t';

			/* Line ends end lines. Of the good bytes, a tab and
			 * a 'y', only in the text: one author for all. */
			if (b == '\n' || b == '\r' ||
			    (ok && (pos > tilde || (b != '\t' && b != 'y'))))
				continue;
			memcpy(at, good, linelen);
			at[pos] = (char)b;
			at += linelen;
			nbad += !ok;
			ngood += ok;
		}
	}
	path_in(fx, "in.txt", in);
	write_file(in, buf, (size_t)(at - buf));
	free(buf);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	snprintf(skipped, sizeof(skipped), "%zu invalid lines", nbad);
	expect_stderr_has(fx, skipped);
	run(fx, "--skip-invalid", "-o", fx->out, in);
	snprintf(skipped, sizeof(skipped), "%zu skipped", nbad);
	expect_summary(fx, fx->out, ngood, 1, skipped);
}

/*
 * A database built from a mix of ASCII and other quotes passes the
 * complete check, whose words come from words.c alone: so the importer's
 * ASCII path splits and folds exactly as words_next() and words_fold()
 * do (a word in an ASCII quote and the same word in another, "STRASSE"
 * and "Straße", must be one term). Words of every length around the
 * 8-byte steps and the 64-byte limit; enough quotes that both indexing
 * threads have a share, with words and tags in both.
 */
static void
test_index_mixed(void **state)
{
	struct fixture *fx = *state;
	static const char *const authors[] = {
	    "Mark Twain",
	    "mark  twain",
	    "MARK TWAIN",
	    "Σωκράτης",
	    "José Martí",
	    "Anonymous",
	};
	const size_t nquotes = 3 * 4096 + 17, cap = nquotes * 512;
	char in[PATH_MAX], why[256], *buf = malloc(cap);
	size_t o = 0;
	uint32_t x = 12345;
	struct store_info info;
	int fd, rc;

	assert_non_null(buf);
#define NEXT() (x = x * 1103515245u + 12345u, x >> 8)
	for (size_t q = 0; q < nquotes; q++) {
		unsigned n = 1 + NEXT() % 12;
		size_t start = o;

		for (unsigned k = 0; k < n; k++) {
			/* Long ASCII words: 63, 64 and 65 letters. */
			if (NEXT() % 50 == 0) {
				size_t len = 63 + NEXT() % 3;

				memset(buf + o, NEXT() % 2 ? 'W' : 'w', len);
				o += len;
			} else if (NEXT() % 4 == 0) {
				o += (size_t)sprintf(buf + o, "%u",
				    NEXT() % 100000);
			} else {
				o += (size_t)sprintf(buf + o, "%s",
				    mixed_words[NEXT() % NMIXED_WORDS]);
			}
			o += (size_t)sprintf(buf + o, "%s",
			    mixed_seps[NEXT() % NMIXED_SEPS]);
		}
		/* A quote is never only separators, nor ends in '~'. */
		o += (size_t)sprintf(buf + o, "end~%s\n",
		    authors[NEXT() % NQ(authors)]);
		assert_true(o - start < 512);
	}
#undef NEXT
	path_in(fx, "in.txt", in);
	write_file(in, buf, o);
	free(buf);
	run(fx, "-q", "--tag", "mixed", "--tag", "t-2", "-o", fx->out, in,
	    "--tag", "other", in);
	expect_status(fx, 0);
	fd = open(fx->out, O_RDONLY);
	assert_true(fd >= 0);
	rc = store_verify(fd, &info, why, sizeof(why));
	close(fd);
	if (rc != 0)
		fail_msg("store_verify: %s: %s", store_strerror(rc), why);
	assert_int_equal(info.nquotes, 2 * nquotes);
}

/* U+FEFF is a byte-order mark only as a file's first character; any
 * other one is an invisible character pasted into the text. */
static void
test_bom_mid_file(void **state)
{
	struct fixture *fx = *state;
	static const char why[] =
	    "byte-order mark (U+FEFF) not at the start of the file";
	char in[PATH_MAX], l[4][PATH_MAX + 80], *before;
	size_t blen;

	before = existing_out(fx, &blen);
	INPUT(fx, "in.txt",
	    "\xef\xbb\xbf"
	    "First~A\n"
	    "\xef\xbb\xbf"
	    "Second~A\n"
	    "Third\xef\xbb\xbf~A\n"
	    "Fourth~\xef\xbb\xbf"
	    "A\n",
	    in);
	for (int i = 0; i < 3; i++)
		snprintf(l[i], sizeof(l[i]), "%s:%d: %s", in, i + 2, why);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[0], l[1], l[2], NULL}, 3,
	    fx->out);
	expect_out_kept(fx, before, blen);

	/* Only the first of two at the start is the file's. */
	before = existing_out(fx, &blen);
	INPUT(fx, "in2.txt", "\xef\xbb\xbf\xef\xbb\xbfQ~A\n", in);
	snprintf(l[3], sizeof(l[3]), "%s:1: %s", in, why);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[3], NULL}, 1, fx->out);
	expect_out_kept(fx, before, blen);
}

static void
test_blank_lines(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"A", "One"},
	    {"B", "Two"},
	};
	char in[PATH_MAX], l7[PATH_MAX + 64];

	INPUT(fx, "in.txt", "\n\n  \t \nOne~A\n\n\r\nTwo~B\n\n\n", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	/* Skipped lines are counted all the same. */
	INPUT(fx, "in2.txt", "\n\n \nOne~A\n\n\nbad\n", in);
	snprintf(l7, sizeof(l7), "%s:7: no '~' between quote and author", in);
	run(fx, "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l7, NULL}, 1, fx->out);
}

static void
test_stdin(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Henny Youngman", "Take my wife \xe2\x80\x94 please."},
	    {"Harold Wilson", "A week is a long time in politics."},
	};
	static const char input[] =
	    "\xef\xbb\xbfTake my wife \xe2\x80\x94 please.~Henny Youngman\n"
	    "A week is a long time in politics.~Harold Wilson\n";
	static const char bad[] = "fine~A\noops\n";

	run_stdin(fx, input, sizeof(input) - 1, "-o", fx->out, "-");
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	run_stdin(fx, bad, sizeof(bad) - 1, "-o", fx->out, "-");
	expect_rejected(fx,
	    (const char *[]){"(stdin):2: no '~' between quote and author",
		NULL},
	    1, fx->out);
}

/* A pipe has no size to read ahead of time: the buffer must grow. */
static void
test_stdin_large(void **state)
{
	struct fixture *fx = *state;
	enum { N = 10000 };
	struct quote *want = calloc(N, sizeof(*want));
	char(*texts)[32] = calloc(N, sizeof(*texts));
	char *input = malloc((size_t)N * 64);
	size_t len = 0;

	assert_non_null(want);
	assert_non_null(texts);
	assert_non_null(input);
	for (int i = 0; i < N; i++) {
		snprintf(texts[i], sizeof(texts[i]), "Quote number %d", i);
		want[i].text = texts[i];
		want[i].author = i % 2 ? "Odd" : "Even";
		len += (size_t)sprintf(input + len, "%s~%s\n", want[i].text,
		    want[i].author);
	}
	assert_true(len > 2 * 65536);
	run_stdin(fx, input, len, "-o", fx->out, "-");
	expect_status(fx, 0);
	expect_summary(fx, fx->out, N, 2, "0 skipped");
	free(input);
	free(texts);
	free(want);
}

static void
test_multiple_inputs(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Mark Twain", "One"},
	    {"Oscar Wilde", "Two"},
	    {"Mark Twain", "Three"},
	    {"Harold Wilson", "Four"},
	    {"Mark Twain", "Five"},
	};
	static const char piped[] = "Five~Mark Twain\n";
	char a[PATH_MAX], b[PATH_MAX], l[2][PATH_MAX + 64];

	INPUT(fx, "a.txt", "One~Mark Twain\nTwo~Oscar Wilde\n", a);
	INPUT(fx, "b.txt", "\xef\xbb\xbfThree~Mark Twain\nFour~Harold Wilson",
	    b);
	run_stdin(fx, piped, sizeof(piped) - 1, "-o", fx->out, a, b, "-");
	expect_status(fx, 0);
	/* One author across files is one author. */
	expect_summary(fx, fx->out, 5, 3, "0 skipped");
	expect_db(fx->out, want, NQ(want));

	/* Each file has its own line numbers and is named in messages. */
	INPUT(fx, "a.txt", "One~A\nbad a\n", a);
	INPUT(fx, "b.txt", "bad b\n", b);
	snprintf(l[0], sizeof(l[0]), "%s:2: no '~' between quote and author",
	    a);
	snprintf(l[1], sizeof(l[1]), "%s:1: no '~' between quote and author",
	    b);
	run(fx, "-o", fx->out, a, b);
	expect_rejected(fx, (const char *[]){l[0], l[1], NULL}, 2, fx->out);
}

static void
test_fortune(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Mark Twain", "The report of my death\nwas an exaggeration."},
	    {"Oscar Wilde",
		"I can resist everything\n"
		"    except temptation."},
	    {"Anonymous", "A ~ is just text here"},
	    {"S\xc3\xb8ren Kierkegaard", "Life \xe2\x80\x94 forwards."},
	};
	char in[PATH_MAX];

	INPUT(fx, "fortunes",
	    "The report of my death\n"
	    "was an exaggeration.\n"
	    "\t\t-- Mark Twain\n"
	    "%\n"
	    "I can resist everything\n"
	    "    except temptation.\n"
	    "    --Oscar Wilde   \n"
	    "\n"
	    "%\n"
	    "An entry without attribution.\n"
	    "%\n"
	    "%\n"
	    "A ~ is just text here\n"
	    "-- Anonymous\n"
	    "%\n"
	    "-- A lone attribution is no quote\n"
	    "%\n"
	    "Dashes in the middle -- are\n"
	    "not an attribution.\n"
	    "%\n"
	    "Life \xe2\x80\x94 forwards.\n"
	    "-- S\xc3\xb8ren Kierkegaard\n"
	    "%\n",
	    in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_stderr(fx, "");
	expect_summary(fx, fx->out, 4, 4, "3 skipped (3 without attribution)");
	expect_db(fx->out, want, NQ(want));
}

static void
test_fortune_crlf_and_long_option(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Author", "Line one\nLine two"},
	    {"Author", "Last entry, no final separator"},
	};
	char in[PATH_MAX];

	INPUT(fx, "fortunes",
	    "\xef\xbb\xbfLine one\r\nLine two\r\n-- Author\r\n%\r\n"
	    "Last entry, no final separator\r\n-- Author",
	    in);
	run(fx, "--format", "fortune", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 1, "0 skipped");
	expect_db(fx->out, want, NQ(want));
}

/* Fortune errors name the entry's first line. */
static void
test_fortune_errors(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {{"Alice", "Good"}};
	static const struct quote want2[] = {{"Alice", "Good"},
	    {"Erin", "After the long one"}};
	static const char tail[] = "%\nAfter the long one\n-- Erin\n";
	char in[PATH_MAX], l[4][PATH_MAX + 64];
	char *big = long_line(70000, "X");
	char *input;
	size_t n;
	static const char head[] = "Good\n"
				   "-- Alice\n"
				   "%\n"
				   "Bad \xff quote\n"
				   "-- Bob\n"
				   "%\n"
				   "Empty author\n"
				   "--\n"
				   "%\n"
				   "Nul \0 here\n"
				   "-- Carol\n"
				   "%\n";

	input = malloc(sizeof(head) + strlen(big) + 16 + sizeof(tail));
	assert_non_null(input);
	memcpy(input, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	memcpy(input + n, big, strlen(big));
	n += strlen(big);
	memcpy(input + n, "-- Dave\n", 8);
	n += 8;
	path_in(fx, "fortunes", in);
	write_file(in, input, n);
	snprintf(l[0], sizeof(l[0]), "%s:4: invalid UTF-8", in);
	snprintf(l[1], sizeof(l[1]), "%s:7: empty author", in);
	snprintf(l[2], sizeof(l[2]), "%s:10: NUL byte in line", in);
	snprintf(l[3], sizeof(l[3]), "%s:13: quote longer than 65536 bytes",
	    in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l[0], l[1], l[2], l[3], NULL}, 4,
	    fx->out);

	/* Without the long line, --skip-invalid keeps the good entry. */
	write_file(in, head, sizeof(head) - 1);
	run(fx, "-f", "fortune", "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 1, 1, "3 skipped");
	expect_db(fx->out, want, NQ(want));

	/* An over-long line spoils its whole entry: skipped, not imported
	 * with the line in it. */
	memcpy(input + n, tail, sizeof(tail) - 1);
	write_file(in, input, n + sizeof(tail) - 1);
	run(fx, "-f", "fortune", "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "4 skipped");
	expect_db(fx->out, want2, NQ(want2));
	free(big);
	free(input);
}

/* Fortune files hold nroff's overstrikes and bells: cleaned as `col -b`
 * shows them, in the quote and the attribution alike. */
static void
test_fortune_overstrike(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"Honore de Balzac", "It is *and* under Bold!\n\tRings"},
	    {"A", "\xc3\xa9t\xc3\xa9 x"},
	};
	char in[PATH_MAX];

	INPUT(fx, "fortunes",
	    "It is *___\b\b\band* _\bu_\bn_\bd_\be_\br B\bBo\bol\bld\bd\a\a!\n"
	    "\a\a\a\tRings\n"
	    "\t\t-- Honor'\be de Balzac\n"
	    "%\n"
	    /* The last character struck wins, whatever its length. */
	    "x\b\xc3\xa9t\xc3\xa9\b\xc3\xa9 \xc3\xa9\bx\n"
	    "-- A\n",
	    in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_stderr(fx, "");
	expect_summary(fx, fx->out, 2, 2, "0 skipped");
	expect_db(fx->out, want, NQ(want));
}

/* Other control characters are refused in fortune entries too, at the
 * entry's first line; entries without attribution are not looked at. */
static void
test_fortune_refused(void **state)
{
	struct fixture *fx = *state;
	static const char input[] = "Good\n-- A\n%\n"
				    "\bBack at the start\n-- B\n%\n"
				    "Line\n\bagain\n-- C\n%\n"
				    "Esc \x1b[1mbold\n-- D\n%\n"
				    "C1 \xc2\x9b here\n-- E\n%\n"
				    "Form\ffeed\n-- F\n%\n"
				    "Mid \xef\xbb\xbf BOM\n-- G\n%\n"
				    "Fine\n-- \xc2\x85H\n%\n"
				    "No attribution \x1b\n%\n";
	static const char *const lines[] = {
	    "4: backspace at the start of a line",
	    "7: backspace at the start of a line",
	    "11: control character U+001B",
	    "14: control character U+009B",
	    "17: control character U+000C",
	    "20: byte-order mark (U+FEFF) not at the start of the file",
	    "23: control character U+0085",
	    "31: backspace over more than 256 characters",
	};
	char in[PATH_MAX], l[8][PATH_MAX + 80], *before, *buf;
	char xy[301];
	struct quote want[] = {{"A", "Good"}, {"I", xy}};
	size_t blen, n = sizeof(input) - 1;

	/* Backspaces reach 256 characters back (line 28), not 257 (31). */
	buf = malloc(n + 2048);
	assert_non_null(buf);
	memcpy(buf, input, n);
	for (int back = 256; back <= 257; back++) {
		memset(buf + n, 'x', 300);
		n += 300;
		memset(buf + n, '\b', (size_t)back);
		n += (size_t)back;
		memset(buf + n, 'y', 256);
		n += 256;
		n += (size_t)sprintf(buf + n, "\n-- %s\n%%\n",
		    back == 256 ? "I" : "J");
	}
	memset(xy, 'x', 44);
	memset(xy + 44, 'y', 256);
	xy[300] = '\0';
	path_in(fx, "fortunes", in);
	write_file(in, buf, n);
	free(buf);
	for (int i = 0; i < 8; i++)
		snprintf(l[i], sizeof(l[i]), "%s:%s", in, lines[i]);
	before = existing_out(fx, &blen);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_rejected(fx,
	    (const char *[]){l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
		NULL},
	    8, fx->out);
	expect_out_kept(fx, before, blen);

	run(fx, "-f", "fortune", "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_summary(fx, fx->out, 2, 2, "9 skipped (1 without attribution)");
	expect_db(fx->out, want, NQ(want));
}

/* A fortune entry of 4096 lines of 16 bytes, the last one ending in
 * extra (65535 bytes of quote once trimmed, then extra), by "Long". */
static char *
long_entry(const char *head, const char *extra, size_t *len)
{
	size_t hlen = strlen(head), elen = strlen(extra), n;
	char *buf = malloc(hlen + 4096 * 16 + elen + 16);

	assert_non_null(buf);
	memcpy(buf, head, hlen);
	n = hlen;
	for (int i = 0; i < 4096; i++) {
		memcpy(buf + n, "xxxxxxxxxxxxxxx\n", 16);
		n += 16;
	}
	memcpy(buf + n - 1, extra, elen);
	n += elen - 1;
	memcpy(buf + n, "\n-- Long\n", 9);
	*len = n + 9;
	return buf;
}

/* A quote is at most 64 KiB however many lines it spans: a 4.8 MB
 * entry imported, and no default client (4 MiB limit) could take it. */
static void
test_fortune_long_entry(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], l4[PATH_MAX + 64], *input, *before;
	struct quote want = {"Long", NULL};
	size_t n, blen;

	input = long_entry("Good\n-- A\n%\n", "zz", &n);
	path_in(fx, "fortunes", in);
	write_file(in, input, n);
	free(input);
	snprintf(l4, sizeof(l4), "%s:4: quote longer than 65536 bytes", in);
	before = existing_out(fx, &blen);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_rejected(fx, (const char *[]){l4, NULL}, 1, fx->out);
	expect_out_kept(fx, before, blen);

	/* One byte less is the longest quote, and goes in whole. */
	input = long_entry("", "z", &n);
	write_file(in, input, n);
	run(fx, "-q", "-f", "fortune", "-o", fx->out, in);
	expect_status(fx, 0);
	input[n - 9] = '\0';
	want.text = input;
	assert_int_equal(strlen(want.text), 65536);
	expect_db(fx->out, &want, 1);
	free(input);
}

/* The promise of the temporary file and rename: OUT is never touched
 * by an import that fails, and nothing is left beside it. */
static void
test_failure_keeps_out(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {{"A", "Original"}};
	char in[PATH_MAX], *before, *after;
	size_t blen, alen;

	INPUT(fx, "good.txt", "Original~A\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	before = read_file(fx->out, &blen);

	INPUT(fx, "bad.txt", "New~B\nbroken line\n", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr_has(fx, "not written");
	after = read_file(fx->out, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);
	expect_dir(fx->dbdir, "q.mdb");

	/* Failing later, in write_output() itself: OUT is a directory, so
	 * the rename fails after the temporary file is complete. */
	{
		char outdir[PATH_MAX], keep[PATH_MAX];

		path_in(fx, "db/dir.mdb", outdir);
		assert_int_equal(mkdir(outdir, 0755), 0);
		path_in(fx, "db/dir.mdb/keep", keep);
		write_file(keep, "x", 1);
		INPUT(fx, "new.txt", "New~B\n", in);
		run(fx, "-o", outdir, in);
		expect_status(fx, 1);
		expect_stderr_has(fx, outdir);
		expect_dir(fx->dbdir, "dir.mdb q.mdb");
		expect_dir(outdir, "keep");
	}
	after = read_file(fx->out, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);
	free(before);
	expect_db(fx->out, want, NQ(want));
}

/*
 * An import killed while it writes (SIGKILL, a crash) leaves its
 * temporary file. The next import to the same OUT removes it, but not
 * one a running import holds (locked), nor any other name.
 */
static void
test_stale_temp(void **state)
{
	struct fixture *fx = *state;
	static const char *const keep[] = {
	    "db/.q.mdb.backup",
	    "db/.q.mdb.quotes-import.short",
	    "db/.other.mdb.quotes-import.Ab12Cd",
	};
	char in[PATH_MAX], path[PATH_MAX], live[PATH_MAX], cwd[PATH_MAX];
	char want[2 * PATH_MAX];
	int lfd;

	INPUT(fx, "in.txt", "Q~A\n", in);
	path_in(fx, "db/.q.mdb.quotes-import.Ab12Cd", path);
	write_file(path, "stale", 5);
	for (size_t i = 0; i < NQ(keep); i++) {
		char k[PATH_MAX];

		path_in(fx, keep[i], k);
		write_file(k, "keep", 4);
	}
	/* One that an import still writes: it holds the lock. */
	path_in(fx, "db/.q.mdb.quotes-import.Zz9Yy8", live);
	write_file(live, "live", 4);
	lfd = open(live, O_RDONLY);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);

	run(fx, "-o", fx->out, in);
	expect_status(fx, 0);
	snprintf(want, sizeof(want),
	    "quotes-import: %s: removed, left by an "
	    "import that did not finish\n",
	    path);
	expect_stderr(fx, want);
	expect_dir(fx->dbdir,
	    ".other.mdb.quotes-import.Ab12Cd .q.mdb.backup "
	    ".q.mdb.quotes-import.Zz9Yy8 .q.mdb.quotes-import.short q.mdb");

	/* Its import gone, the lock goes with it; an OUT in the working
	 * directory is cleaned as well, and -q says nothing. */
	close(lfd);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dbdir), 0);
	run(fx, "-q", "-o", "q.mdb", in);
	assert_int_equal(chdir(cwd), 0);
	expect_status(fx, 0);
	expect_stderr(fx, "");
	expect_dir(fx->dbdir,
	    ".other.mdb.quotes-import.Ab12Cd .q.mdb.backup "
	    ".q.mdb.quotes-import.short q.mdb");
}

/* Enough quotes (about 2.6 MB) to fill a small disk or file limit. */
static void
write_big_input(const char *path)
{
	enum { N = 20000 };
	char *buf = malloc((size_t)N * 160);
	size_t len = 0;

	assert_non_null(buf);
	for (int i = 0; i < N; i++)
		len += (size_t)sprintf(buf + len,
		    "Quote number %d, padded "
		    "out with words to about the length of a real one, as "
		    "most of them are.~Author %d\n",
		    i, i % 1000);
	write_file(path, buf, len);
	free(buf);
}

/*
 * A write the kernel cuts short is named for its reason, not LMDB's
 * "Input/output error". A file size limit needs no privilege to set up;
 * test_disk_full does the same with a full file system.
 */
static void
test_write_error_named(void **state)
{
	struct fixture *fx = *state;
	struct rlimit old, small;
	char in[PATH_MAX], want[PATH_MAX + 64], *before;
	size_t blen;

	path_in(fx, "big.txt", in);
	write_big_input(in);
	before = existing_out(fx, &blen);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 512 * 1024;
	/* Ignored, SIGXFSZ leaves the write to fail with EFBIG. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	run(fx, "-o", fx->out, in);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	expect_status(fx, 1);
	snprintf(want, sizeof(want), "quotes-import: %s: File too large\n",
	    fx->out);
	expect_stderr(fx, want);
	expect_out_kept(fx, before, blen);
}

/*
 * A full disk says so. This needs a small file system: a tmpfs mounted
 * in a mount namespace of this test's own (so it cannot leak into the
 * machine's), which takes root or CAP_SYS_ADMIN; without, it is skipped.
 */
static void
test_disk_full(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], small[PATH_MAX], out[PATH_MAX], want[PATH_MAX + 64];
	char *before, *after;
	size_t blen, alen;

	path_in(fx, "big.txt", in);
	write_big_input(in);
	path_in(fx, "small", small);
	assert_int_equal(mkdir(small, 0755), 0);
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", small, "tmpfs", 0, "size=1m") != 0) {
		skip();
		return;
	}
	path_join(small, "q.mdb", out);
	INPUT(fx, "one.txt", "Original~A\n", in);
	run(fx, "-q", "-o", out, in);
	expect_status(fx, 0);
	before = read_file(out, &blen);

	path_in(fx, "big.txt", in);
	run(fx, "-o", out, in);
	expect_status(fx, 1);
	snprintf(want, sizeof(want),
	    "quotes-import: %s: No space left on device\n", out);
	expect_stderr(fx, want);
	after = read_file(out, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	expect_dir(small, "q.mdb");
	free(before);
	free(after);
	assert_int_equal(umount(small), 0);
}

/* A successful import replaces OUT whole, read-only as it is. */
static void
test_success_replaces_out(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {{"B", "New"}, {"C", "Newer"}};
	char in[PATH_MAX];
	struct stat st;
	ino_t old;

	INPUT(fx, "a.txt", "Old~A\nOlder~A\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_mode & 0222, 0);
	old = st.st_ino;
	INPUT(fx, "b.txt", "New~B\nNewer~C\n", in);
	run(fx, "-q", "-o", fx->out, in);
	expect_status(fx, 0);
	expect_db(fx->out, want, NQ(want));
	expect_dir(fx->dbdir, "q.mdb");
	/* Replaced by rename, not rewritten: another file, read-only too. */
	assert_int_equal(stat(fx->out, &st), 0);
	assert_int_equal(st.st_mode & 0222, 0);
	assert_true(st.st_ino != old);
}

static void
test_skip_invalid(void **state)
{
	struct fixture *fx = *state;
	static const struct quote want[] = {
	    {"A", "First"},
	    {"B", "Last"},
	};
	char in[PATH_MAX], l[3][PATH_MAX + 64];

	INPUT(fx, "in.txt",
	    "First~A\n"
	    "no tilde\n"
	    "~empty quote\n"
	    "bad \xc3~A\n"
	    "Last~B\n",
	    in);
	snprintf(l[0], sizeof(l[0]),
	    "quotes-import: %s:2: no '~' between quote and author\n", in);
	snprintf(l[1], sizeof(l[1]), "quotes-import: %s:3: empty quote\n", in);
	snprintf(l[2], sizeof(l[2]), "quotes-import: %s:4: invalid UTF-8\n",
	    in);
	run(fx, "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 0);
	/* The bad lines are still reported, just not fatal. */
	{
		char want_err[3 * (PATH_MAX + 64)];

		snprintf(want_err, sizeof(want_err), "%s%s%s", l[0], l[1],
		    l[2]);
		expect_stderr(fx, want_err);
	}
	expect_summary(fx, fx->out, 2, 2, "3 skipped");
	expect_db(fx->out, want, NQ(want));

	/* Nothing valid at all is still nothing to import. */
	INPUT(fx, "in2.txt", "bad\nworse\n", in);
	run(fx, "--skip-invalid", "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr_has(fx, "quotes-import: no quotes to import, ");
}

/* Past 20 bad lines, the rest are counted, not listed. */
static void
test_many_bad_lines(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX];
	char buf[25 * 8];
	int lines = 0;

	for (int i = 0; i < 25; i++)
		memcpy(buf + 8 * i, "badline\n", 8);
	path_in(fx, "in.txt", in);
	write_file(in, buf, sizeof(buf));
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	for (const char *p = fx->stderr_; (p = strstr(p, ": no '~'")); p++)
		lines++;
	assert_int_equal(lines, 20);
	expect_stderr_has(fx, "quotes-import: ... and 5 more invalid lines\n");
	expect_stderr_has(fx, "quotes-import: 25 invalid lines, ");
}

static void
test_usage_errors(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX];

	INPUT(fx, "in.txt", "Q~A\n", in);
	run(fx, "--bogus", "-o", fx->out, in);
	expect_status(fx, 2);
	expect_stderr_has(fx, "usage: quotes-import ");
	assert_string_equal(fx->stdout_, "");

	run(fx, "-x", in);
	expect_status(fx, 2);
	expect_stderr_has(fx, "usage: quotes-import ");

	run(fx, "-f", "bogus", "-o", fx->out, in);
	expect_status(fx, 2);
	expect_stderr_has(fx,
	    "quotes-import: unknown format 'bogus'\n"
	    "usage: quotes-import ");

	run(fx, "-o", fx->out);
	expect_status(fx, 2);
	expect_stderr_has(fx,
	    "quotes-import: no input files\n"
	    "usage: quotes-import ");

	run(fx, "-o", "", in);
	expect_status(fx, 2);
	expect_stderr_has(fx, "quotes-import: empty output path\n");

	run(fx, in, "-o");
	expect_status(fx, 2);
	expect_stderr_has(fx, "usage: quotes-import ");

	/* Nothing was written by any of them. */
	expect_dir(fx->dbdir, "");

	/* Tags: lowercase letters, digits, '-', 1..32 bytes. */
	run(fx, "-o", fx->out, "--tag", "Wisdom", in);
	expect_status(fx, 2);
	expect_stderr_has(fx,
	    "quotes-import: --tag 'Wisdom': a tag is 1 to "
	    "32 bytes of a-z, 0-9 and '-'\nusage: quotes-import ");
	run(fx, "-o", fx->out, "--tag", "", in);
	expect_status(fx, 2);
	run(fx, "-o", fx->out, "--tag", "abcdefghijklmnopqrstuvwxyz0123456",
	    in);
	expect_status(fx, 2);
	expect_stderr_has(fx, "a tag is 1 to 32 bytes");
	run(fx, "-o", fx->out, in, "--tag");
	expect_status(fx, 2);

	/* --help is not an error: usage on stdout, exit 0. */
	run(fx, "--help");
	expect_status(fx, 0);
	assert_true(strncmp(fx->stdout_, "usage: quotes-import ", 21) == 0);
	expect_stderr(fx, "");
}

static void
test_missing_input(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], missing[PATH_MAX], want[2 * PATH_MAX];

	INPUT(fx, "in.txt", "Q~A\n", in);
	path_in(fx, "no-such.txt", missing);
	run(fx, "-o", fx->out, in, missing);
	expect_status(fx, 1);
	snprintf(want, sizeof(want),
	    "quotes-import: %s: No such file or directory\n", missing);
	expect_stderr(fx, want);
	expect_dir(fx->dbdir, "");

	/* A directory as input is refused too, not read as empty. */
	run(fx, "-o", fx->out, fx->dbdir);
	expect_status(fx, 1);
	expect_stderr_has(fx, fx->dbdir);
	expect_dir(fx->dbdir, "");
}

static void
test_no_quotes(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], want[2 * PATH_MAX];

	snprintf(want, sizeof(want),
	    "quotes-import: no quotes to import, %s not written\n", fx->out);
	INPUT(fx, "blank.txt", "\n  \n\t\n\r\n\n", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr(fx, want);

	INPUT(fx, "empty.txt", "", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr(fx, want);

	INPUT(fx, "bom.txt", "\xef\xbb\xbf\n", in);
	run(fx, "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr(fx, want);

	INPUT(fx, "fortunes", "%\n%\n\n%\n", in);
	run(fx, "-f", "fortune", "-o", fx->out, in);
	expect_status(fx, 1);
	expect_stderr(fx, want);
	expect_dir(fx->dbdir, "");
}

static void
test_out_in_missing_dir(void **state)
{
	struct fixture *fx = *state;
	char in[PATH_MAX], out[PATH_MAX];

	INPUT(fx, "in.txt", "Q~A\n", in);
	path_in(fx, "db/no-such-dir/q.mdb", out);
	run(fx, "-o", out, in);
	expect_status(fx, 1);
	expect_stderr_has(fx, "no-such-dir");
	expect_stderr_has(fx, "No such file or directory");
	assert_string_equal(fx->stdout_, "");
	expect_dir(fx->dbdir, "");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_tags),
	    T(test_basic),
	    T(test_default_output),
	    T(test_quiet),
	    T(test_no_tilde),
	    T(test_empty_parts),
	    T(test_invalid_utf8),
	    T(test_nul_byte),
	    T(test_long_line),
	    T(test_long_author),
	    T(test_last_tilde),
	    T(test_trim),
	    T(test_crlf),
	    T(test_bom),
	    T(test_cr_only),
	    T(test_unicode_space),
	    T(test_control_chars),
	    T(test_refused_anywhere),
	    T(test_index_mixed),
	    T(test_bom_mid_file),
	    T(test_blank_lines),
	    T(test_stdin),
	    T(test_stdin_large),
	    T(test_multiple_inputs),
	    T(test_fortune),
	    T(test_fortune_crlf_and_long_option),
	    T(test_fortune_errors),
	    T(test_fortune_overstrike),
	    T(test_fortune_refused),
	    T(test_fortune_long_entry),
	    T(test_failure_keeps_out),
	    T(test_success_replaces_out),
	    T(test_stale_temp),
	    T(test_write_error_named),
	    T(test_disk_full),
	    T(test_skip_invalid),
	    T(test_many_bad_lines),
	    T(test_usage_errors),
	    T(test_missing_input),
	    T(test_no_quotes),
	    T(test_out_in_missing_dir),
	};

	/* A child that exits before reading its stdin must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
