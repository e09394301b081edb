/*
 * The streaming methods: health Watch and server reflection (v1 and
 * v1alpha). A stream stays open as long as its client likes, so its
 * slots are not made up front as unary ones are: one is made as each
 * call arrives, so that one is always requested, and freed when the call
 * ends, up to a budget per kind (call.c's table) so that one kind held
 * open cannot leave another without slots.
 *
 * A stream has a receive-close pending beside its other batches, so two
 * of its events can come on two call threads at once: everything here
 * runs under stream_lock, but for the first slots, made before any call
 * thread runs.
 */
#include "worker_impl.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reflection.h"

/* Requests a new stream slot, so that one is always waiting. */
void
stream_add(struct worker *w, enum slot_kind kind)
{
	struct slot *s;

	if (atomic_load(&w->shutting_down) ||
	    w->nstreams[kind] >= call_methods[kind].slots)
		return;
	if ((s = slot_new(kind, NULL)) == NULL) {
		log_warn("stream slot");
		return;
	}
	s->next = w->streams;
	if (w->streams != NULL)
		w->streams->prev = s;
	w->streams = s;
	w->nstreams[kind]++;
	slot_request(w, s);
}

/* Frees a stream's slot once its call is let go of. */
void
stream_remove(struct worker *w, struct slot *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->nstreams[s->kind]--;
	free(s);
	/* Slots may have been missing while the most were open. */
	for (int k = 0; k < SLOT_KINDS; k++)
		if (call_methods[k].stream && w->waiting[k] == 0)
			stream_add(w, (enum slot_kind)k);
}

/* Streams learn that their client is gone from a receive-close batch. */
static int
watch_close(struct worker *w, struct slot *s)
{
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &s->cancelled;
	return call_start_batch(w, s, &op, &op + 1, &s->close_tag);
}

/*
 * Sends a Watch stream its status when it changed; when the server is
 * stopping, ends the stream (after telling it NOT_SERVING) so that the
 * stop need not wait for it.
 */
static void
health_update(struct worker *w, struct slot *s)
{
	grpc_op ops[2], *op = ops;
	int status;

	if (s->op_pending || s->finished || s->client_gone)
		return;
	if (s->reply != NULL) {
		grpc_byte_buffer_destroy(s->reply);
		s->reply = NULL;
	}
	status = !s->health_known ? HEALTH_SERVICE_UNKNOWN
	    : worker_serving(w)   ? HEALTH_SERVING
				  : HEALTH_NOT_SERVING;
	if (status == s->health_sent) {
		if (atomic_load(&w->shutting_down))
			call_answer(w, s, GRPC_STATUS_OK, NULL);
		return;
	}
	s->health_sent = status;
	s->reply = service_health_reply(status);
	memset(ops, 0, sizeof(ops));
	op = call_add_header(s, op);
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = s->reply;
	op++;
	call_start_batch(w, s, ops, op, &s->op_tag);
}

/* A reflection stream: receive a request, send its answer, again. */
static void
reflection_read(struct worker *w, struct slot *s)
{
	grpc_op ops[2], *op = ops;

	memset(ops, 0, sizeof(ops));
	op = call_add_header(s, op);
	op->op = GRPC_OP_RECV_MESSAGE;
	op->data.recv_message.recv_message = &s->request;
	op++;
	s->reading = 1;
	call_start_batch(w, s, ops, op, &s->op_tag);
}

static void
reflection_step(struct worker *w, struct slot *s)
{
	grpc_op op;
	grpc_slice body, slice;
	grpc_status_code status;
	const char *why = NULL;
	void *out;
	size_t outlen;
	int rc = -1, err = EINVAL;

	if (!s->reading) {
		/* An answer went out: read the next request. */
		grpc_byte_buffer_destroy(s->reply);
		s->reply = NULL;
		reflection_read(w, s);
		return;
	}
	s->reading = 0;
	s->active = scoreboard_now();
	if (s->request == NULL) {
		/* The client has sent all its requests. */
		call_answer(w, s, GRPC_STATUS_OK, NULL);
		return;
	}
	status = service_read_body(s->request,
	    (size_t)w->config->max_request_size, &body, &why);
	if (status == GRPC_STATUS_OK) {
		rc = reflection_respond(GRPC_SLICE_START_PTR(body),
		    GRPC_SLICE_LENGTH(body), &out, &outlen);
		err = errno;
		grpc_slice_unref(body);
	}
	grpc_byte_buffer_destroy(s->request);
	s->request = NULL;
	if (status != GRPC_STATUS_OK) {
		call_answer(w, s, status, why);
		return;
	}
	if (rc != 0) {
		if (err == ENOMEM)
			call_answer(w, s, GRPC_STATUS_RESOURCE_EXHAUSTED,
			    "out of memory");
		else
			call_answer(w, s, GRPC_STATUS_INVALID_ARGUMENT,
			    "request is not a ServerReflectionRequest");
		return;
	}
	slice = grpc_slice_new(out, outlen, free);
	s->reply = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = s->reply;
	call_start_batch(w, s, &op, &op + 1, &s->op_tag);
}

void
stream_start(struct worker *w, struct slot *s, const struct request_ctx *ctx)
{
	grpc_status_code status;
	const char *why = NULL;
	int known = 0;

	if (s->kind == SLOT_WATCH) {
		status = service_health_request(ctx, s->request, &known, &why);
		if (status != GRPC_STATUS_OK) {
			call_answer(w, s, status, why);
			return;
		}
		s->health_known = known;
		if (watch_close(w, s) == 0)
			health_update(w, s);
		return;
	}
	s->active = scoreboard_now();
	if (watch_close(w, s) != 0)
		return;
	/* A stop's wake-up may have passed this slot by while the call was
	 * on its way to us: end the stream as it would. */
	if (atomic_load(&w->shutting_down))
		call_cancel(s);
	else
		reflection_read(w, s);
}

void
stream_step(struct worker *w, struct slot *s)
{
	if (s->kind == SLOT_WATCH)
		health_update(w, s);
	else
		reflection_step(w, s);
}

void
stream_wake(struct worker *w)
{
	struct slot *s, *next;

	for (s = w->streams; s != NULL; s = next) {
		next = s->next;
		if (s->requested || s->finished || s->client_gone)
			continue;
		if (s->kind == SLOT_WATCH)
			health_update(w, s);
		else if (atomic_load(&w->shutting_down))
			/* A reflection stream waits on its client, which
			 * may never close it: end it so the stop need not
			 * wait. The pending receive then completes. */
			call_cancel(s);
	}
}

/*
 * A client could otherwise hold every reflection slot open, sending
 * nothing, for as long as it likes.
 */
void
stream_end_idle(struct worker *w, long now)
{
	long limit = (long)w->config->reflection_idle_timeout * 1000;
	struct slot *s;
	int ended = 0;

	if (limit == 0)
		return;
	pthread_mutex_lock(&w->stream_lock);
	for (s = w->streams; s != NULL; s = s->next) {
		if ((s->kind != SLOT_REFLECTION &&
			s->kind != SLOT_REFLECTION_ALPHA) ||
		    s->requested || s->finished || s->client_gone ||
		    !s->reading || now - s->active <= limit)
			continue;
		/* The pending receive then completes and frees the slot. */
		s->finished = 1;
		grpc_call_cancel_with_status(s->call,
		    GRPC_STATUS_DEADLINE_EXCEEDED,
		    "reflection stream idle too long", NULL);
		ended++;
	}
	pthread_mutex_unlock(&w->stream_lock);
	if (ended > 0)
		log_debug("ended %d idle reflection streams", ended);
}

void
stream_free_all(struct worker *w)
{
	while (w->streams != NULL) {
		struct slot *s = w->streams;

		w->streams = s->next;
		free(s);
	}
}
