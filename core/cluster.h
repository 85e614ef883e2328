/* cluster.h: throwaway local PostgreSQL clusters (initdb + pg_ctl) for the demo and the tests. */
#ifndef PGRUNBOOK_CLUSTER_H
#define PGRUNBOOK_CLUSTER_H

#include <stdbool.h>

#include "error.h"

/*
 * A cluster lives in one base directory: data/, sock/ (the private Unix socket directory),
 * server.log and cluster.json (what cluster_load() reads back). When the caller is root the
 * server runs as the unprivileged user `nobody` (or $PGRUNBOOK_CLUSTER_USER).
 */
struct cluster {
	char *base;
	char *datadir;
	char *sockdir;
	char *logfile;
	char *bindir;
	char *run_user;   /* user the server runs as, NULL when it is the caller */
	char *superuser;  /* database superuser name */
	int   port;
};

/* Finds the PostgreSQL server binaries: $PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/N/bin (newest). Caller frees. */
char *cluster_find_bindir(struct rb_error *err);

/*
 * Creates a cluster in base (created, must not exist yet; NULL: a new directory under $TMPDIR),
 * runs initdb (trust on the socket, scram-sha-256 over TCP on 127.0.0.1), picks a free port and
 * starts it. Caller frees with cluster_free(); the server keeps running until cluster_stop().
 */
struct cluster *cluster_create(const char *base, struct rb_error *err);
/* Reads a cluster back from its base directory. */
struct cluster *cluster_load(const char *base, struct rb_error *err);
bool cluster_start(struct cluster *c, struct rb_error *err);
/* Whether the server's postmaster process is alive (postmaster.pid names a live process). */
bool cluster_running(const struct cluster *c);
/* Stops the server (fast shutdown, then immediate); true when it is not running afterwards. */
bool cluster_stop(struct cluster *c, struct rb_error *err);
/* Whether the server's postmaster process is alive (postmaster.pid names a live process). */
bool cluster_running(const struct cluster *c);
/* Stops the server and removes the base directory. */
bool cluster_destroy(struct cluster *c, struct rb_error *err);
/* "host=SOCKDIR port=PORT user=SUPERUSER dbname=DB". Caller frees. */
char *cluster_conninfo(const struct cluster *c, const char *dbname);
void cluster_free(struct cluster *c);

#endif
