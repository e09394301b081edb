/*
 * A worker's gRPC server: its channel arguments (each a setting of the
 * configuration), its credentials, its listening port, and the channel
 * that only carries wake-ups. Split from worker.c because it is the one
 * place that says how gRPC core is set up, and the one whose failures a
 * restart may not mend.
 */
#include "worker_impl.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/compression.h>

#include "log.h"
#include "tls.h"

static grpc_server_credentials *
server_credentials(const struct config *c)
{
	if (c->tls.fd < 0)
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

enum setup
worker_setup_server(struct worker *w)
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
	call_register(w);
	if (c->listen_addr.kind == LISTEN_UNIX) {
		conn_init(w);
	} else {
		/* The address or the TLS files: no restart will help. */
		if ((creds = server_credentials(c)) == NULL) {
			log_errorx("cannot use the TLS certificate and key");
			return SETUP_NEVER;
		}
		port = grpc_server_add_http2_port(w->server, c->listen, creds);
		grpc_server_credentials_release(creds);
		if (port == 0) {
			log_errorx("cannot listen on %s%s", c->listen,
			    c->tls.fd >= 0
				? " (or the TLS certificate and key are "
				  "unusable)"
				: "");
			return SETUP_NEVER;
		}
	}
	grpc_server_start(w->server);

	/* Never connected: it only carries wake-ups (see worker_post()). */
	wake_creds = grpc_insecure_credentials_create();
	w->wake_channel = grpc_channel_create("unix:/dev/null/quoterd-wake",
	    wake_creds, NULL);
	grpc_channel_credentials_release(wake_creds);
	return w->wake_channel != NULL ? SETUP_OK : SETUP_RETRY;
}
