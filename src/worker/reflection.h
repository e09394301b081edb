/*
 * gRPC server reflection (grpc.reflection.v1alpha and v1, whose messages
 * are the same on the wire), so that grpcurl and similar tools can list
 * and describe our services without a copy of the .proto files. This
 * module only turns request bytes into response bytes: the worker owns
 * the call and the stream.
 *
 * The answers come from a FileDescriptorSet compiled in at build time
 * (see reflection.mk), indexed once. Not thread-safe until indexed: call
 * reflection_init() before answering from more than one thread.
 */
#ifndef QUOTERD_REFLECTION_H
#define QUOTERD_REFLECTION_H

#include <stddef.h>

/*
 * Indexes the compiled-in descriptors, if not done yet. Returns 0, or -1
 * if memory ran out or the compiled-in set is unusable (a build bug).
 * Optional: reflection_respond() indexes on first use otherwise, but a
 * worker that calls this first fails at start rather than per call.
 */
int reflection_init(void);

/*
 * Indexes the serialized FileDescriptorSet set[0..len) instead of the
 * compiled-in one, replacing any index. For tests. Returns 0, or -1 if
 * the set does not decode, names a dependency it does not hold, or memory
 * ran out; the module is then left without an index.
 */
int reflection_init_set(const void *set, size_t len);

/* Frees the index; the next call indexes the compiled-in set again. */
void reflection_free(void);

/*
 * Answers one serialized ServerReflectionRequest with a serialized
 * ServerReflectionResponse in a malloc'd buffer (*out, *outlen; caller frees).
 * Returns 0, or -1 if req does not decode as a ServerReflectionRequest.
 *
 * -1 also if a string in req is not UTF-8 (proto3 requires it, so other
 * implementations refuse to parse such a request too) or if memory ran
 * out; errno is then EINVAL or ENOMEM. Unknown files and symbols, and an
 * index that cannot be built, are answered with an ErrorResponse.
 */
int reflection_respond(const void *req, size_t len, void **out, size_t *outlen);

#endif
