/*
 * quote: asks a quoterd server for quotes and prints them as the original
 * article's client does, `quote ~ author`, one a line. Any failure is one
 * line naming the server and the gRPC status, and exit status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quote_service.pb-c.h"

#define METHOD "/quotes.Quoter/GetQuote"

static const char *const status_names[] = {"OK", "CANCELLED", "UNKNOWN",
    "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

static void
usage(FILE *f)
{
	fprintf(f, "usage: quote [-s HOST:PORT] [-a AUTHOR] [-n COUNT] "
		   "[-t SECONDS]\n"
		   "  -s  server (default localhost:5050)\n"
		   "  -a  author (default: any)\n"
		   "  -n  number of quotes (default 3)\n"
		   "  -t  deadline of each call in seconds (default 5)\n");
}

static void
quiet_log(gpr_log_func_args *args)
{
	(void)args;
}

struct call_result {
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *reply;
};

static void
call_once(grpc_channel *ch, grpc_completion_queue *cq, grpc_slice *method,
    grpc_slice body, double timeout, struct call_result *r)
{
	/* A call takes the slices out of the message it sends: each call
	 * needs a byte buffer of its own. */
	grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&body, 1);
	grpc_metadata_array initial, trailing;
	grpc_op ops[6], *op = ops;
	gpr_timespec deadline;
	grpc_call *call;
	grpc_event ev;

	deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_micros((int64_t)(timeout * 1e6), GPR_TIMESPAN));
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
	    *method, NULL, deadline, NULL);
	grpc_metadata_array_init(&initial);
	grpc_metadata_array_init(&trailing);
	memset(ops, 0, sizeof(ops));
	r->reply = NULL;
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = request;
	op++;
	op->op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	op++;
	op->op = GRPC_OP_RECV_INITIAL_METADATA;
	op->data.recv_initial_metadata.recv_initial_metadata = &initial;
	op++;
	op->op = GRPC_OP_RECV_MESSAGE;
	op->data.recv_message.recv_message = &r->reply;
	op++;
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &trailing;
	op->data.recv_status_on_client.status = &r->status;
	op->data.recv_status_on_client.status_details = &r->details;
	op++;
	if (grpc_call_start_batch(call, ops, (size_t)(op - ops), call, NULL) !=
	    GRPC_CALL_OK) {
		r->status = GRPC_STATUS_INTERNAL;
		r->details = grpc_slice_from_static_string("cannot start call");
	} else {
		ev = grpc_completion_queue_pluck(cq, call,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
			r->status = GRPC_STATUS_INTERNAL;
			r->details =
			    grpc_slice_from_static_string("call failed");
		}
	}
	grpc_metadata_array_destroy(&initial);
	grpc_metadata_array_destroy(&trailing);
	grpc_byte_buffer_destroy(request);
	grpc_call_unref(call);
}

static int
print_reply(grpc_byte_buffer *reply, const char *server)
{
	grpc_byte_buffer_reader reader;
	Quotes__QuoteReply *msg;
	grpc_slice body;

	if (reply == NULL || !grpc_byte_buffer_reader_init(&reader, reply)) {
		fprintf(stderr, "quote: %s: no reply message\n", server);
		return -1;
	}
	body = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	msg = quotes__quote_reply__unpack(NULL, GRPC_SLICE_LENGTH(body),
	    GRPC_SLICE_START_PTR(body));
	grpc_slice_unref(body);
	if (msg == NULL) {
		fprintf(stderr, "quote: %s: reply is not a quotes.QuoteReply\n",
		    server);
		return -1;
	}
	printf("%s ~ %s\n", msg->quote, msg->author);
	quotes__quote_reply__free_unpacked(msg, NULL);
	return 0;
}

int
main(int argc, char *argv[])
{
	const char *server = "localhost:5050";
	Quotes__QuoteRequest req = QUOTES__QUOTE_REQUEST__INIT;
	grpc_channel_credentials *creds;
	grpc_completion_queue *cq;
	grpc_channel *ch;
	grpc_slice method, body;
	struct call_result r;
	double timeout = 5;
	long count = 3;
	char *end;
	int ch_, status = 0;

	while ((ch_ = getopt(argc, argv, "s:a:n:t:h")) != -1) {
		switch (ch_) {
		case 's':
			server = optarg;
			break;
		case 'a':
			req.author = optarg;
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || count < 1 ||
			    count > 1000000) {
				fprintf(stderr, "quote: -n: '%s' is not "
						"1..1000000\n", optarg);
				return 2;
			}
			break;
		case 't':
			errno = 0;
			timeout = strtod(optarg, &end);
			if (errno || *end || end == optarg ||
			    !isfinite(timeout) || timeout <= 0 ||
			    timeout > 86400) {
				fprintf(stderr, "quote: -t: '%s' is not a "
						"number of seconds\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	grpc_init();
	gpr_set_log_function(quiet_log);
	creds = grpc_insecure_credentials_create();
	ch = grpc_channel_create(server, creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	method = grpc_slice_from_static_string(METHOD);
	body = grpc_slice_malloc(quotes__quote_request__get_packed_size(&req));
	quotes__quote_request__pack(&req, GRPC_SLICE_START_PTR(body));

	for (long i = 0; i < count && status == 0; i++) {
		call_once(ch, cq, &method, body, timeout, &r);
		if (r.status != GRPC_STATUS_OK) {
			char *details = grpc_slice_to_c_string(r.details);
			const char *name = (unsigned)r.status <
			    sizeof(status_names) / sizeof(status_names[0])
			    ? status_names[r.status]
			    : "UNKNOWN";

			fprintf(stderr, "quote: %s: %s%s%s\n", server, name,
			    *details ? ": " : "", details);
			gpr_free(details);
			status = 1;
		} else if (print_reply(r.reply, server) != 0) {
			status = 1;
		}
		grpc_slice_unref(r.details);
		if (r.reply != NULL)
			grpc_byte_buffer_destroy(r.reply);
	}

	grpc_slice_unref(body);
	grpc_channel_destroy(ch);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	    GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_shutdown();
	return status;
}
