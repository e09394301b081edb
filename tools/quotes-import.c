/*
 * quotes-import: compiles quote files into a quoterd database offline.
 * What a quote is, in either format, is import_parse.c's business.
 *
 * The whole input is parsed and checked before anything is written; the
 * database is then built in a temporary file beside OUT, synced, and
 * renamed over OUT, so OUT is either the old database or the complete new
 * one, never a mix, and a failed import leaves it untouched.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "checksum.h"
#include "import_index.h"
#include "import_parse.h"
#include "quote_service.pb-c.h"
#include "store_format.h"
#include "words.h"

#define PROG         "quotes-import"
#define MAX_REPORTED 20 /* bad lines reported one by one */
/* The temporary file is DIR/.BASE.quotes-import.XXXXXX, beside OUT. */
#define TMP_INFIX ".quotes-import."

struct quote {
	const char *text;
	const char *author;
	uint32_t textlen;
	uint32_t authorlen;
	uint32_t file; /* which input, for its tags */
	uint32_t rank; /* its author's, in name order, once sorted */
};

/* An input file and the tags its quotes carry. */
struct input {
	const char *path;
	size_t ntags;                   /* the first ntags of --tag apply */
	char deftag[WORDS_MAX_TAG + 1]; /* fortune: the file's name, or "" */
};

struct import {
	enum parse_format format;
	bool skip_invalid;
	bool quiet;
	bool progress; /* stderr is a terminal */
	struct quote *quotes;
	size_t nquotes, cap;
	char **buffers; /* whole inputs; quotes point into them */
	size_t nbuffers;
	size_t bad;       /* invalid lines or entries */
	size_t unsigned_; /* fortune entries without attribution */
	const char *file; /* the input being parsed, as messages name it */
	size_t filelen;
	uint32_t fileno; /* its index in inputs */
	struct input *inputs;
	size_t ninputs;
	const char **tags; /* every --tag, in order */
	size_t ntags;
	struct timespec start;
};

#ifndef QUOTERD_VERSION
#define QUOTERD_VERSION "0.1.0"
#endif

/* The temporary file, removed if a signal ends the import. */
static char tmp_path[PATH_MAX];

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " [-o OUT] [-f text|fortune] [--skip-invalid] [-q] "
	    "[[--tag NAME]... INPUT...]...\n"
	    "       " PROG " --version | --help\n"
	    "  -o, --output OUT     database to write (default quotes.mdb)\n"
	    "  -f, --format FORMAT  text: one quote~author a line (default)\n"
	    "                       fortune: Unix fortune files, '-- author'\n"
	    "      --skip-invalid   import the valid lines, skip the others\n"
	    "  -q, --quiet          no summary or progress\n"
	    "      --tag NAME       tag the quotes of the inputs that follow\n"
	    "                       (a-z, 0-9, '-', 1..32 bytes; repeatable);\n"
	    "                       fortune files are also tagged with their\n"
	    "                       name without extension\n"
	    "      --version        print the version and exit\n"
	    "  -h, --help           print this help and exit\n"
	    "  INPUT of - reads standard input\n");
}

static double
elapsed(const struct import *im)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - im->start.tv_sec) +
	    (double)(now.tv_nsec - im->start.tv_nsec) / 1e9;
}

static void
bad_input(struct import *im, const char *file, size_t line, const char *fmt,
    ...)
{
	va_list ap;

	im->bad++;
	if (im->bad > MAX_REPORTED)
		return;
	fprintf(stderr, PROG ": %s:%zu: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Records a checked quote; both strings point into im->buffers. */
static int
on_quote(void *arg, char *text, size_t textlen, char *author, size_t authorlen)
{
	struct import *im = arg;
	struct quote *q;

	if (im->nquotes == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 4096;
		struct quote *n = realloc(im->quotes, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		im->quotes = n;
		im->cap = cap;
	}
	if (im->nquotes >= UINT32_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	q = &im->quotes[im->nquotes];
	q->text = text;
	q->textlen = (uint32_t)textlen;
	q->author = author;
	q->authorlen = (uint32_t)authorlen;
	q->file = im->fileno;
	im->nquotes++;
	return 0;
}

static void
on_invalid(void *arg, size_t line, const char *why)
{
	struct import *im = arg;

	bad_input(im, im->file, line, "%s", why);
}

static void
on_unattributed(void *arg, size_t line)
{
	struct import *im = arg;

	(void)line;
	im->unsigned_++;
}

static void
on_progress(void *arg, size_t done)
{
	struct import *im = arg;

	if (!im->progress || im->quiet || elapsed(im) < 1.0)
		return;
	fprintf(stderr, "\r" PROG ": %s: %3zu%% read, %zu quotes", im->file,
	    im->filelen ? done * 100 / im->filelen : 100, im->nquotes);
}

static char *
read_all(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	struct stat st;
	char *buf, *nbuf;
	ssize_t r;

	/* One byte more than the input, for a terminating NUL. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL)
		return NULL;
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			if ((nbuf = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nbuf;
		}
		r = read(fd, buf + n, cap - n);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	free(buf);
	return NULL;
}

static int
read_input(struct import *im, const char *path)
{
	const char *name = strcmp(path, "-") == 0 ? "(stdin)" : path;
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
	const struct parse_cb cb = {on_quote, on_invalid, on_unattributed,
	    on_progress, im};
	char **nbufs, *buf;
	size_t len;
	int rc;

	if (fd < 0) {
		fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
		return -1;
	}
	buf = read_all(fd, &len);
	if (buf == NULL) {
		fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
		if (fd != STDIN_FILENO)
			close(fd);
		return -1;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if ((nbufs = realloc(im->buffers,
		 (im->nbuffers + 1) * sizeof(*nbufs))) == NULL) {
		fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
		free(buf);
		return -1;
	}
	im->buffers = nbufs;
	im->buffers[im->nbuffers++] = buf;
	im->file = name;
	im->filelen = len;
	rc = parse_input(im->format, buf, len, &cb);
	if (rc != 0)
		fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
	return rc;
}

/* The same order as LMDB's default key comparison, so that authors can
 * be appended to their database in this order. */
static int
compare_authors(const void *va, const void *vb, void *arg)
{
	const struct quote *quotes = arg;
	const struct quote *a = &quotes[*(const uint32_t *)va];
	const struct quote *b = &quotes[*(const uint32_t *)vb];
	size_t n = a->authorlen < b->authorlen ? a->authorlen : b->authorlen;
	int c = memcmp(a->author, b->author, n);

	if (c != 0)
		return c;
	return (a->authorlen > b->authorlen) - (a->authorlen < b->authorlen);
}

/*
 * Sorts the quotes by author, and within an author in input order.
 * Comparing a million quotes by author took a fifth of an import, and
 * far fewer authors than quotes is the rule: the distinct authors are
 * found with a hash table, only they are sorted, and the quotes are put
 * in place by a counting sort on their author's rank, which keeps input
 * order. Returns 0, or -1 with errno.
 */
static int
sort_quotes(struct import *im)
{
	uint32_t *aid = NULL, *first = NULL, *slots = NULL, *pos = NULL;
	uint32_t nauthors = 0, cap = 0, nslots = 1024, mask, i;
	uint64_t *hashes = NULL;
	struct quote *sorted = NULL;
	uint32_t n = (uint32_t)im->nquotes;
	int rc = -1;

	if ((aid = malloc(n * sizeof(*aid))) == NULL ||
	    (slots = calloc(nslots, sizeof(*slots))) == NULL)
		goto done;
	for (i = 0; i < n; i++) {
		const struct quote *q = &im->quotes[i];
		uint64_t hash = XXH3_64bits(q->author, q->authorlen), h;
		uint32_t s;

		/* Half full at most: slots hold author + 1, 0 is empty. */
		if (nauthors >= nslots / 2) {
			uint32_t *ns = calloc((size_t)nslots * 2, sizeof(*ns));

			if (ns == NULL)
				goto done;
			nslots *= 2;
			for (uint32_t a = 0; a < nauthors; a++) {
				uint64_t g = hashes[a];

				while (ns[g & (nslots - 1)] != 0)
					g++;
				ns[g & (nslots - 1)] = a + 1;
			}
			free(slots);
			slots = ns;
		}
		mask = nslots - 1;
		for (h = hash;; h++) {
			const struct quote *o;

			if ((s = slots[h & mask]) == 0)
				break;
			o = &im->quotes[first[s - 1]];
			if (o->authorlen == q->authorlen &&
			    memcmp(o->author, q->author, q->authorlen) == 0)
				break;
		}
		if (s == 0) {
			if (nauthors == cap) {
				uint32_t c = cap ? cap * 2 : 1024;
				uint32_t *nf = realloc(first, c * sizeof(*nf));
				uint64_t *nh;

				if (nf == NULL)
					goto done;
				first = nf;
				if ((nh = realloc(hashes, c * sizeof(*nh))) ==
				    NULL)
					goto done;
				hashes = nh;
				cap = c;
			}
			hashes[nauthors] = hash;
			first[nauthors] = i;
			slots[h & mask] = s = ++nauthors;
		}
		aid[i] = s - 1;
	}
	free(slots);
	slots = NULL;
	/* first[] (each author's first quote) is sorted into the authors
	 * in name order, pos[] gets each author's rank, and first[] then
	 * counts the quotes of each rank, then says where the next goes. */
	if ((pos = malloc((size_t)(nauthors + 1) * sizeof(*pos))) == NULL ||
	    (sorted = malloc(n * sizeof(*sorted))) == NULL)
		goto done;
	qsort_r(first, nauthors, sizeof(*first), compare_authors, im->quotes);
	for (uint32_t r = 0; r < nauthors; r++)
		pos[aid[first[r]]] = r;
	/* Counts by rank, then the start of each rank. */
	memset(first, 0, nauthors * sizeof(*first));
	for (i = 0; i < n; i++)
		first[pos[aid[i]]]++;
	for (uint32_t r = 0, at = 0; r < nauthors; r++) {
		uint32_t c = first[r];

		first[r] = at;
		at += c;
	}
	for (i = 0; i < n; i++) {
		uint32_t r = pos[aid[i]];

		sorted[first[r]] = im->quotes[i];
		sorted[first[r]++].rank = r;
	}
	free(im->quotes);
	im->quotes = sorted;
	im->cap = n;
	sorted = NULL;
	rc = 0;
done:
	free(sorted);
	free(pos);
	free(hashes);
	free(slots);
	free(first);
	free(aid);
	return rc;
}

/*
 * The records go in through cursors, each left at the end of its
 * database: an append through mdb_put() searched the tree from its root
 * every time, each page of the way looked up in the transaction's list
 * of dirty pages.
 */
struct cursors {
	MDB_cursor *authors, *byindex, *quotes;
};

static void
close_cursors(struct cursors *c)
{
	MDB_cursor **all[] = {&c->authors, &c->byindex, &c->quotes};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (*all[i] != NULL)
			mdb_cursor_close(*all[i]);
		*all[i] = NULL;
	}
}

static int
put_author(struct cursors *c, const struct quote *q,
    const struct store_author *rec, struct index *ix)
{
	MDB_val key = {q->authorlen, (void *)q->author};
	MDB_val val = {sizeof(*rec), (void *)rec};
	int rc;

	if (index_add_author(ix, rec->index, q->author, q->authorlen) != 0)
		return errno;
	if ((rc = mdb_cursor_put(c->authors, &key, &val, MDB_APPEND)) != 0)
		return rc;
	key.mv_size = sizeof(rec->index);
	key.mv_data = (void *)&rec->index;
	val.mv_size = sizeof(*rec) + q->authorlen;
	if ((rc = mdb_cursor_put(c->byindex, &key, &val,
		 MDB_APPEND | MDB_RESERVE)) != 0)
		return rc;
	memcpy(val.mv_data, rec, sizeof(*rec));
	memcpy((char *)val.mv_data + sizeof(*rec), q->author, q->authorlen);
	return 0;
}

/*
 * Sorted by author, quotes are read in an order that has their text and
 * name anywhere in the input, each a cache miss: loops over them ask for
 * those of a quote PREFETCH ahead, so that the misses overlap.
 */
#define PREFETCH 8

static inline void
prefetch_quote(const struct quote *q, bool author)
{
	__builtin_prefetch(q->text);
	if (q->textlen > 64)
		__builtin_prefetch(q->text + 64);
	if (author)
		__builtin_prefetch(q->author);
}

/* Indexes quote i's words, length and tags into the index's part. */
static int
index_quote(struct import *im, struct index *ix, unsigned part, uint32_t i)
{
	const struct quote *q = &im->quotes[i];
	const struct input *in = &im->inputs[q->file];

	if (index_add_quote(ix, part, i, q->text, q->textlen) != 0)
		return -1;
	for (size_t t = 0; t < in->ntags; t++)
		if (index_add_tag(ix, part, i, im->tags[t],
			strlen(im->tags[t])) != 0)
			return -1;
	if (in->deftag[0] != '\0' &&
	    index_add_tag(ix, part, i, in->deftag, strlen(in->deftag)) != 0)
		return -1;
	return 0;
}

/*
 * Indexing the quotes, shared by two threads: the indexing thread takes
 * chunks from the front, into part 0 of the index; the main thread,
 * once it has written the quotes, takes them from the back, into part 1,
 * until the two meet. Neither waits for the other, however the work
 * divides on a machine.
 */
#define CHUNK 4096

struct indexer {
	struct import *im;
	struct index *ix;
	pthread_mutex_t lock;
	uint32_t front, back; /* quotes [front, back) are left */
	int err;              /* the indexing thread's errno, or 0 */
};

/* The next chunk [*lo, *hi) from the front, or from the back; false
 * when none is left. */
static bool
claim(struct indexer *x, bool back, uint32_t *lo, uint32_t *hi)
{
	bool got;

	pthread_mutex_lock(&x->lock);
	got = x->front < x->back;
	if (got && !back) {
		*lo = x->front;
		*hi = x->back - x->front > CHUNK ? x->front + CHUNK : x->back;
		x->front = *hi;
	} else if (got) {
		*hi = x->back;
		*lo = x->back - x->front > CHUNK ? x->back - CHUNK : x->front;
		x->back = *lo;
	}
	pthread_mutex_unlock(&x->lock);
	return got;
}

/* Leaves nothing more to claim, so that the other thread stops. */
static void
claim_none(struct indexer *x)
{
	pthread_mutex_lock(&x->lock);
	x->back = x->front;
	pthread_mutex_unlock(&x->lock);
}

/* The part that works from the front, ascending; 0 or errno. */
static int
index_front(struct indexer *x)
{
	uint32_t lo, hi;

	while (claim(x, false, &lo, &hi))
		for (uint32_t i = lo; i < hi; i++) {
			if (hi - i > PREFETCH)
				prefetch_quote(&x->im->quotes[i + PREFETCH],
				    false);
			if (index_quote(x->im, x->ix, 0, i) != 0)
				return errno ? errno : ENOMEM;
		}
	return index_sort(x->ix, 0);
}

/* The part that works from the back, descending; 0 or errno. */
static int
index_back(struct indexer *x)
{
	uint32_t lo, hi;

	while (claim(x, true, &lo, &hi))
		for (uint32_t i = hi; i-- > lo;) {
			if (i - lo >= PREFETCH)
				prefetch_quote(&x->im->quotes[i - PREFETCH],
				    false);
			if (index_quote(x->im, x->ix, 1, i) != 0)
				return errno ? errno : ENOMEM;
		}
	return index_sort(x->ix, 1);
}

static void *
index_thread(void *arg)
{
	struct indexer *x = arg;

	if ((x->err = index_front(x)) != 0)
		claim_none(x);
	return NULL;
}

/* Writes every quote, sorted by author, into the open environment. */
static int
write_db(struct import *im, MDB_env *env, uint64_t *nauthors)
{
	MDB_txn *txn = NULL;
	MDB_dbi meta, authors, byindex, quotes, words, tags, folded, lengths;
	MDB_dbi summed[STORE_NSUMMED];
	struct index *ix;
	struct indexer x = {.im = im,
	    .lock = PTHREAD_MUTEX_INITIALIZER,
	    .back = (uint32_t)im->nquotes};
	pthread_t thread;
	bool threaded = false;
	struct store_meta m;
	struct store_author rec = {0};
	struct cursors c = {NULL, NULL, NULL};
	MDB_val key, val;
	size_t i;
	uint32_t qi;
	int rc;

	if ((ix = index_new((uint32_t)im->nquotes)) == NULL)
		return errno;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
		index_free(ix);
		return rc;
	}
	/* Indexing the words is more work than writing the quotes, and
	 * needs nothing from it: a thread starts on it meanwhile, and this
	 * one helps once the quotes are written. The authors' folded names
	 * are this thread's (index_add_author() touches nothing the other
	 * does). */
	x.ix = ix;
	threaded = pthread_create(&thread, NULL, index_thread, &x) == 0;
	if ((rc = mdb_dbi_open(txn, STORE_DB_META, MDB_CREATE, &meta)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_AUTHORS, MDB_CREATE, &authors)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_BYINDEX,
		 MDB_CREATE | MDB_INTEGERKEY, &byindex)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_QUOTES,
		 MDB_CREATE | MDB_INTEGERKEY, &quotes)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_WORDS, MDB_CREATE, &words)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_TAGS, MDB_CREATE, &tags)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_FOLDED, MDB_CREATE, &folded)) ||
	    (rc = mdb_dbi_open(txn, STORE_DB_LENGTHS,
		 MDB_CREATE | MDB_INTEGERKEY, &lengths)) ||
	    (rc = mdb_cursor_open(txn, authors, &c.authors)) ||
	    (rc = mdb_cursor_open(txn, byindex, &c.byindex)) ||
	    (rc = mdb_cursor_open(txn, quotes, &c.quotes)))
		goto fail;

	*nauthors = 0;
	for (i = 0; i < im->nquotes; i++) {
		struct quote *q = &im->quotes[i];
		Quotes__QuoteReply reply = QUOTES__QUOTE_REPLY__INIT;

		if (i + PREFETCH < im->nquotes)
			prefetch_quote(q + PREFETCH, true);
		if (i > 0 && q->rank != q[-1].rank) {
			if ((rc = put_author(&c, q - 1, &rec, ix)) != 0)
				goto fail;
			rec.index++;
			rec.first = (uint32_t)i;
			rec.count = 0;
			(*nauthors)++;
		}
		rec.count++;

		/* The parser NUL-terminated both strings in place. */
		reply.quote = (char *)q->text;
		reply.author = (char *)q->author;
		qi = (uint32_t)i;
		key.mv_size = sizeof(qi);
		key.mv_data = &qi;
		val.mv_size = quotes__quote_reply__get_packed_size(&reply);
		rc = mdb_cursor_put(c.quotes, &key, &val,
		    MDB_APPEND | MDB_RESERVE);
		if (rc != 0)
			goto fail;
		quotes__quote_reply__pack(&reply, val.mv_data);
	}
	if ((rc = put_author(&c, &im->quotes[i - 1], &rec, ix)) != 0)
		goto fail;
	(*nauthors)++;
	close_cursors(&c);
	/* Without a thread, this one takes every quote, from the back. */
	if ((rc = index_back(&x)) != 0) {
		claim_none(&x);
		goto fail;
	}
	if (threaded) {
		pthread_join(thread, NULL);
		threaded = false;
		if ((rc = x.err) != 0)
			goto fail;
	}
	if ((rc = index_write(ix, txn, words, tags, folded, lengths)) != 0)
		goto fail;

	memset(&m, 0, sizeof(m));
	memcpy(m.magic, STORE_MAGIC, sizeof(STORE_MAGIC));
	m.version = STORE_FORMAT_VERSION;
	m.nquotes = im->nquotes;
	m.nauthors = *nauthors;
	m.created = (uint64_t)time(NULL);
	/* Read back from this transaction: the sum is of what was written. */
	summed[0] = authors;
	summed[1] = byindex;
	summed[2] = quotes;
	summed[3] = words;
	summed[4] = tags;
	summed[5] = folded;
	summed[6] = lengths;
	if ((rc = store_checksum(txn, summed, &m.checksum)) != 0)
		goto fail;
	key.mv_size = sizeof(STORE_META_KEY) - 1;
	key.mv_data = (void *)STORE_META_KEY;
	val.mv_size = sizeof(m);
	val.mv_data = &m;
	if ((rc = mdb_put(txn, meta, &key, &val, 0)) != 0)
		goto fail;
	index_free(ix);
	return mdb_txn_commit(txn);
fail:
	if (threaded) {
		claim_none(&x);
		pthread_join(thread, NULL);
	}
	close_cursors(&c);
	index_free(ix);
	mdb_txn_abort(txn);
	return rc;
}

static void
on_signal(int sig)
{
	if (tmp_path[0] != '\0')
		unlink(tmp_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
fsync_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd, rc;

	snprintf(copy, sizeof(copy), "%s", path);
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static bool
is_tmp_name(const char *name, const char *prefix, size_t plen)
{
	if (strncmp(name, prefix, plen) != 0 || strlen(name + plen) != 6)
		return false;
	for (name += plen; *name != '\0'; name++)
		if (!isalnum((unsigned char)*name))
			return false;
	return true;
}

/*
 * Removes the temporary files of imports to the same OUT that were killed
 * (SIGKILL, a crash, a power cut) before they could remove their own. An
 * import holds an flock() on its file while it runs, so a file that can
 * be locked has no import left; unlike a pid in the name, that holds
 * across pid namespaces and pid reuse.
 */
static void
remove_stale(const char *dir, const char *base, bool quiet)
{
	char prefix[NAME_MAX + sizeof(TMP_INFIX) + 1];
	struct stat st, now;
	struct dirent *de;
	size_t plen;
	DIR *d;
	int fd;

	plen = (size_t)snprintf(prefix, sizeof(prefix), ".%s" TMP_INFIX, base);
	/* Failing here is no reason to fail the import; creating ours
	 * reports whatever is wrong with the directory. */
	if (plen >= sizeof(prefix) || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!is_tmp_name(de->d_name, prefix, plen))
			continue;
		fd = openat(dirfd(d), de->d_name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Still the file that was locked when it goes. */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstatat(dirfd(d), de->d_name, &now, AT_SYMLINK_NOFOLLOW) ==
			0 &&
		    now.st_dev == st.st_dev && now.st_ino == st.st_ino &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0 && !quiet)
			fprintf(stderr,
			    PROG ": %s/%s: removed, left by an "
				 "import that did not finish\n",
			    dir, de->d_name);
		close(fd);
	}
	closedir(d);
}

/*
 * Creates the temporary file from the template in tmp_path, locked until
 * this process ends (see remove_stale). Another import's remove_stale()
 * may lock and remove it between mkstemp() and flock(): then the lock
 * comes with no name left, and another name is tried.
 */
static int
create_tmp(void)
{
	char template[sizeof(tmp_path)];
	struct stat st;
	int fd;

	memcpy(template, tmp_path, sizeof(template));
	for (;;) {
		memcpy(tmp_path, template, sizeof(tmp_path));
		if ((fd = mkstemp(tmp_path)) < 0)
			return -1;
		/* Without flock() (some network file systems) nothing is
		 * cleaned either: remove_stale() needs the lock. */
		if (flock(fd, LOCK_EX) != 0 || fstat(fd, &st) != 0 ||
		    st.st_nlink > 0)
			return fd;
		close(fd);
	}
}

/*
 * LMDB reports a short write as EIO (mdb_page_flush(): "short write,
 * filesystem full?"), which hides the kernel's reason: a full disk
 * (ENOSPC), a quota (EDQUOT), a file size limit (EFBIG). Writing on past
 * the end of the temporary file, which is about to go anyway, asks the
 * kernel again and gets that reason; if the writes succeed, EIO stands.
 */
static int
write_error(int fd, int rc)
{
	static const char zeros[1 << 16];
	struct stat st;
	size_t done = 0;
	ssize_t n;

	if (rc != EIO || fstat(fd, &st) != 0)
		return rc;
	while (done < sizeof(zeros)) {
		n = pwrite(fd, zeros, sizeof(zeros) - done,
		    st.st_size + (off_t)done);
		if (n < 0 && errno != EINTR)
			return errno;
		if (n == 0)
			break;
		if (n > 0)
			done += (size_t)n;
	}
	return rc;
}

/* Builds the database in a temporary file and renames it over out. */
static int
write_output(struct import *im, const char *out, uint64_t *nauthors,
    uint64_t *size)
{
	char dir[PATH_MAX], *dname, *bname;
	MDB_env *env = NULL;
	struct stat st;
	size_t bytes = 0;
	mode_t mask;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", out);
	dname = dirname(dir);
	bname = basename((char *)out);
	if ((size_t)snprintf(tmp_path, sizeof(tmp_path),
		"%s/.%s" TMP_INFIX "XXXXXX", dname,
		bname) >= sizeof(tmp_path)) {
		fprintf(stderr, PROG ": %s: path too long\n", out);
		return -1;
	}
	remove_stale(dname, bname, im->quiet);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	if ((fd = create_tmp()) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", tmp_path, strerror(errno));
		tmp_path[0] = '\0';
		return -1;
	}

	for (size_t i = 0; i < im->nquotes; i++)
		bytes +=
		    im->quotes[i].textlen + 2 * im->quotes[i].authorlen + 64;
	/* Room for the records twice over and the indexes; the map is
	 * address space, not memory. */
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, STORE_MAXDBS)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, 4 * bytes + (64 << 20))) != 0 ||
	    (rc = mdb_env_open(env, tmp_path,
		 MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0644)) != 0)
		goto fail_rc;
	if ((rc = write_db(im, env, nauthors)) != 0)
		goto fail_rc;
	/* MDB_NOSYNC skipped the per-commit syncs; one sync now makes the
	 * whole file durable before it can be renamed into place. */
	if ((rc = mdb_env_sync(env, 1)) != 0)
		goto fail_rc;
	mdb_env_close(env);
	env = NULL;
	/* mkstemp's 0600 kept the file ours while it was written. Now it is
	 * for every reader the umask allows, and for no writer: workers map
	 * it, so it must never change in place. Renaming over it needs only
	 * the directory writable, which is how the next import replaces it. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0444 & ~mask) != 0 || fstat(fd, &st) != 0 ||
	    rename(tmp_path, out) != 0) {
		rc = errno;
		goto fail_rc;
	}
	close(fd);
	tmp_path[0] = '\0';
	if (fsync_dir(out) != 0) {
		fprintf(stderr, PROG ": %s: syncing directory: %s\n", out,
		    strerror(errno));
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return 0;
fail_rc:
	rc = write_error(fd, rc);
	fprintf(stderr, PROG ": %s: %s\n", out, mdb_strerror(rc));
	if (env != NULL)
		mdb_env_close(env);
	unlink(tmp_path);
	close(fd);
	tmp_path[0] = '\0';
	return -1;
}

/*
 * A fortune file's own tag: its name without directory or extension
 * ("wisdom.u8" is "wisdom"), when that is a valid tag name.
 */
static void
default_tag(const char *path, char *tag)
{
	const char *base = strrchr(path, '/'), *dot;
	size_t len;

	base = base != NULL ? base + 1 : path;
	dot = strchr(base, '.');
	len = dot != NULL ? (size_t)(dot - base) : strlen(base);
	tag[0] = '\0';
	if (strcmp(path, "-") != 0 && words_tag_valid(base, len)) {
		memcpy(tag, base, len);
		tag[len] = '\0';
	}
}

static int
add_input(struct import *im, const char *path)
{
	struct input *n;

	if ((n = realloc(im->inputs, (im->ninputs + 1) * sizeof(*n))) == NULL)
		return -1;
	im->inputs = n;
	n = &im->inputs[im->ninputs++];
	n->path = path;
	n->ntags = im->ntags;
	n->deftag[0] = '\0';
	return 0;
}

static int
add_tag(struct import *im, const char *name)
{
	const char **n;

	if ((n = realloc(im->tags, (im->ntags + 1) * sizeof(*n))) == NULL)
		return -1;
	im->tags = n;
	im->tags[im->ntags++] = name;
	return 0;
}

static void
free_import(struct import *im)
{
	free(im->inputs);
	free(im->tags);
	free(im->quotes);
	for (size_t i = 0; i < im->nbuffers; i++)
		free(im->buffers[i]);
	free(im->buffers);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {{"output", required_argument,
						     NULL, 'o'},
	    {"format", required_argument, NULL, 'f'},
	    {"skip-invalid", no_argument, NULL, 'S'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"tag", required_argument, NULL, 'T'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct import im = {0};
	const char *out = "quotes.mdb";
	uint64_t nauthors = 0, size = 0;
	int ch, status = 1;

	/* getopt's own messages start with argv[0]: PROG, as ours. */
	argv[0] = (char *)PROG;
	clock_gettime(CLOCK_MONOTONIC, &im.start);
	im.progress = isatty(STDERR_FILENO);
	/* "-": inputs come in order among the options, since a --tag
	 * applies to the inputs after it. */
	while (
	    (ch = getopt_long(argc, argv, "-o:f:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (add_input(&im, optarg) != 0) {
				fprintf(stderr, PROG ": %s\n", strerror(errno));
				goto done;
			}
			break;
		case 'T':
			if (!words_tag_valid(optarg, strlen(optarg))) {
				fprintf(stderr,
				    PROG ": --tag '%s': a tag is "
					 "1 to %d bytes of a-z, 0-9 and '-'\n",
				    optarg, WORDS_MAX_TAG);
				usage(stderr);
				free_import(&im);
				return 2;
			}
			if (add_tag(&im, optarg) != 0) {
				fprintf(stderr, PROG ": %s\n", strerror(errno));
				goto done;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "text") == 0) {
				im.format = PARSE_TEXT;
			} else if (strcmp(optarg, "fortune") == 0) {
				im.format = PARSE_FORTUNE;
			} else {
				fprintf(stderr, PROG ": unknown format '%s'\n",
				    optarg);
				usage(stderr);
				free_import(&im);
				return 2;
			}
			break;
		case 'S':
			im.skip_invalid = true;
			break;
		case 'q':
			im.quiet = true;
			break;
		case 'V':
			printf(PROG " %s\n", QUOTERD_VERSION);
			free_import(&im);
			return 0;
		case 'h':
			usage(stdout);
			free_import(&im);
			return 0;
		default:
			usage(stderr);
			free_import(&im);
			return 2;
		}
	}
	if (im.ninputs == 0 || *out == '\0') {
		fprintf(stderr, PROG ": %s\n",
		    im.ninputs == 0 ? "no input files" : "empty output path");
		usage(stderr);
		free_import(&im);
		return 2;
	}

	for (size_t i = 0; i < im.ninputs; i++) {
		if (im.format == PARSE_FORTUNE)
			default_tag(im.inputs[i].path, im.inputs[i].deftag);
		im.fileno = (uint32_t)i;
		if (read_input(&im, im.inputs[i].path) != 0)
			goto done;
	}
	if (im.progress && !im.quiet && elapsed(&im) >= 1.0)
		fputc('\n', stderr);
	if (im.bad > MAX_REPORTED)
		fprintf(stderr, PROG ": ... and %zu more invalid lines\n",
		    im.bad - MAX_REPORTED);
	if (im.bad > 0 && !im.skip_invalid) {
		fprintf(stderr,
		    PROG ": %zu invalid line%s, %s not written "
			 "(--skip-invalid imports the rest)\n",
		    im.bad, im.bad == 1 ? "" : "s", out);
		goto done;
	}
	if (im.nquotes == 0) {
		fprintf(stderr, PROG ": no quotes to import, %s not written\n",
		    out);
		goto done;
	}
	if (sort_quotes(&im) != 0) {
		fprintf(stderr, PROG ": %s\n", strerror(errno));
		goto done;
	}
	if (write_output(&im, out, &nauthors, &size) != 0)
		goto done;
	if (!im.quiet) {
		printf(PROG ": wrote %s: %zu quote%s, %" PRIu64 " author%s, "
			    "%zu skipped",
		    out, im.nquotes, im.nquotes == 1 ? "" : "s", nauthors,
		    nauthors == 1 ? "" : "s", im.bad + im.unsigned_);
		if (im.unsigned_ > 0)
			printf(" (%zu without attribution)", im.unsigned_);
		printf(", %.1f MiB, %.2f s\n", (double)size / (1 << 20),
		    elapsed(&im));
	}
	status = 0;
done:
	free_import(&im);
	return status;
}
