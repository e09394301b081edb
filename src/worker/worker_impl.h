/*
 * The worker's insides, shared by worker.c (the process: signals, stop,
 * server), call.c (slots and the unary calls), stream.c (Watch and
 * reflection streams) and conn.c (connections the master hands over),
 * and nothing else: one process's state cut along those seams, with no
 * file reaching into another's statics.
 */
#ifndef QUOTERD_WORKER_IMPL_H
#define QUOTERD_WORKER_IMPL_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "metrics.h"
#include "rng.h"
#include "scoreboard.h"
#include "service.h"

enum slot_kind {
	SLOT_QUOTE,
	SLOT_LIST_AUTHORS,
	SLOT_CHECK,
	SLOT_WATCH,
	SLOT_REFLECTION,
	SLOT_REFLECTION_ALPHA,
	SLOT_SEARCH_QUOTES,
	SLOT_LIST_TAGS,
	SLOT_QUOTE_OF_THE_DAY,
	SLOT_UNKNOWN, /* any other method: UNIMPLEMENTED */
	SLOT_KINDS
};

/* How a method's calls are taken: call_methods[], one a slot kind. */
struct method {
	const char *path; /* NULL: unregistered calls */
	grpc_server_register_method_payload_handling payload;
	int stream; /* long-lived: slots made as calls arrive */
	int slots;  /* kept requested; 0: requested_calls; streams:
		     * most open at once */
	enum metrics_method metric;
};
extern const struct method call_methods[SLOT_KINDS];

enum tag_kind { TAG_OP, TAG_CLOSE, TAG_WAKE, TAG_EXIT, TAG_SHUTDOWN };

/* What a completion-queue event is about. */
struct tag {
	struct slot *slot;
	enum tag_kind kind;
};

struct slot {
	enum slot_kind kind;
	struct tag op_tag, close_tag;
	int requested;       /* waiting for gRPC to deliver a call */
	int op_pending;      /* a batch on op_tag is under way */
	int close_pending;   /* a receive-close on close_tag is under way */
	int finished;        /* the status has been sent */
	long active;         /* reflection: ms of the last request (or start) */
	int header_sent;     /* streams: initial metadata sent */
	int client_gone;     /* streams: the call is over for the client */
	int reading;         /* reflection: a receive is under way */
	int health_known;    /* Watch: the service asked about is ours */
	int health_sent;     /* Watch: last status sent, 0: none */
	int counted;         /* metrics: the call's end has been counted */
	uint64_t started_ns; /* metrics: when the call came */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array metadata;
	grpc_call_details details; /* SLOT_UNKNOWN */
	grpc_byte_buffer *request; /* the message received */
	grpc_byte_buffer *reply;   /* the message being sent */
	grpc_slice status_details;
	int cancelled;
	struct slot *prev, *next; /* streams: the open ones */
};

/* A call thread's own things. */
struct loop {
	struct worker *w;
	int index; /* of its store in each database */
	pthread_t thread;
	struct rng rng;
	struct arena arena;
	atomic_ullong calls;            /* given to this thread */
	struct metrics_thread *metrics; /* its counters; NULL: metrics off */
};

struct worker {
	const struct config *config;
	grpc_server *server;
	grpc_completion_queue *cq;
	void *registered[SLOT_KINDS];
	pthread_mutex_t db_lock;
	struct db *db;                 /* for new calls; under db_lock */
	int chan;                      /* to and from the master (channel.h) */
	struct scoreboard_slot *score; /* our heartbeat, for the master */
	struct loop *loops;
	int nloops;
	struct slot *slots; /* unary slots, allocated once */
	size_t nslots;
	pthread_mutex_t stream_lock; /* the next three, and stream slots */
	struct slot *streams;        /* open or requested stream slots */
	int nstreams[SLOT_KINDS];    /* stream slots, open or requested */
	int waiting[SLOT_KINDS];     /* stream slots requested, per kind */
	atomic_long next_tick;       /* ms: when worker_tick() is next due */
	grpc_channel *wake_channel;
	grpc_server_credentials *conn_creds; /* Unix listener: conn.c */

	int sigfd;        /* the control thread's signals */
	int fd_base;      /* descriptors open before any connection */
	int listeners[8]; /* gRPC's listening sockets (TCP); conn.c */
	int nlisteners;
	unsigned received;   /* CHAN_CONN messages read: control thread */
	long next_count;     /* ms: when conn_tick() is next due; control */
	int master_gone;     /* the channel closed: control thread */
	atomic_int draining; /* set by the control thread */
	atomic_int shutting_down;
	atomic_int inflight; /* calls given to us, not yet released */
	/* Shutdown handshake between the control thread and the loop; the
	 * condition is also signalled when inflight drops to 0 in a stop. */
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done;
};

/* worker.c */
/* Posts tag to the call threads' queue; callable from any thread. */
void worker_post(struct worker *w, struct tag *tag);
/* Health: SERVING until a stop begins, so that balancers drain first. */
int worker_serving(struct worker *w);
/* Asks the master, once, for a worker to take this one's place (see
 * proc_replace_sick()); why says what for, in the log. */
void worker_ask_replacement(struct worker *w, const char *why);
/*
 * Housekeeping, once a second on one call thread, busy or idle: reports
 * of dropped log lines, and the end of reflection streams idle for longer
 * than reflection_idle_timeout.
 */
void worker_tick(struct worker *w, long now);

/* server.c */
/* Whether a failed setup is worth a restart. */
enum setup { SETUP_OK, SETUP_RETRY, SETUP_NEVER };
/* Creates, configures and starts w's gRPC server and its wake channel. */
enum setup worker_setup_server(struct worker *w);

/* call.c */
/* Registers every method with w->server, before it starts. */
void call_register(struct worker *w);
/* Allocates the unary slots and requests every slot from gRPC. */
void call_request_all(struct worker *w);
/*
 * A call thread (arg: its struct loop): handles events until the server
 * has stopped. The one that sees the stop tells the others to leave.
 */
void *call_thread(void *arg);
/*
 * Once the server is destroyed and the queue shut down: lets go of the
 * calls its last events report, and starts nothing.
 */
void call_drain(struct worker *w);
/* A slot of kind: s, or a new one if s is NULL (then NULL if out of
 * memory). */
struct slot *slot_new(enum slot_kind kind, struct slot *s);
/* Asks gRPC for the slot's next call. */
void slot_request(struct worker *w, struct slot *s);
/*
 * Starts a batch on the slot's call. If gRPC refuses it, the call is
 * given up and the slot released (a stream's slot is freed): -1, and the
 * caller must not touch s again.
 */
int call_start_batch(struct worker *w, struct slot *s, grpc_op *ops,
    grpc_op *end, struct tag *tag);
/* Adds initial metadata to a batch unless it went out already. */
grpc_op *call_add_header(struct slot *s, grpc_op *op);
/* Answers a unary call (or ends a stream) in one batch. */
void call_answer(struct worker *w, struct slot *s, grpc_status_code status,
    const char *why);
/* Ends a stream whose client may never end it, in a stop: UNAVAILABLE,
 * counted as such. */
void call_cancel(struct slot *s);

/*
 * stream.c: health Watch and reflection. Called under stream_lock, or
 * while no call thread runs, unless said otherwise.
 */
/* Requests a new stream slot of kind, so that one is always waiting. */
void stream_add(struct worker *w, enum slot_kind kind);
/* Frees a stream's slot, its call let go of. */
void stream_remove(struct worker *w, struct slot *s);
/* A stream's call has arrived on s. */
void
stream_start(struct worker *w, struct slot *s, const struct request_ctx *ctx);
/* A batch of a stream still open has completed: its next step. */
void stream_step(struct worker *w, struct slot *s);
/* The control thread has news (a drain, a stop): tells every stream. */
void stream_wake(struct worker *w);
/* Ends reflection streams idle past reflection_idle_timeout; takes
 * stream_lock itself. */
void stream_end_idle(struct worker *w, long now);
/* Frees what stream slots are left, once gRPC is shut down. */
void stream_free_all(struct worker *w);

/*
 * conn.c: the connections a worker holds. With a Unix-socket listener,
 * those the master accepted and handed over (CHAN_CONN), given to gRPC;
 * with any, their count against max_connections.
 */
void conn_init(struct worker *w);
/* A connection from the master: fd, or -1 if it could not be received
 * (no descriptor was free). */
void conn_add(struct worker *w, int fd);
void conn_end(struct worker *w);
/* Once the server runs, before any connection: what is not one, and
 * which are gRPC's listening sockets. */
void conn_base(struct worker *w);
/*
 * A worker replaced beside itself, told to stop: takes its listeners out
 * of the SO_REUSEPORT group at once, so that the kernel gives new
 * connections to the others (and moves those queued, with
 * tcp_migrate_req) rather than to a worker that is full or no longer
 * accepts, while it drains. 1 if it shut any.
 */
int conn_stop_listening(struct worker *w);
/* Once a second, on the control thread: counts the connections held,
 * publishes the count, and asks for a replacement when full. */
void conn_tick(struct worker *w);

#endif
