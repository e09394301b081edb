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
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "quote_service.pb-c.h"
#include "wire.h"

#define AUTHORS_PAGE_DEFAULT 100
#define AUTHORS_PAGE_MAX 1000

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

/* The decoded request, or NULL with *status and *why saying why not. */
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

grpc_status_code
service_get_quote(const struct request_ctx *ctx, grpc_byte_buffer *request,
    grpc_byte_buffer **reply, const char **why)
{
	Quotes__QuoteRequest *req;
	struct store_quote q;
	grpc_slice slice;
	int rc;

	grpc_status_code status;

	req = (Quotes__QuoteRequest *)decode(ctx, request,
	    &quotes__quote_request__descriptor, &status, why);
	if (req == NULL)
		return status;
	rc = store_pick(ctx->store, req->author, strlen(req->author),
	    ctx->rng, &q);
	quotes__quote_request__free_unpacked(req, ctx->allocator);
	if (rc != 0) {
		*why = store_strerror(rc);
		return GRPC_STATUS_INTERNAL;
	}
	/* No copy: the slice points into the map and holds a reference to
	 * it until gRPC has sent it. */
	slice = grpc_slice_new_with_user_data((void *)q.reply, q.len, db_unref,
	    db_ref(ctx->db));
	/* The byte buffer takes a reference of its own. */
	*reply = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return GRPC_STATUS_OK;
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

	/* protobuf-c wants NUL-terminated strings; map bytes are not. */
	if ((copy = malloc(len + 1)) == NULL) {
		page->failed = 1;
		return -1;
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
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
	status = GRPC_STATUS_OK;
	if (req->page_size < 0) {
		*why = "page_size is negative";
		status = GRPC_STATUS_INVALID_ARGUMENT;
		goto done;
	}
	size = req->page_size == 0 ? AUTHORS_PAGE_DEFAULT
				   : (size_t)req->page_size;
	if (size > AUTHORS_PAGE_MAX)
		size = AUTHORS_PAGE_MAX;
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
