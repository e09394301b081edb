/*
 * A bump allocator for protobuf-c, one per call thread: decoding a
 * request allocates nothing unless the request is unusually large, and
 * the whole arena is let go at once before the next call.
 */
#ifndef QUOTERD_ARENA_H
#define QUOTERD_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define ARENA_SIZE 8192

/* Embedded in its owner, so not opaque; use it through allocator. */
struct arena {
	ProtobufCAllocator allocator;
	size_t used;
	_Alignas(16) unsigned char buf[ARENA_SIZE];
};

/* Readies a for use through a->allocator. */
void arena_init(struct arena *a);

/* Lets go of everything allocated from a, at once: between calls. */
static inline void
arena_reset(struct arena *a)
{
	a->used = 0;
}

#endif
