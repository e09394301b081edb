/*
 * quotes.Quoter and grpc.health.v1.Health. Requests are decoded with
 * protobuf-c into the caller's arena; GetQuote's reply is the stored,
 * pre-encoded QuoteReply, sent as a slice of the map that holds a
 * reference to its database. Every request's strings are checked on the
 * wire before decoding (wire.h), so the C strings seen here are whole.
 */
#include "service.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/slice.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quote_service.pb-c.h"
#include "utf8.h"
#include "wire.h"
#include "words.h"

#define AUTHORS_PAGE_DEFAULT 100
#define AUTHORS_PAGE_MAX 1000
#define SEARCH_PAGE_DEFAULT 20
#define SEARCH_PAGE_MAX 1000
#define TAGS_PAGE_DEFAULT 100
#define TAGS_PAGE_MAX 1000

/*
 * Inflates a compressed request into at most max bytes, stopping as soon
 * as it would be more: gRPC's own reader inflates all of it first, and a
 * few kilobytes of gzip can inflate to megabytes.
 */
static grpc_status_code
inflate_body(grpc_byte_buffer *request, size_t max, grpc_slice *body,
    const char **why)
{
	grpc_slice_buffer *in = &request->data.raw.slice_buffer;
	grpc_status_code status = GRPC_STATUS_OK;
	unsigned char *out, spare;
	z_stream z;
	size_t i;
	int rc = Z_OK;

	memset(&z, 0, sizeof(z));
	/* gzip: a gzip header; deflate: a zlib one (as gRPC sends). */
	if (inflateInit2(&z, request->data.raw.compression ==
		GRPC_COMPRESS_GZIP ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK) {
		*why = "out of memory";
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	if ((out = malloc(max > 0 ? max : 1)) == NULL) {
		inflateEnd(&z);
		*why = "out of memory";
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	z.next_out = out;
	z.avail_out = (uInt)max;
	for (i = 0; i < in->count && rc != Z_STREAM_END; i++) {
		z.next_in = GRPC_SLICE_START_PTR(in->slices[i]);
		z.avail_in = (uInt)GRPC_SLICE_LENGTH(in->slices[i]);
		while (z.avail_in > 0 && rc != Z_STREAM_END) {
			rc = inflate(&z, Z_NO_FLUSH);
			if (rc != Z_OK && rc != Z_STREAM_END &&
			    !(rc == Z_BUF_ERROR && z.avail_out == 0))
				break;
			if (z.avail_out == 0 && rc != Z_STREAM_END) {
				/* Full: one byte more means over the limit. */
				z.next_out = &spare;
				z.avail_out = 1;
				rc = inflate(&z, Z_NO_FLUSH);
				if (z.avail_out == 0) {
					status = GRPC_STATUS_RESOURCE_EXHAUSTED;
					*why = "request inflates past "
					       "max_request_size";
					goto done;
				}
			}
		}
		if (rc != Z_OK && rc != Z_STREAM_END)
			break;
	}
	if (rc != Z_STREAM_END) {
		status = GRPC_STATUS_INVALID_ARGUMENT;
		*why = "cannot decompress the request";
	}
done:
	if (status == GRPC_STATUS_OK)
		*body = grpc_slice_new(out, max - z.avail_out, free);
	else
		free(out);
	inflateEnd(&z);
	return status;
}

grpc_status_code
service_read_body(grpc_byte_buffer *request, size_t max, grpc_slice *body,
    const char **why)
{
	grpc_byte_buffer_reader reader;

	if (request == NULL) {
		*why = "no request message";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (request->type == GRPC_BB_RAW &&
	    request->data.raw.compression != GRPC_COMPRESS_NONE)
		return inflate_body(request, max, body, why);
	if (!grpc_byte_buffer_reader_init(&reader, request)) {
		*why = "cannot read the request";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	*body = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	return GRPC_STATUS_OK;
}

/* The decoded request and GRPC_STATUS_OK in *status, or NULL with *status
 * and *why saying why not. */
static ProtobufCMessage *
decode(const struct request_ctx *ctx, grpc_byte_buffer *request,
    const ProtobufCMessageDescriptor *desc, grpc_status_code *status,
    const char **why)
{
	ProtobufCMessage *msg = NULL;
	enum wire_result wr;
	grpc_slice body;

	if ((*status = service_read_body(request, ctx->max_request, &body,
	    why)) != GRPC_STATUS_OK)
		return NULL;
	*status = GRPC_STATUS_INVALID_ARGUMENT;
	/* Strings are checked by their length on the wire: after
	 * decoding, a NUL would hide the rest of one (wire.h). */
	wr = wire_check_strings(desc, GRPC_SLICE_START_PTR(body),
	    GRPC_SLICE_LENGTH(body));
	if (wr == WIRE_OK)
		msg = protobuf_c_message_unpack(desc, ctx->allocator,
		    GRPC_SLICE_LENGTH(body), GRPC_SLICE_START_PTR(body));
	grpc_slice_unref(body);
	if (wr != WIRE_OK)
		*why = wire_strerror(wr);
	else if (msg == NULL)
		*why = "request does not decode";
	else
		*status = GRPC_STATUS_OK;
	return msg;
}

static grpc_byte_buffer *
pack(const ProtobufCMessage *msg)
{
	grpc_slice slice = grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

/*
 * A request's filters, checked, as a store filter. Folded words go to
 * buf, the caller's: nothing is allocated. *unknown tells that an author
 * was named and none matched (f then has no author constraint).
 */
struct filter_buf {
	char words[STORE_MAX_WORDS][WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
};

static grpc_status_code
make_filter(const struct request_ctx *ctx, const char *author, int exact,
    const char *query, uint32_t min_length, uint32_t max_length,
    char **tags, size_t ntags, struct store_filter *f,
    struct filter_buf *buf, bool *unknown, const char **why)
{
	size_t len = strlen(query), pos = 0, start, wlen;
	int rc;

	memset(f, 0, offsetof(struct store_filter, words));
	f->nwords = f->ntags = 0;
	*unknown = false;
	if (min_length > 0 && max_length > 0 && min_length > max_length) {
		*why = "min_length is greater than max_length";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	f->min_length = min_length;
	f->max_length = max_length;
	while (words_next(query, len, &pos, &start, &wlen)) {
		if (f->nwords == STORE_MAX_WORDS) {
			*why = "the query has more than 16 words";
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		if (wlen > WORDS_MAX_WORD) {
			*why = "a word of the query is over 64 bytes";
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		f->words[f->nwords].p = buf->words[f->nwords];
		f->words[f->nwords].len = words_fold(query + start, wlen,
		    buf->words[f->nwords], sizeof(buf->words[0]));
		f->nwords++;
	}
	if (ntags > STORE_MAX_TAGS) {
		*why = "more than 16 tags";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < ntags; i++) {
		if (!words_tag_valid(tags[i], strlen(tags[i]))) {
			*why = "a tag is not 1 to 32 bytes of a-z, 0-9 and '-'";
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		f->tags[i].p = tags[i];
		f->tags[i].len = strlen(tags[i]);
	}
	f->ntags = ntags;
	if (*author == '\0')
		return GRPC_STATUS_OK;
	rc = store_find_author(ctx->store, author, strlen(author), exact, f);
	if (rc == STORE_ENOMATCH) {
		*unknown = true;
		f->nauthors = 0;
		return GRPC_STATUS_OK;
	}
	if (rc != 0) {
		*why = store_strerror(rc);
		return GRPC_STATUS_INTERNAL;
	}
	return GRPC_STATUS_OK;
}

/* A stored reply as the reply message: a slice of the map that holds a
 * reference to its database until gRPC has sent it. No copy. */
static grpc_byte_buffer *
map_reply(const struct request_ctx *ctx, const struct store_quote *q)
{
	grpc_slice slice;
	grpc_byte_buffer *bb;

	slice = grpc_slice_new_with_user_data((void *)q->reply, q->len,
	    db_unref, db_ref(ctx->db));
	/* The byte buffer takes a reference of its own. */
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

static grpc_status_code
pick_status(int rc, const char **why)
{
	if (rc == STORE_ENOMATCH) {
		*why = "no quote matches the filters";
		return GRPC_STATUS_NOT_FOUND;
	}
	*why = store_strerror(rc);
	return GRPC_STATUS_INTERNAL;
}

grpc_status_code
service_get_quote(const struct request_ctx *ctx, grpc_byte_buffer *request,
    grpc_byte_buffer **reply, const char **why)
{
	Quotes__QuoteRequest *req;
	struct store_filter f;
	struct filter_buf buf;
	struct store_quote q;
	grpc_status_code status;
	bool unknown;
	int rc;

	req = (Quotes__QuoteRequest *)decode(ctx, request,
	    &quotes__quote_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	status = make_filter(ctx, req->author, req->exact, req->query,
	    req->min_length, req->max_length, req->tags, req->n_tags, &f, &buf,
	    &unknown, why);
	if (status == GRPC_STATUS_OK && unknown && req->exact) {
		*why = "no author of that name";
		status = GRPC_STATUS_NOT_FOUND;
	}
	/* The filter points into req and buf until the pick is made. */
	if (status == GRPC_STATUS_OK &&
	    (rc = store_pick_filtered(ctx->store, &f, ctx->rng, &q)) != 0)
		status = pick_status(rc, why);
	quotes__quote_request__free_unpacked(req, ctx->allocator);
	if (status != GRPC_STATUS_OK)
		return status;
	*reply = map_reply(ctx, &q);
	return GRPC_STATUS_OK;
}

/*
 * Search page tokens: the index to go on from, and a check over it and
 * the filters, so that a token made up, damaged or passed with other
 * filters is refused rather than served from. 16 hex digits.
 */
static uint32_t
token_check(uint32_t next, const Quotes__SearchQuotesRequest *req)
{
	uint32_t n[3] = {next, req->min_length, req->max_length};
	uint64_t h;

	/* Each field hashed with the sum so far as its seed, NULs
	 * included, so that no two filters run together alike. */
	h = XXH3_64bits_withSeed(n, sizeof(n), 0x71756f7465726421ULL);
	h = XXH3_64bits_withSeed(req->author, strlen(req->author) + 1, h);
	h = XXH3_64bits_withSeed(req->query, strlen(req->query) + 1, h);
	for (size_t i = 0; i < req->n_tags; i++)
		h = XXH3_64bits_withSeed(req->tags[i], strlen(req->tags[i]) + 1,
		    h);
	return (uint32_t)h;
}

static int
token_parse(const Quotes__SearchQuotesRequest *req, uint32_t *from)
{
	const char *t = req->page_token;
	uint64_t v = 0;

	if (*t == '\0') {
		*from = 0;
		return 0;
	}
	if (strlen(t) != 16)
		return -1;
	for (int i = 0; i < 16; i++) {
		int d = t[i] >= '0' && t[i] <= '9' ? t[i] - '0' :
		    t[i] >= 'a' && t[i] <= 'f' ? t[i] - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*from = (uint32_t)(v >> 32);
	return token_check(*from, req) == (uint32_t)v ? 0 : -1;
}

/* A SearchQuotesReply written by hand around the stored replies, which
 * are QuoteReply messages already: field 1, length-delimited. */
struct search_page {
	grpc_slice_buffer out;
	size_t n;
};

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static void
add_bytes(grpc_slice_buffer *sb, const void *p, size_t len)
{
	grpc_slice_buffer_add(sb, grpc_slice_from_copied_buffer(p, len));
}

static int
add_quote(void *arg, const struct store_quote *q)
{
	struct search_page *page = arg;
	uint8_t hdr[11];
	size_t n;

	hdr[0] = 1 << 3 | 2;
	n = 1 + put_varint(hdr + 1, q->len);
	add_bytes(&page->out, hdr, n);
	add_bytes(&page->out, q->reply, q->len);
	page->n++;
	return 0;
}

/* name[0..len) from the map as a C string: protobuf-c wants them
 * NUL-terminated, and map bytes are not. */
static char *
map_string(const char *name, size_t len)
{
	char *copy;

	if ((copy = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(copy, name, len);
	copy[len] = '\0';
	return copy;
}

/* A request's page size: 0 asks for def, more than max gets max, and a
 * negative one is INVALID_ARGUMENT. */
static grpc_status_code
page_size(int32_t asked, size_t def, size_t max, size_t *size,
    const char **why)
{
	if (asked < 0) {
		*why = "page_size is negative";
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	*size = asked == 0 ? def : (size_t)asked;
	if (*size > max)
		*size = max;
	return GRPC_STATUS_OK;
}

grpc_status_code
service_search_quotes(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why)
{
	Quotes__SearchQuotesRequest *req;
	struct search_page page;
	struct store_filter f;
	struct filter_buf *buf;
	grpc_status_code status;
	uint64_t total = 0;
	uint32_t from, next = UINT32_MAX;
	uint8_t tail[32];
	char token[17];
	size_t size, n;
	bool unknown;
	int rc;

	req = (Quotes__SearchQuotesRequest *)decode(ctx, request,
	    &quotes__search_quotes_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	if ((buf = malloc(sizeof(*buf))) == NULL) {
		quotes__search_quotes_request__free_unpacked(req,
		    ctx->allocator);
		*why = "out of memory";
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	grpc_slice_buffer_init(&page.out);
	page.n = 0;
	status = make_filter(ctx, req->author, 0, req->query, req->min_length,
	    req->max_length, req->tags, req->n_tags, &f, buf, &unknown, why);
	if (status != GRPC_STATUS_OK)
		goto done;
	if ((status = page_size(req->page_size, SEARCH_PAGE_DEFAULT,
	    SEARCH_PAGE_MAX, &size, why)) != GRPC_STATUS_OK)
		goto done;
	if (token_parse(req, &from) != 0) {
		*why = "page_token is not one this search gave";
		status = GRPC_STATUS_INVALID_ARGUMENT;
		goto done;
	}
	/* An author named and not found matches nothing. */
	if (!unknown && (rc = store_search(ctx->store, &f, from, size,
	    add_quote, &page, &next, &total)) != 0) {
		*why = store_strerror(rc);
		status = GRPC_STATUS_INTERNAL;
		goto done;
	}
	n = 0;
	if (next != UINT32_MAX) {
		snprintf(token, sizeof(token), "%08x%08x", next,
		    token_check(next, req));
		tail[n++] = 2 << 3 | 2;
		tail[n++] = 16;
		memcpy(tail + n, token, 16);
		n += 16;
	}
	if (total > 0) {
		tail[n++] = 3 << 3 | 0;
		n += put_varint(tail + n, total > UINT32_MAX ? UINT32_MAX :
		    total);
	}
	if (n > 0)
		add_bytes(&page.out, tail, n);
	*reply = grpc_raw_byte_buffer_create(page.out.slices, page.out.count);
done:
	grpc_slice_buffer_destroy(&page.out);
	free(buf);
	quotes__search_quotes_request__free_unpacked(req, ctx->allocator);
	return status;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* YYYY-MM-DD, a real date; "" is today in UTC. */
static int
parse_date(const char *s, int64_t *day)
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31};
	unsigned y = 0, m, d, max;

	if (*s == '\0') {
		*day = (int64_t)(time(NULL) / 86400);
		return 0;
	}
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	for (int i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (y == 0 || m < 1 || m > 12)
		return -1;
	max = mdays[m - 1] + (m == 2 && y % 4 == 0 &&
	    (y % 100 != 0 || y % 400 == 0));
	if (d < 1 || d > max)
		return -1;
	*day = days_from_civil(y, m, d);
	return 0;
}

grpc_status_code
service_quote_of_the_day(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why)
{
	Quotes__QuoteOfTheDayRequest *req;
	struct store_filter f;
	struct filter_buf buf;
	struct store_quote q;
	grpc_status_code status;
	int64_t day;
	bool unknown;
	int rc;

	req = (Quotes__QuoteOfTheDayRequest *)decode(ctx, request,
	    &quotes__quote_of_the_day_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	status = make_filter(ctx, req->author, 0, "", 0, 0, req->tags,
	    req->n_tags, &f, &buf, &unknown, why);
	if (status == GRPC_STATUS_OK && parse_date(req->date, &day) != 0) {
		*why = "date is not a date as YYYY-MM-DD";
		status = GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (status == GRPC_STATUS_OK && unknown) {
		*why = "no author of that name";
		status = GRPC_STATUS_NOT_FOUND;
	}
	if (status == GRPC_STATUS_OK &&
	    (rc = store_daily(ctx->store, &f, day, &q)) != 0)
		status = pick_status(rc, why);
	quotes__quote_of_the_day_request__free_unpacked(req, ctx->allocator);
	if (status != GRPC_STATUS_OK)
		return status;
	*reply = map_reply(ctx, &q);
	return GRPC_STATUS_OK;
}

struct tag_page {
	Quotes__TagCount *tags;
	Quotes__TagCount **ptrs;
	size_t n;
	int failed;
};

static int
add_tag(void *arg, const char *name, size_t len, uint32_t count)
{
	struct tag_page *page = arg;
	Quotes__TagCount *t = &page->tags[page->n];
	char *copy;

	if ((copy = map_string(name, len)) == NULL) {
		page->failed = 1;
		return -1;
	}
	quotes__tag_count__init(t);
	t->name = copy;
	t->quotes = count;
	page->ptrs[page->n++] = t;
	return 0;
}

grpc_status_code
service_list_tags(const struct request_ctx *ctx, grpc_byte_buffer *request,
    grpc_byte_buffer **reply, const char **why)
{
	Quotes__ListTagsReply out = QUOTES__LIST_TAGS_REPLY__INIT;
	Quotes__ListTagsRequest *req;
	grpc_status_code status = GRPC_STATUS_OK;
	struct tag_page page = {NULL, NULL, 0, 0};
	size_t size;
	int more = 0, rc;

	req = (Quotes__ListTagsRequest *)decode(ctx, request,
	    &quotes__list_tags_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	if ((status = page_size(req->page_size, TAGS_PAGE_DEFAULT,
	    TAGS_PAGE_MAX, &size, why)) != GRPC_STATUS_OK)
		goto done;
	if ((page.tags = calloc(size, sizeof(*page.tags))) == NULL ||
	    (page.ptrs = calloc(size, sizeof(*page.ptrs))) == NULL) {
		*why = "out of memory";
		status = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto done;
	}
	rc = store_tags(ctx->store, req->page_token, strlen(req->page_token),
	    size, add_tag, &page, &more);
	if (rc != 0 || page.failed) {
		*why = rc != 0 ? store_strerror(rc) : "out of memory";
		status = GRPC_STATUS_INTERNAL;
		goto done;
	}
	out.n_tags = page.n;
	out.tags = page.ptrs;
	/* The token is the last name given, as ListAuthors' is. */
	out.next_page_token = more && page.n > 0 ?
	    page.tags[page.n - 1].name : "";
	*reply = pack(&out.base);
done:
	for (size_t i = 0; i < page.n; i++)
		free(page.tags[i].name);
	free(page.tags);
	free(page.ptrs);
	quotes__list_tags_request__free_unpacked(req, ctx->allocator);
	return status;
}

struct author_page {
	char **names;
	size_t n;
	int failed;
};

static int
add_author(void *arg, const char *name, size_t len)
{
	struct author_page *page = arg;
	char *copy;

	if ((copy = map_string(name, len)) == NULL) {
		page->failed = 1;
		return -1;
	}
	page->names[page->n++] = copy;
	return 0;
}

grpc_status_code
service_list_authors(const struct request_ctx *ctx, grpc_byte_buffer *request,
    grpc_byte_buffer **reply, const char **why)
{
	Quotes__ListAuthorsReply out = QUOTES__LIST_AUTHORS_REPLY__INIT;
	Quotes__ListAuthorsRequest *req;
	grpc_status_code status = GRPC_STATUS_OK;
	struct author_page page = {NULL, 0, 0};
	size_t size;
	int more = 0, rc;

	req = (Quotes__ListAuthorsRequest *)decode(ctx, request,
	    &quotes__list_authors_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	if ((status = page_size(req->page_size, AUTHORS_PAGE_DEFAULT,
	    AUTHORS_PAGE_MAX, &size, why)) != GRPC_STATUS_OK)
		goto done;
	if ((page.names = calloc(size, sizeof(*page.names))) == NULL) {
		*why = "out of memory";
		status = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto done;
	}
	rc = store_authors(ctx->store, req->page_token,
	    strlen(req->page_token), size, add_author, &page, &more);
	if (rc != 0 || page.failed) {
		*why = rc != 0 ? store_strerror(rc) : "out of memory";
		status = GRPC_STATUS_INTERNAL;
		goto done;
	}
	out.n_authors = page.n;
	out.authors = page.names;
	/* The token is the last name given: the next page starts after it,
	 * whatever a database swap did in between. */
	out.next_page_token = more && page.n > 0 ? page.names[page.n - 1] : "";
	*reply = pack(&out.base);
done:
	for (size_t i = 0; i < page.n; i++)
		free(page.names[i]);
	free(page.names);
	quotes__list_authors_request__free_unpacked(req, ctx->allocator);
	return status;
}

grpc_status_code
service_health_request(const struct request_ctx *ctx,
    grpc_byte_buffer *request, int *known, const char **why)
{
	Grpc__Health__V1__HealthCheckRequest *req;
	grpc_status_code status;

	req = (Grpc__Health__V1__HealthCheckRequest *)decode(ctx, request,
	    &grpc__health__v1__health_check_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	*known = strcmp(req->service, "") == 0 ||
	    strcmp(req->service, "quotes.Quoter") == 0;
	grpc__health__v1__health_check_request__free_unpacked(req,
	    ctx->allocator);
	return GRPC_STATUS_OK;
}

grpc_byte_buffer *
service_health_reply(enum health_status status)
{
	Grpc__Health__V1__HealthCheckResponse out =
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

	out.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
	return pack(&out.base);
}
