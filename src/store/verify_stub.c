/* TEMPORARY stub until the real verifier lands. */
#include <stdio.h>
#include "store.h"
int
store_verify(int fd, struct store_info *info, char *why, size_t whylen)
{
	struct store *s;
	int rc;

	(void)why; (void)whylen;
	if ((rc = store_open_fd(fd, "/nonexistent", &s)) != 0)
		return rc;
	info->nquotes = store_nquotes(s);
	info->nauthors = store_nauthors(s);
	info->size = store_size(s);
	info->checksum = 0;
	store_close(s);
	return 0;
}
