/*
 * Unit tests for src/common/channel.c: messages cross whole with their
 * descriptor, and a receiver refuses whatever its type does not allow (a
 * short or long message, an unknown type, a descriptor too many or
 * missing), without keeping a descriptor it was sent. A worker that took
 * such a message for a swap would map a file nobody checked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"

static int fds[2];

static int
setup(void **state)
{
	(void)state;
	return channel_open(fds);
}

static int
teardown(void **state)
{
	(void)state;
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return 0;
}

/* How many descriptors this process has open (/proc/self/fd). */
static int
open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/* Sends raw bytes and count copies of fd, as a hostile peer could. */
static void
send_raw(const void *buf, size_t len, int fd, int count)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} control;
	struct iovec iov = {(void *)buf, len};
	struct msghdr msg;
	struct cmsghdr *cmsg;

	memset(&msg, 0, sizeof(msg));
	memset(&control, 0, sizeof(control));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (count > 0) {
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)count * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN((size_t)count * sizeof(int));
		for (int i = 0; i < count; i++)
			memcpy(CMSG_DATA(cmsg) + (size_t)i * sizeof(int), &fd,
			    sizeof(int));
	}
	assert_int_equal(sendmsg(fds[0], &msg, 0), (ssize_t)len);
}

static void
test_round_trip(void **state)
{
	struct channel_msg m;
	int fd, dev = open("/dev/null", O_RDONLY | O_CLOEXEC);
	const char verdict[] = "a body";

	(void)state;
	assert_true(dev >= 0);
	assert_int_equal(channel_send(fds[1], CHAN_READY, 0, NULL, 0, -1), 0);
	assert_int_equal(channel_recv(fds[0], &m, &fd), 0);
	assert_int_equal(m.type, CHAN_READY);
	assert_int_equal(m.pid, getpid());
	assert_int_equal(fd, -1);

	assert_int_equal(channel_send(fds[0], CHAN_SWAP, 7, NULL, 0, dev), 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), 0);
	assert_int_equal(m.type, CHAN_SWAP);
	assert_int_equal(m.generation, 7);
	assert_true(fd >= 0 && fd != dev);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);

	assert_int_equal(channel_send(fds[1], CHAN_VERDICT, 0, verdict,
			     sizeof(verdict), -1),
	    0);
	assert_int_equal(channel_recv(fds[0], &m, &fd), 0);
	assert_int_equal(m.len, sizeof(verdict));
	assert_memory_equal(m.body, verdict, sizeof(verdict));
	close(dev);
}

static void
test_body_too_large(void **state)
{
	static char big[CHANNEL_BODY_MAX + 1];

	(void)state;
	assert_int_equal(channel_send(fds[1], CHAN_VERDICT, 0, big, sizeof(big),
			     -1),
	    EMSGSIZE);
}

static void
test_empty_and_closed(void **state)
{
	struct channel_msg m;
	int fd;

	(void)state;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	assert_int_equal(channel_recv(fds[0], &m, &fd), CHANNEL_EMPTY);
	close(fds[1]);
	fds[1] = -1;
	assert_int_equal(channel_recv(fds[0], &m, &fd), CHANNEL_CLOSED);
	assert_int_equal(channel_send(fds[0], CHAN_STOP, 0, NULL, 0, -1),
	    CHANNEL_CLOSED);
}

/* Each malformed message is refused and leaves no descriptor behind. */
static void
test_refuses_malformed(void **state)
{
	const size_t header = offsetof(struct channel_msg, body);
	struct channel_msg good = {.type = CHAN_READY}, bad;
	struct channel_msg m;
	int fd, before, dev = open("/dev/null", O_RDONLY | O_CLOEXEC);

	(void)state;
	before = open_fds();
	/* Shorter than a header. */
	send_raw(&good, header - 1, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* A length that disagrees with what arrived. */
	bad = good;
	bad.len = 4;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* A length past the body. */
	bad.len = CHANNEL_BODY_MAX + 1;
	send_raw(&bad, sizeof(bad), -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* Unknown types. */
	bad = good;
	bad.type = 0;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	bad.type = CHAN_NTYPES;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* A body where the type has none. */
	bad = good;
	bad.len = 1;
	send_raw(&bad, header + 1, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* A descriptor where the type has none: received, then closed. */
	send_raw(&good, header, dev, 1);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	assert_int_equal(fd, -1);
	/* A swap without its database, and with two. */
	bad = good;
	bad.type = CHAN_SWAP;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	send_raw(&bad, header, dev, 2);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	send_raw(&bad, header, dev, 4);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* New TLS files and a connection come with their descriptor too. */
	bad.type = CHAN_TLS;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	bad.type = CHAN_CONN;
	send_raw(&bad, header, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	/* A TLS checker's "good" needs both its verdict and its file. */
	bad.type = CHAN_CERTS;
	bad.len = 1;
	send_raw(&bad, header + 1, -1, 0);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	bad.len = 0;
	send_raw(&bad, header, dev, 1);
	assert_int_equal(channel_recv(fds[1], &m, &fd), CHANNEL_EBADMSG);
	assert_int_equal(fd, -1);
	bad.type = CHAN_SWAP;
	assert_int_equal(open_fds(), before);
	/* And the channel still works after all that. */
	send_raw(&bad, header, dev, 1);
	assert_int_equal(channel_recv(fds[1], &m, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	close(dev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_too_large, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_empty_and_closed, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_malformed, setup,
		teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
