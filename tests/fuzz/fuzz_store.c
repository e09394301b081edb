/*
 * A database file of arbitrary bytes: store_verify() must refuse it or
 * accept it without crashing, and whatever it accepts must open and serve
 * picks and author pages without error, every reply a QuoteReply by the
 * author asked for, and filtered picks, searches, quotes of the day and
 * tag pages without any error but "no match". The input becomes a file
 * in memory (memfd).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quote_service.pb-c.h"
#include "rng.h"
#include "store.h"

#define MAX_NAMES 16

struct names {
	char name[MAX_NAMES][512];
	size_t len[MAX_NAMES];
	size_t n;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
add_name(void *arg, const char *name, size_t len)
{
	struct names *nm = arg;

	if (len == 0 || len > sizeof(nm->name[0]))
		abort();
	if (nm->n < MAX_NAMES) {
		memcpy(nm->name[nm->n], name, len);
		nm->len[nm->n++] = len;
	}
	return 0;
}

/* Picks a quote of author, which must be by author if known. */
static void
pick(struct store *s, const char *author, size_t len, bool known, struct rng *r)
{
	struct store_quote q;
	Quotes__QuoteReply *reply;

	if (store_pick(s, author, len, r, &q) != 0)
		abort();
	if ((reply = quotes__quote_reply__unpack(NULL, q.len, q.reply)) == NULL)
		abort();
	if (known &&
	    (strlen(reply->author) != len ||
		memcmp(reply->author, author, len) != 0))
		abort();
	quotes__quote_reply__free_unpacked(reply, NULL);
}

static int
count_tag(void *arg, const char *name, size_t len, uint32_t count)
{
	(void)arg;
	if (len == 0 || count == 0 || name == NULL)
		abort();
	return 0;
}

static int
take_quote(void *arg, const struct store_quote *q)
{
	(void)arg;
	if (q->len == 0)
		abort();
	return 0;
}

/* The filters of format 3: a match or none, never an error. */
static void
filter(struct store *s, struct rng *r)
{
	static const char *const words[] = {"time", "the", "quote", "0"};
	struct store_filter f;
	struct store_quote q;
	uint64_t total;
	uint32_t next = 0;
	int more, rc;

	memset(&f, 0, sizeof(f));
	if (store_tags(s, NULL, 0, 5, count_tag, NULL, &more) != 0)
		abort();
	for (size_t i = 0; i < 4; i++) {
		f.words[0].p = words[i];
		f.words[0].len = strlen(words[i]);
		f.nwords = 1;
		f.min_length = (uint32_t)i * 10;
		f.max_length = i == 3 ? 0 : 40 + (uint32_t)i * 20;
		rc = store_pick_filtered(s, &f, r, &q);
		if (rc != 0 && rc != STORE_ENOMATCH)
			abort();
		rc = store_daily(s, &f, 20000 + (int64_t)i, &q);
		if (rc != 0 && rc != STORE_ENOMATCH)
			abort();
		for (int page = 0; page < 3 && next != UINT32_MAX; page++)
			if (store_search(s, &f, next, 2, take_quote, NULL,
				&next, &total) != 0)
				abort();
		next = 0;
	}
	rc = store_find_author(s, "NOBODY  at all", 14, 0, &f);
	if (rc != 0 && rc != STORE_ENOMATCH)
		abort();
}

static void
serve(int fd, const uint8_t *data, size_t size)
{
	struct names nm = {.n = 0};
	struct store *s;
	struct rng r;
	int more, rc;
	uint64_t seed = size;

	if (store_open_fd(fd, &s) != 0)
		abort();
	/* Pages of three, from the start, as ListAuthors walks. */
	rc = store_authors(s, NULL, 0, 3, add_name, &nm, &more);
	while (rc == 0 && more && nm.n < MAX_NAMES)
		rc = store_authors(s, nm.name[nm.n - 1], nm.len[nm.n - 1], 3,
		    add_name, &nm, &more);
	if (rc != 0 || nm.n == 0)
		abort();
	for (size_t i = 0; i < size && i < 64; i++)
		seed = seed * 31 + data[i];
	rng_seed(&r, seed);
	for (size_t i = 0; i < nm.n; i++)
		for (int k = 0; k < 4; k++)
			pick(s, nm.name[i], nm.len[i], true, &r);
	for (int k = 0; k < 16; k++) {
		pick(s, "", 0, false, &r);
		pick(s, "nobody at all", 13, false, &r);
	}
	filter(s, &r);
	store_close(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_info info;
	char why[256];
	int fd;

	if ((fd = memfd_create("fuzz_store", MFD_CLOEXEC)) < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	if (store_verify(fd, &info, why, sizeof(why)) == 0) {
		if (info.size != size || info.nquotes == 0)
			abort();
		serve(fd, data, size);
	} else if (why[0] == '\0') {
		abort(); /* every refusal says why */
	}
	close(fd);
	return 0;
}
