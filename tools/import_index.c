/*
 * Building the filter indexes in memory: one hash table of terms (folded
 * words, tags, folded names) per index, each term with the ascending
 * list of quotes (or authors) it occurs in, then written in key order
 * with MDB_APPEND. Most words of a large corpus occur once (numbers,
 * names), so a term's first entry is kept inline and only a second one
 * allocates.
 */
#include "import_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "postings.h"
#include "store_format.h"
#include "words.h"

/* LMDB's largest key: a folded name beyond it is matched exactly only. */
#define MAX_KEY 511

struct term {
	size_t off;	/* its key, in the table's keys */
	uint32_t len;
	uint32_t n, cap;
	uint32_t one;	/* the entry while n == 1 */
	uint32_t *v;	/* all n entries once n > 1 */
};

struct table {
	struct term *terms;
	uint32_t nterms, capterms;
	uint32_t *slots; /* term index + 1; 0: empty */
	uint32_t nslots; /* a power of two */
	char *keys;
	size_t keylen, keycap;
};

struct index {
	struct table words, tags, folded;
	uint32_t *lengths; /* by quote */
	uint32_t nquotes;
};

struct index *
index_new(uint32_t nquotes)
{
	struct index *ix = calloc(1, sizeof(*ix));

	if (ix == NULL)
		return NULL;
	ix->nquotes = nquotes;
	if ((ix->lengths = calloc(nquotes ? nquotes : 1,
	    sizeof(*ix->lengths))) == NULL) {
		free(ix);
		return NULL;
	}
	return ix;
}

static void
table_free(struct table *t)
{
	for (uint32_t i = 0; i < t->nterms; i++)
		free(t->terms[i].v);
	free(t->terms);
	free(t->slots);
	free(t->keys);
}

void
index_free(struct index *ix)
{
	if (ix == NULL)
		return;
	table_free(&ix->words);
	table_free(&ix->tags);
	table_free(&ix->folded);
	free(ix->lengths);
	free(ix);
}

/*
 * FNV-1a, 64-bit, finished with a multiply so that the low bits (the
 * slot) depend on every byte: words are short, and the ASCII path below
 * computes it as it folds, with no second pass over the word.
 */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t
hash_finish(uint64_t h)
{
	return (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
}

static uint64_t
key_hash(const char *key, size_t len)
{
	uint64_t h = FNV_OFFSET;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * FNV_PRIME;
	return hash_finish(h);
}

static int
table_grow(struct table *t)
{
	uint32_t n = t->nslots ? t->nslots * 2 : 1024, *slots;

	if ((slots = calloc(n, sizeof(*slots))) == NULL)
		return -1;
	for (uint32_t i = 0; i < t->nterms; i++) {
		const struct term *e = &t->terms[i];
		uint64_t h = key_hash(t->keys + e->off, e->len);

		while (slots[h & (n - 1)] != 0)
			h++;
		slots[h & (n - 1)] = i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
	return 0;
}

/* The term keyed key[0..len), whose hash is h, added if new; NULL with
 * errno if not. */
static struct term *
table_find_hashed(struct table *t, const char *key, size_t len, uint64_t h)
{
	struct term *e;
	uint32_t s;

	if (t->nterms >= t->nslots / 2 && table_grow(t) != 0)
		return NULL;
	for (;; h++) {
		s = t->slots[h & (t->nslots - 1)];
		if (s == 0)
			break;
		e = &t->terms[s - 1];
		if (e->len == len && memcmp(t->keys + e->off, key, len) == 0)
			return e;
	}
	if (t->nterms == t->capterms) {
		uint32_t cap = t->capterms ? t->capterms * 2 : 1024;
		struct term *n = realloc(t->terms, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		t->terms = n;
		t->capterms = cap;
	}
	if (t->keycap - t->keylen < len) {
		size_t cap = t->keycap ? t->keycap * 2 : 1 << 16;
		char *n;

		while (cap - t->keylen < len)
			cap *= 2;
		if ((n = realloc(t->keys, cap)) == NULL)
			return NULL;
		t->keys = n;
		t->keycap = cap;
	}
	memcpy(t->keys + t->keylen, key, len);
	e = &t->terms[t->nterms];
	memset(e, 0, sizeof(*e));
	e->off = t->keylen;
	e->len = (uint32_t)len;
	t->keylen += len;
	t->slots[h & (t->nslots - 1)] = ++t->nterms;
	return e;
}

static struct term *
table_find(struct table *t, const char *key, size_t len)
{
	return table_find_hashed(t, key, len, key_hash(key, len));
}

/* Adds x to the term's list unless it ends with it already (a word
 * twice in one quote). */
static int
term_add(struct term *e, uint32_t x)
{
	if (e->n == 0) {
		e->one = x;
		e->n = 1;
		return 0;
	}
	if ((e->n == 1 ? e->one : e->v[e->n - 1]) == x)
		return 0;
	if (e->n == e->cap || e->v == NULL) {
		uint32_t cap = e->cap ? e->cap * 2 : 4;
		uint32_t *n = realloc(e->v, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		if (e->v == NULL)
			n[0] = e->one;
		e->v = n;
		e->cap = cap;
	}
	e->v[e->n++] = x;
	return 0;
}

/* ASCII letters and digits, for the ASCII path. */
static const unsigned char ascii_alnum[128] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/*
 * The words of a quote that is all ASCII, most of any corpus: split,
 * folded (tolower) and hashed in one pass, as words_next() and
 * words_fold() would have them.
 */
static int
index_ascii(struct index *ix, uint32_t q, const unsigned char *s, size_t len)
{
	char folded[WORDS_MAX_WORD];
	struct term *e;
	size_t i = 0;

	while (i < len) {
		uint64_t h = FNV_OFFSET;
		size_t n = 0;

		while (i < len && !ascii_alnum[s[i]])
			i++;
		if (i == len)
			break;
		for (; i < len && ascii_alnum[s[i]]; i++, n++) {
			unsigned char c = s[i] | (s[i] >= 'A' && s[i] <= 'Z' ?
			    0x20 : 0);

			if (n < WORDS_MAX_WORD)
				folded[n] = (char)c;
			h = (h ^ c) * FNV_PRIME;
		}
		/* No query can ask for a longer word. */
		if (n > WORDS_MAX_WORD)
			continue;
		if ((e = table_find_hashed(&ix->words, folded, n,
		    hash_finish(h))) == NULL || term_add(e, q) != 0)
			return -1;
	}
	return 0;
}

static bool
is_ascii(const char *s, size_t len)
{
	size_t i = 0;
	uint64_t any = 0;

	for (; len - i >= 8; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, sizeof(x));
		any |= x;
	}
	for (; i < len; i++)
		any |= (unsigned char)s[i];
	return (any & 0x8080808080808080ULL) == 0;
}

int
index_add_quote(struct index *ix, uint32_t q, const char *text, size_t len)
{
	char folded[WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
	size_t pos = 0, start, wlen, flen;
	struct term *e;

	if (q >= ix->nquotes) {
		errno = EINVAL;
		return -1;
	}
	if (is_ascii(text, len)) {
		ix->lengths[q] = (uint32_t)len;
		return index_ascii(ix, q, (const unsigned char *)text, len);
	}
	ix->lengths[q] = words_length(text, len);
	while (words_next(text, len, &pos, &start, &wlen)) {
		/* No query can ask for a longer word. */
		if (wlen > WORDS_MAX_WORD)
			continue;
		flen = words_fold(text + start, wlen, folded, sizeof(folded));
		if (flen == 0)
			continue;
		if ((e = table_find(&ix->words, folded, flen)) == NULL ||
		    term_add(e, q) != 0)
			return -1;
	}
	return 0;
}

int
index_add_tag(struct index *ix, uint32_t q, const char *name, size_t len)
{
	struct term *e;

	if ((e = table_find(&ix->tags, name, len)) == NULL ||
	    term_add(e, q) != 0)
		return -1;
	return 0;
}

int
index_add_author(struct index *ix, uint32_t a, const char *name, size_t len)
{
	char folded[WORDS_FOLD_ROOM(STORE_MAX_AUTHOR)];
	struct term *e;
	size_t flen;

	flen = words_fold_name(name, len, folded, sizeof(folded));
	if (flen == 0 || flen > MAX_KEY)
		return 0;
	if ((e = table_find(&ix->folded, folded, flen)) == NULL ||
	    term_add(e, a) != 0)
		return -1;
	return 0;
}

/* A term to sort, with its key's first bytes as a number so that most
 * comparisons need not reach the keys. */
struct sortkey {
	uint64_t prefix;
	uint32_t term;
};

/* LMDB's default key order: bytes, then the shorter first. */
static int
compare_terms(const void *va, const void *vb, void *arg)
{
	const struct table *t = arg;
	const struct sortkey *x = va, *y = vb;
	const struct term *a, *b;
	int c;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	a = &t->terms[x->term];
	b = &t->terms[y->term];
	c = memcmp(t->keys + a->off, t->keys + b->off,
	    a->len < b->len ? a->len : b->len);
	if (c != 0)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

/*
 * Sorts by prefix with a radix sort (a million distinct words would take
 * qsort() most of the import), then runs of a shared prefix by the
 * whole key.
 */
static int
sort_terms(struct table *t, struct sortkey *order)
{
	struct sortkey *tmp, *from = order, *to, *swap;
	uint32_t n = t->nterms, i, j;
	size_t count[256];

	if ((tmp = malloc(n * sizeof(*tmp))) == NULL)
		return errno;
	to = tmp;
	for (int shift = 0; shift < 64; shift += 8) {
		size_t sum = 0;

		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[(from[i].prefix >> shift) & 0xff]++;
		/* A pass where every key has the same byte moves nothing. */
		if (count[(from[0].prefix >> shift) & 0xff] == n)
			continue;
		for (i = 0; i < 256; i++) {
			size_t c = count[i];

			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			to[count[(from[i].prefix >> shift) & 0xff]++] = from[i];
		swap = from;
		from = to;
		to = swap;
	}
	if (from != order)
		memcpy(order, from, n * sizeof(*order));
	free(tmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && order[j].prefix == order[i].prefix;
		    j++)
			;
		if (j - i > 1)
			qsort_r(order + i, j - i, sizeof(*order),
			    compare_terms, t);
	}
	return 0;
}

static int
write_table(struct table *t, MDB_txn *txn, MDB_dbi dbi)
{
	struct sortkey *order;
	MDB_val key, val;
	int rc = 0;

	if (t->nterms == 0)
		return 0;
	if ((order = malloc(t->nterms * sizeof(*order))) == NULL)
		return errno;
	for (uint32_t i = 0; i < t->nterms; i++) {
		const unsigned char *k =
		    (const unsigned char *)t->keys + t->terms[i].off;
		uint64_t p = 0;

		/* Big-endian, zero-padded: memcmp's order on 8 bytes. */
		for (uint32_t j = 0; j < 8; j++)
			p = p << 8 | (j < t->terms[i].len ? k[j] : 0);
		order[i].prefix = p;
		order[i].term = i;
	}
	if ((rc = sort_terms(t, order)) != 0) {
		free(order);
		return rc;
	}
	for (uint32_t i = 0; i < t->nterms && rc == 0; i++) {
		const struct term *e = &t->terms[order[i].term];
		const uint32_t *v = e->n == 1 ? &e->one : e->v;

		key.mv_size = e->len;
		key.mv_data = t->keys + e->off;
		val.mv_size = postings_size(v, e->n);
		rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND | MDB_RESERVE);
		if (rc == 0)
			postings_encode(v, e->n, val.mv_data);
	}
	free(order);
	return rc;
}

/* Quote indexes by (length, index): a counting sort on the length,
 * stable, so ties stay in index order. */
static int
write_lengths(struct index *ix, MDB_txn *txn, MDB_dbi dbi)
{
	uint32_t max = 0, *start, k;
	unsigned char *sorted;
	MDB_val key = {sizeof(k), &k}, val;
	int rc;

	for (uint32_t q = 0; q < ix->nquotes; q++)
		if (ix->lengths[q] > max)
			max = ix->lengths[q];
	if ((start = calloc((size_t)max + 2, sizeof(*start))) == NULL)
		return errno;
	k = STORE_LENGTHS_BYQUOTE;
	val.mv_size = ix->nquotes * sizeof(uint32_t);
	val.mv_data = ix->lengths;
	if ((rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND)) != 0)
		goto done;
	k = STORE_LENGTHS_SORTED;
	if ((rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND | MDB_RESERVE)) !=
	    0)
		goto done;
	sorted = val.mv_data;
	for (uint32_t q = 0; q < ix->nquotes; q++)
		start[ix->lengths[q] + 1]++;
	for (uint32_t l = 1; l <= max + 1; l++)
		start[l] += start[l - 1];
	for (uint32_t q = 0; q < ix->nquotes; q++) {
		uint32_t at = start[ix->lengths[q]]++;

		memcpy(sorted + (size_t)at * sizeof(q), &q, sizeof(q));
	}
done:
	free(start);
	return rc;
}

int
index_write(struct index *ix, MDB_txn *txn, MDB_dbi words, MDB_dbi tags,
    MDB_dbi folded, MDB_dbi lengths)
{
	int rc;

	if ((rc = write_table(&ix->words, txn, words)) != 0 ||
	    (rc = write_table(&ix->tags, txn, tags)) != 0 ||
	    (rc = write_table(&ix->folded, txn, folded)) != 0)
		return rc;
	return write_lengths(ix, txn, lengths);
}
