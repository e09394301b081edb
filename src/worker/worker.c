/*
 * The worker loop. The master forks it with every signal blocked; gRPC is
 * initialised only here, after fork. One thread drives the completion
 * queue and answers every call; a second thread only waits for signals:
 * SIGTERM starts a graceful server shutdown, SIGHUP opens the database
 * again and hands it to the call thread, so the hot loop never polls.
 *
 * Database swaps. Each open database is a struct db with a reference
 * count: one reference for the call thread while it is current, and one
 * for every reply slice gRPC still holds (slices point into the map, and
 * gRPC may release them on any of its threads, after the call is gone).
 * The signal thread opens a new database and parks it in `pending`; the
 * call thread adopts it before its next call and drops its reference to
 * the old one, which is unmapped when the last slice is released. A
 * database parked but never adopted is simply replaced.
 *
 * Each call slot is requested from gRPC up front and goes around a cycle:
 * requested -> request arrived (answered in one batch) -> batch done ->
 * requested again. Nothing is allocated per call by this file: slots are
 * preallocated, requests are decoded into an arena, and replies are
 * slices that point into the database map.
 */
#include "worker.h"

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

#include "log.h"
#include "quote_service.pb-c.h"
#include "rng.h"
#include "store.h"
#include "utf8.h"

#define GETQUOTE_METHOD "/quotes.Quoter/GetQuote"
/* Slots for calls to methods we do not serve, answered UNIMPLEMENTED. */
#define UNKNOWN_SLOTS 8
#define ARENA_SIZE 8192

enum slot_kind { SLOT_QUOTE, SLOT_UNKNOWN };
enum slot_state { SLOT_IDLE, SLOT_REQUESTED, SLOT_ANSWERING };

struct slot {
	enum slot_kind kind;
	enum slot_state state;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array metadata;
	grpc_call_details details; /* SLOT_UNKNOWN only */
	grpc_byte_buffer *request;
	grpc_byte_buffer *reply;
	grpc_slice status_details;
	int cancelled;
};

/* A bump allocator for protobuf-c: decoding a request allocates nothing
 * unless a request is unusually large. */
struct arena {
	ProtobufCAllocator allocator;
	size_t used;
	_Alignas(16) unsigned char buf[ARENA_SIZE];
};

struct db {
	struct store *store;
	atomic_uint refs;
};

struct worker {
	const struct config *config;
	int index;
	grpc_server *server;
	grpc_completion_queue *cq;
	void *getquote;
	struct db *db;              /* the call thread's current database */
	_Atomic(struct db *) pending; /* opened by the signal thread */
	int status_fd;
	char db_path[64]; /* the master's database fd, in /proc */
	struct rng rng;
	struct arena arena;
	struct slot *slots;
	size_t nslots;
	unsigned long long calls; /* answered, for the log at exit */

	/* Shutdown handshake between the signal thread and the loop. */
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done;
	atomic_int shutting_down;
};

/* The completion-queue tag of the server's shutdown notification. */
static int shutdown_tag;

static void *
arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t at = (a->used + 15) & ~(size_t)15;

	if (size <= sizeof(a->buf) && at <= sizeof(a->buf) - size) {
		a->used = at + size;
		return a->buf + at;
	}
	return malloc(size);
}

static void
arena_free(void *data, void *p)
{
	struct arena *a = data;

	if ((unsigned char *)p < a->buf ||
	    (unsigned char *)p >= a->buf + sizeof(a->buf))
		free(p);
}

static void
grpc_log_to_ours(gpr_log_func_args *args)
{
	log_warnx("grpc: %s", args->message);
}

/*
 * Opens the file the master holds open: through /proc, so that a worker
 * gets the file the master checked, not whatever the path names now.
 * Where /proc is not there, the configured path will do.
 */
static struct db *
db_open(struct worker *w, int *rc)
{
	const char *path = w->db_path;
	struct db *d;

	if ((d = malloc(sizeof(*d))) == NULL) {
		*rc = errno;
		return NULL;
	}
	*rc = store_open(path, &d->store);
	if (*rc == ENOENT || *rc == EACCES) {
		path = w->config->database;
		*rc = store_open(path, &d->store);
	}
	if (*rc != 0) {
		free(d);
		return NULL;
	}
	atomic_init(&d->refs, 1);
	return d;
}

/* Called by gRPC, on any thread, when a reply slice is released. */
static void
db_unref(void *arg)
{
	struct db *d = arg;

	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
		store_close(d->store);
		free(d);
	}
}

/* The database for a new call: the newest one the signal thread opened. */
static struct db *
current_db(struct worker *w)
{
	struct db *next;

	if (atomic_load_explicit(&w->pending, memory_order_relaxed) != NULL &&
	    (next = atomic_exchange(&w->pending, NULL)) != NULL) {
		db_unref(w->db);
		w->db = next;
	}
	return w->db;
}

static void
tell_master(struct worker *w, enum worker_event event)
{
	struct worker_msg msg = {w->index, event};

	if (write(w->status_fd, &msg, sizeof(msg)) != sizeof(msg))
		log_warn("cannot report to the master");
}

/* On SIGHUP: open the database path again and hand it to the loop. */
static void
reload(struct worker *w)
{
	struct db *d, *old;
	int rc;

	if ((d = db_open(w, &rc)) == NULL) {
		log_warnx("reload: %s: %s; keeping the database in use",
		    w->config->database, store_strerror(rc));
		tell_master(w, WORKER_RELOAD_FAILED);
		return;
	}
	if ((old = atomic_exchange(&w->pending, d)) != NULL)
		db_unref(old);
	log_debug("reload: %s: %llu quotes", w->config->database,
	    (unsigned long long)store_nquotes(d->store));
	tell_master(w, WORKER_RELOADED);
}

static void
request_slot(struct worker *w, struct slot *s)
{
	grpc_call_error err;

	grpc_metadata_array_init(&s->metadata);
	s->request = NULL;
	s->call = NULL;
	if (s->kind == SLOT_QUOTE) {
		err = grpc_server_request_registered_call(w->server,
		    w->getquote, &s->call, &s->deadline, &s->metadata,
		    &s->request, w->cq, w->cq, s);
	} else {
		grpc_call_details_init(&s->details);
		err = grpc_server_request_call(w->server, &s->call,
		    &s->details, &s->metadata, w->cq, w->cq, s);
	}
	if (err != GRPC_CALL_OK)
		fatalx("cannot request a call: error %d", (int)err);
	s->state = SLOT_REQUESTED;
}

/* Returns the slot's resources after its call, and requests it again
 * unless the server is going away. */
static void
recycle_slot(struct worker *w, struct slot *s, int again)
{
	if (s->call != NULL)
		grpc_call_unref(s->call);
	if (s->request != NULL)
		grpc_byte_buffer_destroy(s->request);
	if (s->reply != NULL)
		grpc_byte_buffer_destroy(s->reply);
	s->reply = NULL;
	grpc_metadata_array_destroy(&s->metadata);
	if (s->kind == SLOT_UNKNOWN)
		grpc_call_details_destroy(&s->details);
	s->state = SLOT_IDLE;
	if (again)
		request_slot(w, s);
}

/*
 * Decodes a QuoteRequest and picks the reply. Returns the status to send;
 * on OK, s->reply holds the reply message.
 */
static grpc_status_code
answer_quote(struct worker *w, struct slot *s)
{
	grpc_byte_buffer_reader reader;
	grpc_slice body, reply;
	Quotes__QuoteRequest *req;
	struct store_quote q;
	struct db *db;
	size_t len;
	int rc;

	if (s->request == NULL) {
		s->status_details =
		    grpc_slice_from_static_string("no request message");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	/* The reader inflates a compressed request. */
	if (!grpc_byte_buffer_reader_init(&reader, s->request)) {
		s->status_details =
		    grpc_slice_from_static_string("cannot decompress request");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	body = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);

	w->arena.used = 0;
	req = quotes__quote_request__unpack(&w->arena.allocator,
	    GRPC_SLICE_LENGTH(body), GRPC_SLICE_START_PTR(body));
	grpc_slice_unref(body);
	if (req == NULL) {
		s->status_details = grpc_slice_from_static_string(
		    "request is not a quotes.QuoteRequest");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	len = strlen(req->author);
	if (!utf8_valid(req->author, len)) {
		quotes__quote_request__free_unpacked(req, &w->arena.allocator);
		s->status_details = grpc_slice_from_static_string(
		    "author is not valid UTF-8");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	db = current_db(w);
	rc = store_pick(db->store, req->author, len, &w->rng, &q);
	quotes__quote_request__free_unpacked(req, &w->arena.allocator);
	if (rc != 0) {
		log_warnx("pick: %s", store_strerror(rc));
		s->status_details = grpc_slice_from_static_string(
		    "cannot read the quote database");
		return GRPC_STATUS_INTERNAL;
	}
	/* No copy: the slice points into the map and holds a reference to
	 * it until gRPC has sent it. */
	atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
	reply = grpc_slice_new_with_user_data((void *)q.reply, q.len, db_unref,
	    db);
	/* The byte buffer takes a reference of its own. */
	s->reply = grpc_raw_byte_buffer_create(&reply, 1);
	grpc_slice_unref(reply);
	return GRPC_STATUS_OK;
}

static void
answer(struct worker *w, struct slot *s)
{
	grpc_op ops[4], *op = ops;
	grpc_status_code status;
	grpc_call_error err;

	s->status_details = grpc_empty_slice();
	w->calls++;
	if (s->kind == SLOT_QUOTE) {
		status = answer_quote(w, s);
	} else {
		status = GRPC_STATUS_UNIMPLEMENTED;
		s->status_details =
		    grpc_slice_from_static_string("unknown method");
	}

	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	if (s->reply != NULL) {
		op->op = GRPC_OP_SEND_MESSAGE;
		op->data.send_message.send_message = s->reply;
		op++;
	}
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.status = status;
	op->data.send_status_from_server.status_details = &s->status_details;
	op++;
	op->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op->data.recv_close_on_server.cancelled = &s->cancelled;
	op++;
	s->state = SLOT_ANSWERING;
	err = grpc_call_start_batch(s->call, ops, (size_t)(op - ops), s, NULL);
	if (err != GRPC_CALL_OK) {
		log_warnx("cannot answer a call: error %d", (int)err);
		recycle_slot(w, s, !atomic_load(&w->shutting_down));
	}
}

static void
on_event(struct worker *w, grpc_event ev)
{
	struct slot *s = ev.tag;

	switch (s->state) {
	case SLOT_REQUESTED:
		if (!ev.success) {
			/* The server is shutting down: nothing to answer. */
			recycle_slot(w, s, 0);
			return;
		}
		answer(w, s);
		break;
	case SLOT_ANSWERING:
		recycle_slot(w, s, !atomic_load(&w->shutting_down));
		break;
	case SLOT_IDLE:
		fatalx("event for an idle call slot");
	}
}

/*
 * Waits for signals (blocked in every thread). SIGHUP reloads; SIGTERM or
 * SIGINT stop the server gracefully: no new calls, calls in flight may
 * finish within shutdown_timeout, after which they are cancelled.
 */
static void *
signal_thread(void *arg)
{
	struct worker *w = arg;
	struct timespec until;
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	while (sig != SIGTERM && sig != SIGINT) {
		if (sigwait(&set, &sig) != 0)
			sig = 0;
		if (sig == SIGHUP)
			reload(w);
	}

	log_info("stopping: finishing calls in flight");
	atomic_store(&w->shutting_down, 1);
	grpc_server_shutdown_and_notify(w->server, w->cq, &shutdown_tag);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += w->config->shutdown_timeout;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->done_cond, &w->lock, &until) ==
		    ETIMEDOUT)
			break;
	if (!w->done) {
		log_warnx("calls still in flight after %d s: cancelling them",
		    w->config->shutdown_timeout);
		grpc_server_cancel_all_calls(w->server);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
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
	grpc_server_credentials *creds;
	int port;

	add_arg(args, &chargs.num_args, GRPC_ARG_ALLOW_REUSEPORT, 1, 1);
	add_arg(args, &chargs.num_args, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    c->max_request_size, 1);
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
	w->getquote = grpc_server_register_method(w->server, GETQUOTE_METHOD,
	    NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(w->server, c->listen, creds);
	grpc_server_credentials_release(creds);
	if (port == 0)
		fatalx("cannot listen on %s", c->listen);
	grpc_server_start(w->server);
}

void
worker_main(const struct config *c, int index, pid_t master_pid, int status_fd,
    int db_fd)
{
	struct worker w;
	pthread_t sigthread;
	struct db *d;
	grpc_event ev;
	int rc;

	log_setrole("worker %d", index);
	log_setfatalstatus(EXIT_FATAL);
	/* Die with the master, even if it is killed outright. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		fatal("prctl");
	if (getppid() != master_pid)
		exit(0);
	signal(SIGPIPE, SIG_IGN);

	memset(&w, 0, sizeof(w));
	w.config = c;
	w.index = index;
	w.status_fd = status_fd;
	snprintf(w.db_path, sizeof(w.db_path), "/proc/%ld/fd/%d",
	    (long)master_pid, db_fd);
	w.arena.allocator.alloc = arena_alloc;
	w.arena.allocator.free = arena_free;
	w.arena.allocator.allocator_data = &w.arena;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.done_cond, NULL);
	/* Seeded after fork: workers never share a sequence. */
	if (rng_seed_random(&w.rng) != 0)
		fatal("getrandom");
	if ((w.db = db_open(&w, &rc)) == NULL)
		fatalx("%s: %s", c->database, store_strerror(rc));
	atomic_init(&w.pending, NULL);

	grpc_init();
	gpr_set_log_function(grpc_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	setup_server(&w);

	w.nslots = (size_t)c->requested_calls + UNKNOWN_SLOTS;
	if ((w.slots = calloc(w.nslots, sizeof(*w.slots))) == NULL)
		fatal("calloc");
	for (size_t i = 0; i < w.nslots; i++) {
		w.slots[i].kind = i < (size_t)c->requested_calls ? SLOT_QUOTE
								  : SLOT_UNKNOWN;
		request_slot(&w, &w.slots[i]);
	}
	if ((rc = pthread_create(&sigthread, NULL, signal_thread, &w)) != 0) {
		errno = rc;
		fatal("pthread_create");
	}
	tell_master(&w, WORKER_READY);
	log_debug("serving %s", c->listen);

	for (;;) {
		ev = grpc_completion_queue_next(w.cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			fatalx("completion queue ended unexpectedly");
		if (ev.tag == &shutdown_tag)
			break;
		on_event(&w, ev);
	}

	/* Every call has finished: the slots hold nothing but idle state. */
	pthread_mutex_lock(&w.lock);
	w.done = 1;
	pthread_cond_signal(&w.done_cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(sigthread, NULL);

	grpc_server_destroy(w.server);
	grpc_completion_queue_shutdown(w.cq);
	do {
		ev = grpc_completion_queue_next(w.cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			on_event(&w, ev);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(w.cq);
	grpc_shutdown();
	free(w.slots);
	/* gRPC has released every slice by now: these are the last refs. */
	if ((d = atomic_exchange(&w.pending, NULL)) != NULL)
		db_unref(d);
	db_unref(w.db);
	log_info("stopped after %llu calls", w.calls);
	exit(0);
}
