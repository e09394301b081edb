/*
 * Unit tests for src/worker/reflection.c: requests are encoded and
 * responses decoded with protobuf-c, as a client such as grpcurl would.
 * The compiled-in set must list exactly our four services and describe
 * every symbol in its files; a file comes with its transitive imports,
 * each once (checked on a set built here, since our protos import
 * nothing); unknown names get NOT_FOUND and bad bytes get -1.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "reflection.h"

#define STATUS_NOT_FOUND     5
#define STATUS_UNIMPLEMENTED 12

#define REQUEST(c)                                                             \
	GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##c
#define RESPONSE(c)                                                            \
	GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##c

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest request;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse response;
typedef Google__Protobuf__FileDescriptorProto file_proto;
typedef Google__Protobuf__DescriptorProto message_proto;

#define HOST "localhost:5050"

static const char *const our_services[] = {
    "quotes.Quoter",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
};

static const char *const our_files[] = {
    "quote_service.proto",
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1alpha/reflection.proto",
    "grpc/reflection/v1/reflection.proto",
};

static int
setup(void **state)
{
	(void)state;
	return reflection_init();
}

static int
teardown(void **state)
{
	(void)state;
	reflection_free();
	return 0;
}

static uint8_t *
pack_request(const request *rq, size_t *len)
{
	uint8_t *buf;

	*len =
	    grpc__reflection__v1alpha__server_reflection_request__get_packed_size(
		rq);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(
	    grpc__reflection__v1alpha__server_reflection_request__pack(rq, buf),
	    *len);
	return buf;
}

/* Sends rq, checks the echo every response carries, returns the answer
 * (free with response_free()). */
static response *
ask(const request *rq)
{
	response *rs;
	uint8_t *req, *echo;
	void *out;
	size_t len, outlen, echolen;

	req = pack_request(rq, &len);
	out = (void *)1;
	assert_int_equal(reflection_respond(req, len, &out, &outlen), 0);
	assert_non_null(out);
	rs = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL,
	    outlen, out);
	assert_non_null(rs);
	free(out);

	assert_string_equal(rs->valid_host, rq->host);
	assert_non_null(rs->original_request);
	echo = pack_request(rs->original_request, &echolen);
	assert_int_equal(echolen, len);
	assert_memory_equal(echo, req, len);
	free(echo);
	free(req);
	return rs;
}

static void
response_free(response *rs)
{
	grpc__reflection__v1alpha__server_reflection_response__free_unpacked(rs,
	    NULL);
}

static response *
ask_file(const char *name)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;

	rq.host = HOST;
	rq.message_request_case = REQUEST(FILE_BY_FILENAME);
	rq.file_by_filename = (char *)name;
	return ask(&rq);
}

static response *
ask_symbol(const char *name)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;

	rq.host = HOST;
	rq.message_request_case = REQUEST(FILE_CONTAINING_SYMBOL);
	rq.file_containing_symbol = (char *)name;
	return ask(&rq);
}

static response *
ask_extension(const char *type, int32_t number)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
	Grpc__Reflection__V1alpha__ExtensionRequest xr =
	    GRPC__REFLECTION__V1ALPHA__EXTENSION_REQUEST__INIT;

	xr.containing_type = (char *)type;
	xr.extension_number = number;
	rq.host = HOST;
	rq.message_request_case = REQUEST(FILE_CONTAINING_EXTENSION);
	rq.file_containing_extension = &xr;
	return ask(&rq);
}

static response *
ask_extension_numbers(const char *type)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;

	rq.host = HOST;
	rq.message_request_case = REQUEST(ALL_EXTENSION_NUMBERS_OF_TYPE);
	rq.all_extension_numbers_of_type = (char *)type;
	return ask(&rq);
}

static response *
ask_services(void)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;

	rq.host = HOST;
	rq.message_request_case = REQUEST(LIST_SERVICES);
	rq.list_services = "*";
	return ask(&rq);
}

static file_proto *
file_at(const response *rs, size_t i)
{
	const Grpc__Reflection__V1alpha__FileDescriptorResponse *fdr;
	file_proto *fp;

	assert_int_equal(rs->message_response_case,
	    RESPONSE(FILE_DESCRIPTOR_RESPONSE));
	fdr = rs->file_descriptor_response;
	assert_true(i < fdr->n_file_descriptor_proto);
	fp = google__protobuf__file_descriptor_proto__unpack(NULL,
	    fdr->file_descriptor_proto[i].len,
	    fdr->file_descriptor_proto[i].data);
	assert_non_null(fp);
	return fp;
}

static void
file_free(file_proto *fp)
{
	google__protobuf__file_descriptor_proto__free_unpacked(fp, NULL);
}

/* The answer is `first`, then files holding every import of every file
 * in the answer, none twice: what a client needs to build `first`. */
static size_t
check_closure(const response *rs, const char *first)
{
	file_proto **fps;
	size_t n, i, j, d;
	bool found;

	assert_int_equal(rs->message_response_case,
	    RESPONSE(FILE_DESCRIPTOR_RESPONSE));
	n = rs->file_descriptor_response->n_file_descriptor_proto;
	assert_true(n >= 1);
	fps = calloc(n, sizeof(*fps));
	assert_non_null(fps);
	for (i = 0; i < n; i++)
		fps[i] = file_at(rs, i);
	assert_string_equal(fps[0]->name, first);
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			assert_string_not_equal(fps[i]->name, fps[j]->name);
		for (d = 0; d < fps[i]->n_dependency; d++) {
			found = false;
			for (j = 0; j < n; j++)
				if (strcmp(fps[j]->name,
					fps[i]->dependency[d]) == 0)
					found = true;
			assert_true(found);
		}
	}
	for (i = 0; i < n; i++)
		file_free(fps[i]);
	free(fps);
	return n;
}

static void
check_symbol_in(const char *symbol, const char *file)
{
	response *rs;

	rs = ask_symbol(symbol);
	if (rs->message_response_case != RESPONSE(FILE_DESCRIPTOR_RESPONSE))
		fail_msg("%s: not found", symbol);
	check_closure(rs, file);
	response_free(rs);
}

static void
check_not_found(response *rs, const char *name)
{
	assert_int_equal(rs->message_response_case, RESPONSE(ERROR_RESPONSE));
	assert_int_equal(rs->error_response->error_code, STATUS_NOT_FOUND);
	assert_non_null(strstr(rs->error_response->error_message, name));
	response_free(rs);
}

static void
test_list_services(void **state)
{
	const Grpc__Reflection__V1alpha__ListServiceResponse *lsr;
	response *rs;
	size_t i, j, seen;

	(void)state;
	rs = ask_services();
	assert_int_equal(rs->message_response_case,
	    RESPONSE(LIST_SERVICES_RESPONSE));
	lsr = rs->list_services_response;
	assert_int_equal(lsr->n_service, 4);
	for (i = 0; i < 4; i++) {
		seen = 0;
		for (j = 0; j < lsr->n_service; j++)
			if (strcmp(lsr->service[j]->name, our_services[i]) == 0)
				seen++;
		if (seen != 1)
			fail_msg("%s listed %zu times", our_services[i], seen);
	}
	response_free(rs);
}

static void
test_file_quote_service(void **state)
{
	const Google__Protobuf__ServiceDescriptorProto *sp = NULL;
	response *rs;
	file_proto *fp;
	size_t i;
	bool getquote = false;

	(void)state;
	rs = ask_file("quote_service.proto");
	check_closure(rs, "quote_service.proto");
	fp = file_at(rs, 0);
	assert_string_equal(fp->package, "quotes");
	for (i = 0; i < fp->n_service; i++)
		if (strcmp(fp->service[i]->name, "Quoter") == 0)
			sp = fp->service[i];
	assert_non_null(sp);
	for (i = 0; i < sp->n_method; i++)
		if (strcmp(sp->method[i]->name, "GetQuote") == 0) {
			getquote = true;
			assert_string_equal(sp->method[i]->input_type,
			    ".quotes.QuoteRequest");
			assert_string_equal(sp->method[i]->output_type,
			    ".quotes.QuoteReply");
		}
	assert_true(getquote);
	file_free(fp);
	response_free(rs);
}

static void
test_file_grpc_protos(void **state)
{
	response *rs;
	size_t i;

	(void)state;
	for (i = 1; i < sizeof(our_files) / sizeof(our_files[0]); i++) {
		rs = ask_file(our_files[i]);
		check_closure(rs, our_files[i]);
		response_free(rs);
	}
}

static void
test_symbols(void **state)
{
	(void)state;
	check_symbol_in("quotes.Quoter", "quote_service.proto");
	check_symbol_in("quotes.Quoter.GetQuote", "quote_service.proto");
	check_symbol_in("quotes.QuoteRequest", "quote_service.proto");
	check_symbol_in("quotes.QuoteReply", "quote_service.proto");
	check_symbol_in("quotes.QuoteRequest.author", "quote_service.proto");
	check_symbol_in("grpc.health.v1.Health", "grpc/health/v1/health.proto");
	check_symbol_in("grpc.health.v1.Health.Watch",
	    "grpc/health/v1/health.proto");
	check_symbol_in("grpc.health.v1.HealthCheckResponse.ServingStatus",
	    "grpc/health/v1/health.proto");
	/* Enum values are scoped beside their enum. */
	check_symbol_in("grpc.health.v1.HealthCheckResponse.SERVING",
	    "grpc/health/v1/health.proto");
	check_symbol_in("grpc.reflection.v1alpha.ServerReflection",
	    "grpc/reflection/v1alpha/reflection.proto");
	check_symbol_in("grpc.reflection.v1.ServerReflection."
			"ServerReflectionInfo",
	    "grpc/reflection/v1/reflection.proto");
	check_symbol_in("grpc.reflection.v1.ServerReflectionRequest",
	    "grpc/reflection/v1/reflection.proto");
}

static void
check_messages(const char *scope, message_proto **mps, size_t n,
    const char *file)
{
	char name[512];
	size_t i, e;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s.%s", scope, mps[i]->name);
		check_symbol_in(name, file);
		for (e = 0; e < mps[i]->n_enum_type; e++) {
			char en[600];

			snprintf(en, sizeof(en), "%s.%s", name,
			    mps[i]->enum_type[e]->name);
			check_symbol_in(en, file);
		}
		check_messages(name, mps[i]->nested_type, mps[i]->n_nested_type,
		    file);
	}
}

/* Whatever our files define now (quote_service.proto grows), each name
 * the file itself declares leads back to it. */
static void
test_every_symbol(void **state)
{
	response *rs;
	file_proto *fp;
	char name[512];
	size_t f, i, m;

	(void)state;
	for (f = 0; f < sizeof(our_files) / sizeof(our_files[0]); f++) {
		rs = ask_file(our_files[f]);
		fp = file_at(rs, 0);
		check_messages(fp->package, fp->message_type,
		    fp->n_message_type, our_files[f]);
		for (i = 0; i < fp->n_enum_type; i++) {
			snprintf(name, sizeof(name), "%s.%s", fp->package,
			    fp->enum_type[i]->name);
			check_symbol_in(name, our_files[f]);
		}
		for (i = 0; i < fp->n_service; i++) {
			snprintf(name, sizeof(name), "%s.%s", fp->package,
			    fp->service[i]->name);
			check_symbol_in(name, our_files[f]);
			for (m = 0; m < fp->service[i]->n_method; m++) {
				char mn[600];

				snprintf(mn, sizeof(mn), "%s.%s", name,
				    fp->service[i]->method[m]->name);
				check_symbol_in(mn, our_files[f]);
			}
		}
		file_free(fp);
		response_free(rs);
	}
}

static void
test_not_found(void **state)
{
	(void)state;
	check_not_found(ask_symbol("quotes.Nope"), "quotes.Nope");
	check_not_found(ask_symbol("quotes.Quoter.GetQuot"),
	    "quotes.Quoter.GetQuot");
	/* Names are fully qualified, without a leading dot. */
	check_not_found(ask_symbol(".quotes.Quoter"), ".quotes.Quoter");
	check_not_found(ask_symbol("Quoter"), "Quoter");
	check_not_found(ask_symbol(""), "");
	check_not_found(ask_file("nope.proto"), "nope.proto");
	check_not_found(ask_file("proto/quote_service.proto"),
	    "proto/quote_service.proto");
}

static void
test_extensions_none(void **state)
{
	response *rs;

	(void)state;
	check_not_found(ask_extension("quotes.QuoteRequest", 100),
	    "quotes.QuoteRequest");
	rs = ask_extension_numbers("quotes.QuoteRequest");
	assert_int_equal(rs->message_response_case,
	    RESPONSE(ALL_EXTENSION_NUMBERS_RESPONSE));
	assert_string_equal(rs->all_extension_numbers_response->base_type_name,
	    "quotes.QuoteRequest");
	assert_int_equal(rs->all_extension_numbers_response->n_extension_number,
	    0);
	response_free(rs);
	check_not_found(ask_extension_numbers("quotes.Nope"), "quotes.Nope");
	/* Only messages can be extended. */
	check_not_found(ask_extension_numbers("quotes.Quoter"),
	    "quotes.Quoter");
}

static void
test_request_not_set(void **state)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
	response *rs;

	(void)state;
	rs = ask(&rq);
	assert_int_equal(rs->message_response_case, RESPONSE(ERROR_RESPONSE));
	assert_int_equal(rs->error_response->error_code, STATUS_UNIMPLEMENTED);
	response_free(rs);
}

static void
check_refused(const void *req, size_t len)
{
	void *out = (void *)1;
	size_t outlen = 1;

	errno = 0;
	assert_int_equal(reflection_respond(req, len, &out, &outlen), -1);
	assert_int_equal(errno, EINVAL);
	assert_null(out);
	assert_int_equal(outlen, 0);
}

static void
test_undecodable(void **state)
{
	request rq = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
	uint8_t *req;
	size_t len;

	(void)state;
	check_refused("\xff\xff\xff", 3);
	/* file_by_filename, 5 bytes long, 2 there. */
	check_refused("\x1a\x05"
		      "ab",
	    4);
	/* A varint that never ends. */
	check_refused("\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", 12);

	rq.message_request_case = REQUEST(FILE_CONTAINING_SYMBOL);
	rq.file_containing_symbol = "quotes.\xc3(";
	req = pack_request(&rq, &len);
	check_refused(req, len);
	free(req);
	rq.host = "\xff";
	rq.message_request_case = REQUEST(LIST_SERVICES);
	rq.list_services = "";
	req = pack_request(&rq, &len);
	check_refused(req, len);
	free(req);
}

/* Built without init: the first request indexes. */
static void
test_lazy_init(void **state)
{
	response *rs;

	(void)state;
	reflection_free();
	rs = ask_services();
	assert_int_equal(rs->list_services_response->n_service, 4);
	response_free(rs);
	assert_int_equal(reflection_init(), 0);
	reflection_free();
	reflection_free();
}

/*
 * a.proto imports b.proto and c.proto, b.proto imports c.proto: c must
 * come once in a's answer. b.proto extends c.C with 100 at the top level
 * and a.A extends it with 101 from inside.
 */
static uint8_t *
pack_diamond(size_t *len, bool lose_c)
{
	file_proto a = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
	file_proto b = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
	file_proto c = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
	message_proto ma = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
	message_proto mc = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__FieldDescriptorProto x100 =
	    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__FieldDescriptorProto x101 =
	    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__FileDescriptorSet set =
	    GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
	char *adeps[] = {"b.proto", "c.proto"}, *bdeps[] = {"c.proto"};
	message_proto *amsgs[] = {&ma}, *cmsgs[] = {&mc};
	Google__Protobuf__FieldDescriptorProto *bx[] = {&x100}, *ax[] = {&x101};
	file_proto *files[] = {&a, &b, &c};
	uint8_t *buf;

	x100.name = "x100";
	x100.has_number = 1;
	x100.number = 100;
	x100.extendee = ".c.C";
	x101.name = "x101";
	x101.has_number = 1;
	x101.number = 101;
	x101.extendee = ".c.C";
	ma.name = "A";
	ma.n_extension = 1;
	ma.extension = ax;
	mc.name = "C";
	a.name = "a.proto";
	a.package = "a";
	a.n_dependency = 2;
	a.dependency = adeps;
	a.n_message_type = 1;
	a.message_type = amsgs;
	b.name = "b.proto";
	b.n_dependency = 1;
	b.dependency = bdeps;
	b.n_extension = 1;
	b.extension = bx;
	c.name = "c.proto";
	c.package = "c";
	c.n_message_type = 1;
	c.message_type = cmsgs;
	set.n_file = lose_c ? 2 : 3;
	set.file = files;

	*len = google__protobuf__file_descriptor_set__get_packed_size(&set);
	buf = malloc(*len);
	assert_non_null(buf);
	google__protobuf__file_descriptor_set__pack(&set, buf);
	return buf;
}

static void
test_imports_once(void **state)
{
	response *rs;
	file_proto *fp;
	uint8_t *set;
	size_t len;
	int32_t *nums;

	(void)state;
	set = pack_diamond(&len, false);
	assert_int_equal(reflection_init_set(set, len), 0);
	free(set);

	rs = ask_file("a.proto");
	assert_int_equal(check_closure(rs, "a.proto"), 3);
	response_free(rs);
	rs = ask_file("b.proto");
	assert_int_equal(check_closure(rs, "b.proto"), 2);
	fp = file_at(rs, 1);
	assert_string_equal(fp->name, "c.proto");
	file_free(fp);
	response_free(rs);
	rs = ask_file("c.proto");
	assert_int_equal(check_closure(rs, "c.proto"), 1);
	response_free(rs);

	check_symbol_in("a.A", "a.proto");
	check_symbol_in("a.A.x101", "a.proto");
	check_symbol_in("x100", "b.proto");
	check_symbol_in("c.C", "c.proto");

	rs = ask_extension("c.C", 100);
	check_closure(rs, "b.proto");
	response_free(rs);
	rs = ask_extension("c.C", 101);
	check_closure(rs, "a.proto");
	response_free(rs);
	check_not_found(ask_extension("c.C", 102), "c.C");
	rs = ask_extension_numbers("c.C");
	assert_int_equal(rs->message_response_case,
	    RESPONSE(ALL_EXTENSION_NUMBERS_RESPONSE));
	assert_int_equal(rs->all_extension_numbers_response->n_extension_number,
	    2);
	nums = rs->all_extension_numbers_response->extension_number;
	assert_true((nums[0] == 100 && nums[1] == 101) ||
	    (nums[0] == 101 && nums[1] == 100));
	response_free(rs);

	/* None of these files is one we serve. */
	rs = ask_services();
	assert_int_equal(rs->list_services_response->n_service, 0);
	response_free(rs);
}

static void
test_bad_sets(void **state)
{
	uint8_t *set;
	size_t len;

	(void)state;
	set = pack_diamond(&len, true);
	errno = 0;
	assert_int_equal(reflection_init_set(set, len), -1);
	assert_int_equal(errno, EINVAL);
	free(set);
	errno = 0;
	assert_int_equal(reflection_init_set("\x0a\x05"
					     "ab",
			     4),
	    -1);
	assert_int_equal(errno, EINVAL);
	/* An empty set is a set: nothing in it. */
	assert_int_equal(reflection_init_set("", 0), 0);
	check_not_found(ask_file("quote_service.proto"), "quote_service.proto");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_list_services, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_file_quote_service, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_file_grpc_protos, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_symbols, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_symbol, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_extensions_none, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_request_not_set, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_undecodable, setup, teardown),
	    cmocka_unit_test_teardown(test_lazy_init, teardown),
	    cmocka_unit_test_teardown(test_imports_once, teardown),
	    cmocka_unit_test_teardown(test_bad_sets, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
