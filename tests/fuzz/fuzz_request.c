/*
 * Request decoding and validation over arbitrary bytes, as every method
 * sees them: the wire check (wire.c) and protobuf-c's decoding for
 * GetQuote, ListAuthors and health Check/Watch, and the whole of a
 * reflection request's answer (v1 and v1alpha share the messages). Beyond
 * "no crash, no read past the input", it checks what the wire check
 * promises: a request it passes and protobuf-c decodes holds whole,
 * valid UTF-8 strings, and a reflection answer always decodes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "quote_service.pb-c.h"
#include "reflection.h"
#include "utf8.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
string_ok(const char *s)
{
	if (!utf8_valid(s, strlen(s)))
		abort();
}

static void
quote_request(const uint8_t *data, size_t size)
{
	Quotes__QuoteRequest *q;
	Quotes__ListAuthorsRequest *l;
	Grpc__Health__V1__HealthCheckRequest *h;
	enum wire_result r;

	r = wire_check_strings(&quotes__quote_request__descriptor, data, size);
	q = quotes__quote_request__unpack(NULL, size, data);
	if (r == WIRE_OK && q != NULL)
		string_ok(q->author);
	if (q != NULL)
		quotes__quote_request__free_unpacked(q, NULL);

	r = wire_check_strings(&quotes__list_authors_request__descriptor, data,
	    size);
	l = quotes__list_authors_request__unpack(NULL, size, data);
	if (r == WIRE_OK && l != NULL)
		string_ok(l->page_token);
	if (l != NULL)
		quotes__list_authors_request__free_unpacked(l, NULL);

	r = wire_check_strings(
	    &grpc__health__v1__health_check_request__descriptor, data, size);
	h = grpc__health__v1__health_check_request__unpack(NULL, size, data);
	if (r == WIRE_OK && h != NULL)
		string_ok(h->service);
	if (h != NULL)
		grpc__health__v1__health_check_request__free_unpacked(h, NULL);
	(void)wire_strerror(r);
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int indexed;

	if (!indexed) {
		if (reflection_init() != 0)
			abort();
		indexed = 1;
	}
	quote_request(data, size);
	reflection_request(data, size);
	return 0;
}
