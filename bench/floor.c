/*
 * The floor under quoterd's speed: a gRPC C core server that does nothing
 * but answer /quotes.Quoter/GetQuote with one fixed QuoteReply, the way
 * quoterd does (calls requested up front, one batch a call, THREADS
 * threads on one completion queue), and no decoding, no database, no
 * health or reflection. Whatever it costs a call is gRPC core's and the
 * kernel's, which no server built on this gRPC can go below.
 *
 * usage: floor HOST:PORT THREADS   (runs until killed)
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256

struct slot {
	grpc_call *call;
	grpc_metadata_array metadata;
	grpc_byte_buffer *request, *reply;
	gpr_timespec deadline;
	grpc_slice details;
	int cancelled;
	int answering; /* the reply batch is under way */
};

static grpc_server *server;
static grpc_completion_queue *cq;
static void *method;
static grpc_slice reply;

static void
request(struct slot *s)
{
	s->call = NULL;
	s->request = NULL;
	s->answering = 0;
	grpc_metadata_array_init(&s->metadata);
	if (grpc_server_request_registered_call(server, method, &s->call,
		&s->deadline, &s->metadata, &s->request, cq, cq,
		s) != GRPC_CALL_OK) {
		fprintf(stderr, "floor: cannot request a call\n");
		exit(1);
	}
}

static void
answer(struct slot *s)
{
	grpc_op ops[4];

	memset(ops, 0, sizeof(ops));
	s->reply = grpc_raw_byte_buffer_create(&reply, 1);
	s->details = grpc_empty_slice();
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = s->reply;
	ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
	ops[2].data.send_status_from_server.status_details = &s->details;
	ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[3].data.recv_close_on_server.cancelled = &s->cancelled;
	s->answering = 1;
	if (grpc_call_start_batch(s->call, ops, 4, s, NULL) != GRPC_CALL_OK) {
		fprintf(stderr, "floor: cannot start a batch\n");
		exit(1);
	}
}

static void *
loop(void *arg)
{
	grpc_event ev;
	struct slot *s;

	(void)arg;
	for (;;) {
		ev = grpc_completion_queue_next(cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		s = ev.tag;
		if (!s->answering && ev.success) {
			answer(s);
			continue;
		}
		if (s->call != NULL)
			grpc_call_unref(s->call);
		if (s->request != NULL)
			grpc_byte_buffer_destroy(s->request);
		if (s->answering)
			grpc_byte_buffer_destroy(s->reply);
		grpc_metadata_array_destroy(&s->metadata);
		request(s);
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	/* QuoteReply{quote: "...", author: "..."}, as protobuf. */
	static const char msg[] = "\x0a\x1d"
				  "The floor under every server."
				  "\x12\x06"
				  "Author";
	static struct slot slots[SLOTS];
	grpc_server_credentials *creds;
	pthread_t thread;
	int threads;

	if (argc != 3 || (threads = atoi(argv[2])) < 1 || threads > 64) {
		fprintf(stderr, "usage: floor HOST:PORT THREADS\n");
		return 2;
	}
	reply = grpc_slice_from_static_buffer(msg, sizeof(msg) - 1);
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	method = grpc_server_register_method(server, "/quotes.Quoter/GetQuote",
	    NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	creds = grpc_insecure_server_credentials_create();
	if (grpc_server_add_http2_port(server, argv[1], creds) == 0) {
		fprintf(stderr, "floor: cannot listen on %s\n", argv[1]);
		return 1;
	}
	grpc_server_credentials_release(creds);
	grpc_server_start(server);
	for (int i = 0; i < SLOTS; i++)
		request(&slots[i]);
	for (int i = 1; i < threads; i++)
		if (pthread_create(&thread, NULL, loop, NULL) != 0) {
			fprintf(stderr, "floor: cannot start a thread\n");
			return 1;
		}
	loop(NULL);
	return 0;
}
