/*
 * quote: asks a quoterd server for quotes and prints them as the original
 * article's client does, `quote ~ author`, one a line, optionally
 * filtered (--min, --max, --search, --tag, --exact); or every quote
 * matching the filters (--search pages through SearchQuotes); or the
 * quote of the day (--today); or, with --list-authors or --list-tags,
 * every author or tag the server knows, one a line. Any failure is one
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

#ifndef QUOTERD_VERSION
#define QUOTERD_VERSION "0.1.0"
#endif

#define GETQUOTE      "/quotes.Quoter/GetQuote"
#define LISTAUTHORS   "/quotes.Quoter/ListAuthors"
#define SEARCHQUOTES  "/quotes.Quoter/SearchQuotes"
#define LISTTAGS      "/quotes.Quoter/ListTags"
#define QUOTEOFTHEDAY "/quotes.Quoter/GetQuoteOfTheDay"
#define MAX_TAGS      16

/* What to ask for. */
struct filters {
	const char *author;
	unsigned long min, max;
	const char *search; /* NULL: no --search */
	char *tags[MAX_TAGS];
	size_t ntags;
	int exact;
};

static const char *const status_names[] = {"OK", "CANCELLED", "UNKNOWN",
    "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

struct client {
	const char *server;
	double timeout;
	grpc_channel *channel;
	grpc_completion_queue *cq;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: quote [-s HOST:PORT|unix:PATH] [-a AUTHOR] "
	    "[-n COUNT] [-t SECONDS]\n"
	    "             [--min N] [--max N] [--search WORDS] "
	    "[--tag TAG]... [--exact]\n"
	    "             [--today [YYYY-MM-DD]] [--list-authors] "
	    "[--list-tags]\n"
	    "             [--tls-ca FILE "
	    "[--tls-cert FILE --tls-key FILE]]\n"
	    "             [--version] [--help]\n"
	    "  -s  server (default localhost:5050; unix:PATH for a "
	    "Unix socket)\n"
	    "  -a  author (default: any)\n"
	    "  -n  number of quotes (default 3)\n"
	    "  -t  deadline of each call in seconds (default 5)\n"
	    "  --min, --max    quotes of at least, at most N "
	    "characters\n"
	    "  --search WORDS  every quote holding all these words "
	    "(with the other filters)\n"
	    "  --tag TAG       quotes carrying TAG (repeatable)\n"
	    "  --exact         -a must match exactly; no random author\n"
	    "  --today         the quote of the day (of DATE), with -a "
	    "and --tag\n"
	    "  --list-authors  print every author the server knows\n"
	    "  --list-tags     print every tag and its number of "
	    "quotes\n"
	    "  --tls-ca        use TLS, trusting these CAs (PEM)\n"
	    "  --tls-cert, --tls-key  client certificate and key "
	    "(PEM)\n"
	    "  --version       print the version and exit\n"
	    "  -h, --help      print this help and exit\n");
}

static void
quiet_log(gpr_log_func_args *args)
{
	(void)args;
}

/* A PEM file's contents, NUL-terminated; exits 1 if unreadable. */
static char *
read_pem(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL ||
	    getdelim(&buf, &len, '\0', f) < 0) {
		fprintf(stderr, "quote: %s: %s\n", path,
		    f == NULL || ferror(f) ? strerror(errno) : "empty file");
		exit(1);
	}
	fclose(f);
	return buf;
}

/*
 * One unary call: sends request (packed), returns the reply message, or
 * NULL after printing the status.
 */
static grpc_byte_buffer *
call(struct client *c, const char *method, const ProtobufCMessage *request)
{
	grpc_metadata_array initial, trailing;
	grpc_byte_buffer *send, *reply = NULL;
	grpc_status_code status = GRPC_STATUS_OK;
	grpc_slice details = grpc_empty_slice(), body, path;
	grpc_op ops[6], *op = ops;
	gpr_timespec deadline;
	grpc_call *gc;
	grpc_event ev;

	body = grpc_slice_malloc(protobuf_c_message_get_packed_size(request));
	protobuf_c_message_pack(request, GRPC_SLICE_START_PTR(body));
	/* A call takes the slices out of the message it sends: each call
	 * needs a byte buffer of its own. */
	send = grpc_raw_byte_buffer_create(&body, 1);
	grpc_slice_unref(body);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_micros((int64_t)(c->timeout * 1e6), GPR_TIMESPAN));
	path = grpc_slice_from_static_string(method);
	gc = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
	    c->cq, path, NULL, deadline, NULL);
	grpc_metadata_array_init(&initial);
	grpc_metadata_array_init(&trailing);
	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = send;
	op++;
	op->op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	op++;
	op->op = GRPC_OP_RECV_INITIAL_METADATA;
	op->data.recv_initial_metadata.recv_initial_metadata = &initial;
	op++;
	op->op = GRPC_OP_RECV_MESSAGE;
	op->data.recv_message.recv_message = &reply;
	op++;
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &trailing;
	op->data.recv_status_on_client.status = &status;
	op->data.recv_status_on_client.status_details = &details;
	op++;
	if (grpc_call_start_batch(gc, ops, (size_t)(op - ops), gc, NULL) !=
	    GRPC_CALL_OK) {
		status = GRPC_STATUS_INTERNAL;
	} else {
		ev = grpc_completion_queue_pluck(c->cq, gc,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE || !ev.success)
			status = GRPC_STATUS_INTERNAL;
	}
	if (status != GRPC_STATUS_OK || reply == NULL) {
		char *text = grpc_slice_to_c_string(details);

		fprintf(stderr, "quote: %s: %s%s%s\n", c->server,
		    (unsigned)status <
			    sizeof(status_names) / sizeof(status_names[0])
			? status_names[status]
			: "UNKNOWN",
		    *text ? ": " : "",
		    *text                          ? text
			: status == GRPC_STATUS_OK ? ": no reply"
						   : "");
		gpr_free(text);
		if (reply != NULL)
			grpc_byte_buffer_destroy(reply);
		reply = NULL;
	}
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial);
	grpc_metadata_array_destroy(&trailing);
	grpc_byte_buffer_destroy(send);
	grpc_call_unref(gc);
	return reply;
}

/* Decodes a reply message; NULL after printing why. */
static ProtobufCMessage *
decode(struct client *c, grpc_byte_buffer *reply,
    const ProtobufCMessageDescriptor *desc)
{
	grpc_byte_buffer_reader reader;
	ProtobufCMessage *msg = NULL;
	grpc_slice body;

	if (grpc_byte_buffer_reader_init(&reader, reply)) {
		body = grpc_byte_buffer_reader_readall(&reader);
		grpc_byte_buffer_reader_destroy(&reader);
		msg = protobuf_c_message_unpack(desc, NULL,
		    GRPC_SLICE_LENGTH(body), GRPC_SLICE_START_PTR(body));
		grpc_slice_unref(body);
	}
	grpc_byte_buffer_destroy(reply);
	if (msg == NULL)
		fprintf(stderr, "quote: %s: reply is not a %s\n", c->server,
		    desc->name);
	return msg;
}

static int
get_quotes(struct client *c, const struct filters *f, long count)
{
	Quotes__QuoteRequest req = QUOTES__QUOTE_REQUEST__INIT;
	Quotes__QuoteReply *msg;
	grpc_byte_buffer *reply;

	if (f->author != NULL)
		req.author = (char *)f->author;
	req.min_length = (uint32_t)f->min;
	req.max_length = (uint32_t)f->max;
	req.n_tags = f->ntags;
	req.tags = (char **)f->tags;
	req.exact = f->exact;
	for (long i = 0; i < count; i++) {
		if ((reply = call(c, GETQUOTE, &req.base)) == NULL)
			return 1;
		msg = (Quotes__QuoteReply *)decode(c, reply,
		    &quotes__quote_reply__descriptor);
		if (msg == NULL)
			return 1;
		printf("%s ~ %s\n", msg->quote, msg->author);
		quotes__quote_reply__free_unpacked(msg, NULL);
	}
	return 0;
}

static int
print_quote(const Quotes__QuoteReply *q)
{
	printf("%s ~ %s\n", q->quote, q->author);
	return 0;
}

/*
 * Asks method for every page of a listing: sets *token for each request,
 * shows each reply, and goes on while show() returns a next page token.
 */
static int
page_through(struct client *c, const char *method, ProtobufCMessage *req,
    char **token, const ProtobufCMessageDescriptor *desc,
    const char *(*show)(const ProtobufCMessage *reply))
{
	ProtobufCMessage *msg;
	grpc_byte_buffer *reply;
	const char *next_token;
	char *next = NULL;
	int status = 0;

	do {
		*token = next != NULL ? next : "";
		if ((reply = call(c, method, req)) == NULL ||
		    (msg = decode(c, reply, desc)) == NULL) {
			status = 1;
			break;
		}
		next_token = show(msg);
		free(next);
		next = *next_token ? strdup(next_token) : NULL;
		protobuf_c_message_free_unpacked(msg, NULL);
	} while (next != NULL);
	free(next);
	return status;
}

static const char *
show_quotes(const ProtobufCMessage *reply)
{
	const Quotes__SearchQuotesReply *msg =
	    (const Quotes__SearchQuotesReply *)reply;

	for (size_t i = 0; i < msg->n_quotes; i++)
		print_quote(msg->quotes[i]);
	return msg->next_page_token;
}

static int
search_quotes(struct client *c, const struct filters *f)
{
	Quotes__SearchQuotesRequest req = QUOTES__SEARCH_QUOTES_REQUEST__INIT;

	if (f->author != NULL)
		req.author = (char *)f->author;
	req.query = (char *)f->search;
	req.min_length = (uint32_t)f->min;
	req.max_length = (uint32_t)f->max;
	req.n_tags = f->ntags;
	req.tags = (char **)f->tags;
	req.page_size = 1000;
	return page_through(c, SEARCHQUOTES, &req.base, &req.page_token,
	    &quotes__search_quotes_reply__descriptor, show_quotes);
}

static int
quote_of_the_day(struct client *c, const struct filters *f, const char *date)
{
	Quotes__QuoteOfTheDayRequest req =
	    QUOTES__QUOTE_OF_THE_DAY_REQUEST__INIT;
	Quotes__QuoteReply *msg;
	grpc_byte_buffer *reply;

	if (date != NULL)
		req.date = (char *)date;
	if (f->author != NULL)
		req.author = (char *)f->author;
	req.n_tags = f->ntags;
	req.tags = (char **)f->tags;
	if ((reply = call(c, QUOTEOFTHEDAY, &req.base)) == NULL ||
	    (msg = (Quotes__QuoteReply *)decode(c, reply,
		 &quotes__quote_reply__descriptor)) == NULL)
		return 1;
	print_quote(msg);
	quotes__quote_reply__free_unpacked(msg, NULL);
	return 0;
}

static const char *
show_tags(const ProtobufCMessage *reply)
{
	const Quotes__ListTagsReply *msg = (const Quotes__ListTagsReply *)reply;

	for (size_t i = 0; i < msg->n_tags; i++)
		printf("%s %u\n", msg->tags[i]->name, msg->tags[i]->quotes);
	return msg->next_page_token;
}

static int
list_tags(struct client *c)
{
	Quotes__ListTagsRequest req = QUOTES__LIST_TAGS_REQUEST__INIT;

	req.page_size = 1000;
	return page_through(c, LISTTAGS, &req.base, &req.page_token,
	    &quotes__list_tags_reply__descriptor, show_tags);
}

/* A length bound: 1..UINT32_MAX; exits 2 otherwise. */
static unsigned long
parse_length(const char *flag, const char *arg)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || *arg == '-' || v < 1 ||
	    v > UINT32_MAX) {
		fprintf(stderr, "quote: %s: '%s' is not 1..%u\n", flag, arg,
		    UINT32_MAX);
		exit(2);
	}
	return v;
}

static const char *
show_authors(const ProtobufCMessage *reply)
{
	const Quotes__ListAuthorsReply *msg =
	    (const Quotes__ListAuthorsReply *)reply;

	for (size_t i = 0; i < msg->n_authors; i++)
		printf("%s\n", msg->authors[i]);
	return msg->next_page_token;
}

static int
list_authors(struct client *c)
{
	Quotes__ListAuthorsRequest req = QUOTES__LIST_AUTHORS_REQUEST__INIT;

	req.page_size = 1000;
	return page_through(c, LISTAUTHORS, &req.base, &req.page_token,
	    &quotes__list_authors_reply__descriptor, show_authors);
}

/* A real date as YYYY-MM-DD, years 0001-9999, as the server takes it. */
static int
date_valid(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
	    31};
	int y = 0, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	for (int i = 0; i < 4; i++)
		y = y * 10 + s[i] - '0';
	m = (s[5] - '0') * 10 + s[6] - '0';
	d = (s[8] - '0') * 10 + s[9] - '0';
	if (y == 0 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	return m != 2 || d < 29 ||
	    (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/*
 * The options that choose what to ask for, and the ones that shape a
 * request: each mode takes only the shaping options it sends, so that
 * none is silently ignored (quote -a X --list-authors is a usage error).
 */
enum {
	GIVEN_AUTHOR = 1 << 0, /* -a */
	GIVEN_COUNT = 1 << 1,  /* -n */
	GIVEN_MIN = 1 << 2,    /* --min */
	GIVEN_MAX = 1 << 3,    /* --max */
	GIVEN_TAG = 1 << 4,    /* --tag */
	GIVEN_EXACT = 1 << 5   /* --exact */
};

static const char *const given_names[] = {"-a", "-n", "--min", "--max", "--tag",
    "--exact"};

enum mode { MODE_QUOTES, MODE_SEARCH, MODE_TODAY, MODE_AUTHORS, MODE_TAGS };

static const struct {
	const char *name;
	unsigned takes; /* the GIVEN_ options it takes */
} modes[] = {
    [MODE_QUOTES] = {NULL,
	GIVEN_AUTHOR | GIVEN_COUNT | GIVEN_MIN | GIVEN_MAX | GIVEN_TAG |
	    GIVEN_EXACT},
    [MODE_SEARCH] = {"--search",
	GIVEN_AUTHOR | GIVEN_MIN | GIVEN_MAX | GIVEN_TAG},
    [MODE_TODAY] = {"--today", GIVEN_AUTHOR | GIVEN_TAG},
    [MODE_AUTHORS] = {"--list-authors", 0},
    [MODE_TAGS] = {"--list-tags", 0},
};

/* The first option given that mode does not take, or NULL. */
static const char *
conflict(enum mode mode, unsigned given)
{
	unsigned extra = given & ~modes[mode].takes;

	for (size_t i = 0; i < sizeof(given_names) / sizeof(given_names[0]);
	     i++)
		if (extra & 1u << i)
			return given_names[i];
	return NULL;
}

int
main(int argc, char *argv[])
{
	enum {
		OPT_LIST = 256,
		OPT_CA,
		OPT_CERT,
		OPT_KEY,
		OPT_VERSION,
		OPT_MIN,
		OPT_MAX,
		OPT_SEARCH,
		OPT_TAG,
		OPT_EXACT,
		OPT_TODAY,
		OPT_LIST_TAGS
	};
	static const struct option longopts[] = {{"list-authors", no_argument,
						     NULL, OPT_LIST},
	    {"list-tags", no_argument, NULL, OPT_LIST_TAGS},
	    {"min", required_argument, NULL, OPT_MIN},
	    {"max", required_argument, NULL, OPT_MAX},
	    {"search", required_argument, NULL, OPT_SEARCH},
	    {"tag", required_argument, NULL, OPT_TAG},
	    {"exact", no_argument, NULL, OPT_EXACT},
	    {"today", optional_argument, NULL, OPT_TODAY},
	    {"tls-ca", required_argument, NULL, OPT_CA},
	    {"tls-cert", required_argument, NULL, OPT_CERT},
	    {"tls-key", required_argument, NULL, OPT_KEY},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct client c = {"localhost:5050", 5, NULL, NULL};
	const char *ca = NULL, *cert = NULL, *key = NULL, *date = NULL;
	struct filters f = {0};
	grpc_ssl_pem_key_cert_pair pair;
	grpc_channel_credentials *creds;
	char *end, *pems[3] = {NULL, NULL, NULL};
	const char *bad;
	long count = 3;
	int opt, list = 0, list_tag = 0, today = 0, status;
	enum mode mode;
	unsigned given = 0;

	/* getopt's own messages start with argv[0]: "quote:", as ours. */
	argv[0] = (char *)"quote";
	while ((opt = getopt_long(argc, argv, "s:a:n:t:h", longopts, NULL)) !=
	    -1) {
		switch (opt) {
		case 's':
			c.server = optarg;
			break;
		case 'a':
			f.author = optarg;
			given |= GIVEN_AUTHOR;
			break;
		case OPT_MIN:
			f.min = parse_length("--min", optarg);
			given |= GIVEN_MIN;
			break;
		case OPT_MAX:
			f.max = parse_length("--max", optarg);
			given |= GIVEN_MAX;
			break;
		case OPT_SEARCH:
			f.search = optarg;
			break;
		case OPT_TAG:
			if (f.ntags == MAX_TAGS) {
				fprintf(stderr, "quote: --tag: at most %d\n",
				    MAX_TAGS);
				return 2;
			}
			f.tags[f.ntags++] = optarg;
			given |= GIVEN_TAG;
			break;
		case OPT_EXACT:
			f.exact = 1;
			given |= GIVEN_EXACT;
			break;
		case OPT_TODAY:
			today = 1;
			/* "--today DATE" as well as "--today=DATE": quote
			 * takes no operands, so a word after --today that
			 * is not an option can only be meant as its date. */
			if (optarg == NULL && optind < argc &&
			    argv[optind][0] != '-')
				optarg = argv[optind++];
			if (optarg != NULL && !date_valid(optarg)) {
				fprintf(stderr,
				    "quote: --today: '%s' is not a date "
				    "as YYYY-MM-DD\n",
				    optarg);
				return 2;
			}
			date = optarg;
			break;
		case OPT_LIST_TAGS:
			list_tag = 1;
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || count < 1 ||
			    count > 1000000) {
				fprintf(stderr,
				    "quote: -n: '%s' is not "
				    "1..1000000\n",
				    optarg);
				return 2;
			}
			given |= GIVEN_COUNT;
			break;
		case 't':
			errno = 0;
			c.timeout = strtod(optarg, &end);
			if (errno || *end || end == optarg ||
			    !isfinite(c.timeout) || c.timeout <= 0 ||
			    c.timeout > 86400) {
				fprintf(stderr,
				    "quote: -t: '%s' is not a "
				    "number of seconds\n",
				    optarg);
				return 2;
			}
			break;
		case OPT_LIST:
			list = 1;
			break;
		case OPT_CA:
			ca = optarg;
			break;
		case OPT_CERT:
			cert = optarg;
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_VERSION:
			printf("quote %s\n", QUOTERD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			/* getopt_long() has said what was wrong. */
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quote: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (list + list_tag + today + (f.search != NULL) > 1) {
		fprintf(stderr,
		    "quote: --search, --today, --list-authors and "
		    "--list-tags go one at a time\n");
		usage(stderr);
		return 2;
	}
	mode = list            ? MODE_AUTHORS
	    : list_tag         ? MODE_TAGS
	    : today            ? MODE_TODAY
	    : f.search != NULL ? MODE_SEARCH
			       : MODE_QUOTES;
	if ((bad = conflict(mode, given)) != NULL) {
		fprintf(stderr, "quote: %s does not go with %s\n", bad,
		    modes[mode].name);
		usage(stderr);
		return 2;
	}
	if (f.exact && f.author == NULL) {
		fprintf(stderr, "quote: --exact needs -a\n");
		usage(stderr);
		return 2;
	}
	if (f.min > 0 && f.max > 0 && f.min > f.max) {
		fprintf(stderr, "quote: --min is more than --max\n");
		return 2;
	}
	if ((cert == NULL) != (key == NULL) || (cert != NULL && ca == NULL)) {
		fprintf(stderr, "quote: %s\n",
		    ca == NULL ? "a client certificate needs --tls-ca"
			       : "--tls-cert and --tls-key go together");
		usage(stderr);
		return 2;
	}

	grpc_init();
	gpr_set_log_function(quiet_log);
	if (ca != NULL) {
		pems[0] = read_pem(ca);
		if (cert != NULL) {
			pair.cert_chain = pems[1] = read_pem(cert);
			pair.private_key = pems[2] = read_pem(key);
		}
		creds = grpc_ssl_credentials_create(pems[0],
		    cert != NULL ? &pair : NULL, NULL, NULL);
	} else {
		creds = grpc_insecure_credentials_create();
	}
	c.channel = grpc_channel_create(c.server, creds, NULL);
	grpc_channel_credentials_release(creds);
	c.cq = grpc_completion_queue_create_for_pluck(NULL);

	if (list)
		status = list_authors(&c);
	else if (list_tag)
		status = list_tags(&c);
	else if (today)
		status = quote_of_the_day(&c, &f, date);
	else if (f.search != NULL)
		status = search_quotes(&c, &f);
	else
		status = get_quotes(&c, &f, count);

	grpc_channel_destroy(c.channel);
	grpc_completion_queue_shutdown(c.cq);
	while (grpc_completion_queue_pluck(c.cq, NULL,
		   gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
		   .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c.cq);
	grpc_shutdown();
	for (int i = 0; i < 3; i++)
		free(pems[i]);
	return status;
}
