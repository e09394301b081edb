/*
 * A worker process: its life from fork to _exit(), the control thread
 * and the stop (the gRPC server's setup is server.c). The master forks
 * it with every signal blocked; gRPC is initialised only here, after
 * fork. Call threads (config_threads(), call.c) drive one completion
 * queue and do all call handling; one more thread, the control thread,
 * does what the master asks over the worker's channel (channel.h: a
 * database swap, a Unix socket's connection, a log reopen, a stop) and
 * what signals ask (SIGTERM stops, SIGUSR1 reopens the log). It wakes a call
 * thread through the completion queue itself (a connectivity watch on an unused
 * channel, with a deadline already past, is gRPC core's way of posting a tag),
 * so the call loop never polls a flag.
 *
 * Database swaps: the control thread maps the database the master sent
 * and puts it in place under db_lock; each call takes a reference for as
 * long as it runs, so no thread keeps the old one once its calls are
 * answered, and its map goes when gRPC releases the last reply slice
 * pointing into it.
 */
#include "worker.h"
#include "worker_impl.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "arena.h"
#include "channel.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "reflection.h"
#include "rng.h"
#include "tls.h"

/* In a stop, how long gRPC may hold streams that are not our calls once
 * ours have all ended (see finish_stop()). */
#define STRAGGLER_MS 250
/* How often the control thread counts the connections held. */
#define COUNT_MS 1000

/*
 * The one way out of a worker. Never exit(): its handlers and gRPC's
 * static destructors would run while gRPC's own threads still use what
 * they tear down (fatal() can come from any thread). A sanitizer build
 * still checks for leaks on a clean stop, as exit() would have.
 */
static void worker_exit(int status) __attribute__((noreturn));

static void
worker_exit(int status)
{
#ifdef __SANITIZE_ADDRESS__
	if (status == 0)
		__lsan_do_leak_check();
#endif
	_exit(status);
}

static struct tag wake_tag = {NULL, TAG_WAKE};
static struct tag shutdown_tag = {NULL, TAG_SHUTDOWN};

/*
 * gRPC's messages are mostly about what peers sent (a bad header, a
 * failed handshake), which any client can repeat at will: they are
 * rate-limited, and log.c escapes what they quote.
 */
static struct log_limit grpc_handshakes = LOG_LIMIT_INIT("TLS handshakes");
static struct log_limit grpc_messages = LOG_LIMIT_INIT("gRPC messages");
/* For gRPC's log hook, which has no argument of ours. */
static struct worker *the_worker;
static atomic_int sick_told;
/* We shut our own listeners (conn_stop_listening()): gRPC's complaint
 * that accept4() failed is then expected. */
static atomic_int listeners_shut;

/* One message to the master; from any thread, as each is one datagram. */
static void
tell_master(struct worker *w, enum channel_type type, unsigned generation)
{
	int rc;

	if ((rc = channel_send(w->chan, type, generation, NULL, 0, -1)) != 0)
		log_warnx("cannot report to the master: %s",
		    channel_strerror(rc));
}

static void
grpc_log_to_ours(gpr_log_func_args *args)
{
	/*
	 * gRPC 1.51 gives up on a listener whose accept4() fails with
	 * anything but EAGAIN or ECONNABORTED (EMFILE, ENFILE, ENOBUFS:
	 * CVE-2023-4785): it logs this and never accepts again, while the
	 * kernel still queues our share of new connections there. Only a
	 * new process brings the listener back, so ask the master for one.
	 */
	if (strncmp(args->message, "Failed accept4", 14) == 0 &&
	    atomic_load(&listeners_shut)) {
		log_debug("grpc: %s (the listener was shut)", args->message);
		return;
	}
	if (strncmp(args->message, "Failed accept4", 14) == 0 &&
	    the_worker != NULL && atomic_load(&sick_told) == 0) {
		char why[192];

		snprintf(why, sizeof(why),
		    "grpc: %s: this worker accepts no more connections",
		    args->message);
		worker_ask_replacement(the_worker, why);
		return;
	}
	/* Anyone who can connect can fail a TLS handshake: not a warning. */
	if (strstr(args->message, "Handshake failed") != NULL)
		log_limited(&grpc_handshakes, LOG_LEVEL_DEBUG, "grpc: %s",
		    args->message);
	else
		log_limited(&grpc_messages, LOG_LEVEL_WARN, "grpc: %s",
		    args->message);
}

void
worker_ask_replacement(struct worker *w, const char *why)
{
	if (atomic_exchange(&sick_told, 1) != 0)
		return;
	log_warnx("%s; asking to be replaced", why);
	tell_master(w, CHAN_SICK, 0);
}

/*
 * Maps the checked database the master sent (fd) and puts it in place for
 * new calls, for the master's swap number generation; the master hears of
 * it only once every new call is sure to use it.
 */
static void
swap_to(struct worker *w, int fd, unsigned generation)
{
	struct db *d, *old;
	int rc;

	d = db_open(fd, w->nloops, &rc);
	close(fd);
	if (d == NULL) {
		log_warnx("reload: %s: %s; keeping the database in use",
		    w->config->database, store_strerror(rc));
		tell_master(w, CHAN_SWAP_FAILED, generation);
		return;
	}
	log_debug("reload: %s: %llu quotes", w->config->database,
	    (unsigned long long)store_nquotes(d->stores[0]));
	pthread_mutex_lock(&w->db_lock);
	old = w->db;
	w->db = d;
	pthread_mutex_unlock(&w->db_lock);
	db_unref(old);
	tell_master(w, CHAN_SWAPPED, generation);
}

void
worker_post(struct worker *w, struct tag *tag)
{
	grpc_channel_watch_connectivity_state(w->wake_channel,
	    GRPC_CHANNEL_IDLE, gpr_inf_past(GPR_CLOCK_MONOTONIC), w->cq, tag);
}

int
worker_serving(struct worker *w)
{
	return !atomic_load(&w->draining);
}

void
worker_tick(struct worker *w, long now)
{
	log_limit_flush(&grpc_handshakes);
	log_limit_flush(&grpc_messages);
	stream_end_idle(w, now);
}

/* One message from the master; 1 if it asks us to stop. */
static int
from_master(struct worker *w)
{
	struct channel_msg m;
	int fd, rc;

	rc = channel_recv(w->chan, &m, &fd);
	if (rc == CHANNEL_EMPTY)
		return 0;
	if (rc == CHANNEL_ENOFD) {
		/* Whole but for its descriptor: we have none free. */
		if (m.type == CHAN_CONN)
			conn_add(w, -1);
		else if (m.type == CHAN_SWAP)
			tell_master(w, CHAN_SWAP_FAILED, m.generation);
		if (m.type != CHAN_CONN)
			log_warnx("from the master: %s", channel_strerror(rc));
		return 0;
	}
	if (rc == CHANNEL_EBADMSG) {
		log_warnx("from the master: %s", channel_strerror(rc));
		return 0;
	}
	if (rc != 0) {
		/* A channel that fails is as good as closed: polling it
		 * again would only fail again. */
		if (rc == CHANNEL_CLOSED)
			log_info("the master is gone: stopping");
		else
			log_warnx("the channel to the master: %s; stopping",
			    channel_strerror(rc));
		w->master_gone = 1;
		return 1;
	}
	switch (m.type) {
	case CHAN_SWAP:
		swap_to(w, fd, m.generation);
		return 0;
	case CHAN_CONN:
		conn_add(w, fd);
		return 0;
	case CHAN_STOP:
		return 1;
	case CHAN_TLS:
		if ((rc = tls_update(fd)) != 0)
			log_warnx("new TLS certificate: %s; keeping the old "
				  "one",
			    tls_strerror(rc));
		else
			tell_master(w, CHAN_TLS_DONE, m.generation);
		return 0;
	case CHAN_REOPEN:
		if (log_reopen() != 0)
			log_warn("reopening the log");
		return 0;
	default:
		log_warnx("from the master: an unexpected message (type %u)",
		    m.type);
		if (fd >= 0)
			close(fd);
		return 0;
	}
}

/*
 * The control thread's wait: for up to ms (-1: no limit), it reads the
 * master's channel and the signals (blocked in every thread) and does
 * what they ask, until one asks for a stop (returns 1) or time is up (0).
 * A stop comes as CHAN_STOP, as SIGTERM or SIGINT from anyone else, or as
 * the end of the channel: the master has gone.
 */
static int
control_wait(struct worker *w, int sigfd, long ms)
{
	long until = scoreboard_now() + ms;

	for (;;) {
		struct pollfd pfd[2] = {{sigfd, POLLIN, 0},
		    {w->master_gone ? -1 : w->chan, POLLIN, 0}};
		struct signalfd_siginfo si;
		long now = scoreboard_now(), left = ms < 0 ? -1 : until - now;

		if (ms >= 0 && left <= 0)
			return 0;
		/* Connections are counted once a second (conn.c). */
		if (now >= w->next_count) {
			conn_tick(w);
			w->next_count = now + COUNT_MS;
		}
		if (left < 0 || left > w->next_count - now)
			left = w->next_count - now;
		if (poll(pfd, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[1].revents != 0 && from_master(w))
			return 1;
		if (!(pfd[0].revents & POLLIN) ||
		    read(sigfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			return 1;
		if (si.ssi_signo == SIGUSR1 && log_reopen() != 0)
			log_warn("reopening the log");
		/* SIGHUP, as from a terminal that hung up, is the master's:
		 * a swap reaches us as CHAN_SWAP. */
		if (si.ssi_signo == SIGHUP)
			log_info("SIGHUP is the master's to act on: ignored");
	}
}

static struct timespec
add_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static int
before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec ||
	    (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* Calls ever given to the worker: the sum of its threads' counts. */
static unsigned long long
calls_given(struct worker *w)
{
	unsigned long long n = 0;

	for (int i = 0; i < w->nloops; i++)
		n += atomic_load_explicit(&w->loops[i].calls,
		    memory_order_relaxed);
	return n;
}

/*
 * Waits for a stop to finish: gRPC finishes it when every stream on every
 * connection has ended. Our calls get up to shutdown_timeout. But gRPC
 * may hold streams that will never be calls of ours: one that arrives as
 * the shutdown begins can be left in gRPC 1.51's queue of unmatched calls
 * (its shutdown check and its queueing are not atomic) until its client
 * gives up, and an idle client may keep its connection for seconds. So
 * once every call given to us has ended, with none new for STRAGGLER_MS
 * (time for any already matched to reach us), the rest are cancelled:
 * their clients are refused at once rather than left waiting.
 */
static void
finish_stop(struct worker *w)
{
	struct timespec now, until, idle_since = {0, 0}, wake_at;
	unsigned long long idle_given = 0;
	int idle = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	until = add_ms(now, w->config->shutdown_timeout * 1000L);
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!before(now, until)) {
			if (atomic_load(&w->inflight) > 0)
				log_warnx("calls still in flight after %d s: "
					  "cancelling them",
				    w->config->shutdown_timeout);
			grpc_server_cancel_all_calls(w->server);
			break;
		}
		wake_at = until;
		if (atomic_load(&w->inflight) == 0) {
			if (!idle || calls_given(w) != idle_given) {
				idle = 1;
				idle_since = now;
				idle_given = calls_given(w);
			}
			if (!before(now, add_ms(idle_since, STRAGGLER_MS))) {
				log_debug("our calls are done: cancelling the "
					  "streams gRPC still holds");
				grpc_server_cancel_all_calls(w->server);
				break;
			}
			if (before(add_ms(idle_since, STRAGGLER_MS), until))
				wake_at = add_ms(idle_since, STRAGGLER_MS);
		} else {
			idle = 0;
		}
		pthread_cond_timedwait(&w->done_cond, &w->lock, &wake_at);
	}
	pthread_mutex_unlock(&w->lock);
}

/*
 * The control thread: does what the master and signals ask (see
 * control_wait()) until a stop. A stop is graceful: health turns
 * NOT_SERVING and, for drain_time, calls are still served so that load
 * balancers move away first; then the server takes no new calls, and
 * those in flight may finish within shutdown_timeout, after which they
 * are cancelled.
 */
static void *
control_thread(void *arg)
{
	struct worker *w = arg;
	int sigfd = w->sigfd;

	control_wait(w, sigfd, -1);

	/* Replaced: the replacement serves, so new connections go to it
	 * rather than to us while we drain. */
	if (atomic_load(&sick_told)) {
		atomic_store(&listeners_shut, 1);
		if (conn_stop_listening(w))
			log_info("replaced: no longer listening");
	}
	atomic_store(&w->draining, 1);
	worker_post(w, &wake_tag);
	if (w->config->drain_time > 0) {
		log_info("draining: health is NOT_SERVING for %d s",
		    w->config->drain_time);
		/* Another stop request cuts the drain short. */
		control_wait(w, sigfd, w->config->drain_time * 1000L);
	}
	log_info("stopping: finishing calls in flight");
	atomic_store(&w->shutting_down, 1);
	grpc_server_shutdown_and_notify(w->server, w->cq, &shutdown_tag);
	worker_post(w, &wake_tag); /* ends health streams */
	finish_stop(w);
	close(sigfd);
	return NULL;
}

void
worker_main(const struct config *c, int index, int chan, int db_fd,
    struct scoreboard_slot *score, struct metrics_thread *metrics)
{
	struct worker w;
	pthread_t control;
	pthread_condattr_t condattr;
	sigset_t set;
	int rc;

	log_setrole("worker %d", index);
	log_setexit(worker_exit);
	/* fatal() exits 1, worth a restart (with backoff); what a restart
	 * cannot mend leaves with EXIT_FATAL (worker_setup_server()). */
	signal(SIGPIPE, SIG_IGN);

	memset(&w, 0, sizeof(w));
	w.config = c;
	w.chan = chan;
	w.score = score;
	the_worker = &w;
	atomic_store(&score->pid, (int)getpid());
	w.nloops = config_threads(c);
	if ((w.loops = calloc((size_t)w.nloops, sizeof(*w.loops))) == NULL)
		fatal("calloc");
	for (int i = 0; i < w.nloops; i++) {
		struct loop *t = &w.loops[i];

		t->w = &w;
		t->index = i;
		t->metrics = metrics != NULL ? &metrics[i] : NULL;
		atomic_init(&t->calls, 0);
		arena_init(&t->arena);
		/* Seeded after fork: workers never share a sequence. */
		if (rng_seed_random(&t->rng) != 0)
			fatal("getrandom");
	}
	pthread_mutex_init(&w.lock, NULL);
	pthread_mutex_init(&w.db_lock, NULL);
	pthread_mutex_init(&w.stream_lock, NULL);
	/* The stop's deadline must not move with the wall clock. */
	pthread_condattr_init(&condattr);
	pthread_condattr_setclock(&condattr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.done_cond, &condattr);
	pthread_condattr_destroy(&condattr);
	atomic_init(&w.draining, 0);
	atomic_init(&w.shutting_down, 0);
	atomic_init(&w.inflight, 0);
	/* The file checked when we were forked, through our copy of the
	 * master's descriptor; swaps bring theirs (CHAN_SWAP). */
	w.db = db_open(db_fd, w.nloops, &rc);
	close(db_fd);
	if (w.db == NULL)
		fatalx("%s: %s", c->database, store_strerror(rc));
	if (reflection_init() != 0)
		fatalx("cannot index the reflection descriptors");

	grpc_init();
	gpr_set_log_function(grpc_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	switch (worker_setup_server(&w)) {
	case SETUP_OK:
		break;
	case SETUP_RETRY:
		fatalx("cannot set up the server");
	case SETUP_NEVER:
		worker_exit(EXIT_FATAL);
	}
	call_request_all(&w);
	/* The control thread's signals: the last descriptor that is not a
	 * connection, made here so that it is in the count below. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if ((w.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd");
	/* No call thread polls yet, so gRPC has accepted nothing. */
	conn_base(&w);
	if ((rc = pthread_create(&control, NULL, control_thread, &w)) != 0) {
		errno = rc;
		fatal("pthread_create");
	}
	for (int i = 1; i < w.nloops; i++)
		if ((rc = pthread_create(&w.loops[i].thread, NULL, call_thread,
			 &w.loops[i])) != 0) {
			errno = rc;
			fatal("pthread_create");
		}
	scoreboard_beat(w.score);
	tell_master(&w, CHAN_READY, 0);
	log_debug("serving %s with %d call thread%s", c->listen, w.nloops,
	    w.nloops == 1 ? "" : "s");

	call_thread(&w.loops[0]);
	for (int i = 1; i < w.nloops; i++)
		pthread_join(w.loops[i].thread, NULL);
	/* No heartbeat from now on: the master's stop deadline covers
	 * what is left. */
	scoreboard_done(w.score);

	/* Every call has finished. */
	pthread_mutex_lock(&w.lock);
	w.done = 1;
	pthread_cond_signal(&w.done_cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(control, NULL);
	conn_end(&w);

	grpc_server_destroy(w.server);
	grpc_channel_destroy(w.wake_channel);
	grpc_completion_queue_shutdown(w.cq);
	call_drain(&w);
	grpc_completion_queue_destroy(w.cq);
	grpc_shutdown();
	stream_free_all(&w);
	free(w.slots);
	log_limit_flush(&grpc_handshakes);
	log_limit_flush(&grpc_messages);
	log_info("stopped after %llu calls", calls_given(&w));
	free(w.loops);
	reflection_free();
	/* gRPC has released every slice by now: this is the last ref. */
	db_unref(w.db);
	close(w.chan);
	worker_exit(0);
}
