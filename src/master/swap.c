/*
 * Database generations: every swap happens here. The master opens the
 * new file and forks a checker of it (check.c), going on with its loop
 * meanwhile; on the checker's "good" it makes the file the one at db_fd
 * and sends it to every worker over its channel (CHAN_SWAP), which maps
 * it and reports back, and logs one line when all have switched. A bad file is
 * refused and nothing changes. The master never parses a database
 * itself: a hostile file can crash only the checker.
 */
#include "master_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"

/* How long workers get to report a swap before the master logs it. */
#define SWAP_REPORT_MS 5000

static void
swap_report(struct master *m)
{
	struct swap *sw = &m->swap;
	char line[CONFIG_PATH_MAX + 256];

	if (sw->started == 0)
		return;
	snprintf(line, sizeof(line),
	    "database generation %u: %s: %llu quotes, %llu authors; %d of %d "
	    "workers switched in %ld ms%s",
	    sw->generation, m->config->database, sw->quotes, sw->authors,
	    sw->switched, sw->expected, now_ms() - sw->started,
	    sw->failed ? " (the others kept the previous database)" : "");
	log_info("%s", line);
	/* A reload is done only once every worker serves the new file. */
	reload_verdict(m, RELOAD_DB,
	    sw->failed == 0 && sw->switched >= sw->expected, line);
	sw->started = 0;
}

/* A candidate refused: the reason logged, and the reload's verdict. */
static void refused(struct master *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
refused(struct master *m, const char *fmt, ...)
{
	char line[CONFIG_PATH_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n,
		    "; new database refused; still serving generation %u",
		    m->swap.generation);
	log_warnx("%s", line);
	reload_verdict(m, RELOAD_DB, 0, line);
}

static void
file_id(const struct stat *st, struct file_id *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

static int
same_file(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The database gauges, for the file now served; swapped: one more swap. */
void
swap_publish(struct master *m, const struct store_info *info, int swapped)
{
	struct metrics_master *mm;

	if (m->metrics == NULL)
		return;
	mm = metrics_master(m->metrics);
	metrics_set(&mm->generation, m->swap.generation);
	metrics_set(&mm->quotes, info->nquotes);
	metrics_set(&mm->authors, info->nauthors);
	metrics_set(&mm->loaded_at, (uint64_t)time(NULL));
	if (swapped)
		metrics_add(&mm->swaps_ok, 1);
}

/*
 * Opens the database at the path and forks a checker of the very file it
 * opened; the verdict comes to the loop (swap_finish_check). Unless
 * force, a file that looks the same as the one last examined is not
 * checked again.
 */
void
swap_database(struct master *m, const char *why, int force)
{
	const char *path = m->config->database;
	struct stat st;
	char reason[256];
	int fd, rc;

	if (m->stopping != RUNNING)
		return;
	if (m->check != NULL) {
		/* The path may name yet another file by the time this check
		 * ends: look again then. */
		m->check_again = 1;
		m->check_force |= force;
		return;
	}
	if ((fd = check_open(path, &st, reason, sizeof(reason))) < 0) {
		refused(m, "%s: %s: %s", why, path, reason);
		return;
	}
	file_id(&st, &m->check_id);
	if (!force && same_file(&m->check_id, &m->seen_id)) {
		close(fd);
		return;
	}
	m->seen_id = m->check_id; /* checked once is enough for this file */
	if ((rc = check_start(fd, &m->check)) != 0) {
		refused(m, "%s: %s: cannot start the checker: %s", why, path,
		    strerror(rc));
		close(fd);
		return;
	}
	m->check_fd = fd;
	m->check_why = why;
	m->check_deadline = now_ms() + (long)m->config->check_timeout * 1000;
	log_debug("%s: checking %s (checker pid %ld)", why, path,
	    (long)check_pid(m->check));
}

/*
 * Acts on a checker's verdict: a bad file is refused with the reason,
 * and the workers keep serving what they have; a good one becomes the
 * database every worker switches to.
 */
void
swap_finish_check(struct master *m, int timed_out)
{
	struct swap *sw = &m->swap;
	struct check_verdict v;

	if (timed_out)
		check_abort(m->check, &v);
	else
		check_finish(m->check, &v, NULL);
	m->check = NULL;
	if (!v.ok && m->check_id.dev == m->db_id.dev &&
	    m->check_id.ino == m->db_id.ino) {
		/* Not a new file: the one served, rewritten where it lies
		 * (truncate, cp over it). Workers map it, so nothing here
		 * keeps it from them: say so rather than claim that the old
		 * data is still served. */
		char line[CONFIG_PATH_MAX + 768];

		snprintf(line, sizeof(line),
		    "%s: %s: %s; the served file (generation %u) was changed "
		    "in place, and workers map it: they may fail or crash on "
		    "it. Rename a good database onto the path (as "
		    "quotes-import does), or restart quoterd on one; never "
		    "write the served file",
		    m->check_why, m->config->database, v.why, sw->generation);
		log_errorx("%s", line);
		reload_verdict(m, RELOAD_DB, 0, line);
	} else if (!v.ok)
		refused(m, "%s: %s: %s", m->check_why, m->config->database,
		    v.why);
	if (!v.ok) {
		close(m->check_fd);
		if (m->metrics != NULL)
			metrics_add(&metrics_master(m->metrics)->swaps_refused,
			    1);
	} else {
		/* Same descriptor number, new file: a worker started from
		 * now on inherits the current database as db_fd. */
		if (dup3(m->check_fd, m->db_fd, O_CLOEXEC) < 0)
			fatal("dup3");
		close(m->check_fd);
		m->db_id = m->check_id;
		if (sw->started != 0)
			swap_report(m); /* a swap still waiting for reports */
		sw->generation++;
		sw->quotes = v.info.nquotes;
		sw->authors = v.info.nauthors;
		swap_publish(m, &v.info, 1);
		sw->started = now_ms();
		sw->switched = sw->failed = 0;
		sw->expected = proc_send_active(m, CHAN_SWAP, sw->generation,
		    m->db_fd, "the database");
		if (sw->expected == 0)
			swap_report(m);
	}
	m->check_fd = -1;
	if (m->check_again) {
		int force = m->check_force;

		m->check_again = m->check_force = 0;
		swap_database(m, "database file replaced", force);
	}
	reload_done(m);
}

/* Watches the database's directory: quotes-import renames onto the path. */
static void
watch_database(struct master *m)
{
	char dir[PATH_MAX], name[PATH_MAX];

	m->inotify_fd = -1;
	if (!m->config->watch_database)
		return;
	snprintf(dir, sizeof(dir), "%s", m->config->database);
	snprintf(name, sizeof(name), "%s", m->config->database);
	snprintf(m->db_name, sizeof(m->db_name), "%s", basename(name));
	if ((m->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		log_warn("inotify: not watching %s", m->config->database);
		return;
	}
	if (inotify_add_watch(m->inotify_fd, dirname(dir),
		IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		log_warn("inotify: not watching %s", m->config->database);
		close(m->inotify_fd);
		m->inotify_fd = -1;
	}
}

void
swap_read_inotify(struct master *m)
{
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	int changed = 0;
	ssize_t n;

	while ((n = read(m->inotify_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			/* After an overflow, any event may have been lost. */
			if ((ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len > 0 && strcmp(ev->name, m->db_name) == 0))
				changed = 1;
		}
	if (changed)
		swap_database(m, "database file replaced", 0);
}

/* The first generation: the file main() had checked, now at db_fd. */
void
swap_init(struct master *m)
{
	struct stat st;

	m->check_fd = -1;
	if (fstat(m->db_fd, &st) != 0)
		fatal("fstat %s", m->config->database);
	file_id(&st, &m->db_id);
	m->seen_id = m->db_id;
	watch_database(m);
}

/* A worker's report on the swap it was asked for. */
void
swap_worker_reported(struct master *m, int index, int swapped,
    unsigned generation)
{
	struct swap *sw = &m->swap;

	/* A late report of an earlier swap is not about the file now in
	 * use. */
	if (sw->started == 0 || generation != sw->generation)
		return;
	/* Count workers, not reports. */
	if (m->procs[index].swapped == sw->generation)
		return;
	m->procs[index].swapped = sw->generation;
	if (swapped)
		sw->switched++;
	else
		sw->failed++;
	if (sw->switched + sw->failed >= sw->expected) {
		swap_report(m);
		reload_done(m);
	}
}

/* A stop drops the candidate being checked, if any. */
void
swap_abort_check(struct master *m)
{
	struct check_verdict v;

	if (m->check == NULL)
		return;
	check_abort(m->check, &v);
	m->check = NULL;
	close(m->check_fd);
	m->check_fd = -1;
	m->check_again = 0;
}

/*
 * The swap's deadlines at now: reports overdue are counted as they
 * stand, a check overdue is a refusal. Returns ms until the next, or -1.
 */
long
swap_due(struct master *m, long now)
{
	long timeout = -1;

	if (m->swap.started != 0 && m->swap.started + SWAP_REPORT_MS <= now) {
		swap_report(m);
		reload_done(m);
	}
	if (m->check != NULL && m->check_deadline <= now)
		swap_finish_check(m, 1);
	if (m->swap.started != 0)
		timeout = m->swap.started + SWAP_REPORT_MS - now;
	if (m->check != NULL)
		timeout = sooner(timeout, m->check_deadline - now);
	return timeout;
}

void
swap_end(struct master *m)
{
	if (m->inotify_fd >= 0)
		close(m->inotify_fd);
	close(m->db_fd);
}
