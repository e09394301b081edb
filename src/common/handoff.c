/*
 * The Unix-socket listener (see handoff.h).
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
handoff_listen(const char *path, int mode, long gid, char *err, size_t errlen)
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
		probe = socket(AF_UNIX,
		    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    errno != ECONNREFUSED) {
			int e = errno;

			close(probe);
			snprintf(err, errlen, "%s",
			    strerror(e == EAGAIN || e == 0 ? EADDRINUSE : e));
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
		snprintf(err, errlen, "unix_group %ld: %s", gid,
		    strerror(errno));
		goto fail;
	}
	if (chmod(path, (mode_t)mode) != 0) {
		snprintf(err, errlen, "unix_mode %04o: %s", mode,
		    strerror(errno));
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
