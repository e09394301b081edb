/*
 * TLS certificate reloads (SIGHUP): the files read again and checked
 * (the key must match), put in the memory file new workers inherit
 * (tls.h), and sent to every running worker over its channel. The reload
 * is announced once every worker has said it took the new files, so that
 * "reloaded" in the log means every new connection from then on gets
 * them. A bad pair is refused and the old one stays.
 */
#include "master_impl.h"

#include "channel.h"
#include "log.h"
#include "tls.h"

/* How long workers get to confirm before the master logs the reload. */
#define CERTS_REPORT_MS 5000

static void
certs_report(struct master *m)
{
	struct certs *t = &m->certs;

	if (t->done >= t->expected)
		log_info("TLS certificate reloaded from %s",
		    m->config->tls.cert);
	else
		log_warnx("TLS certificate reloaded from %s, but only %d of "
			  "%d workers confirmed within %d s",
		    m->config->tls.cert, t->done, t->expected,
		    CERTS_REPORT_MS / 1000);
	t->started = 0;
}

void
certs_reload(struct master *m)
{
	const struct config *c = m->config;
	struct certs *t = &m->certs;
	struct tls_config fresh;
	char err[CONFIG_PATH_MAX + 128];
	int fd = c->tls.fd, rc;

	if (c->tls.fd < 0)
		return;
	/* The same settings, the files read again. */
	fresh = c->tls;
	fresh.cert_pem = fresh.key_pem = fresh.client_ca_pem = NULL;
	if (config_read_tls(&fresh, err, sizeof(err)) != 0) {
		log_warnx("new TLS certificate refused, keeping the old one: "
			  "%s",
		    err);
	} else if ((rc = tls_publish(&fresh, &fd)) != 0) {
		log_warnx("new TLS certificate refused, keeping the old one: "
			  "TLS memory file: %s",
		    tls_strerror(rc));
	} else {
		if (t->started != 0)
			certs_report(m); /* the one before, still waiting */
		t->generation++;
		t->expected = t->done = 0;
		for (int i = 0; i < m->nprocs; i++) {
			struct proc *p = &m->procs[i];

			if (p->pid == 0 || p->state != PROC_ACTIVE)
				continue;
			if ((rc = channel_send(p->chan, CHAN_TLS, t->generation,
				 NULL, 0, c->tls.fd)) == 0)
				t->expected++;
			else
				log_warnx("worker %d: cannot send it the TLS "
					  "certificate: %s",
				    i, channel_strerror(rc));
		}
		t->started = now_ms();
		if (t->expected == 0)
			certs_report(m);
	}
	config_free_tls(&fresh);
}

void
certs_worker_reported(struct master *m, unsigned generation)
{
	struct certs *t = &m->certs;

	if (t->started == 0 || generation != t->generation)
		return;
	if (++t->done >= t->expected)
		certs_report(m);
}

long
certs_due(struct master *m, long now)
{
	struct certs *t = &m->certs;

	if (t->started == 0)
		return -1;
	if (t->started + CERTS_REPORT_MS <= now) {
		certs_report(m);
		return -1;
	}
	return t->started + CERTS_REPORT_MS - now;
}
