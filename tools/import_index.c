/*
 * Building the filter indexes in memory: one hash table of terms (folded
 * words, tags, folded names) per index and part, each term with the
 * ascending (part 1: descending) list of quotes (or authors) it occurs
 * in, then written in key order with MDB_APPEND, the two parts merged.
 * Most words of a large corpus occur once (numbers, names), so a term's
 * first entry is kept inline and only a second one allocates.
 */
#include "import_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "postings.h"
#include "store_format.h"
#include "words.h"

/* LMDB's largest key: a folded name beyond it is matched exactly only. */
#define MAX_KEY 511
/* Keys are kept and compared as 8-byte words, zero-padded. */
#define KEY_WORDS(len) (((len) + 7) / 8)

struct term {
	size_t off; /* its key, in the table's keys (words) */
	uint32_t len;
	uint32_t n, cap;
	uint32_t one; /* the entry while n == 1 */
	uint32_t *v;  /* all n entries once n > 1 */
};

/*
 * Open addressing, linear probing, half full at most. A slot holds the
 * low half of its term's hash beside the term, so that probing past
 * other terms, and growing, never reads a term or its key: for a corpus
 * of mostly new words (numbers, names) those reads were cache misses.
 */
struct slot {
	uint32_t hash; /* the hash's low half */
	uint32_t term; /* term index + 1; 0: empty */
};

/* A term to sort, with its key's first bytes as a number so that most
 * comparisons need not reach the keys. */
struct sortkey {
	uint64_t prefix;
	uint32_t term;
};

struct table {
	struct sortkey *order; /* the terms in key order, once sorted */
	struct term *terms;
	uint32_t nterms, capterms;
	struct slot *slots;
	uint32_t nslots; /* a power of two */
	uint64_t *keys;
	size_t keylen, keycap; /* in words */
};

struct index {
	/* folded has only part 0: authors are one thread's. */
	struct table words[INDEX_PARTS], tags[INDEX_PARTS];
	struct table folded[INDEX_PARTS];
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
	free(t->order);
	free(t->terms);
	free(t->slots);
	free(t->keys);
}

void
index_free(struct index *ix)
{
	if (ix == NULL)
		return;
	for (unsigned p = 0; p < INDEX_PARTS; p++) {
		table_free(&ix->words[p]);
		table_free(&ix->tags[p]);
		table_free(&ix->folded[p]);
	}
	free(ix->lengths);
	free(ix);
}

/*
 * The hash of a key of len bytes held zero-padded in KEY_WORDS(len)
 * words: a multiply per word rather than per byte, then a finish
 * (splitmix64's) so that the low bits, the slot, depend on every byte.
 * hash_word() and hash_end() are its steps, for the ASCII path below,
 * which hashes a word as it folds it.
 */
#define HASH_START 0x9e3779b97f4a7c15ULL

static inline uint64_t
hash_word(uint64_t h, uint64_t w)
{
	return (h ^ w) * 0xbf58476d1ce4e5b9ULL;
}

static inline uint64_t
hash_end(uint64_t h, size_t len)
{
	h ^= len;
	h ^= h >> 31;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 29);
}

static inline uint64_t
key_hash(const uint64_t *w, size_t len)
{
	uint64_t h = HASH_START;

	for (size_t i = 0; i < KEY_WORDS(len); i++)
		h = hash_word(h, w[i]);
	return hash_end(h, len);
}

static inline bool
key_equal(const uint64_t *a, const uint64_t *b, size_t len)
{
	for (size_t i = 0; i < KEY_WORDS(len); i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/*
 * Slots for n terms, all empty. A large table's slots are read at
 * random, one page each: on huge pages (where the kernel has them for
 * the asking) the lookups miss the TLB far less often.
 */
#define HUGE_PAGE (2u << 20)

static struct slot *
slots_alloc(uint32_t n)
{
	size_t size = (size_t)n * sizeof(struct slot);
	struct slot *s;

	if (size < HUGE_PAGE)
		return calloc(n, sizeof(*s));
	if ((s = aligned_alloc(HUGE_PAGE, size)) == NULL)
		return NULL;
	madvise(s, size, MADV_HUGEPAGE);
	memset(s, 0, size);
	return s;
}

static int
table_grow(struct table *t)
{
	uint32_t n = t->nslots ? t->nslots * 2 : 1024;
	struct slot *slots;

	if ((slots = slots_alloc(n)) == NULL)
		return -1;
	for (uint32_t i = 0; i < t->nslots; i++) {
		uint32_t h = t->slots[i].hash;

		if (t->slots[i].term == 0)
			continue;
		while (slots[h & (n - 1)].term != 0)
			h++;
		slots[h & (n - 1)] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
	return 0;
}

/* Room for a table to grow to before its next term, so that a slot
 * prefetched for a key stays the key's slot. */
static int
table_reserve(struct table *t)
{
	if (t->nterms >= t->nslots / 2 && table_grow(t) != 0)
		return -1;
	return 0;
}

/*
 * The term keyed key[0..len), zero-padded to whole words, whose hash is
 * h, added if new; NULL with errno if not. The table has room
 * (table_reserve()).
 */
static struct term *
table_find_hashed(struct table *t, const uint64_t *key, size_t len, uint64_t h)
{
	uint32_t mask = t->nslots - 1, i = (uint32_t)h;
	struct slot *s;
	struct term *e;
	size_t nw = KEY_WORDS(len);

	for (;; i++) {
		s = &t->slots[i & mask];
		if (s->term == 0)
			break;
		if (s->hash != (uint32_t)h)
			continue;
		e = &t->terms[s->term - 1];
		if (e->len == len && key_equal(t->keys + e->off, key, len))
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
	if (t->keycap - t->keylen < nw) {
		size_t cap = t->keycap ? t->keycap * 2 : 1 << 13;
		uint64_t *n;

		while (cap - t->keylen < nw)
			cap *= 2;
		if ((n = realloc(t->keys, cap * sizeof(*n))) == NULL)
			return NULL;
		t->keys = n;
		t->keycap = cap;
	}
	memcpy(t->keys + t->keylen, key, nw * sizeof(*key));
	e = &t->terms[t->nterms];
	memset(e, 0, sizeof(*e));
	e->off = t->keylen;
	e->len = (uint32_t)len;
	t->keylen += nw;
	s->hash = (uint32_t)h;
	s->term = ++t->nterms;
	return e;
}

/* As table_find_hashed(), for a key anywhere: copied, padded. */
static struct term *
table_find(struct table *t, const char *key, size_t len)
{
	uint64_t w[KEY_WORDS(WORDS_FOLD_ROOM(STORE_MAX_AUTHOR))];

	if (len > sizeof(w)) {
		errno = EINVAL;
		return NULL;
	}
	if (len % 8 != 0)
		w[len / 8] = 0;
	memcpy(w, key, len);
	if (table_reserve(t) != 0)
		return NULL;
	return table_find_hashed(t, w, len, key_hash(w, len));
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

/* A word of a quote, split and folded, waiting for its lookup. */
struct word {
	uint64_t hash;
	uint32_t off; /* in the batch's folded words */
	uint32_t len;
};

/* Words a batch holds: a batch is looked up once all its slots are
 * prefetched. */
#define BATCH 32

/*
 * The words of a quote being split, a batch at a time: each word's slot
 * is prefetched as soon as the word is hashed, and looked up only once
 * the whole batch is, so that the cache misses of new words overlap
 * instead of coming one after the other.
 */
struct batch {
	struct table *t;
	uint32_t q;
	unsigned nw, o; /* words, and 8-byte words of buf used */
	struct word w[BATCH];
	uint64_t buf[BATCH * KEY_WORDS(WORDS_MAX_WORD)];
	/* The word being put together: its 8-byte words so far, the
	 * bytes of the next in acc, its length, its hash so far. */
	uint64_t acc, h;
	size_t n;
};

/* Looks the batch's words up, and makes room for the next batch. */
static int
batch_flush(struct batch *b)
{
	struct term *e;

	for (unsigned k = 0; k < b->nw; k++)
		if ((e = table_find_hashed(b->t, b->buf + b->w[k].off,
			 b->w[k].len, b->w[k].hash)) == NULL ||
		    term_add(e, b->q) != 0)
			return -1;
	b->nw = b->o = 0;
	/* Each word will be one term more, at most. */
	if (b->t->nterms + BATCH > b->t->nslots / 2 && table_grow(b->t) != 0)
		return -1;
	return 0;
}

/* 8 bytes of a word as memory holds them, from a register that has its
 * first byte lowest. */
static inline uint64_t
native(uint64_t x)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap64(x);
#else
	return x;
#endif
}

/* Completes the word's k-th 8-byte word, in acc. */
static inline void
word_put(struct batch *b, size_t k)
{
	/* Past WORDS_MAX_WORD, the word is only counted. */
	if (k < KEY_WORDS(WORDS_MAX_WORD)) {
		b->buf[b->o + k] = native(b->acc);
		b->h = hash_word(b->h, native(b->acc));
	}
	b->acc = 0;
}

/* Appends the run bytes of chunk (the first lowest) to the word. */
static inline void
word_append(struct batch *b, uint64_t chunk, unsigned run)
{
	unsigned r = b->n % 8;
	size_t k = b->n / 8;

	b->acc |= chunk << 8 * r;
	b->n += run;
	if (r + run >= 8) {
		word_put(b, k);
		b->acc = r != 0 ? chunk >> 8 * (8 - r) : 0;
	}
}

/* Ends the word: into the batch, unless it is too long. */
static inline int
word_end(struct batch *b)
{
	struct word *w;
	size_t n = b->n;

	b->n = 0;
	/* No query can ask for a longer word. */
	if (n > WORDS_MAX_WORD) {
		b->acc = 0;
		b->h = HASH_START;
		return 0;
	}
	if (n % 8 != 0)
		word_put(b, n / 8);
	w = &b->w[b->nw++];
	w->hash = hash_end(b->h, n);
	w->off = b->o;
	w->len = (uint32_t)n;
	__builtin_prefetch(&b->t->slots[w->hash & (b->t->nslots - 1)]);
	b->o += KEY_WORDS(n);
	b->h = HASH_START;
	return b->nw == BATCH ? batch_flush(b) : 0;
}

#define ONES  0x0101010101010101ULL
#define HIGHS (ONES * 0x80)
/* For bytes below 0x80, each byte's high bit set if it is c or above
 * (no byte carries into the next). */
#define AT_LEAST(x, c) ((x) + ONES * (0x80 - (c)))

/*
 * Eight bytes of ASCII, the first lowest: which are letters or digits,
 * as a bit each (bit k for byte k), and all of them folded (tolower).
 */
static inline unsigned
word_bytes(uint64_t x, uint64_t *folded)
{
	uint64_t lower = x | ONES * 0x20;
	uint64_t digit = AT_LEAST(x, '0') & ~AT_LEAST(x, '9' + 1);
	uint64_t alpha = AT_LEAST(lower, 'a') & ~AT_LEAST(lower, 'z' + 1);
	uint64_t upper = AT_LEAST(x, 'A') & ~AT_LEAST(x, 'Z' + 1) & HIGHS;

	*folded = x | upper >> 2;
	/* The high bits, gathered into the top byte, in order. */
	return (unsigned)(((((digit | alpha) & HIGHS) >> 7) *
			      0x0102040810204080ULL) >>
	    56);
}

/*
 * The words of a quote that is all ASCII, most of any corpus: split and
 * folded (tolower) as words_next() and words_fold() would have them,
 * eight bytes at a time, and hashed as they are put together, 8-byte
 * word by 8-byte word, in a register: reading back bytes stored one by
 * one would stall.
 */
static int
index_ascii(struct table *t, uint32_t q, const unsigned char *s, size_t len)
{
	struct batch b;

	b.t = t;
	b.q = q;
	b.nw = b.o = 0;
	b.acc = 0;
	b.h = HASH_START;
	b.n = 0;
	if (t->nterms + BATCH > t->nslots / 2 && table_grow(t) != 0)
		return -1;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = 0, f;
		unsigned bits, p = 0;

		if (len - i >= 8) {
			memcpy(&x, s + i, sizeof(x));
			x = native(x);
		} else {
			for (size_t k = 0; k < len - i; k++)
				x |= (uint64_t)s[i + k] << 8 * k;
		}
		bits = word_bytes(x, &f);
		while (p < 8) {
			unsigned run;

			/* Not in a word: to the next one's start. */
			if (b.n == 0) {
				if ((bits >> p) == 0)
					break;
				p += (unsigned)__builtin_ctz(bits >> p);
			}
			/* Its bytes from p; a 0 bit stops the run, at the
			 * latest bit 8. */
			run = (unsigned)__builtin_ctz(~(bits >> p));
			word_append(&b,
			    run == 8 ? f
				     : (f >> 8 * p) & ((1ULL << 8 * run) - 1),
			    run);
			p += run;
			if (p < 8 && word_end(&b) != 0)
				return -1;
		}
	}
	if (b.n > 0 && word_end(&b) != 0)
		return -1;
	return batch_flush(&b);
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
index_add_quote(struct index *ix, unsigned part, uint32_t q, const char *text,
    size_t len)
{
	char folded[WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
	size_t pos = 0, start, wlen, flen;
	struct table *t;
	struct term *e;

	if (q >= ix->nquotes || part >= INDEX_PARTS) {
		errno = EINVAL;
		return -1;
	}
	t = &ix->words[part];
	if (is_ascii(text, len)) {
		ix->lengths[q] = (uint32_t)len;
		return index_ascii(t, q, (const unsigned char *)text, len);
	}
	ix->lengths[q] = words_length(text, len);
	while (words_next(text, len, &pos, &start, &wlen)) {
		/* No query can ask for a longer word. */
		if (wlen > WORDS_MAX_WORD)
			continue;
		flen = words_fold(text + start, wlen, folded, sizeof(folded));
		if (flen == 0)
			continue;
		if ((e = table_find(t, folded, flen)) == NULL ||
		    term_add(e, q) != 0)
			return -1;
	}
	return 0;
}

int
index_add_tag(struct index *ix, unsigned part, uint32_t q, const char *name,
    size_t len)
{
	struct term *e;

	if (part >= INDEX_PARTS) {
		errno = EINVAL;
		return -1;
	}
	if ((e = table_find(&ix->tags[part], name, len)) == NULL ||
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
	if ((e = table_find(&ix->folded[0], folded, flen)) == NULL ||
	    term_add(e, a) != 0)
		return -1;
	return 0;
}

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
			qsort_r(order + i, j - i, sizeof(*order), compare_terms,
			    t);
	}
	return 0;
}

/* Sorts the table's terms into t->order, unless they are. */
static int
table_sort(struct table *t)
{
	int rc;

	if (t->order != NULL || t->nterms == 0)
		return 0;
	if ((t->order = malloc(t->nterms * sizeof(*t->order))) == NULL)
		return errno;
	for (uint32_t i = 0; i < t->nterms; i++) {
		const unsigned char *k =
		    (const unsigned char *)(t->keys + t->terms[i].off);
		uint64_t p = 0;

		/* Big-endian, zero-padded: memcmp's order on 8 bytes. */
		for (uint32_t j = 0; j < 8; j++)
			p = p << 8 | (j < t->terms[i].len ? k[j] : 0);
		t->order[i].prefix = p;
		t->order[i].term = i;
	}
	if ((rc = sort_terms(t, t->order)) != 0) {
		free(t->order);
		t->order = NULL;
	}
	return rc;
}

int
index_sort(struct index *ix, unsigned part)
{
	int rc;

	if (part >= INDEX_PARTS)
		return EINVAL;
	if ((rc = table_sort(&ix->words[part])) != 0)
		return rc;
	return table_sort(&ix->tags[part]);
}

/* The k-th term of t in key order. */
static const struct term *
nth_term(const struct table *t, uint32_t k)
{
	return &t->terms[t->order[k].term];
}

/* Orders the k-th term of a and the j-th of b as compare_terms() does. */
static int
compare_across(const struct table *a, uint32_t k, const struct table *b,
    uint32_t j)
{
	const struct term *x, *y;
	int c;

	if (a->order[k].prefix != b->order[j].prefix)
		return a->order[k].prefix < b->order[j].prefix ? -1 : 1;
	x = nth_term(a, k);
	y = nth_term(b, j);
	c = memcmp(a->keys + x->off, b->keys + y->off,
	    x->len < y->len ? x->len : y->len);
	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* The entries of a term, ascending: part 1's were added descending. */
static const uint32_t *
term_list(struct term *e, bool descending)
{
	if (e->n == 1)
		return &e->one;
	if (descending)
		for (uint32_t i = 0, j = e->n - 1; i < j; i++, j--) {
			uint32_t x = e->v[i];

			e->v[i] = e->v[j];
			e->v[j] = x;
		}
	return e->v;
}

/*
 * Writes the terms of both parts, t[0] and t[1], in key order: a merge
 * of the two sorted lists, where a term in both has part 0's entries
 * and then part 1's, all of them above.
 */
static int
write_tables(struct table *t, MDB_txn *txn, MDB_dbi dbi)
{
	uint32_t k = 0, j = 0, *both = NULL, bothcap = 0;
	const uint32_t *v;
	struct term *e;
	MDB_cursor *cur;
	MDB_val key, val;
	uint32_t n;
	int rc;

	if ((rc = table_sort(&t[0])) != 0 || (rc = table_sort(&t[1])) != 0)
		return rc;
	/* A cursor stays at the end: mdb_put() would search from the
	 * root for every term. */
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	while (rc == 0 && (k < t[0].nterms || j < t[1].nterms)) {
		int c = k == t[0].nterms ? 1
		    : j == t[1].nterms   ? -1
					 : compare_across(&t[0], k, &t[1], j);

		if (c < 0) {
			e = &t[0].terms[t[0].order[k++].term];
			v = term_list(e, false);
			n = e->n;
			key.mv_data = t[0].keys + e->off;
		} else if (c > 0) {
			e = &t[1].terms[t[1].order[j++].term];
			v = term_list(e, true);
			n = e->n;
			key.mv_data = t[1].keys + e->off;
		} else {
			struct term *e0 = &t[0].terms[t[0].order[k++].term];

			e = &t[1].terms[t[1].order[j++].term];
			n = e0->n + e->n;
			if (n > bothcap) {
				uint32_t *nb = realloc(both, n * sizeof(*nb));

				if (nb == NULL) {
					rc = errno;
					break;
				}
				both = nb;
				bothcap = n;
			}
			memcpy(both, term_list(e0, false),
			    e0->n * sizeof(*both));
			memcpy(both + e0->n, term_list(e, true),
			    e->n * sizeof(*both));
			v = both;
			key.mv_data = t[0].keys + e0->off;
		}
		key.mv_size = e->len;
		val.mv_size = postings_size(v, n);
		rc = mdb_cursor_put(cur, &key, &val, MDB_APPEND | MDB_RESERVE);
		if (rc == 0)
			postings_encode(v, n, val.mv_data);
	}
	mdb_cursor_close(cur);
	free(both);
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
	if ((rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND | MDB_RESERVE)) != 0)
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

	if ((rc = write_tables(ix->words, txn, words)) != 0 ||
	    (rc = write_tables(ix->tags, txn, tags)) != 0 ||
	    (rc = write_tables(ix->folded, txn, folded)) != 0)
		return rc;
	return write_lengths(ix, txn, lengths);
}
