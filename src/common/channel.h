/*
 * The one channel between the master and each process it forks, after
 * nginx's ngx_channel.c and relayd's imsg: a SOCK_SEQPACKET socketpair
 * made before fork, so that each message arrives whole or not at all,
 * and a closed end tells the other side its peer is gone. Messages are
 * typed and size-checked, and carry at most one descriptor.
 */
#ifndef QUOTERD_CHANNEL_H
#define QUOTERD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

enum channel_type {
	CHAN_READY = 1,   /* worker: serving */
	CHAN_SICK,        /* worker: cannot take connections; replace me */
	CHAN_SWAP,        /* master: serve this checked database (fd) */
	CHAN_SWAPPED,     /* worker: serving the swap's database */
	CHAN_SWAP_FAILED, /* worker: kept the database it had */
	CHAN_STOP,        /* master: stop gracefully */
	CHAN_CONN,        /* master: a Unix-socket connection (fd) */
	CHAN_VERDICT,     /* checker: its verdict (body) */
	CHAN_REOPEN,      /* master: open the log file again */
	CHAN_TLS,         /* master: new TLS files, a memory file (fd) */
	CHAN_TLS_DONE,    /* worker: new handshakes use them */
	CHAN_CERTS,       /* checker: TLS files good (body), their memfd */
	CHAN_NTYPES
};

/* The largest body a message may carry (the checker's verdict). */
#define CHANNEL_BODY_MAX 512

struct channel_msg {
	uint32_t type;       /* enum channel_type */
	uint32_t generation; /* CHAN_SWAP*: the swap it is about */
	int32_t pid;         /* the sender's */
	uint32_t len;        /* bytes of body in use */
	unsigned char body[CHANNEL_BODY_MAX];
};

enum {
	CHANNEL_OK = 0,
	CHANNEL_CLOSED = -30900, /* the other end is gone */
	CHANNEL_EMPTY,           /* nothing to read now (nonblocking) */
	CHANNEL_EBADMSG,         /* a message of a wrong size, type or fd */
	CHANNEL_ENOFD            /* whole, but its descriptor could not be
				  * received: none free (EMFILE) */
};

/* A channel: fds[0] for the master, fds[1] for the child. 0 or errno. */
int channel_open(int fds[2]);
/*
 * Sends one message of type with len bytes of body (CHANNEL_BODY_MAX at
 * most) and, unless fd is -1, a copy of fd, which the caller still
 * closes. Never blocks and never raises SIGPIPE: 0, CHANNEL_CLOSED, or
 * an errno code (EAGAIN: the peer is not reading).
 */
int channel_send(int ch, enum channel_type type, uint32_t generation,
    const void *body, size_t len, int fd);
/*
 * Receives one message into m and its descriptor into *fd (-1 if none).
 * A message whose size, type or descriptor is not what its type says is
 * refused whole (CHANNEL_EBADMSG, any descriptor closed). Returns 0,
 * CHANNEL_CLOSED, CHANNEL_EMPTY (a nonblocking channel with nothing to
 * read), CHANNEL_EBADMSG, CHANNEL_ENOFD (m is the message, valid in all
 * but its missing descriptor) or an errno code.
 */
int channel_recv(int ch, struct channel_msg *m, int *fd);
const char *channel_strerror(int rc);

#endif
