/*
 * The request handlers' insides, shared by service.c (GetQuote, the
 * quote of the day, health, and reading and decoding requests) and
 * page.c (the methods that answer a page at a time) and nothing else.
 */
#ifndef QUOTERD_SERVICE_IMPL_H
#define QUOTERD_SERVICE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "service.h"
#include "store.h"
#include "words.h"

/* Room for a request's folded query words, on the caller's stack. */
struct filter_buf {
	char words[STORE_MAX_WORDS][WORDS_FOLD_ROOM(WORDS_MAX_WORD)];
};

/* The decoded request and GRPC_STATUS_OK in *status, or NULL with *status
 * and *why saying why not. */
ProtobufCMessage *service_decode(const struct request_ctx *ctx,
    grpc_byte_buffer *request, const ProtobufCMessageDescriptor *desc,
    grpc_status_code *status, const char **why);
/* msg, encoded, as a reply message. */
grpc_byte_buffer *service_pack(const ProtobufCMessage *msg);
/*
 * A request's filters, checked, as a store filter. Folded words go to
 * buf, the caller's: nothing is allocated. *unknown tells that an author
 * was named and none matched (f then has no author constraint).
 */
grpc_status_code service_make_filter(const struct request_ctx *ctx,
    const char *author, int exact, const char *query, uint32_t min_length,
    uint32_t max_length, char **tags, size_t ntags, struct store_filter *f,
    struct filter_buf *buf, bool *unknown, const char **why);

#endif
