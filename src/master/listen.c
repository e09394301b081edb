/*
 * Binding the TCP addresses of the configuration (see listen.h). A
 * module: it says what went wrong with a code and leaves the telling to
 * the process.
 */
#include "listen.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket bound at a, with SO_REUSEADDR, as *fd. */
static int
bind_tcp(const struct listen_addr *a, int *fd)
{
	struct addrinfo hints, *res;
	char port[8];
	int rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%u", a->port);
	if ((rc = getaddrinfo(a->host, port, &hints, &res)) != 0)
		return rc < 0 ? rc : EINVAL;
	rc = 0;
	*fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 ||
	    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(*fd, res->ai_addr, res->ai_addrlen) != 0) {
		rc = errno;
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	freeaddrinfo(res);
	return rc;
}

/*
 * Not with SO_REUSEPORT, as the workers bind: that would succeed beside
 * another quoterd's workers, and the two would silently split the
 * traffic. A plain bind fails while any socket listens there,
 * SO_REUSEPORT or not; SO_REUSEADDR only lets it past connections of an
 * earlier run still in TIME_WAIT.
 */
int
listen_probe(const struct listen_addr *a)
{
	int fd, rc;

	if ((rc = bind_tcp(a, &fd)) == 0)
		close(fd);
	return rc;
}

int
listen_tcp(const struct listen_addr *a, int backlog, int *fd)
{
	int rc;

	if ((rc = bind_tcp(a, fd)) == 0 && listen(*fd, backlog) != 0) {
		rc = errno;
		close(*fd);
		*fd = -1;
	}
	return rc;
}

const char *
listen_strerror(int rc)
{
	return rc < 0 ? gai_strerror(rc) : strerror(rc);
}
