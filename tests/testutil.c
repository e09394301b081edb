/*
 * Helpers shared by the cmocka tests (see testutil.h).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include "quote_service.pb-c.h"
#include "store_format.h"

extern char **environ;

int
tmpdir_create(char *dir, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, PATH_MAX, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
	    name);
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

int
tmpdir_remove(const char *dir)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

MDB_txn *
lmdb_write_begin(const char *path)
{
	MDB_env *env;
	MDB_txn *txn;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, STORE_MAXDBS), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK,
			     0644),
	    0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	return txn;
}

void
lmdb_write_end(MDB_txn *txn)
{
	MDB_env *env = mdb_txn_env(txn);

	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

void
path_join(const char *dir, const char *name, char *out)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		fail_msg("path too long");
}

void
write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	if (len > 0 && fwrite(data, 1, len, f) != len)
		fail_msg("%s: short write", path);
	if (fclose(f) != 0)
		fail_msg("%s: %s", path, strerror(errno));
}

char *
read_file(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

int
run_importer(const char *const *args, const char *stdin_data, size_t stdin_len,
    const char *outp, const char *errp)
{
	const char *build = getenv("QUOTERD_BUILD");
	char prog[PATH_MAX];
	char *argv[32];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t deflt;
	int pfd[2] = {-1, -1}, status, err, argc = 0;
	pid_t pid;

	if (build == NULL || *build == '\0')
		fail_msg("QUOTERD_BUILD is not set "
			 "(e.g. QUOTERD_BUILD=$PWD/build)");
	snprintf(prog, sizeof(prog), "%s/quotes-import", build);
	argv[argc++] = prog;
	for (; *args != NULL; args++) {
		assert_true(argc < 31);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;

	posix_spawn_file_actions_init(&fa);
	if (stdin_data != NULL) {
		assert_int_equal(pipe(pfd), 0);
		posix_spawn_file_actions_adddup2(&fa, pfd[0], STDIN_FILENO);
		posix_spawn_file_actions_addclose(&fa, pfd[0]);
		posix_spawn_file_actions_addclose(&fa, pfd[1]);
	} else {
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
		    O_RDONLY, 0);
	}
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, outp,
	    O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (strcmp(outp, errp) == 0)
		posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO,
		    STDERR_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errp,
		    O_WRONLY | O_CREAT | O_TRUNC, 0644);
	/* A test may ignore SIGPIPE; the child must not inherit that. */
	posix_spawnattr_init(&attr);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	err = posix_spawn(&pid, prog, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (err != 0)
		fail_msg("%s: %s", prog, strerror(err));
	if (stdin_data != NULL) {
		size_t off = 0;

		close(pfd[0]);
		/* A child that exits without reading gives EPIPE: fine. */
		while (off < stdin_len) {
			ssize_t w =
			    write(pfd[1], stdin_data + off, stdin_len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(pfd[1]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
	return status;
}

void
expect_author_quotes(const struct store *s, struct rng *r,
    const struct quote *q, size_t n, size_t picks_per_quote)
{
	bool *seen = calloc(n ? n : 1, sizeof(*seen));

	assert_non_null(seen);
	for (size_t a = 0; a < n; a++) {
		const char *name = q[a].author;
		size_t mine = 0, prior;

		for (prior = 0; prior < a; prior++)
			if (strcmp(q[prior].author, name) == 0)
				break;
		if (prior < a)
			continue; /* this author is done */
		for (size_t i = 0; i < n; i++)
			mine += strcmp(q[i].author, name) == 0;
		for (size_t k = 0; k < picks_per_quote * mine; k++) {
			struct store_quote sq;
			Quotes__QuoteReply *reply;
			size_t i;

			assert_int_equal(store_pick(s, name, strlen(name), r,
					     &sq),
			    0);
			reply =
			    quotes__quote_reply__unpack(NULL, sq.len, sq.reply);
			assert_non_null(reply);
			assert_string_equal(reply->author, name);
			for (i = 0; i < n; i++)
				if (strcmp(q[i].author, name) == 0 &&
				    strcmp(q[i].text, reply->quote) == 0)
					break;
			if (i == n)
				fail_msg("'%s' is not a quote of '%s'",
				    reply->quote, name);
			seen[i] = true;
			quotes__quote_reply__free_unpacked(reply, NULL);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!seen[i])
			fail_msg("never picked '%s' of '%s'", q[i].text,
			    q[i].author);
	free(seen);
}
