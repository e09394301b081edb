/*
 * Filtered picks, searches, the quote of the day and tags (format 3).
 *
 * A filter is a conjunction of constraints: the quotes of some authors
 * (index ranges), a length range, and posting lists (a word's, a tag's).
 * One constraint drives: the one with the fewest candidates, whose
 * candidates are walked and tested against the others (a posting list by
 * a seek, which its skip entries make cheap; a length by one array read).
 * When the driver is the only constraint, every candidate matches and the
 * count is known, so a uniform pick takes the k-th candidate directly:
 * a one-word query decodes at most one block of its list, a length range
 * is two binary searches over the length-sorted index. Otherwise a pick
 * walks the candidates once, keeping a uniform choice among the matches
 * so far (reservoir sampling), so nothing is allocated whatever the
 * number of matches.
 */
#include "store.h"

#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "lmdb_layout.h"
#include "postings.h"
#include "store_format.h"
#include "store_impl.h"
#include "words.h"

#define MAX_LISTS (STORE_MAX_WORDS + STORE_MAX_TAGS)

enum drive { DRIVE_ALL, DRIVE_AUTHORS, DRIVE_LIST, DRIVE_LENGTH };

struct matcher {
	const struct store *s;
	const struct store_filter *f;
	struct postings lists[MAX_LISTS];
	size_t nlists;
	bool lengths;    /* the filter bounds the length */
	uint32_t lo, hi; /* then its range of positions in s->sorted */
	bool empty;      /* a word or tag no quote has, an empty range */
	enum drive drive;
	size_t list;         /* DRIVE_LIST: which */
	uint64_t size;       /* candidates the driver yields */
	bool alone;          /* the driver is the only constraint */
	uint32_t at;         /* DRIVE_ALL, DRIVE_LENGTH: the next one */
	uint32_t range, off; /* DRIVE_AUTHORS: the next one */
	bool started;        /* DRIVE_LIST: the cursor's entry was yielded */
};

static uint32_t
u32_at(const unsigned char *p, uint32_t i)
{
	uint32_t v;

	memcpy(&v, p + (size_t)i * sizeof(v), sizeof(v));
	return v;
}

/* The quote at position i of the length-sorted index, and its length. */
static int
sorted_at(const struct store *s, uint32_t i, uint32_t *q, uint32_t *len)
{
	*q = u32_at(s->sorted, i);
	if (*q >= s->nquotes)
		return STORE_ECORRUPT;
	*len = u32_at(s->bylength, *q);
	return 0;
}

/* The first position in s->sorted whose length is at least min. */
static int
length_bound(const struct store *s, uint64_t min, uint32_t *pos)
{
	uint32_t lo = 0, hi = (uint32_t)s->nquotes, q, len;
	int rc;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if ((rc = sorted_at(s, mid, &q, &len)) != 0)
			return rc;
		if (len < min)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

/* Opens the posting list keyed k in dbi; *found false if none. */
static int
open_list(const struct store *s, MDB_dbi dbi, const struct store_key *k,
    struct postings *pl, bool *found)
{
	MDB_val key = {k->len, (void *)k->p}, val;
	int rc;

	*found = false;
	if (k->len == 0)
		return 0;
	rc = mdb_get(s->txn, dbi, &key, &val);
	if (rc == MDB_NOTFOUND || rc == MDB_BAD_VALSIZE)
		return 0;
	if (rc != 0)
		return rc;
	if (!store_inside(s, val.mv_data, val.mv_size))
		return STORE_EBOUNDS;
	if (postings_open(pl, val.mv_data, val.mv_size, (uint32_t)s->nquotes) !=
		0 ||
	    pl->count > s->nquotes)
		return STORE_ECORRUPT;
	*found = true;
	return 0;
}

/*
 * Sets m up for f. ordered: the candidates must come in index order (a
 * search), so the length index cannot drive.
 */
static int
matcher_open(struct matcher *m, const struct store *s,
    const struct store_filter *f, bool ordered)
{
	uint64_t authors = 0;
	unsigned constraints = 0;
	bool found;
	int rc;

	memset(m, 0, sizeof(*m));
	m->s = s;
	m->f = f;
	for (size_t i = 0; i < f->nwords + f->ntags; i++) {
		const struct store_key *k =
		    i < f->nwords ? &f->words[i] : &f->tags[i - f->nwords];

		if ((rc = open_list(s, i < f->nwords ? s->words : s->tags, k,
			 &m->lists[m->nlists], &found)) != 0)
			return rc;
		if (!found) {
			m->empty = true;
			return 0;
		}
		m->nlists++;
		constraints++;
	}
	if (f->min_length > 0 || f->max_length > 0) {
		m->lengths = true;
		constraints++;
		if ((rc = length_bound(s, f->min_length, &m->lo)) != 0)
			return rc;
		m->hi = (uint32_t)s->nquotes;
		if (f->max_length > 0 &&
		    (rc = length_bound(s, (uint64_t)f->max_length + 1,
			 &m->hi)) != 0)
			return rc;
		if (m->lo >= m->hi) {
			m->empty = true;
			return 0;
		}
	}
	for (uint32_t i = 0; i < f->nauthors; i++)
		authors += f->count[i];
	if (f->nauthors > 0)
		constraints++;

	/* Any constraint drives rather than all quotes, even one that
	 * every quote meets: alone, it is then picked from directly. */
	m->drive = DRIVE_ALL;
	m->size = s->nquotes;
	if (f->nauthors > 0) {
		m->drive = DRIVE_AUTHORS;
		m->size = authors;
	}
	for (size_t i = 0; i < m->nlists; i++)
		if (m->drive == DRIVE_ALL || m->lists[i].count < m->size) {
			m->drive = DRIVE_LIST;
			m->list = i;
			m->size = m->lists[i].count;
		}
	if (!ordered && m->lengths &&
	    (m->drive == DRIVE_ALL || m->hi - m->lo < m->size)) {
		m->drive = DRIVE_LENGTH;
		m->size = m->hi - m->lo;
		m->at = m->lo;
	}
	m->alone =
	    constraints == 0 || (constraints == 1 && m->drive != DRIVE_ALL);
	return 0;
}

/* Positions the driver at its first candidate at or after index from. */
static void
matcher_start(struct matcher *m, uint32_t from)
{
	const struct store_filter *f = m->f;

	switch (m->drive) {
	case DRIVE_ALL:
		m->at = from;
		break;
	case DRIVE_AUTHORS:
		for (m->range = 0, m->off = 0; m->range < f->nauthors;
		     m->range++) {
			if ((uint64_t)f->first[m->range] + f->count[m->range] >
			    from) {
				m->off = from > f->first[m->range]
				    ? from - f->first[m->range]
				    : 0;
				break;
			}
		}
		break;
	case DRIVE_LIST:
		/* Back to the start too, after a count. */
		m->started = false;
		if (!postings_seek(&m->lists[m->list], from))
			m->lists[m->list].pos = m->lists[m->list].count;
		break;
	case DRIVE_LENGTH:
		m->at = m->lo;
		break;
	}
}

/* The driver's next candidate: 1, 0 at the end, or an error. */
static int
matcher_next(struct matcher *m, uint32_t *q)
{
	const struct store_filter *f = m->f;
	struct postings *pl;
	uint32_t len;

	switch (m->drive) {
	case DRIVE_ALL:
		if (m->at >= m->s->nquotes)
			return 0;
		*q = m->at++;
		return 1;
	case DRIVE_AUTHORS:
		while (m->range < f->nauthors && m->off >= f->count[m->range]) {
			m->range++;
			m->off = 0;
		}
		if (m->range == f->nauthors)
			return 0;
		*q = f->first[m->range] + m->off++;
		return 1;
	case DRIVE_LIST:
		pl = &m->lists[m->list];
		if (m->started)
			postings_next(pl);
		m->started = true;
		if (pl->bad)
			return STORE_ECORRUPT;
		if (pl->pos >= pl->count)
			return 0;
		*q = pl->cur;
		return 1;
	case DRIVE_LENGTH:
		if (m->at >= m->hi)
			return 0;
		return sorted_at(m->s, m->at++, q, &len) != 0 ? STORE_ECORRUPT
							      : 1;
	}
	return 0;
}

/* Whether candidate q passes every constraint but the driver's. */
static int
matcher_test(struct matcher *m, uint32_t q)
{
	const struct store_filter *f = m->f;

	if (m->drive != DRIVE_AUTHORS && f->nauthors > 0) {
		uint32_t i;

		for (i = 0; i < f->nauthors; i++)
			if (q >= f->first[i] && q - f->first[i] < f->count[i])
				break;
		if (i == f->nauthors)
			return 0;
	}
	if (m->drive != DRIVE_LENGTH && m->lengths) {
		uint32_t len = u32_at(m->s->bylength, q);

		if (len < f->min_length ||
		    (f->max_length > 0 && len > f->max_length))
			return 0;
	}
	for (size_t i = 0; i < m->nlists; i++) {
		struct postings *pl = &m->lists[i];

		if (m->drive == DRIVE_LIST && i == m->list)
			continue;
		if (!postings_seek(pl, q))
			return pl->bad ? STORE_ECORRUPT : 0;
		if (pl->cur != q)
			return 0;
	}
	return 1;
}

/* The next match: 1, 0 at the end, or an error. */
static int
matcher_match(struct matcher *m, uint32_t *q)
{
	int rc;

	while ((rc = matcher_next(m, q)) == 1)
		if (m->alone || (rc = matcher_test(m, *q)) != 0)
			return rc;
	return rc;
}

/* The k-th candidate of a driver that is alone. */
static int
matcher_nth(struct matcher *m, uint64_t k, uint32_t *q)
{
	const struct store_filter *f = m->f;
	struct postings *pl;
	uint32_t len;

	switch (m->drive) {
	case DRIVE_ALL:
		*q = (uint32_t)k;
		return 0;
	case DRIVE_AUTHORS:
		for (uint32_t i = 0; i < f->nauthors; i++) {
			if (k < f->count[i]) {
				*q = f->first[i] + (uint32_t)k;
				return 0;
			}
			k -= f->count[i];
		}
		return STORE_ECORRUPT;
	case DRIVE_LIST:
		pl = &m->lists[m->list];
		if (!postings_nth(pl, (uint32_t)k))
			return STORE_ECORRUPT;
		*q = pl->cur;
		return 0;
	case DRIVE_LENGTH:
		return sorted_at(m->s, m->lo + (uint32_t)k, q, &len);
	}
	return STORE_ECORRUPT;
}

/* Every match, counted. */
static int
matcher_count(struct matcher *m, uint64_t *n)
{
	uint32_t q;
	int rc;

	*n = 0;
	if (m->empty)
		return 0;
	if (m->alone) {
		*n = m->size;
		return 0;
	}
	matcher_start(m, 0);
	while ((rc = matcher_match(m, &q)) == 1)
		(*n)++;
	return rc;
}

static bool
filter_empty(const struct store_filter *f)
{
	return f->min_length == 0 && f->max_length == 0 && f->nwords == 0 &&
	    f->ntags == 0;
}

/* An author's record, by index, as its quote range. */
static int
author_range(const struct store *s, uint32_t index, uint32_t *first,
    uint32_t *count)
{
	struct store_author a;
	MDB_val key = {sizeof(index), &index};
	int rc;

	if ((rc = store_get_author(s, s->byindex, &key, &a)) != 0)
		return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	*first = a.first;
	*count = a.count;
	return 0;
}

int
store_find_author(const struct store *s, const char *name, size_t len,
    int exact, struct store_filter *f)
{
	char folded[LMDB_MAX_KEYSIZE + 1];
	struct store_key k;
	struct postings pl;
	MDB_val key = {len, (void *)name}, val;
	struct store_author a;
	bool found;
	int rc;

	f->nauthors = 0;
	if (len == 0)
		return STORE_ENOMATCH;
	rc = mdb_get(s->txn, s->authors, &key, &val);
	if (rc == 0) {
		if (!store_inside(s, val.mv_data, val.mv_size))
			return STORE_EBOUNDS;
		if (val.mv_size < sizeof(a))
			return STORE_ECORRUPT;
		memcpy(&a, val.mv_data, sizeof(a));
		if (a.count == 0 || (uint64_t)a.first + a.count > s->nquotes)
			return STORE_ECORRUPT;
		f->first[0] = a.first;
		f->count[0] = a.count;
		f->nauthors = 1;
		return 0;
	}
	if (rc != MDB_NOTFOUND && rc != MDB_BAD_VALSIZE)
		return rc;
	if (exact)
		return STORE_ENOMATCH;
	/* A name that folds to more than a key holds is in no index. */
	k.p = folded;
	k.len = words_fold_name(name, len, folded, LMDB_MAX_KEYSIZE);
	if ((rc = open_list(s, s->folded, &k, &pl, &found)) != 0)
		return rc;
	if (!found)
		return STORE_ENOMATCH;
	pl.limit = (uint32_t)s->nauthors;
	if (pl.cur >= pl.limit)
		return STORE_ECORRUPT;
	do {
		if ((rc = author_range(s, pl.cur, &f->first[f->nauthors],
			 &f->count[f->nauthors])) != 0)
			return rc;
		f->nauthors++;
	} while (f->nauthors < STORE_MAX_NAMESAKES && postings_next(&pl));
	return pl.bad ? STORE_ECORRUPT : 0;
}

int
store_pick_filtered(const struct store *s, const struct store_filter *f,
    struct rng *r, struct store_quote *out)
{
	struct matcher m;
	uint64_t seen = 0;
	uint32_t q = 0, c;
	int rc;

	if (filter_empty(f)) {
		if (f->nauthors == 0)
			return store_pick(s, NULL, 0, r, out);
		/* The original rule over the authors found. */
		c = (uint32_t)rng_below(r, f->nauthors);
		q = f->first[c] + (uint32_t)rng_below(r, f->count[c]);
		return store_get_quote(s, q, out);
	}
	if ((rc = matcher_open(&m, s, f, false)) != 0)
		return rc;
	if (m.empty)
		return STORE_ENOMATCH;
	if (m.alone) {
		if ((rc = matcher_nth(&m, rng_below(r, m.size), &q)) != 0)
			return rc;
		return store_get_quote(s, q, out);
	}
	matcher_start(&m, 0);
	while ((rc = matcher_match(&m, &c)) == 1)
		if (rng_below(r, ++seen) == 0)
			q = c;
	if (rc != 0)
		return rc;
	return seen == 0 ? STORE_ENOMATCH : store_get_quote(s, q, out);
}

int
store_search(const struct store *s, const struct store_filter *f, uint32_t from,
    size_t max, int (*fn)(void *arg, const struct store_quote *q), void *arg,
    uint32_t *next, uint64_t *total)
{
	struct store_quote out;
	struct matcher m;
	size_t n = 0;
	uint32_t q;
	int rc;

	*next = UINT32_MAX;
	*total = 0;
	if ((rc = matcher_open(&m, s, f, true)) != 0)
		return rc;
	if (m.empty)
		return 0;
	/* A length range alone has its count in the length index. */
	if (m.lengths && m.nlists == 0 && f->nauthors == 0)
		*total = m.hi - m.lo;
	else if ((rc = matcher_count(&m, total)) != 0)
		return rc;
	matcher_start(&m, from);
	while ((rc = matcher_match(&m, &q)) == 1) {
		if (n == max) {
			*next = q;
			break;
		}
		if ((rc = store_get_quote(s, q, &out)) != 0)
			return rc;
		if (fn(arg, &out) != 0)
			return 0;
		n++;
	}
	return rc < 0 ? rc : 0;
}

static uint64_t
mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

int
store_daily(const struct store *s, const struct store_filter *f, int64_t day,
    struct store_quote *out)
{
	struct matcher m;
	uint64_t n, a, b, d, k;
	uint32_t q;
	int rc;

	if ((rc = matcher_open(&m, s, f, false)) != 0)
		return rc;
	if ((rc = matcher_count(&m, &n)) != 0)
		return rc;
	if (n == 0)
		return STORE_ENOMATCH;
	/* k = (a * day + b) mod n with a coprime to n: a bijection of the
	 * day modulo n, so n days in a row give n different quotes. */
	a = n == 1 ? 0 : 1 + mix(s->checksum) % (n - 1);
	while (n > 1 && gcd(a, n) != 1)
		a = a + 1 < n ? a + 1 : 1;
	b = mix(s->checksum ^ 0x5155455445524144ULL) % n;
	d = (uint64_t)(day % (int64_t)n + (int64_t)n) % n;
	k = (a * d % n + b) % n;
	if (m.alone) {
		if ((rc = matcher_nth(&m, k, &q)) != 0)
			return rc;
		return store_get_quote(s, q, out);
	}
	matcher_start(&m, 0);
	while ((rc = matcher_match(&m, &q)) == 1)
		if (k-- == 0)
			return store_get_quote(s, q, out);
	return rc < 0 ? rc : STORE_ECORRUPT;
}

int
store_tags(const struct store *s, const char *after, size_t afterlen,
    size_t max,
    int (*fn)(void *arg, const char *name, size_t len, uint32_t count),
    void *arg, int *more)
{
	MDB_cursor *cur;
	MDB_val key, val;
	struct postings pl;
	size_t n = 0;
	int rc;

	*more = 0;
	if ((rc = mdb_cursor_open(s->txn, s->tags, &cur)) != 0)
		return rc;
	rc = store_cursor_after(cur, after, afterlen, &key, &val);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (n == max) {
			*more = 1;
			break;
		}
		if (!store_inside(s, key.mv_data, key.mv_size) ||
		    !store_inside(s, val.mv_data, val.mv_size)) {
			rc = STORE_EBOUNDS;
			break;
		}
		if (postings_open(&pl, val.mv_data, val.mv_size,
			(uint32_t)s->nquotes) != 0) {
			rc = STORE_ECORRUPT;
			break;
		}
		if (fn(arg, key.mv_data, key.mv_size, pl.count) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
