/*
 * GetQuote, GetQuoteOfTheDay and grpc.health.v1.Health, and what every
 * handler shares: a request's bytes (inflated here if compressed), its
 * decoding, its filters and the packing of replies; the paged methods
 * are in page.c. Requests are decoded with protobuf-c into the caller's
 * arena; GetQuote's reply is the stored, pre-encoded QuoteReply, sent as
 * a slice of the map that holds a reference to its database. Every
 * request's strings are checked on the wire before decoding (wire.h), so
 * the C strings seen here are whole.
 */
#include "service_impl.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/slice.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quote_service.pb-c.h"
#include "utf8.h"
#include "wire.h"
#include "words.h"

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
	if (inflateInit2(&z,
		request->data.raw.compression == GRPC_COMPRESS_GZIP
		    ? 16 + MAX_WBITS
		    : MAX_WBITS) != Z_OK) {
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

ProtobufCMessage *
service_decode(const struct request_ctx *ctx, grpc_byte_buffer *request,
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

grpc_byte_buffer *
service_pack(const ProtobufCMessage *msg)
{
	grpc_slice slice =
	    grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

grpc_status_code
service_make_filter(const struct request_ctx *ctx, const char *author,
    int exact, const char *query, uint32_t min_length, uint32_t max_length,
    char **tags, size_t ntags, struct store_filter *f, struct filter_buf *buf,
    bool *unknown, const char **why)
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
		size_t tlen = strlen(tags[i]);

		if (!words_tag_valid(tags[i], tlen)) {
			*why = "a tag is not 1 to 32 bytes of a-z, 0-9 and '-'";
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		f->tags[i].p = tags[i];
		f->tags[i].len = tlen;
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

	req = (Quotes__QuoteRequest *)service_decode(ctx, request,
	    &quotes__quote_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	status = service_make_filter(ctx, req->author, req->exact, req->query,
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
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31};
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
	max = mdays[m - 1] +
	    (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
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

	req = (Quotes__QuoteOfTheDayRequest *)service_decode(ctx, request,
	    &quotes__quote_of_the_day_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	status = service_make_filter(ctx, req->author, 0, "", 0, 0, req->tags,
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

grpc_status_code
service_health_request(const struct request_ctx *ctx, grpc_byte_buffer *request,
    int *known, const char **why)
{
	Grpc__Health__V1__HealthCheckRequest *req;
	grpc_status_code status;

	req = (Grpc__Health__V1__HealthCheckRequest *)service_decode(ctx,
	    request, &grpc__health__v1__health_check_request__descriptor,
	    &status, why);
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

	out.status =
	    (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
	return service_pack(&out.base);
}
