/*
 * The checkers. A database file is hostile until a child process has
 * read every byte a reader could touch (store_verify) and said so, and
 * so are the TLS files until a child has read them and matched the key
 * to the certificate: the master itself never parses either, after
 * OpenBSD's privilege separation, where untrusted input is parsed by a
 * process that may die. A checker that says no, dies or outlives its
 * deadline means "refused".
 */
#ifndef QUOTERD_CHECK_H
#define QUOTERD_CHECK_H

#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"
#include "store.h"

struct check;

struct check_verdict {
	int ok;
	struct store_info info; /* when ok, of a database */
	char why[256];          /* when not */
};

/*
 * Opens the candidate database at path for a check, never blocking: a
 * FIFO renamed onto the path would hold open() until a writer came. Only
 * a regular file is a candidate; anything else (FIFO, directory, device,
 * socket) is refused here, unopened if stat() already tells. Returns the
 * descriptor (blocking, close-on-exec) with *st its fstat(), or -1 with
 * the reason in why.
 */
int check_open(const char *path, struct stat *st, char *why, size_t whylen);
/* Forks a checker of the database open as fd; 0, or an errno code. */
int check_start(int fd, struct check **out);
/*
 * Forks a checker of the TLS files t names (tls_read_pair()): on "good"
 * it hands back a memory file of them (tls_publish()), for workers. 0,
 * or an errno code.
 */
int check_start_tls(const struct tls_config *t, struct check **out);
/* Readable once the checker has spoken or died. */
int check_fd(const struct check *c);
pid_t check_pid(const struct check *c);
/* Hands over the checker's wait status when the master's reap found it. */
void check_reaped(struct check *c, int status);
/*
 * Reads the verdict, waits for the checker if need be, and frees c. A
 * TLS checker's good verdict comes with its memory file, in *fd (-1
 * otherwise; fd may be NULL for a database checker).
 */
void check_finish(struct check *c, struct check_verdict *v, int *fd);
/* Kills the checker (it took too long), waits for it, frees c. */
void check_abort(struct check *c, struct check_verdict *v);
/* A wait of at most timeout_ms for c, then check_finish or abort. */
void
check_wait(struct check *c, int timeout_ms, struct check_verdict *v, int *fd);

#endif
