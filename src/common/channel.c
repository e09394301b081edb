/*
 * The master's channel to each child (see channel.h). A receiver never
 * trusts the sender's lengths: the kernel says how many bytes arrived,
 * and a message is believed only if that, its stated length and what its
 * type allows all agree.
 */
#include "channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_SIZE offsetof(struct channel_msg, body)

/* Which types carry a descriptor, and which a body. */
static int
wants_fd(uint32_t type)
{
	return type == CHAN_SWAP || type == CHAN_CONN || type == CHAN_TLS ||
	    type == CHAN_CERTS;
}

static int
wants_body(uint32_t type)
{
	return type == CHAN_VERDICT || type == CHAN_CERTS;
}

int
channel_open(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0
	    ? 0
	    : errno;
}

int
channel_send(int ch, enum channel_type type, uint32_t generation,
    const void *body, size_t len, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct channel_msg m;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cmsg;
	ssize_t n;

	if (len > sizeof(m.body))
		return EMSGSIZE;
	memset(&m, 0, HEADER_SIZE);
	m.type = (uint32_t)type;
	m.generation = generation;
	m.pid = (int32_t)getpid();
	m.len = (uint32_t)len;
	if (len > 0)
		memcpy(m.body, body, len);
	iov.iov_base = &m;
	iov.iov_len = HEADER_SIZE + len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	do
		n = sendmsg(ch, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? CHANNEL_CLOSED
							     : errno;
	return (size_t)n == iov.iov_len ? 0 : EMSGSIZE;
}

/* Takes every descriptor the message brought: the first into *fd, and
 * closes the rest; returns how many there were. */
static int
take_fds(struct msghdr *msg, int *fd)
{
	int count = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL;
	     c = CMSG_NXTHDR(msg, c)) {
		size_t nfds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int got;

			memcpy(&got, CMSG_DATA(c) + i * sizeof(int),
			    sizeof(int));
			if (count++ == 0)
				*fd = got;
			else
				close(got);
		}
	}
	return count;
}

int
channel_recv(int ch, struct channel_msg *m, int *fd)
{
	union {
		struct cmsghdr hdr;
		/* Room for a second descriptor, so that one too many is
		 * seen (and closed) rather than silently cut off. */
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} control;
	struct iovec iov = {m, sizeof(*m)};
	struct msghdr msg;
	ssize_t n;
	int nfds;

	*fd = -1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof(control.buf);
	do
		n = recvmsg(ch, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return CHANNEL_CLOSED;
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return CHANNEL_EMPTY;
		return errno == ECONNRESET ? CHANNEL_CLOSED : errno;
	}
	nfds = take_fds(&msg, fd);
	if ((msg.msg_flags & MSG_TRUNC) != 0 || (size_t)n < HEADER_SIZE ||
	    m->len > sizeof(m->body) || (size_t)n != HEADER_SIZE + m->len ||
	    m->type == 0 || m->type >= CHAN_NTYPES ||
	    (m->len > 0) != wants_body(m->type))
		goto bad;
	/* The kernel sets MSG_CTRUNC with no descriptor at all when it
	 * could not install the one sent (EMFILE): a message that lost its
	 * descriptor, not a malformed one. */
	if ((msg.msg_flags & MSG_CTRUNC) != 0 && nfds == 0 && wants_fd(m->type))
		return CHANNEL_ENOFD;
	if ((msg.msg_flags & MSG_CTRUNC) != 0 ||
	    nfds != (wants_fd(m->type) ? 1 : 0))
		goto bad;
	return 0;
bad:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return CHANNEL_EBADMSG;
}

const char *
channel_strerror(int rc)
{
	switch (rc) {
	case CHANNEL_OK:
		return "no error";
	case CHANNEL_CLOSED:
		return "the other end closed the channel";
	case CHANNEL_EMPTY:
		return "no message waiting";
	case CHANNEL_EBADMSG:
		return "a malformed message";
	case CHANNEL_ENOFD:
		return "a message whose descriptor could not be received: out "
		       "of descriptors";
	default:
		return strerror(rc);
	}
}
