/*
 * TLS certificate reloads (SIGHUP): a checker child (check.c) reads the
 * files again, checks them (the key must match) and writes them into a
 * memory file it hands back; the master, which never parses them, puts
 * that file where new workers inherit it (tls.h) and sends it to every
 * running worker over its channel. The reload is announced once every
 * worker has said it took the new files, so that "reloaded" in the log
 * means every new connection from then on gets them. A bad pair, or a
 * checker that dies or hangs, is refused and the old pair stays.
 */
#include "master_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"

/* How long workers get to confirm before the master logs the reload. */
#define CERTS_REPORT_MS 5000

static void
certs_report(struct master *m)
{
	struct certs *t = &m->certs;
	char line[CONFIG_PATH_MAX + 128];
	int all = t->done >= t->expected;

	if (all)
		snprintf(line, sizeof(line), "TLS certificate reloaded from %s",
		    m->config->tls.cert);
	else
		snprintf(line, sizeof(line),
		    "TLS certificate reloaded from %s, but only %d of %d "
		    "workers confirmed within %d s",
		    m->config->tls.cert, t->done, t->expected,
		    CERTS_REPORT_MS / 1000);
	if (all)
		log_info("%s", line);
	else
		log_warnx("%s", line);
	reload_verdict(m, RELOAD_TLS, all, line);
	t->started = 0;
}

static void
refused(struct master *m, const char *why)
{
	char line[512];

	snprintf(line, sizeof(line),
	    "new TLS certificate refused, keeping the old one: %s", why);
	log_warnx("%s", line);
	reload_verdict(m, RELOAD_TLS, 0, line);
}

/* Has a checker read the files again; its verdict comes to the loop. */
void
certs_reload(struct master *m)
{
	const struct config *c = m->config;
	struct certs *t = &m->certs;
	char why[128];
	int rc;

	if (c->tls.fd < 0 || m->stopping != RUNNING)
		return;
	if (t->check != NULL) {
		/* The files may have changed since this checker read them. */
		t->check_again = 1;
		return;
	}
	if ((rc = check_start_tls(&c->tls, &t->check)) != 0) {
		snprintf(why, sizeof(why), "cannot start the checker: %s",
		    strerror(rc));
		refused(m, why);
		return;
	}
	t->check_deadline = now_ms() + (long)c->check_timeout * 1000;
	log_debug("SIGHUP: checking %s (checker pid %ld)", c->tls.cert,
	    (long)check_pid(t->check));
}

/* The checker's verdict: the new files to every worker, or refused. */
void
certs_finish_check(struct master *m, int timed_out)
{
	const struct config *c = m->config;
	struct certs *t = &m->certs;
	struct check_verdict v;
	int fd = -1;

	if (timed_out)
		check_abort(t->check, &v);
	else
		check_finish(t->check, &v, &fd);
	t->check = NULL;
	if (!v.ok) {
		refused(m, v.why);
	} else if (dup3(fd, c->tls.fd, O_CLOEXEC) < 0) {
		/* Same descriptor number, new file: a worker started from
		 * now on inherits it. */
		refused(m, "the master cannot keep the TLS memory file");
	} else {
		if (t->started != 0)
			certs_report(m); /* the one before, still waiting */
		t->generation++;
		t->done = 0;
		t->expected = proc_send_active(m, CHAN_TLS, t->generation,
		    c->tls.fd, "the TLS certificate");
		t->started = now_ms();
		if (t->expected == 0)
			certs_report(m);
	}
	if (fd >= 0)
		close(fd);
	if (t->check_again) {
		t->check_again = 0;
		certs_reload(m);
	}
	reload_done(m);
}

void
certs_worker_reported(struct master *m, unsigned generation)
{
	struct certs *t = &m->certs;

	if (t->started == 0 || generation != t->generation)
		return;
	if (++t->done >= t->expected) {
		certs_report(m);
		reload_done(m);
	}
}

/* The reload's deadlines at now; ms until the next, or -1. */
long
certs_due(struct master *m, long now)
{
	struct certs *t = &m->certs;
	long timeout = -1;

	if (t->started != 0 && t->started + CERTS_REPORT_MS <= now) {
		certs_report(m);
		reload_done(m);
	}
	if (t->check != NULL && t->check_deadline <= now)
		certs_finish_check(m, 1);
	if (t->started != 0)
		timeout = t->started + CERTS_REPORT_MS - now;
	if (t->check != NULL)
		timeout = sooner(timeout, t->check_deadline - now);
	return timeout;
}

/* Busy: a checker running or workers yet to confirm. */
int
certs_busy(const struct master *m)
{
	return m->certs.check != NULL || m->certs.started != 0;
}

/* A stop drops the checker, if any. */
void
certs_end(struct master *m)
{
	struct check_verdict v;

	if (m->certs.check == NULL)
		return;
	check_abort(m->certs.check, &v);
	m->certs.check = NULL;
}
