/*
 * SearchQuotes, ListTags and ListAuthors: the methods that answer a page
 * at a time. A page's token says where the next one begins, so that the
 * server keeps nothing between calls and a client may go on with any
 * worker; page sizes are bounded, so that no request asks for a reply of
 * any size.
 */
#include "service_impl.h"

#include <grpc/slice_buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "quote_service.pb-c.h"

#define AUTHORS_PAGE_DEFAULT 100
#define AUTHORS_PAGE_MAX     1000
#define SEARCH_PAGE_DEFAULT  20
#define SEARCH_PAGE_MAX      1000
#define TAGS_PAGE_DEFAULT    100
#define TAGS_PAGE_MAX        1000

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
		int d = t[i] >= '0' && t[i] <= '9' ? t[i] - '0'
		    : t[i] >= 'a' && t[i] <= 'f'   ? t[i] - 'a' + 10
						   : -1;

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
page_size(int32_t asked, size_t def, size_t max, size_t *size, const char **why)
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
service_search_quotes(const struct request_ctx *ctx, grpc_byte_buffer *request,
    grpc_byte_buffer **reply, const char **why)
{
	Quotes__SearchQuotesRequest *req;
	struct search_page page;
	struct store_filter f;
	struct filter_buf buf;
	grpc_status_code status;
	uint64_t total = 0;
	uint32_t from, next = UINT32_MAX;
	uint8_t tail[32];
	char token[17];
	size_t size, n;
	bool unknown;
	int rc;

	req = (Quotes__SearchQuotesRequest *)service_decode(ctx, request,
	    &quotes__search_quotes_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	grpc_slice_buffer_init(&page.out);
	page.n = 0;
	status = service_make_filter(ctx, req->author, 0, req->query,
	    req->min_length, req->max_length, req->tags, req->n_tags, &f, &buf,
	    &unknown, why);
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
	if (!unknown &&
	    (rc = store_search(ctx->store, &f, from, size, add_quote, &page,
		 &next, &total)) != 0) {
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
		n += put_varint(tail + n,
		    total > UINT32_MAX ? UINT32_MAX : total);
	}
	if (n > 0)
		add_bytes(&page.out, tail, n);
	*reply = grpc_raw_byte_buffer_create(page.out.slices, page.out.count);
done:
	grpc_slice_buffer_destroy(&page.out);
	quotes__search_quotes_request__free_unpacked(req, ctx->allocator);
	return status;
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

	req = (Quotes__ListTagsRequest *)service_decode(ctx, request,
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
	out.next_page_token =
	    more && page.n > 0 ? page.tags[page.n - 1].name : "";
	*reply = service_pack(&out.base);
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

	req = (Quotes__ListAuthorsRequest *)service_decode(ctx, request,
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
	rc = store_authors(ctx->store, req->page_token, strlen(req->page_token),
	    size, add_author, &page, &more);
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
	*reply = service_pack(&out.base);
done:
	for (size_t i = 0; i < page.n; i++)
		free(page.names[i]);
	free(page.names);
	quotes__list_authors_request__free_unpacked(req, ctx->allocator);
	return status;
}
