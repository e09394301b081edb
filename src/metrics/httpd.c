/*
 * The metrics process (httpd.h), on libmicrohttpd: one internal polling
 * thread, a small connection limit and a timeout, so slow or malformed
 * clients cost little and cannot hold the endpoint. Anything but GET or
 * HEAD of /metrics is refused: 404 for other paths, 405 for other methods.
 */
#include "httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exposition.h"
#include "log.h"

#define CONNECTION_LIMIT   32
#define CONNECTION_TIMEOUT 10 /* seconds */

struct httpd {
	struct metrics *metrics;
	pid_t master;
};

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *text,
    const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (allow != NULL)
		MHD_add_response_header(r, "Allow", allow);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
handle(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **state)
{
	struct httpd *h = arg;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed\n", "GET, HEAD");
	if ((text = exposition_render(h->metrics, h->master, &len)) == NULL)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "cannot render metrics\n", NULL);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void
mhd_log(void *arg, const char *fmt, va_list ap)
{
	char msg[256];

	(void)arg;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg);
}

void
httpd_main(int fd, struct metrics *m)
{
	struct httpd h = {m, getppid()};
	struct MHD_Daemon *d;
	sigset_t set;
	int sig;

	log_setrole("metrics");
	/* Told apart from the workers in ps and top. */
	prctl(PR_SET_NAME, "quoterd-metrics");
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		fatal("prctl");
	if (getppid() != h.master)
		_exit(0);
	signal(SIGPIPE, SIG_IGN);
	/* Signals stay blocked, as the master left them; this thread
	 * waits for them, libmicrohttpd's thread never sees them. */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ERROR_LOG,
	    0, NULL, NULL, handle, &h, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (d == NULL)
		fatalx("cannot start the HTTP server");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			log_reopen();
		else
			break;
	}
	MHD_stop_daemon(d);
	_exit(0);
}
