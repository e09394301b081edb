/*
 * Renders /metrics. Counters are read without a lock while workers write
 * them: each value is a whole 64-bit word, so a scrape during calls may
 * lag a call behind, never see a torn or falling value.
 */
#include "exposition.h"

#include <dirent.h>
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "version.h"

struct sums {
	uint64_t calls[METRICS_METHODS][METRICS_CODES];
	uint64_t buckets[METRICS_METHODS][METRICS_BUCKETS];
	uint64_t duration_ns[METRICS_METHODS];
	uint64_t started, abandoned;
};

static void
sum(struct metrics *m, struct sums *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < metrics_nslots_taken(m); i++)
		for (int j = 0; j < metrics_nthreads(m); j++) {
			struct metrics_thread *t = metrics_thread(m, i, j);

			for (int k = 0; k < METRICS_METHODS; k++) {
				for (int c = 0; c < METRICS_CODES; c++)
					s->calls[k][c] +=
					    metrics_get(&t->calls[k][c]);
				for (int b = 0; b < METRICS_BUCKETS; b++)
					s->buckets[k][b] +=
					    metrics_get(&t->buckets[k][b]);
				s->duration_ns[k] +=
				    metrics_get(&t->duration_ns[k]);
			}
			s->started += metrics_get(&t->started);
			s->abandoned += metrics_get(&t->abandoned);
		}
}

static void
header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
calls(FILE *f, const struct sums *s)
{
	/* Calls a dead worker started were never finished, nor will be. */
	uint64_t ended = s->abandoned;

	header(f, "quoterd_calls_total", "counter",
	    "Calls finished, by method and gRPC status code.");
	for (int k = 0; k < METRICS_METHODS; k++)
		for (int c = 0; c < METRICS_CODES; c++) {
			ended += s->calls[k][c];
			/* Every method has its OK series from the start, so
			 * that rates have a baseline; others once seen. */
			if (s->calls[k][c] == 0 && c != 0)
				continue;
			fprintf(f,
			    "quoterd_calls_total{method=\"%s\",code=\"%s\"} "
			    "%llu\n",
			    metrics_method_name((enum metrics_method)k),
			    metrics_code_name(c),
			    (unsigned long long)s->calls[k][c]);
		}
	header(f, "quoterd_calls_in_flight", "gauge",
	    "Calls being handled now.");
	fprintf(f, "quoterd_calls_in_flight %llu\n",
	    (unsigned long long)(s->started > ended ? s->started - ended : 0));
}

static void
durations(FILE *f, const struct sums *s)
{
	header(f, "quoterd_call_duration_seconds", "histogram",
	    "Time from a call's arrival to its status, by method.");
	for (int k = 0; k < METRICS_METHODS; k++) {
		const char *method =
		    metrics_method_name((enum metrics_method)k);
		uint64_t n = 0;

		for (int b = 0; b < METRICS_BUCKETS; b++) {
			n += s->buckets[k][b];
			fprintf(f,
			    "quoterd_call_duration_seconds_bucket{method="
			    "\"%s\",le=\"%s\"} %llu\n",
			    method, metrics_bucket_le(b),
			    (unsigned long long)n);
		}
		fprintf(f,
		    "quoterd_call_duration_seconds_sum{method=\"%s\"} "
		    "%.9f\n",
		    method, (double)s->duration_ns[k] / 1e9);
		fprintf(f,
		    "quoterd_call_duration_seconds_count{method=\"%s\"} "
		    "%llu\n",
		    method, (unsigned long long)n);
	}
}

static void
gauge(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	header(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void
instance(FILE *f, struct metrics_master *mm)
{
	gauge(f, "quoterd_workers", "gauge", "Worker processes running.",
	    metrics_get(&mm->workers));
	gauge(f, "quoterd_worker_restarts_total", "counter",
	    "Workers restarted after they died.",
	    metrics_get(&mm->worker_restarts));
	gauge(f, "quoterd_database_generation", "gauge",
	    "Swaps of the database since the start (0: the first file).",
	    metrics_get(&mm->generation));
	gauge(f, "quoterd_database_quotes", "gauge",
	    "Quotes in the database served.", metrics_get(&mm->quotes));
	gauge(f, "quoterd_database_authors", "gauge",
	    "Authors in the database served.", metrics_get(&mm->authors));
	header(f, "quoterd_database_swaps_total", "counter",
	    "New database files checked, by result.");
	fprintf(f, "quoterd_database_swaps_total{result=\"ok\"} %llu\n",
	    (unsigned long long)metrics_get(&mm->swaps_ok));
	fprintf(f, "quoterd_database_swaps_total{result=\"refused\"} %llu\n",
	    (unsigned long long)metrics_get(&mm->swaps_refused));
	gauge(f, "quoterd_database_loaded_timestamp_seconds", "gauge",
	    "When the database served was checked and taken, Unix time.",
	    metrics_get(&mm->loaded_at));
	header(f, "quoterd_build_info", "gauge",
	    "The quoterd and gRPC core versions, as labels.");
	fprintf(f, "quoterd_build_info{version=\"%s\",grpc_version=\"%s\"} 1\n",
	    QUOTERD_VERSION, grpc_version_string());
}

/* The process_* metrics of pid, from /proc. */
static void
process(FILE *f, pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long btime = 0;
	struct rlimit rl;
	struct dirent *e;
	FILE *in;
	DIR *d;
	int fds = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((in = fopen(path, "re")) == NULL)
		return;
	p = fgets(buf, sizeof(buf), in);
	fclose(in);
	/* The command name may hold anything: fields follow the last ')'. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2,
		"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d "
		"%*d %*d %*d %*d %*d %llu %llu %lld",
		&utime, &stime, &start, &vsize, &rss) != 5)
		return;
	if ((in = fopen("/proc/stat", "re")) != NULL) {
		while (fgets(buf, sizeof(buf), in) != NULL)
			if (sscanf(buf, "btime %llu", &btime) == 1)
				break;
		fclose(in);
	}
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL)
			fds += e->d_name[0] != '.';
		closedir(d);
	}
	header(f, "process_cpu_seconds_total", "counter",
	    "CPU time of the master process, user and system, in seconds.");
	fprintf(f, "process_cpu_seconds_total %.2f\n",
	    (double)(utime + stime) / (double)ticks);
	header(f, "process_start_time_seconds", "gauge",
	    "Start time of the master process since the epoch, in seconds.");
	fprintf(f, "process_start_time_seconds %.2f\n",
	    (double)btime + (double)start / (double)ticks);
	gauge(f, "process_resident_memory_bytes", "gauge",
	    "Resident memory of the master process, in bytes.",
	    (uint64_t)(rss > 0 ? rss : 0) * (uint64_t)page);
	gauge(f, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory of the master process, in bytes.", vsize);
	gauge(f, "process_open_fds", "gauge",
	    "Open file descriptors of the master process.", (uint64_t)fds);
	/* The master's limit is this process's: it forked us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		gauge(f, "process_max_fds", "gauge",
		    "Limit of open file descriptors of the master process.",
		    (uint64_t)rl.rlim_cur);
}

char *
exposition_render(struct metrics *m, pid_t master, size_t *len)
{
	struct sums *s;
	char *text = NULL;
	FILE *f;

	if ((s = malloc(sizeof(*s))) == NULL)
		return NULL;
	sum(m, s);
	if ((f = open_memstream(&text, len)) == NULL) {
		free(s);
		return NULL;
	}
	calls(f, s);
	durations(f, s);
	instance(f, metrics_master(m));
	process(f, master);
	free(s);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
