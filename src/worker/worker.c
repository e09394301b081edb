/*
 * The worker loop. The master forks it with every signal blocked; gRPC is
 * initialised only here, after fork. One thread drives the completion
 * queue and answers every call; a second thread only waits for signals
 * and turns SIGTERM into a graceful server shutdown, so the hot loop never
 * polls a flag.
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

struct worker {
	const struct config *config;
	int index;
	grpc_server *server;
	grpc_completion_queue *cq;
	void *getquote;
	struct store *store;
	struct rng rng;
	struct arena arena;
	struct slot *slots;
	size_t nslots;

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
	rc = store_pick(w->store, req->author, len, &w->rng, &q);
	quotes__quote_request__free_unpacked(req, &w->arena.allocator);
	if (rc != 0) {
		log_warnx("pick: %s", store_strerror(rc));
		s->status_details = grpc_slice_from_static_string(
		    "cannot read the quote database");
		return GRPC_STATUS_INTERNAL;
	}
	/* The map outlives every call of this worker: no copy, no ref. */
	reply = grpc_slice_from_static_buffer(q.reply, q.len);
	s->reply = grpc_raw_byte_buffer_create(&reply, 1);
	return GRPC_STATUS_OK;
}

static void
answer(struct worker *w, struct slot *s)
{
	grpc_op ops[4], *op = ops;
	grpc_status_code status;
	grpc_call_error err;

	s->status_details = grpc_empty_slice();
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
 * Waits for SIGTERM or SIGINT (blocked in every thread), then stops the
 * server gracefully: no new calls, calls in flight may finish within
 * shutdown_timeout, after which they are cancelled.
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
	while (sig != SIGTERM && sig != SIGINT)
		if (sigwait(&set, &sig) != 0)
			sig = 0;

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

static void
setup_server(struct worker *w)
{
	grpc_arg args[] = {
	    {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 1}},
	    {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		{.integer = w->config->max_request_size}},
	};
	grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
	grpc_server_credentials *creds;
	int port;

	w->cq = grpc_completion_queue_create_for_next(NULL);
	w->server = grpc_server_create(&chargs, NULL);
	grpc_server_register_completion_queue(w->server, w->cq, NULL);
	w->getquote = grpc_server_register_method(w->server, GETQUOTE_METHOD,
	    NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(w->server, w->config->listen, creds);
	grpc_server_credentials_release(creds);
	if (port == 0)
		fatalx("cannot listen on %s", w->config->listen);
	grpc_server_start(w->server);
}

void
worker_main(const struct config *c, int index, pid_t master_pid, int ready_fd)
{
	struct worker w;
	pthread_t sigthread;
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
	w.arena.allocator.alloc = arena_alloc;
	w.arena.allocator.free = arena_free;
	w.arena.allocator.allocator_data = &w.arena;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.done_cond, NULL);
	/* Seeded after fork: workers never share a sequence. */
	if (rng_seed_random(&w.rng) != 0)
		fatal("getrandom");
	if ((rc = store_open(c->database, &w.store)) != 0)
		fatalx("%s: %s", c->database, store_strerror(rc));

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
	/* Smaller than PIPE_BUF: workers' writes never interleave. */
	if (write(ready_fd, &index, sizeof(index)) != sizeof(index))
		log_warn("cannot tell the master this worker is ready");
	close(ready_fd);
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
	store_close(w.store);
	log_info("stopped");
	exit(0);
}
