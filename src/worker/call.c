/*
 * Calls: the method table, the slots calls arrive in, and a call's path
 * from the completion queue to its answer.
 *
 * Each method has call slots requested from gRPC up front. A unary call
 * is answered in one batch (initial metadata, message, status, and the
 * receive-close), then its slot is requested again. Nothing on
 * GetQuote's path is allocated by this file: slots are preallocated,
 * requests are decoded into an arena, and replies are slices of the map.
 * A unary call's events come one at a time, so its slot needs no lock;
 * streams (stream.c) are under stream_lock.
 *
 * Why more than one call thread: gRPC core sends what a call thread hands
 * it at once, one write per reply, unless the connection is busy in
 * another thread; then the replies queue and go out together. With two
 * threads on one queue, one is often reading while the other answers,
 * and a write carries two or three replies (see bench/RESULTS.md). Each
 * call thread has its own arena, generator and LMDB transaction (db.h).
 */
#include "worker_impl.h"

#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

/* How often an idle call thread wakes to renew the heartbeat. */
#define TICK_MS 1000
/*
 * Streams open at once, per kind; beyond this, new ones of that kind wait
 * in gRPC. Each kind has its own budget so that one cannot starve
 * another: a client holding reflection streams open must not leave
 * health Watch (what balancers and Kubernetes ask) without a slot.
 */
#define MAX_WATCH_STREAMS      1024
#define MAX_REFLECTION_STREAMS 128

const struct method call_methods[SLOT_KINDS] = {
    [SLOT_QUOTE] = {"/quotes.Quoter/GetQuote",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 0, METRICS_GET_QUOTE},
    [SLOT_LIST_AUTHORS] = {"/quotes.Quoter/ListAuthors",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4, METRICS_LIST_AUTHORS},
    [SLOT_CHECK] = {"/grpc.health.v1.Health/Check",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 8, METRICS_HEALTH_CHECK},
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
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4, METRICS_SEARCH_QUOTES},
    [SLOT_LIST_TAGS] = {"/quotes.Quoter/ListTags",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4, METRICS_LIST_TAGS},
    [SLOT_QUOTE_OF_THE_DAY] = {"/quotes.Quoter/GetQuoteOfTheDay",
	GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0, 4,
	METRICS_QUOTE_OF_THE_DAY},
    [SLOT_UNKNOWN] = {NULL, GRPC_SRM_PAYLOAD_NONE, 0, 8, METRICS_OTHER},
};

/* The counters of the call thread running, for whichever call it ends. */
static __thread struct metrics_thread *thread_metrics;

/* Posted to each other call thread by the one that sees the stop. */
static struct tag exit_tag = {NULL, TAG_EXIT};

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
		err = grpc_server_request_call(w->server, &s->call, &s->details,
		    &s->metadata, w->cq, w->cq, &s->op_tag);
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
static void
count_call(struct slot *s, grpc_status_code status)
{
	if (thread_metrics == NULL || s->counted)
		return;
	s->counted = 1;
	metrics_call(thread_metrics, call_methods[s->kind].metric, (int)status,
	    metrics_now() - s->started_ns);
}

void
call_cancel(struct slot *s)
{
	count_call(s, GRPC_STATUS_UNAVAILABLE);
	grpc_call_cancel_with_status(s->call, GRPC_STATUS_UNAVAILABLE,
	    "server shutting down", NULL);
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
			count_call(s, GRPC_STATUS_CANCELLED);
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

int
call_start_batch(struct worker *w, struct slot *s, grpc_op *ops, grpc_op *end,
    struct tag *tag)
{
	grpc_call_error err;

	if (tag == &s->op_tag)
		s->op_pending = 1;
	else
		s->close_pending = 1;
	err =
	    grpc_call_start_batch(s->call, ops, (size_t)(end - ops), tag, NULL);
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
	count_call(s, status);
	return op + 1;
}

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
		status =
		    service_list_authors(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_SEARCH_QUOTES:
		status =
		    service_search_quotes(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_LIST_TAGS:
		status = service_list_tags(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_QUOTE_OF_THE_DAY:
		status =
		    service_quote_of_the_day(&ctx, s->request, &s->reply, &why);
		break;
	case SLOT_CHECK:
		status = service_health_request(&ctx, s->request, &known, &why);
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

/*
 * A call thread: handles events until the server has stopped. The one
 * that sees the stop tells the others to leave; calls that end after
 * that are released by call_drain() alone.
 */
void *
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
		if (now >= due &&
		    atomic_compare_exchange_strong(&w->next_tick, &due,
			now + TICK_MS))
			worker_tick(w, now);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			continue;
		if (ev.type != GRPC_OP_COMPLETE)
			fatalx("completion queue ended unexpectedly");
		tag = ev.tag;
		if (tag->kind == TAG_EXIT)
			break;
		if (tag->kind == TAG_SHUTDOWN) {
			for (int i = 1; i < w->nloops; i++)
				worker_post(w, &exit_tag);
			break;
		}
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
call_register(struct worker *w)
{
	for (int k = 0; k < SLOT_KINDS; k++)
		if (call_methods[k].path != NULL)
			w->registered[k] =
			    grpc_server_register_method(w->server,
				call_methods[k].path, NULL,
				call_methods[k].payload, 0);
}

void
call_request_all(struct worker *w)
{
	size_t n = 0;

	for (int k = 0; k < SLOT_KINDS; k++)
		if (!call_methods[k].stream)
			n += call_methods[k].slots
			    ? (size_t)call_methods[k].slots
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

void
call_drain(struct worker *w)
{
	grpc_event ev;

	do {
		ev = grpc_completion_queue_next(w->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			on_final_event(w, ev);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
}
