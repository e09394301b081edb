/*
 * The scoreboard (see scoreboard.h): an anonymous shared mapping, so it
 * needs no file and goes away with the last process that maps it.
 */
#include "scoreboard.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>

struct scoreboard {
	size_t size;
	int nslots;
	struct scoreboard_slot *slots;
};

struct scoreboard *
scoreboard_create(int nslots)
{
	struct scoreboard *sb;
	size_t size;
	void *p;

	if (nslots <= 0) {
		errno = EINVAL;
		return NULL;
	}
	/* The header too, so a worker's pointer to it stays valid. */
	size = sizeof(struct scoreboard_slot) * ((size_t)nslots + 1);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	sb = p;
	sb->size = size;
	sb->nslots = nslots;
	sb->slots = (struct scoreboard_slot *)p + 1;
	return sb;
}

void
scoreboard_destroy(struct scoreboard *sb)
{
	if (sb != NULL)
		munmap(sb, sb->size);
}

struct scoreboard_slot *
scoreboard_slot(struct scoreboard *sb, int index)
{
	if (index < 0 || index >= sb->nslots)
		return NULL;
	return &sb->slots[index];
}

long
scoreboard_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
scoreboard_reset(struct scoreboard_slot *s, pid_t pid)
{
	atomic_store(&s->heartbeat, 0);
	atomic_store(&s->pid, (int)pid);
	atomic_store(&s->conns, 0);
	atomic_store(&s->received, 0);
}

void
scoreboard_done(struct scoreboard_slot *s)
{
	atomic_store(&s->heartbeat, -1);
}

long
scoreboard_beat(struct scoreboard_slot *s)
{
	long now = scoreboard_now();

	/* Every call thread beats on every event: store only when the
	 * millisecond has moved, so that they do not pass the slot's cache
	 * line between them at each call. */
	if (atomic_load_explicit(&s->heartbeat, memory_order_relaxed) != now)
		atomic_store_explicit(&s->heartbeat, now, memory_order_relaxed);
	return now;
}

long
scoreboard_age(const struct scoreboard_slot *s)
{
	long beat = atomic_load_explicit(&s->heartbeat, memory_order_relaxed);

	return beat <= 0 ? -1 : scoreboard_now() - beat;
}
