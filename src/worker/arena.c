/*
 * The call threads' request arenas (see arena.h). A request larger than
 * the arena falls back to malloc() rather than failing: rare, and a
 * refused call would be worse than a slower one.
 */
#include "arena.h"

#include <stdlib.h>

static void *
arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t at = (a->used + 15) & ~(size_t)15;

	if (size <= sizeof(a->buf) && at <= sizeof(a->buf) - size) {
		a->used = at + size;
		return a->buf + at;
	}
	return malloc(size);
}

static void
arena_free(void *data, void *p)
{
	struct arena *a = data;

	if ((unsigned char *)p < a->buf ||
	    (unsigned char *)p >= a->buf + sizeof(a->buf))
		free(p);
}

void
arena_init(struct arena *a)
{
	a->allocator.alloc = arena_alloc;
	a->allocator.free = arena_free;
	a->allocator.allocator_data = a;
	a->used = 0;
}
