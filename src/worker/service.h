/*
 * The RPCs a worker answers, as functions from a request message to a
 * status and a reply message; worker.c does the gRPC call plumbing.
 */
#ifndef QUOTERD_SERVICE_H
#define QUOTERD_SERVICE_H

#include <grpc/byte_buffer.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "db.h"
#include "rng.h"

struct request_ctx {
	struct db *db;       /* the database for this call */
	struct store *store; /* db's store for this thread */
	struct rng *rng;
	ProtobufCAllocator *allocator; /* decoding, reset between calls */
	size_t max_request;            /* bytes a request may inflate to */
};

/* Health states, as grpc.health.v1.HealthCheckResponse.ServingStatus. */
enum health_status {
	HEALTH_SERVING = 1,
	HEALTH_NOT_SERVING = 2,
	HEALTH_SERVICE_UNKNOWN = 3
};

/*
 * Each handler returns the status to send; with GRPC_STATUS_OK, *reply
 * is the message to send (the caller owns it), otherwise *why says what
 * was wrong with the request.
 */
grpc_status_code service_get_quote(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why);
grpc_status_code service_list_authors(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why);
grpc_status_code service_search_quotes(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why);
grpc_status_code service_list_tags(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why);
grpc_status_code service_quote_of_the_day(const struct request_ctx *ctx,
    grpc_byte_buffer *request, grpc_byte_buffer **reply, const char **why);
/*
 * grpc.health.v1.Health: decodes the request and tells whether the
 * service it names is ours ("" or "quotes.Quoter").
 */
grpc_status_code service_health_request(const struct request_ctx *ctx,
    grpc_byte_buffer *request, int *known, const char **why);
/*
 * The request's bytes in *body (the caller unrefs it). A compressed one
 * (accept_compressed) is inflated here, never past max bytes:
 * RESOURCE_EXHAUSTED beyond, INVALID_ARGUMENT if it does not inflate.
 */
grpc_status_code service_read_body(grpc_byte_buffer *request, size_t max,
    grpc_slice *body, const char **why);
/* A HealthCheckResponse holding status. */
grpc_byte_buffer *service_health_reply(enum health_status status);

#endif
