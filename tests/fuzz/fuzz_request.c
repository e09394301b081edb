/*
 * Request decoding and validation over arbitrary bytes, as every method
 * sees them. Each input is handed, as the request of each, to the real
 * handlers over a small real database (tests/fuzz/request-db/, built in
 * by the Makefile): GetQuote, ListAuthors, SearchQuotes, ListTags,
 * GetQuoteOfTheDay and health Check/Watch, so the wire check (wire.c),
 * protobuf-c's decoding and the service's own validation (filters,
 * dates, page sizes and tokens) all run; and to the whole of a
 * reflection request's answer (v1 and v1alpha share the messages). The
 * same bytes, marked gzip and deflate, go through the inflating reader.
 *
 * Beyond "no crash, no read past the input", it checks what each layer
 * promises: a request the wire check passes and protobuf-c decodes holds
 * whole, valid UTF-8 strings; a handler answers OK with a reply of its
 * method's type, or a client's error (INVALID_ARGUMENT, NOT_FOUND) with a
 * reason, never INTERNAL on a good database; a GetQuote reply meets the
 * request's length and author constraints; a refused request is refused
 * for a reason the request shows; a page token a method gave is accepted
 * back; a reflection answer always decodes.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/slice.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "db.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quote_service.pb-c.h"
#include "reflection.h"
#include "rng.h"
#include "service.h"
#include "utf8.h"
#include "wire.h"
#include "words.h"

/* The database, embedded by the Makefile (request_db.c). */
extern const unsigned char fuzz_request_db[];
extern const size_t fuzz_request_db_len;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct db *db;
static struct arena arena;
static struct rng rng;

static void
string_ok(const char *s)
{
	if (!utf8_valid(s, strlen(s)))
		abort();
}

static void
strings_ok(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		string_ok(s[i]);
}

/*
 * The wire check's promise for desc: bytes it passes that protobuf-c
 * decodes hold valid UTF-8 strings. Returns the decoded message (NULL if
 * either refused), for the caller to free with protobuf-c.
 */
static ProtobufCMessage *
decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
	enum wire_result r = wire_check_strings(desc, data, size);
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size, data);

	(void)wire_strerror(r);
	if (m != NULL && r != WIRE_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

static grpc_byte_buffer *
buffer(const void *data, size_t size)
{
	grpc_slice s = grpc_slice_from_copied_buffer(data, size);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);

	grpc_slice_unref(s);
	return bb;
}

/* A reply's bytes, malloc'ed; the reply is destroyed. */
static uint8_t *
reply_bytes(grpc_byte_buffer *reply, size_t *len)
{
	grpc_byte_buffer_reader reader;
	grpc_slice s;
	uint8_t *out;

	if (reply == NULL || !grpc_byte_buffer_reader_init(&reader, reply))
		abort();
	s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	grpc_byte_buffer_destroy(reply);
	*len = GRPC_SLICE_LENGTH(s);
	if ((out = malloc(*len + 1)) == NULL)
		abort();
	memcpy(out, GRPC_SLICE_START_PTR(s), *len);
	grpc_slice_unref(s);
	return out;
}

typedef grpc_status_code (*handler)(const struct request_ctx *,
    grpc_byte_buffer *, grpc_byte_buffer **, const char **);

/*
 * Calls h with request bytes data[0..size) as worker.c does. Returns the
 * status; with OK, the reply's bytes in *out (malloc'ed). A status other
 * than OK must be a client's error, with a reason.
 */
static grpc_status_code
call(handler h, const void *data, size_t size, uint8_t **out, size_t *outlen)
{
	struct request_ctx ctx = {db, db->stores[0], &rng, &arena.allocator,
	    4096};
	grpc_byte_buffer *request = buffer(data, size), *reply = NULL;
	const char *why = NULL;
	grpc_status_code st;

	arena_reset(&arena);
	st = h(&ctx, request, &reply, &why);
	grpc_byte_buffer_destroy(request);
	*out = NULL;
	if (st == GRPC_STATUS_OK) {
		*out = reply_bytes(reply, outlen);
		return st;
	}
	if (reply != NULL || why == NULL || *why == '\0')
		abort();
	if (st != GRPC_STATUS_INVALID_ARGUMENT && st != GRPC_STATUS_NOT_FOUND)
		abort();
	return st;
}

/* What the service refuses in any request with filters (README). */
static bool
filters_invalid(const char *query, uint32_t min, uint32_t max, char **tags,
    size_t ntags)
{
	size_t len = strlen(query), pos = 0, start, wlen, nwords = 0;

	if (min > 0 && max > 0 && min > max)
		return true;
	while (words_next(query, len, &pos, &start, &wlen))
		if (++nwords > 16 || wlen > WORDS_MAX_WORD)
			return true;
	if (ntags > 16)
		return true;
	for (size_t i = 0; i < ntags; i++)
		if (!words_tag_valid(tags[i], strlen(tags[i])))
			return true;
	return false;
}

static size_t
code_points(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/*
 * Whether the request decoded. One the wire check and protobuf-c do not
 * both take must not be answered OK by its handler either.
 */
static bool
decoded(const void *req, grpc_status_code st)
{
	if (req == NULL && st == GRPC_STATUS_OK)
		abort();
	return req != NULL;
}

static void
get_quote(const uint8_t *data, size_t size)
{
	Quotes__QuoteRequest *req =
	    (Quotes__QuoteRequest *)decode(&quotes__quote_request__descriptor,
		data, size);
	Quotes__QuoteReply *rep;
	grpc_status_code st;
	uint8_t *out;
	size_t len, n;
	bool bad;

	st = call(service_get_quote, data, size, &out, &len);
	if (!decoded(req, st))
		return;
	string_ok(req->author);
	string_ok(req->query);
	strings_ok(req->tags, req->n_tags);
	bad = filters_invalid(req->query, req->min_length, req->max_length,
	    req->tags, req->n_tags);
	if (bad != (st == GRPC_STATUS_INVALID_ARGUMENT))
		abort();
	if (st == GRPC_STATUS_OK) {
		rep = quotes__quote_reply__unpack(NULL, len, out);
		if (rep == NULL)
			abort();
		n = code_points(rep->quote);
		if ((req->min_length > 0 && n < req->min_length) ||
		    (req->max_length > 0 && n > req->max_length))
			abort();
		if (req->exact && *req->author != '\0' &&
		    strcmp(rep->author, req->author) != 0)
			abort();
		quotes__quote_reply__free_unpacked(rep, NULL);
	}
	free(out);
	quotes__quote_request__free_unpacked(req, NULL);
}

/* A real date as YYYY-MM-DD, years 0001-9999, or "". */
static bool
date_valid(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
	    31};
	int y = 0, m, d;

	if (*s == '\0')
		return true;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	for (int i = 0; i < 4; i++)
		y = y * 10 + s[i] - '0';
	m = (s[5] - '0') * 10 + s[6] - '0';
	d = (s[8] - '0') * 10 + s[9] - '0';
	if (y == 0 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	return m != 2 || d < 29 ||
	    (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

static void
quote_of_the_day(const uint8_t *data, size_t size)
{
	Quotes__QuoteOfTheDayRequest *req = (Quotes__QuoteOfTheDayRequest *)
	    decode(&quotes__quote_of_the_day_request__descriptor, data, size);
	Quotes__QuoteReply *rep;
	grpc_status_code st;
	uint8_t *out;
	size_t len;
	bool bad;

	st = call(service_quote_of_the_day, data, size, &out, &len);
	if (!decoded(req, st))
		return;
	string_ok(req->date);
	string_ok(req->author);
	strings_ok(req->tags, req->n_tags);
	bad = filters_invalid("", 0, 0, req->tags, req->n_tags) ||
	    !date_valid(req->date);
	if (bad != (st == GRPC_STATUS_INVALID_ARGUMENT))
		abort();
	if (st == GRPC_STATUS_OK) {
		if ((rep = quotes__quote_reply__unpack(NULL, len, out)) == NULL)
			abort();
		quotes__quote_reply__free_unpacked(rep, NULL);
	}
	free(out);
	quotes__quote_of_the_day_request__free_unpacked(req, NULL);
}

static void
search_quotes(const uint8_t *data, size_t size)
{
	Quotes__SearchQuotesRequest *req = (Quotes__SearchQuotesRequest *)
	    decode(&quotes__search_quotes_request__descriptor, data, size);
	Quotes__SearchQuotesReply *rep;
	grpc_status_code st;
	uint8_t *out, *again, *next;
	size_t len, n, nextlen;
	char *token;
	bool bad;

	st = call(service_search_quotes, data, size, &out, &len);
	if (!decoded(req, st))
		return;
	string_ok(req->author);
	string_ok(req->query);
	string_ok(req->page_token);
	strings_ok(req->tags, req->n_tags);
	bad = filters_invalid(req->query, req->min_length, req->max_length,
		  req->tags, req->n_tags) ||
	    req->page_size < 0;
	/* A page token the server did not make may also be refused. */
	if (bad && st != GRPC_STATUS_INVALID_ARGUMENT)
		abort();
	if (!bad && *req->page_token == '\0' && st != GRPC_STATUS_OK)
		abort();
	if (st == GRPC_STATUS_OK) {
		rep = quotes__search_quotes_reply__unpack(NULL, len, out);
		if (rep == NULL || rep->n_quotes > 1000 ||
		    rep->n_quotes > rep->total_size)
			abort();
		/* The next page, with the token it gave, is served. */
		if (*rep->next_page_token != '\0') {
			token = req->page_token;
			req->page_token = rep->next_page_token;
			n = quotes__search_quotes_request__get_packed_size(req);
			if ((again = malloc(n)) == NULL)
				abort();
			quotes__search_quotes_request__pack(req, again);
			req->page_token = token;
			if (call(service_search_quotes, again, n, &next,
				&nextlen) != GRPC_STATUS_OK)
				abort();
			free(next);
			free(again);
		}
		quotes__search_quotes_reply__free_unpacked(rep, NULL);
	}
	free(out);
	quotes__search_quotes_request__free_unpacked(req, NULL);
}

/* ListAuthors and ListTags: any token is a name to go on after; only a
 * negative page size is refused. */
static void
list(handler h, const ProtobufCMessageDescriptor *desc,
    const ProtobufCMessageDescriptor *reply_desc, const uint8_t *data,
    size_t size)
{
	ProtobufCMessage *req = decode(desc, data, size), *rep;
	grpc_status_code st;
	int32_t page_size;
	const char *token;
	uint8_t *out;
	size_t len;

	st = call(h, data, size, &out, &len);
	if (!decoded(req, st))
		return;
	if (desc == &quotes__list_tags_request__descriptor) {
		page_size = ((Quotes__ListTagsRequest *)req)->page_size;
		token = ((Quotes__ListTagsRequest *)req)->page_token;
	} else {
		page_size = ((Quotes__ListAuthorsRequest *)req)->page_size;
		token = ((Quotes__ListAuthorsRequest *)req)->page_token;
	}
	string_ok(token);
	if ((page_size < 0) != (st == GRPC_STATUS_INVALID_ARGUMENT) ||
	    (page_size >= 0 && st != GRPC_STATUS_OK))
		abort();
	if (st == GRPC_STATUS_OK) {
		if ((rep = protobuf_c_message_unpack(reply_desc, NULL, len,
			 out)) == NULL)
			abort();
		protobuf_c_message_free_unpacked(rep, NULL);
	}
	free(out);
	protobuf_c_message_free_unpacked(req, NULL);
}

static void
health(const uint8_t *data, size_t size)
{
	struct request_ctx ctx = {db, db->stores[0], &rng, &arena.allocator,
	    4096};
	Grpc__Health__V1__HealthCheckRequest *req =
	    (Grpc__Health__V1__HealthCheckRequest *)
		decode(&grpc__health__v1__health_check_request__descriptor,
		    data, size);
	grpc_byte_buffer *request = buffer(data, size);
	const char *why = NULL;
	grpc_status_code st;
	int known = -1;

	arena_reset(&arena);
	st = service_health_request(&ctx, request, &known, &why);
	grpc_byte_buffer_destroy(request);
	if ((req != NULL) != (st == GRPC_STATUS_OK))
		abort();
	if (req == NULL) {
		if (st != GRPC_STATUS_INVALID_ARGUMENT || why == NULL)
			abort();
		return;
	}
	string_ok(req->service);
	if (known !=
	    (strcmp(req->service, "") == 0 ||
		strcmp(req->service, "quotes.Quoter") == 0))
		abort();
	grpc__health__v1__health_check_request__free_unpacked(req, NULL);
}

/* The bytes as a compressed request: inflated to at most max bytes,
 * RESOURCE_EXHAUSTED past it, INVALID_ARGUMENT if they do not inflate. */
static void
compressed(const uint8_t *data, size_t size, grpc_compression_algorithm alg)
{
	grpc_byte_buffer *request = buffer(data, size);
	const char *why = NULL;
	grpc_status_code st;
	grpc_slice body;

	request->data.raw.compression = alg;
	st = service_read_body(request, 64, &body, &why);
	grpc_byte_buffer_destroy(request);
	if (st == GRPC_STATUS_OK) {
		if (GRPC_SLICE_LENGTH(body) > 64)
			abort();
		grpc_slice_unref(body);
	} else if ((st != GRPC_STATUS_INVALID_ARGUMENT &&
		       st != GRPC_STATUS_RESOURCE_EXHAUSTED) ||
	    why == NULL) {
		abort();
	}
}

static void
reflection_request(const uint8_t *data, size_t size)
{
	Grpc__Reflection__V1alpha__ServerReflectionResponse *rs;
	void *out;
	size_t outlen;

	if (reflection_respond(data, size, &out, &outlen) != 0)
		return;
	rs = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL,
	    outlen, out);
	if (rs == NULL)
		abort();
	grpc__reflection__v1alpha__server_reflection_response__free_unpacked(rs,
	    NULL);
	free(out);
}

static void
init(void)
{
	int fd, rc;

	if (reflection_init() != 0)
		abort();
	/* The database as workers have it: a file behind a descriptor. */
	if ((fd = memfd_create("fuzz_request.mdb", 0)) < 0 ||
	    write(fd, fuzz_request_db, fuzz_request_db_len) !=
		(ssize_t)fuzz_request_db_len)
		abort();
	if ((db = db_open(fd, 1, &rc)) == NULL)
		abort();
	close(fd);
	arena_init(&arena);
	rng_seed(&rng, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (db == NULL)
		init();
	get_quote(data, size);
	list(service_list_authors, &quotes__list_authors_request__descriptor,
	    &quotes__list_authors_reply__descriptor, data, size);
	search_quotes(data, size);
	list(service_list_tags, &quotes__list_tags_request__descriptor,
	    &quotes__list_tags_reply__descriptor, data, size);
	quote_of_the_day(data, size);
	health(data, size);
	compressed(data, size, GRPC_COMPRESS_GZIP);
	compressed(data, size, GRPC_COMPRESS_DEFLATE);
	reflection_request(data, size);
	return 0;
}
