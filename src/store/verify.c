/*
 * store_verify(): the complete check of a database file that may be
 * hostile. LMDB trusts its file, so first every page a reader can reach
 * is checked from the raw bytes (verify_pages.c); only then is the file
 * opened with LMDB, and every record and index checked here against the
 * format (store_format.h) and the checksum.
 */
#include "store.h"

#include <errno.h>
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
#include "verify_impl.h"
#include "words.h"

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
index_quote(struct verify *v, struct store *s, uint32_t index, const char *text)
{
	char folded[WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
	size_t len = strlen(text), pos = 0, start, wlen, flen, n = 0;
	uint32_t want;

	memcpy(&want, s->bylength + (size_t)index * 4, 4);
	if (words_length(text, len) != want)
		return verify_fail(v, STORE_ECORRUPT,
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
check_index(struct verify *v, struct store *s, MDB_dbi dbi, const char *what,
    uint32_t limit, void (*fn)(void *, uint32_t))
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
			rc = verify_fail(v, STORE_ECORRUPT,
			    "%s: key %llu is not one "
			    "the importer writes",
			    what, (ull)n);
			break;
		}
		v->term = XXH3_64bits(key.mv_data, key.mv_size);
		if (postings_check(val.mv_data, val.mv_size, limit, fn, v) !=
		    0) {
			rc = verify_fail(v, STORE_ECORRUPT,
			    "%s: key %llu: a bad "
			    "posting list",
			    what, (ull)n);
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
			return verify_fail(v, STORE_ECORRUPT,
			    "lengths: entry %llu: quote %u of %llu", (ull)i, q,
			    (ull)s->nquotes);
		memcpy(&len, s->bylength + (size_t)q * 4, 4);
		/* Strictly ascending pairs of nquotes entries below
		 * nquotes: a permutation. */
		if (i > 0 && (len < plen || (len == plen && q <= prev)))
			return verify_fail(v, STORE_ECORRUPT,
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
	    (rc = check_index(v, s, s->folded, "folded", (uint32_t)s->nauthors,
		 add_folded)) != 0)
		return rc;
	if (v->got_words != v->want_words)
		return verify_fail(v, STORE_ECORRUPT,
		    "words: the index is not the quotes' words");
	if (v->got_folded != v->want_folded)
		return verify_fail(v, STORE_ECORRUPT,
		    "folded: the index is not the authors' names");
	return 0;
}

/* The author at the authors cursor, and its twin in byindex. */
static int
check_author(struct verify *v, struct store *s, uint32_t index, uint32_t first,
    const MDB_val *name, const MDB_val *rec, const MDB_val *key2,
    const MDB_val *rec2, struct store_author *a)
{
	struct store_author b;
	MDB_val again;

	char folded[LMDB_MAX_KEYSIZE + 1];
	size_t flen;

	if (!good_text(name->mv_data, name->mv_size, STORE_MAX_AUTHOR))
		return verify_fail(v, STORE_ECORRUPT,
		    "authors: author %u: a bad name", index);
	/* In the folded index unless its folding is too long a key. */
	flen = words_fold_name(name->mv_data, name->mv_size, folded,
	    LMDB_MAX_KEYSIZE);
	if (flen > 0)
		v->want_folded += pair_hash(XXH3_64bits(folded, flen), index);
	if (rec->mv_size != sizeof(*a))
		return verify_fail(v, STORE_ECORRUPT,
		    "authors: author %u: a record of %zu bytes", index,
		    rec->mv_size);
	memcpy(a, rec->mv_data, sizeof(*a));
	if (a->index != index || a->first != first || a->count == 0 ||
	    a->reserved != 0 || a->count > s->nquotes - first)
		return verify_fail(v, STORE_ECORRUPT,
		    "authors: author %u: a bad record", index);
	if (key2->mv_size != sizeof(index) ||
	    memcmp(key2->mv_data, &index, sizeof(index)) != 0 ||
	    rec2->mv_size != sizeof(b) + name->mv_size)
		return verify_fail(v, STORE_ECORRUPT,
		    "byindex: author %u: a bad record", index);
	memcpy(&b, rec2->mv_data, sizeof(b));
	if (memcmp(&b, a, sizeof(b)) != 0 ||
	    memcmp((const char *)rec2->mv_data + sizeof(b), name->mv_data,
		name->mv_size) != 0)
		return verify_fail(v, STORE_ECORRUPT,
		    "byindex: author %u differs from authors", index);
	/* Lookups find what the walk found. */
	if (mdb_get(s->txn, s->authors, (MDB_val *)name, &again) != 0 ||
	    again.mv_data != rec->mv_data || again.mv_size != rec->mv_size ||
	    mdb_get(s->txn, s->byindex, (MDB_val *)key2, &again) != 0 ||
	    again.mv_data != rec2->mv_data || again.mv_size != rec2->mv_size)
		return verify_fail(v, STORE_ECORRUPT,
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
		return verify_fail(v, STORE_ECORRUPT,
		    "quotes: quote %u is missing", index);
	if (mdb_get(s->txn, s->quotes, (MDB_val *)key, &again) != 0 ||
	    again.mv_data != val->mv_data || again.mv_size != val->mv_size)
		return verify_fail(v, STORE_ECORRUPT,
		    "quote %u: a lookup finds another record", index);
	r = quotes__quote_reply__unpack(NULL, val->mv_size, val->mv_data);
	if (r == NULL)
		return verify_fail(v, STORE_ECORRUPT,
		    "quotes: quote %u is not a QuoteReply", index);
	if (!good_text(r->quote, strlen(r->quote), STORE_MAX_QUOTE))
		rc = verify_fail(v, STORE_ECORRUPT,
		    "quotes: quote %u: a bad text", index);
	else if (strlen(r->author) != author->mv_size ||
	    memcmp(r->author, author->mv_data, author->mv_size) != 0)
		rc = verify_fail(v, STORE_ECORRUPT,
		    "quotes: quote %u: not by its author", index);
	/* Exactly the bytes the importer would write: nothing extra to
	 * send, and the reply is what its fields say. */
	else if (quotes__quote_reply__get_packed_size(r) != val->mv_size ||
	    (packed = malloc(val->mv_size)) == NULL ||
	    quotes__quote_reply__pack(r, packed) != val->mv_size ||
	    memcmp(packed, val->mv_data, val->mv_size) != 0)
		rc = verify_fail(v, STORE_ECORRUPT,
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
			rc = verify_fail(v, STORE_ECORRUPT,
			    "author %u is missing", i);
			goto done;
		}
		if ((rc = check_author(v, s, i, first, &name, &rec, &key2,
			 &rec2, &a)) != 0)
			goto done;
		for (; qi < first + a.count; qi++) {
			op = qi == 0 ? MDB_FIRST : MDB_NEXT;
			if ((rc = mdb_cursor_get(cq, &qkey, &qval, op)) != 0) {
				rc = verify_fail(v, STORE_ECORRUPT,
				    "quotes: quote %u is missing", qi);
				goto done;
			}
			if ((rc = check_quote(v, s, qi, &qkey, &qval, &name)) !=
			    0)
				goto done;
		}
		first += a.count;
	}
	/* store_open() matched the counts to the databases' entries. */
	if (first != s->nquotes) {
		rc = verify_fail(v, STORE_ECORRUPT,
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
		 * against a crafted file: fuzzing goes past it to what is
		 * served from a file that carries the right one. */
#ifndef QUOTERD_FUZZ
	if (sum != s->checksum)
		rc = verify_fail(v, STORE_ECHECKSUM,
		    "content checksum %016llx, the meta says %016llx", (ull)sum,
		    (ull)s->checksum);
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
		return verify_fail(&v, errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return verify_fail(&v, MDB_INVALID, "not a regular file");
	if (st.st_size == 0)
		return verify_fail(&v, MDB_INVALID, "an empty file");
	v.size = (uint64_t)st.st_size;
	if ((uint64_t)(size_t)v.size != v.size)
		return verify_fail(&v, EFBIG, "the file is too large to map");
	/* The walk reads the pages as LMDB will see them: mapped. */
	map = mmap(NULL, (size_t)v.size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return verify_fail(&v, errno, "mmap: %s", strerror(errno));
	v.map = map;
	if ((rc = verify_pages(&v)) != 0)
		goto done;

	if ((rc = store_open_fd(fd, &s)) != 0) {
		verify_fail(&v, rc, "%s", store_strerror(rc));
		goto done;
	}
	/* The very file walked above: one LMDB read, one of ours. */
	if (s->size != v.size) {
		rc = verify_fail(&v, STORE_ECORRUPT, "the file changed size");
		goto done;
	}
	/* A quote of STORE_MAX_QUOTE bytes has at most half as many
	 * words. */
	v.nhashes = STORE_MAX_QUOTE / 2 + 1;
	if ((v.hashes = malloc(v.nhashes * sizeof(*v.hashes))) == NULL) {
		rc = verify_fail(&v, errno, "%s", strerror(errno));
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
		verify_fail(&v, rc, "%s", store_strerror(rc));
	store_close(s);
	free(v.hashes);
	free(v.seen);
	if (map != MAP_FAILED)
		munmap(map, (size_t)v.size);
	return rc;
}
