/* testcluster.c: starts and stops the test suite's throwaway cluster (core/cluster.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster.h"

static int
fail(struct rb_error *err)
{
	char *s = rb_error_format(err);
	fprintf(stderr, "testcluster: %s\n", s);
	free(s);
	rb_error_clear(err);
	return 1;
}

/*
 * testcluster start DIR   creates and starts a cluster in DIR, prints shell assignments
 * testcluster stop DIR    stops it and removes DIR
 */
int
main(int argc, char **argv)
{
	struct rb_error err = {0};
	if (argc != 3 || (strcmp(argv[1], "start") != 0 && strcmp(argv[1], "stop") != 0)) {
		fprintf(stderr, "usage: testcluster start|stop DIR\n");
		return 1;
	}
	if (strcmp(argv[1], "start") == 0) {
		struct cluster *c = cluster_create(argv[2], &err);
		if (c == NULL)
			return fail(&err);
		printf("PGHOST='%s'\nPGPORT=%d\nPGUSER='%s'\nPG_BINDIR='%s'\nT_CLUSTER_USER='%s'\n",
		       c->sockdir, c->port, c->superuser, c->bindir, c->run_user ? c->run_user : "");
		cluster_free(c);
		return 0;
	}
	struct cluster *c = cluster_load(argv[2], &err);
	if (c == NULL)
		return fail(&err);
	bool ok = cluster_destroy(c, &err);
	cluster_free(c);
	return ok ? 0 : fail(&err);
}
