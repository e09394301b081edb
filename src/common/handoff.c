/*
 * Unix-socket listening and descriptor passing (see handoff.h).
 */
#include "handoff.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int
handoff_listen(const char *path, int mode, long gid, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t mask;
	int fd, probe;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "path longer than %zu bytes",
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "exists and is not a socket");
			return -1;
		}
		/* A socket file outlives its server: reuse it only if
		 * connecting is refused, which means no one listens. A full
		 * backlog (EAGAIN, non-blocking) means someone does. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (probe < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    errno != ECONNREFUSED) {
			int e = errno;

			close(probe);
			snprintf(err, errlen, "%s", strerror(e == EAGAIN ||
			    e == 0 ? EADDRINUSE : e));
			return -1;
		}
		close(probe);
		if (unlink(path) != 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	/* bind() creates the file with the umask's mode: create it private
	 * and open it up only once its group is right, so that no one else
	 * can connect in between. The master is single-threaded here. */
	mask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		umask(mask);
		close(fd);
		return -1;
	}
	umask(mask);
	if (gid != -1 && chown(path, (uid_t)-1, (gid_t)gid) != 0) {
		snprintf(err, errlen, "unix_group %ld: %s", gid, strerror(errno));
		goto fail;
	}
	if (chmod(path, (mode_t)mode) != 0) {
		snprintf(err, errlen, "unix_mode %04o: %s", mode, strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlink(path);
	close(fd);
	return -1;
}

int
handoff_channel(int fds[2])
{
	/* Datagram-like: each message carries exactly one descriptor. */
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

int
handoff_send(int channel, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char byte = 0;
	struct iovec iov = {&byte, 1};
	struct msghdr msg;
	struct cmsghdr *cmsg;

	memset(&msg, 0, sizeof(msg));
	memset(&control, 0, sizeof(control));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof(control.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(channel, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0
									 : -1;
}

int
handoff_recv(int channel, int *fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char byte;
	struct iovec iov = {&byte, 1};
	struct msghdr msg;
	struct cmsghdr *cmsg;
	ssize_t n;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		n = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		cmsg = CMSG_FIRSTHDR(&msg);
		if (cmsg != NULL && cmsg->cmsg_level == SOL_SOCKET &&
		    cmsg->cmsg_type == SCM_RIGHTS &&
		    cmsg->cmsg_len == CMSG_LEN(sizeof(int))) {
			memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
			return 1;
		}
		/* A message without a descriptor carries nothing. */
	}
}
