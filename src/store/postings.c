/*
 * The posting list codec: varint gaps in blocks of STORE_BLOCK, with a
 * skip entry a block so that the k-th entry and seeks decode one block.
 */
#include "postings.h"

#include <string.h>

#include "store_format.h"

static bool broken(struct postings *pl);

static bool
get_varint(struct postings *pl, uint32_t *v)
{
	uint32_t x = 0;

	for (int shift = 0; shift < 35; shift += 7) {
		unsigned char c;

		if (pl->at >= pl->end)
			break;
		c = *pl->at++;
		if (shift == 28 && c > 0x0f)
			break;
		x |= (uint32_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return broken(pl);
}

static uint32_t
u32_at(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Ends the cursor as broken. */
static bool
broken(struct postings *pl)
{
	pl->bad = true;
	pl->pos = pl->count;
	return false;
}

/* Positions at the first entry of block b. */
static bool
enter_block(struct postings *pl, uint32_t b)
{
	uint32_t off;

	pl->pos = b * STORE_BLOCK;
	if (pl->skip == NULL) {
		pl->at = pl->data;
		if (!get_varint(pl, &pl->cur))
			return false;
	} else {
		pl->cur = u32_at(pl->skip + 8 * (size_t)b);
		off = u32_at(pl->skip + 8 * (size_t)b + 4);
		if (off > (size_t)(pl->end - pl->data))
			return broken(pl);
		pl->at = pl->data + off;
	}
	if (pl->cur >= pl->limit)
		return broken(pl);
	return true;
}

int
postings_open(struct postings *pl, const void *p, size_t len, uint32_t limit)
{
	memset(pl, 0, sizeof(*pl));
	pl->at = p;
	pl->end = (const unsigned char *)p + len;
	pl->limit = limit;
	if (!get_varint(pl, &pl->count) || pl->count == 0) {
		broken(pl);
		return -1;
	}
	if (pl->count > STORE_BLOCK) {
		pl->nblocks = (pl->count - 1) / STORE_BLOCK + 1;
		if ((size_t)(pl->end - pl->at) / 8 < pl->nblocks) {
			broken(pl);
			return -1;
		}
		pl->skip = pl->at;
		pl->data = pl->at + 8 * (size_t)pl->nblocks;
	} else {
		pl->nblocks = 1;
		pl->data = pl->at;
	}
	return enter_block(pl, 0) ? 0 : -1;
}

bool
postings_next(struct postings *pl)
{
	uint32_t gap;

	if (pl->pos >= pl->count)
		return false;
	if (++pl->pos == pl->count)
		return false;
	if (pl->pos % STORE_BLOCK == 0)
		return enter_block(pl, pl->pos / STORE_BLOCK);
	if (!get_varint(pl, &gap))
		return false;
	/* cur < limit holds, so this is cur + gap + 1 >= limit. */
	if (gap >= pl->limit - pl->cur - 1)
		return broken(pl);
	pl->cur += gap + 1;
	return true;
}

bool
postings_nth(struct postings *pl, uint32_t k)
{
	if (pl->bad || k >= pl->count)
		return false;
	if (k < pl->pos || k / STORE_BLOCK != pl->pos / STORE_BLOCK)
		if (!enter_block(pl, k / STORE_BLOCK))
			return false;
	while (pl->pos < k)
		if (!postings_next(pl))
			return false;
	return true;
}

bool
postings_seek(struct postings *pl, uint32_t target)
{
	uint32_t lo, hi;

	if (pl->bad)
		return false;
	if (pl->pos < pl->count && pl->cur == target)
		return true;
	/* Back, or past this block: find the last block that starts at or
	 * before target. */
	if (pl->pos >= pl->count || pl->cur > target ||
	    (pl->skip != NULL && pl->pos / STORE_BLOCK + 1 < pl->nblocks &&
		u32_at(pl->skip + 8 * (size_t)(pl->pos / STORE_BLOCK + 1)) <=
		    target)) {
		lo = 0;
		hi = pl->nblocks;
		while (pl->skip != NULL && hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (u32_at(pl->skip + 8 * (size_t)mid) <= target)
				lo = mid;
			else
				hi = mid;
		}
		if (!enter_block(pl, lo))
			return false;
	}
	while (pl->cur < target)
		if (!postings_next(pl))
			return false;
	return true;
}

static size_t
varint_size(uint32_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static unsigned char *
put_varint(unsigned char *p, uint32_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

size_t
postings_size(const uint32_t *v, uint32_t n)
{
	size_t size = varint_size(n);

	if (n > STORE_BLOCK)
		size += 8 * (size_t)((n - 1) / STORE_BLOCK + 1);
	else
		size += varint_size(v[0]);
	for (uint32_t i = 1; i < n; i++)
		if (n <= STORE_BLOCK || i % STORE_BLOCK != 0)
			size += varint_size(v[i] - v[i - 1] - 1);
	return size;
}

size_t
postings_encode(const uint32_t *v, uint32_t n, unsigned char *out)
{
	unsigned char *p = put_varint(out, n), *data, *skip = NULL;

	if (n > STORE_BLOCK) {
		skip = p;
		data = p + 8 * (size_t)((n - 1) / STORE_BLOCK + 1);
	} else {
		data = p;
	}
	p = data;
	for (uint32_t i = 0; i < n; i++) {
		if (skip != NULL && i % STORE_BLOCK == 0) {
			uint32_t off = (uint32_t)(p - data);

			memcpy(skip, &v[i], 4);
			memcpy(skip + 4, &off, 4);
			skip += 8;
		} else if (i == 0) {
			p = put_varint(p, v[0]);
		} else {
			p = put_varint(p, v[i] - v[i - 1] - 1);
		}
	}
	return (size_t)(p - out);
}

int
postings_check(const void *p, size_t len, uint32_t limit,
    void (*fn)(void *arg, uint32_t v), void *arg)
{
	struct postings pl;
	const unsigned char *prev_end;
	uint32_t n = 0, prev = 0;

	if (postings_open(&pl, p, len, limit) != 0)
		return -1;
	/* Where block 0's gaps start: right after the header or the first
	 * index. */
	if (pl.skip != NULL && u32_at(pl.skip + 4) != 0)
		return -1;
	do {
		if (n > 0 && pl.cur <= prev)
			return -1;
		prev = pl.cur;
		fn(arg, pl.cur);
		n++;
		prev_end = pl.at;
		if (n < pl.count && n % STORE_BLOCK == 0 &&
		    u32_at(pl.skip + 8 * (size_t)(n / STORE_BLOCK) + 4) !=
			(size_t)(prev_end - pl.data))
			return -1;
	} while (postings_next(&pl));
	if (pl.bad || n != pl.count)
		return -1;
	/* Nothing after the last block's gaps. */
	return pl.at == pl.end ? 0 : -1;
}
