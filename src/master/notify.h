/*
 * Readiness reports to systemd (sd_notify(3)) for a Type=notify unit.
 */
#ifndef QUOTERD_NOTIFY_H
#define QUOTERD_NOTIFY_H

/*
 * Sends one message, "KEY=VALUE" lines, to the socket $NOTIFY_SOCKET
 * names; does nothing when it is unset. Failures are logged, never
 * fatal: the service works the same without a manager listening.
 */
void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
