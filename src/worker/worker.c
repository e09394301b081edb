/*
 * The worker loop. The master forks it with every signal blocked; gRPC is
 * initialised only here, after fork. Call threads (config_threads()) drive
 * one completion queue and do all call handling; another thread only
 * waits for signals: WORKER_SIGRELOAD (or SIGHUP) opens the database
 * again, SIGTERM drains and stops the server. The signal thread wakes a
 * call thread through the completion queue itself (a connectivity watch
 * on an unused channel, with a deadline already past, is gRPC core's way
 * of posting a tag), so the call loop never polls a flag.
 *
 * Why more than one call thread: gRPC core sends what a call thread hands
 * it at once, one write per reply, unless the connection is busy in
 * another thread; then the replies queue and go out together. With two
 * threads on one queue, one is often reading while the other answers,
 * and a write carries two or three replies (see bench/RESULTS.md).
 *
 * Threads: a unary call's events come one at a time, so its slot needs
 * no lock; everything about streams (their slots, the list, the wake-ups)
 * is under stream_lock. Each call thread has its own arena, generator
 * and LMDB transaction (db.h).
 *
 * Database swaps: the signal thread opens the new database and puts it in
 * place under db_lock; each call takes a reference for as long as it
 * runs, so no thread keeps the old one once its calls are answered, and
 * its map goes when gRPC releases the last reply slice pointing into it.
 *
 * Calls: each method has call slots requested from gRPC up front. A unary
 * call is answered in one batch (initial metadata, message, status, and
 * the receive-close), then its slot is requested again. Streams (health
 * Watch, reflection) are long-lived, so their slots are made as calls
 * arrive, keeping one always requested, and freed when the call ends.
 * Nothing on GetQuote's path is allocated by this file: slots are
 * preallocated, requests are decoded into an arena, and replies are
 * slices of the map.
 */
#include "worker.h"
#include "worker_impl.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "arena.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "reflection.h"
#include "rng.h"
#include "service.h"
#include "tls.h"

/* In a stop, how long gRPC may hold streams that are not our calls once
 * ours have all ended (see finish_stop()). */
#define STRAGGLER_MS 250
/* How often an idle call thread wakes to renew the heartbeat. */
#define TICK_MS 1000
/*
 * Streams open at once, per kind; beyond this, new ones of that kind wait
 * in gRPC. Each kind has its own budget so that one cannot starve
 * another: a client holding reflection streams open must not leave
 * health Watch (what balancers and Kubernetes ask) without a slot.
 */
#define MAX_WATCH_STREAMS 1024
#define MAX_REFLECTION_STREAMS 128

const struct method call_methods[SLOT_KINDS] = {
    [SLOT_QUOTE] = {"/quotes.Quoter/GetQuote",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 0, METRICS_GET_QUOTE},
    [SLOT_LIST_AUTHORS] = {"/quotes.Quoter/ListAuthors",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4,
	METRICS_LIST_AUTHORS},
    [SLOT_CHECK] = {"/grpc.health.v1.Health/Check",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 8,
	METRICS_HEALTH_CHECK},
    [SLOT_WATCH] = {"/grpc.health.v1.Health/Watch",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 1, MAX_WATCH_STREAMS,
	METRICS_HEALTH_WATCH},
    [SLOT_REFLECTION] = {"/grpc.reflection.v1.ServerReflection/"
			 "ServerReflectionInfo",
	GRPC_SRM_PAYLOAD_NONE, 1, MAX_REFLECTION_STREAMS, METRICS_REFLECTION},
    [SLOT_REFLECTION_ALPHA] = {"/grpc.reflection.v1alpha.ServerReflection/"
			       "ServerReflectionInfo",
	GRPC_SRM_PAYLOAD_NONE, 1, MAX_REFLECTION_STREAMS,
	METRICS_REFLECTION_ALPHA},
    [SLOT_SEARCH_QUOTES] = {"/quotes.Quoter/SearchQuotes",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4,
	METRICS_SEARCH_QUOTES},
    [SLOT_LIST_TAGS] = {"/quotes.Quoter/ListTags",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4, METRICS_LIST_TAGS},
    [SLOT_QUOTE_OF_THE_DAY] = {"/quotes.Quoter/GetQuoteOfTheDay",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4,
	METRICS_QUOTE_OF_THE_DAY},
    [SLOT_UNKNOWN] = {NULL, GRPC_SRM_PAYLOAD_NONE, 0, 8, METRICS_OTHER},
};

/* The counters of the call thread running, for whichever call it ends. */
static __thread struct metrics_thread *thread_metrics;

/*
 * The one way out of a worker. Never exit(): its handlers and gRPC's
 * static destructors would run while gRPC's own threads still use what
 * they tear down (fatal() can come from any thread). A sanitizer build
 * still checks for leaks on a clean stop, as exit() would have.
 */
static void __attribute__((noreturn))
worker_exit(int status)
{
#ifdef __SANITIZE_ADDRESS__
	if (status == 0)
		__lsan_do_leak_check();
#endif
	_exit(status);
}

static struct tag wake_tag = {NULL, TAG_WAKE};
static struct tag exit_tag = {NULL, TAG_EXIT};
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

static void tell_master(struct worker *w, enum worker_event event,
    unsigned generation);

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
	    the_worker != NULL && atomic_exchange(&sick_told, 1) == 0) {
		log_warnx("grpc: %s: this worker accepts no more connections; "
			  "asking to be replaced", args->message);
		tell_master(the_worker, WORKER_SICK, 0);
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

/* Posts tag to the call threads' queue; callable from any thread. */
static void
post(struct worker *w, struct tag *tag)
{
	grpc_channel_watch_connectivity_state(w->wake_channel,
	    GRPC_CHANNEL_IDLE, gpr_inf_past(GPR_CLOCK_MONOTONIC), w->cq, tag);
}

/* The database for a new call, referenced until the caller unrefs it. */
static struct db *
current_db(struct worker *w)
{
	struct db *d;

	pthread_mutex_lock(&w->db_lock);
	d = db_ref(w->db);
	pthread_mutex_unlock(&w->db_lock);
	return d;
}

static void
tell_master(struct worker *w, enum worker_event event, unsigned generation)
{
	struct worker_msg msg = {w->index, event, generation, (int32_t)getpid()};

	if (write(w->status_fd, &msg, sizeof(msg)) != sizeof(msg))
		log_warn("cannot report to the master");
}

/*
 * Opens the master's database again and puts it in place for new calls,
 * for the master's swap number generation; the master hears of it only
 * once every new call is sure to use it.
 */
static void
reload(struct worker *w, unsigned generation)
{
	struct db *d, *old;
	int rc;

	if ((d = db_open(w->db_path, w->nloops, &rc)) == NULL) {
		log_warnx("reload: %s: %s; keeping the database in use",
		    w->config->database, store_strerror(rc));
		tell_master(w, WORKER_RELOAD_FAILED, generation);
		return;
	}
	log_debug("reload: %s: %llu quotes", w->config->database,
	    (unsigned long long)store_nquotes(d->stores[0]));
	pthread_mutex_lock(&w->db_lock);
	old = w->db;
	w->db = d;
	pthread_mutex_unlock(&w->db_lock);
	db_unref(old);
	tell_master(w, WORKER_RELOADED, generation);
}

struct slot *
slot_new(enum slot_kind kind, struct slot *s)
{
	if (s == NULL && (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->kind = kind;
	s->op_tag = (struct tag){s, TAG_OP};
	s->close_tag = (struct tag){s, TAG_CLOSE};
	return s;
}

void
slot_request(struct worker *w, struct slot *s)
{
	grpc_call_error err;

	s->call = NULL;
	s->request = s->reply = NULL;
	s->finished = s->header_sent = s->client_gone = s->reading = 0;
	s->health_sent = 0;
	s->counted = 0;
	grpc_metadata_array_init(&s->metadata);
	/* Set first: the call may arrive on another thread at once. */
	s->requested = s->op_pending = 1;
	if (call_methods[s->kind].stream)
		w->waiting[s->kind]++;
	if (s->kind == SLOT_UNKNOWN) {
		grpc_call_details_init(&s->details);
		err = grpc_server_request_call(w->server, &s->call,
		    &s->details, &s->metadata, w->cq, w->cq, &s->op_tag);
	} else {
		err = grpc_server_request_registered_call(w->server,
		    w->registered[s->kind], &s->call, &s->deadline,
		    &s->metadata,
		    call_methods[s->kind].payload ==
			    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
			? &s->request
			: NULL,
		    w->cq, w->cq, &s->op_tag);
	}
	if (err != GRPC_CALL_OK)
		fatalx("cannot request a call: error %d", (int)err);
}

/* Counts a call's end, once, on the counters of the thread ending it. */
void
call_count(struct slot *s, grpc_status_code status)
{
	if (thread_metrics == NULL || s->counted)
		return;
	s->counted = 1;
	metrics_call(thread_metrics, call_methods[s->kind].metric, (int)status,
	    metrics_now() - s->started_ns);
}

/*
 * Once nothing is under way on a slot's call, lets go of the call and
 * requests the slot again (or frees a stream's slot).
 */
static void
release_slot(struct worker *w, struct slot *s)
{
	if (s->op_pending || s->close_pending)
		return;
	if (s->call != NULL) {
		/* Ended without a status from us: its client went away or
		 * a stop cancelled it. */
		if (!s->counted)
			call_count(s, GRPC_STATUS_CANCELLED);
		grpc_call_unref(s->call);
		if (atomic_fetch_sub(&w->inflight, 1) == 1 &&
		    atomic_load(&w->shutting_down)) {
			pthread_mutex_lock(&w->lock);
			pthread_cond_signal(&w->done_cond);
			pthread_mutex_unlock(&w->lock);
		}
	}
	if (s->request != NULL)
		grpc_byte_buffer_destroy(s->request);
	if (s->reply != NULL)
		grpc_byte_buffer_destroy(s->reply);
	s->call = NULL;
	s->request = s->reply = NULL;
	grpc_metadata_array_destroy(&s->metadata);
	if (s->kind == SLOT_UNKNOWN)
		grpc_call_details_destroy(&s->details);
	if (call_methods[s->kind].stream) {
		stream_remove(w, s);
		return;
	}
	if (!atomic_load(&w->shutting_down))
		slot_request(w, s);
}

/*
 * Starts a batch on the slot's call. If gRPC refuses it, the call is
 * given up and the slot released (a stream's slot is freed): -1, and the
 * caller must not touch s again.
 */
int
call_start_batch(struct worker *w, struct slot *s, grpc_op *ops, grpc_op *end,
    struct tag *tag)
{
	grpc_call_error err;

	if (tag == &s->op_tag)
		s->op_pending = 1;
	else
		s->close_pending = 1;
	err = grpc_call_start_batch(s->call, ops, (size_t)(end - ops), tag,
	    NULL);
	if (err == GRPC_CALL_OK)
		return 0;
	log_warnx("cannot start a batch: error %d", (int)err);
	if (tag == &s->op_tag)
		s->op_pending = 0;
	else
		s->close_pending = 0;
	s->finished = s->client_gone = 1;
	release_slot(w, s);
	return -1;
}

/* Adds initial metadata to a batch unless it went out already. */
grpc_op *
call_add_header(struct slot *s, grpc_op *op)
{
	if (!s->header_sent) {
		op->op = GRPC_OP_SEND_INITIAL_METADATA;
		op++;
		s->header_sent = 1;
	}
	return op;
}

static grpc_op *
add_status(struct slot *s, grpc_op *op, grpc_status_code status,
    const char *why)
{
	s->status_details = status == GRPC_STATUS_OK
	    ? grpc_empty_slice()
	    /* A reason is always given; a missing one must not crash. */
	    : grpc_slice_from_static_string(why != NULL ? why : "failed");
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.status = status;
	op->data.send_status_from_server.status_details = &s->status_details;
	s->finished = 1;
	/* Counted as the status leaves: a client that has its answer
	 * finds it counted. */
	call_count(s, status);
	return op + 1;
}

/* Answers a unary call (or ends a stream) in one batch. */
void
call_answer(struct worker *w, struct slot *s, grpc_status_code status,
    const char *why)
{
	grpc_op ops[4], *op = ops;

	memset(ops, 0, sizeof(ops));
	op = call_add_header(s, op);
	if (s->reply != NULL && status == GRPC_STATUS_OK) {
		op->op = GRPC_OP_SEND_MESSAGE;
		op->data.send_message.send_message = s->reply;
		op++;
	}
	op = add_status(s, op, status, why);
	if (!call_methods[s->kind].stream) {
		op->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		op->data.recv_close_on_server.cancelled = &s->cancelled;
		op++;
	}
	call_start_batch(w, s, ops, op, &s->op_tag);
}

/* Health: SERVING until a stop begins, so that balancers drain first. */
int
worker_serving(struct worker *w)
{
	return !atomic_load(&w->draining);
}

/* A call has arrived on slot s. */
static void
start_call(struct loop *t, struct slot *s)
{
	struct worker *w = t->w;
	struct db *d = current_db(w);
	struct request_ctx ctx = {d, d->stores[t->index], &t->rng,
	    &t->arena.allocator, (size_t)w->config->max_request_size};
	grpc_status_code status = GRPC_STATUS_OK;
	const char *why = NULL;
	int known = 0;

	if (t->metrics != NULL) {
		s->started_ns = metrics_now();
		metrics_add(&t->metrics->started, 1);
	}
	arena_reset(&t->arena);
	switch (s->kind) {
	case SLOT_QUOTE:
		status = service_get_quote(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_LIST_AUTHORS:
		status = service_list_authors(&ctx, s->request, &s->reply,
		    &why);
		break;
	case SLOT_SEARCH_QUOTES:
		status = service_search_quotes(&ctx, s->request, &s->reply,
		    &why);
		break;
	case SLOT_LIST_TAGS:
		status = service_list_tags(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_QUOTE_OF_THE_DAY:
		status = service_quote_of_the_day(&ctx, s->request, &s->reply,
		    &why);
		break;
	case SLOT_CHECK:
		status = service_health_request(&ctx, s->request, &known,
		    &why);
		if (status == GRPC_STATUS_OK && !known) {
			status = GRPC_STATUS_NOT_FOUND;
			why = "unknown service";
		} else if (status == GRPC_STATUS_OK) {
			s->reply = service_health_reply(worker_serving(w)
				? HEALTH_SERVING
				: HEALTH_NOT_SERVING);
		}
		break;
	case SLOT_WATCH:
	case SLOT_REFLECTION:
	case SLOT_REFLECTION_ALPHA:
		stream_start(w, s, &ctx);
		goto done;
	case SLOT_UNKNOWN:
	case SLOT_KINDS:
		status = GRPC_STATUS_UNIMPLEMENTED;
		why = "unknown method";
		break;
	}
	if (status != GRPC_STATUS_OK && s->reply != NULL) {
		grpc_byte_buffer_destroy(s->reply);
		s->reply = NULL;
	}
	/* Only the database can make a call INTERNAL (a record outside
	 * the file, say): worth one line per file, not one per call. */
	if (status == GRPC_STATUS_INTERNAL &&
	    atomic_exchange(&d->complained, 1) == 0)
		log_warnx("database: %s; such calls get INTERNAL", why);
	call_answer(w, s, status, why);
done:
	/* The reply, if any, holds its own reference. */
	db_unref(d);
}

static void
on_op(struct loop *t, struct slot *s, int success)
{
	struct worker *w = t->w;

	s->op_pending = 0;
	if (s->requested) {
		s->requested = 0;
		if (call_methods[s->kind].stream) {
			w->waiting[s->kind]--;
			stream_add(w, s->kind);
		}
		if (!success) {
			/* The server is shutting down: no call came. */
			s->finished = s->client_gone = 1;
			release_slot(w, s);
			return;
		}
		start_call(t, s);
		return;
	}
	if (!call_methods[s->kind].stream || s->finished || !success ||
	    s->client_gone) {
		s->finished = 1;
		release_slot(w, s);
		return;
	}
	stream_step(w, s);
}

static void
on_close(struct worker *w, struct slot *s)
{
	s->close_pending = 0;
	s->client_gone = 1;
	release_slot(w, s);
}

static void
on_event(struct loop *t, grpc_event ev)
{
	struct worker *w = t->w;
	struct tag *tag = ev.tag;
	int locked = tag->slot == NULL || call_methods[tag->slot->kind].stream;

	if (locked)
		pthread_mutex_lock(&w->stream_lock);
	switch (tag->kind) {
	case TAG_OP:
		on_op(t, tag->slot, ev.success);
		break;
	case TAG_CLOSE:
		on_close(w, tag->slot);
		break;
	case TAG_WAKE:
		stream_wake(w);
		break;
	case TAG_EXIT:
	case TAG_SHUTDOWN:
		break;
	}
	if (locked)
		pthread_mutex_unlock(&w->stream_lock);
}

/*
 * After the server is destroyed, events only report calls that ended:
 * let go of them, never start anything.
 */
static void
on_final_event(struct worker *w, grpc_event ev)
{
	struct tag *t = ev.tag;
	struct slot *s = t->slot;

	if (t->kind == TAG_WAKE || t->kind == TAG_EXIT ||
	    t->kind == TAG_SHUTDOWN)
		return;
	if (t->kind == TAG_OP) {
		s->op_pending = 0;
		if (s->requested && call_methods[s->kind].stream)
			w->waiting[s->kind]--;
		s->requested = 0;
	} else {
		s->close_pending = 0;
	}
	s->finished = s->client_gone = 1;
	release_slot(w, s);
}

/* Waits up to seconds for SIGTERM or SIGINT, reloading when asked. */
static int
wait_signal(struct worker *w, const sigset_t *set, int seconds)
{
	struct timespec until, now, left;
	siginfo_t info;
	int sig;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	for (;;) {
		if (seconds < 0) {
			sig = sigwaitinfo(set, &info);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left.tv_sec = until.tv_sec - now.tv_sec;
			left.tv_nsec = until.tv_nsec - now.tv_nsec;
			if (left.tv_nsec < 0) {
				left.tv_sec--;
				left.tv_nsec += 1000000000L;
			}
			if (left.tv_sec < 0)
				return 0;
			sig = sigtimedwait(set, &info, &left);
		}
		if (sig == WORKER_SIGRELOAD)
			reload(w, (unsigned)info.si_value.sival_int);
		else if (sig == SIGHUP)
			reload(w, 0);
		else if (sig == SIGUSR1 && log_reopen() != 0)
			log_warn("reopening the log");
		else if (sig == SIGTERM || sig == SIGINT)
			return sig;
		else if (sig < 0 && errno == EAGAIN)
			return 0;
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
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec &&
	    a.tv_nsec < b.tv_nsec);
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
 * Waits for signals (blocked in every thread), reloading when asked.
 * SIGTERM or
 * SIGINT stop gracefully: health turns NOT_SERVING and, for drain_time,
 * calls are still served so that load balancers move away first; then the
 * server takes no new calls, and those in flight may finish within
 * shutdown_timeout, after which they are cancelled.
 */
static void *
signal_thread(void *arg)
{
	struct worker *w = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, WORKER_SIGRELOAD);
	wait_signal(w, &set, -1);

	atomic_store(&w->draining, 1);
	post(w, &wake_tag);
	if (w->config->drain_time > 0) {
		log_info("draining: health is NOT_SERVING for %d s",
		    w->config->drain_time);
		/* Another SIGTERM cuts the drain short. */
		wait_signal(w, &set, w->config->drain_time);
	}
	log_info("stopping: finishing calls in flight");
	atomic_store(&w->shutting_down, 1);
	grpc_server_shutdown_and_notify(w->server, w->cq, &shutdown_tag);
	post(w, &wake_tag); /* ends health streams */
	finish_stop(w);
	return NULL;
}

static grpc_server_credentials *
server_credentials(const struct config *c)
{
	if (c->tls_cert_pem == NULL)
		return grpc_insecure_server_credentials_create();
	/* Reloaded on SIGHUP: see tls.c. */
	return tls_server_credentials(c);
}

/* Adds an integer channel argument when the setting is not 0. */
static void
add_arg(grpc_arg *args, size_t *n, const char *name, int value, int scale)
{
	if (value == 0)
		return;
	args[*n].type = GRPC_ARG_INTEGER;
	args[*n].key = (char *)name;
	args[*n].value.integer = value * scale;
	(*n)++;
}

static void
setup_server(struct worker *w)
{
	const struct config *c = w->config;
	grpc_arg args[16];
	grpc_channel_args chargs = {0, args};
	grpc_channel_credentials *wake_creds;
	grpc_server_credentials *creds;
	int port;

	add_arg(args, &chargs.num_args, GRPC_ARG_ALLOW_REUSEPORT, 1, 1);
	add_arg(args, &chargs.num_args, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    c->max_request_size, 1);
	/*
	 * Compressed requests: refused by gRPC itself (UNIMPLEMENTED) unless
	 * accept_compressed, and then inflated by us, never past
	 * max_request_size (service_read_body()), rather than by gRPC, which
	 * inflates all of a message before it looks at its size.
	 */
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key =
	    (char *)GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET;
	args[chargs.num_args++].value.integer = c->accept_compressed
	    ? (1 << GRPC_COMPRESS_ALGORITHMS_COUNT) - 1
	    : 1 << GRPC_COMPRESS_NONE;
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key =
	    (char *)GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION;
	args[chargs.num_args++].value.integer = 0;
	add_arg(args, &chargs.num_args, GRPC_ARG_MAX_CONCURRENT_STREAMS,
	    c->max_concurrent_streams, 1);
	add_arg(args, &chargs.num_args, GRPC_ARG_MAX_CONNECTION_AGE_MS,
	    c->max_connection_age, 1000);
	if (c->max_connection_age != 0)
		add_arg(args, &chargs.num_args,
		    GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
		    c->max_connection_age_grace, 1000);
	add_arg(args, &chargs.num_args, GRPC_ARG_MAX_CONNECTION_IDLE_MS,
	    c->max_connection_idle, 1000);
	add_arg(args, &chargs.num_args, GRPC_ARG_KEEPALIVE_TIME_MS,
	    c->keepalive_time, 1000);
	add_arg(args, &chargs.num_args, GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
	    c->keepalive_timeout, 1000);
	add_arg(args, &chargs.num_args,
	    GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
	    c->keepalive_min_ping_interval, 1000);

	w->cq = grpc_completion_queue_create_for_next(NULL);
	w->server = grpc_server_create(&chargs, NULL);
	grpc_server_register_completion_queue(w->server, w->cq, NULL);
	for (int k = 0; k < SLOT_KINDS; k++)
		if (call_methods[k].path != NULL)
			w->registered[k] = grpc_server_register_method(
			    w->server, call_methods[k].path, NULL,
			    call_methods[k].payload, 0);
	if (w->conn_fd < 0) {
		/* The address or the TLS files: no restart will help. */
		log_setfatalstatus(EXIT_FATAL);
		if ((creds = server_credentials(c)) == NULL)
			fatalx("cannot use the TLS certificate and key");
		port = grpc_server_add_http2_port(w->server, c->listen, creds);
		grpc_server_credentials_release(creds);
		if (port == 0)
			fatalx("cannot listen on %s%s", c->listen,
			    c->tls_cert_pem != NULL
				? " (or the TLS certificate and key are "
				  "unusable)"
				: "");
		log_setfatalstatus(1);
	}
	grpc_server_start(w->server);

	/* Never connected: it only carries wake-ups (see wake()). */
	wake_creds = grpc_insecure_credentials_create();
	w->wake_channel = grpc_channel_create("unix:/dev/null/quoterd-wake",
	    wake_creds, NULL);
	grpc_channel_credentials_release(wake_creds);
}

static void
request_all(struct worker *w)
{
	size_t n = 0;

	for (int k = 0; k < SLOT_KINDS; k++)
		if (!call_methods[k].stream)
			n += call_methods[k].slots ? (size_t)call_methods[k].slots
					      : (size_t)w->config->requested_calls;
	if ((w->slots = calloc(n, sizeof(*w->slots))) == NULL)
		fatal("calloc");
	w->nslots = n;
	n = 0;
	for (int k = 0; k < SLOT_KINDS; k++) {
		int count = call_methods[k].slots ? call_methods[k].slots
					     : w->config->requested_calls;

		if (call_methods[k].stream) {
			stream_add(w, (enum slot_kind)k);
			continue;
		}
		for (int i = 0; i < count; i++) {
			slot_new((enum slot_kind)k, &w->slots[n]);
			slot_request(w, &w->slots[n++]);
		}
	}
}

/*
 * Housekeeping, once a TICK_MS on one call thread: reports of dropped
 * log lines, and the end of reflection streams idle for longer than
 * reflection_idle_timeout.
 */
static void
tick(struct worker *w, long now)
{
	log_limit_flush(&grpc_handshakes);
	log_limit_flush(&grpc_messages);
	stream_end_idle(w, now);
}
/*
 * A call thread: handles events until the server has stopped. The one
 * that sees the stop tells the others to leave; calls that end after
 * that are released by worker_main alone.
 */
static void *
call_thread(void *arg)
{
	struct loop *t = arg;
	struct worker *w = t->w;
	struct tag *tag;
	grpc_event ev;
	long now, due;

	thread_metrics = t->metrics;
	for (;;) {
		/* Busy or idle, the heartbeat is renewed every TICK_MS: only
		 * a thread that is stuck misses it. */
		ev = grpc_completion_queue_next(w->cq,
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			gpr_time_from_millis(TICK_MS, GPR_TIMESPAN)),
		    NULL);
		now = scoreboard_beat(w->score);
		due = atomic_load(&w->next_tick);
		/* One thread a tick, busy or idle. */
		if (now >= due && atomic_compare_exchange_strong(&w->next_tick,
		    &due, now + TICK_MS))
			tick(w, now);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			continue;
		if (ev.type != GRPC_OP_COMPLETE)
			fatalx("completion queue ended unexpectedly");
		if (ev.tag == &exit_tag)
			break;
		if (ev.tag == &shutdown_tag) {
			for (int i = 1; i < w->nloops; i++)
				post(w, &exit_tag);
			break;
		}
		tag = ev.tag;
		/* A call has come: counted at once, before any lock, so that
		 * a stop sees it (finish_stop()). The slot's one event is this
		 * one, so reading requested needs no lock. */
		if (tag->kind == TAG_OP && tag->slot->requested && ev.success) {
			atomic_fetch_add(&w->inflight, 1);
			atomic_fetch_add_explicit(&t->calls, 1,
			    memory_order_relaxed);
		}
		on_event(t, ev);
	}
	return NULL;
}

void
worker_main(const struct config *c, int index, pid_t master_pid, int status_fd,
    int db_fd, int conn_fd, struct scoreboard_slot *score,
    struct metrics_thread *metrics)
{
	struct worker w;
	pthread_t sigthread;
	pthread_condattr_t condattr;
	grpc_event ev;
	char path[64];
	int rc;

	log_setrole("worker %d", index);
	log_setexit(worker_exit);
	/* Errors here are worth a restart (with backoff); those that a
	 * restart cannot mend set EXIT_FATAL first (setup_server). */
	log_setfatalstatus(1);
	/* Die with the master, even if it is killed outright. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		fatal("prctl");
	if (getppid() != master_pid)
		worker_exit(0);
	signal(SIGPIPE, SIG_IGN);

	memset(&w, 0, sizeof(w));
	w.config = c;
	w.index = index;
	w.status_fd = status_fd;
	w.score = score;
	the_worker = &w;
	atomic_store(&score->pid, (int)getpid());
	w.conn_fd = conn_fd;
	snprintf(w.db_path, sizeof(w.db_path), "/proc/%ld/fd/%d",
	    (long)master_pid, db_fd);
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
	/* The file checked when we were forked, through our own copy of the
	 * master's descriptor; swaps come through the master's. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", db_fd);
	w.db = db_open(path, w.nloops, &rc);
	close(db_fd);
	if (w.db == NULL)
		fatalx("%s: %s", c->database, store_strerror(rc));
	if (reflection_init() != 0)
		fatalx("cannot index the reflection descriptors");

	grpc_init();
	gpr_set_log_function(grpc_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	setup_server(&w);
	request_all(&w);
	if ((rc = pthread_create(&sigthread, NULL, signal_thread, &w)) != 0) {
		errno = rc;
		fatal("pthread_create");
	}
	if (w.conn_fd >= 0)
		conn_start(&w);
	for (int i = 1; i < w.nloops; i++)
		if ((rc = pthread_create(&w.loops[i].thread, NULL, call_thread,
			 &w.loops[i])) != 0) {
			errno = rc;
			fatal("pthread_create");
		}
	scoreboard_beat(w.score);
	tell_master(&w, WORKER_READY, 0);
	log_debug("serving %s with %d call thread%s", c->listen, w.nloops,
	    w.nloops == 1 ? "" : "s");

	call_thread(&w.loops[0]);
	for (int i = 1; i < w.nloops; i++)
		pthread_join(w.loops[i].thread, NULL);

	/* Every call has finished. */
	pthread_mutex_lock(&w.lock);
	w.done = 1;
	pthread_cond_signal(&w.done_cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(sigthread, NULL);
	if (w.conn_fd >= 0)
		conn_stop(&w);

	grpc_server_destroy(w.server);
	grpc_channel_destroy(w.wake_channel);
	grpc_completion_queue_shutdown(w.cq);
	do {
		ev = grpc_completion_queue_next(w.cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			on_final_event(&w, ev);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
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
	worker_exit(0);
}
