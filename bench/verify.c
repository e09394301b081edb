/*
 * Times store_verify() on database files: `build/verify-time FILE...`
 * prints, for each, the verdict and the wall and CPU time of the check,
 * the cost the master's checker child adds to a start or a swap.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char *argv[])
{
	int status = 0;

	for (int i = 1; i < argc; i++) {
		struct store_info info;
		char why[256];
		double t0, c0;
		int fd, rc;

		if ((fd = open(argv[i], O_RDONLY | O_CLOEXEC)) < 0) {
			perror(argv[i]);
			status = 1;
			continue;
		}
		t0 = seconds(CLOCK_MONOTONIC);
		c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
		rc = store_verify(fd, &info, why, sizeof(why));
		if (rc != 0) {
			printf("%s: refused: %s: %s\n", argv[i],
			    store_strerror(rc), why);
			status = 1;
		} else {
			printf("%s: ok: %llu quotes, %llu authors, %llu bytes, "
			       "checksum %016llx\n",
			    argv[i], (unsigned long long)info.nquotes,
			    (unsigned long long)info.nauthors,
			    (unsigned long long)info.size,
			    (unsigned long long)info.checksum);
		}
		printf("%s: %.3f s wall, %.3f s CPU\n", argv[i],
		    seconds(CLOCK_MONOTONIC) - t0,
		    seconds(CLOCK_PROCESS_CPUTIME_ID) - c0);
		close(fd);
	}
	return status;
}
