/* demo.h: `pgrunbook demo`: a throwaway shop cluster (shop_dev, shop_staging, shop_prod) and its plan. */
#ifndef PGRUNBOOK_DEMO_H
#define PGRUNBOOK_DEMO_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"
#include "ctx.h"
#include "error.h"

/*
 * The files under plans/ that the demo needs (the plan, the Prisma folder, the data scripts),
 * embedded at build time by build-aux/embed.sh into core/demo_data.c. `path` is relative to
 * plans/ ("demo.yaml", "demo/prisma/migrations/<ts>_<name>/migration.sql", "demo/data/prod.sql");
 * `data` holds `len` bytes followed by a NUL that `len` does not count.
 */
struct demo_file {
	const char          *path;
	const unsigned char *data;
	size_t               len;
};
extern const struct demo_file demo_files[];
extern const size_t demo_nfiles;

/* The embedded file at that path (relative to plans/), or NULL. */
const struct demo_file *demo_file_find(const char *path);

#define DEMO_ROWS_DEFAULT 2000
#define DEMO_ROWS_MIN     20
#define DEMO_ROWS_MAX     10000000

/* The demo's databases, in the order their counts are reported. */
enum demo_db { DEMO_DB_DEV, DEMO_DB_STAGING, DEMO_DB_PROD, DEMO_DB_COUNT };
const char *demo_db_name(enum demo_db db);

/* The tables whose row counts demo_start() reports, in report order. */
#define DEMO_NTABLES 9
extern const char *const demo_counted_tables[DEMO_NTABLES];

/* A running demo, as demo_start() left it. */
struct demo {
	struct cluster *cluster;
	char           *dir;             /* the cluster's base directory (absolute) */
	char           *plan_path;       /* DIR/plan/demo.yaml */
	char           *migrations_dir;  /* DIR/plan/demo/prisma/migrations */
	char           *server_version;  /* "15.8" */
	int             rows;
	int             migrations_total;          /* in the Prisma folder */
	int             migrations_applied[DEMO_DB_COUNT];
	long long       counts[DEMO_DB_COUNT][DEMO_NTABLES]; /* -1: the table does not exist there */
};

/* What a directory holds, as far as the demo is concerned. */
enum demo_state {
	DEMO_STATE_ABSENT,   /* the directory does not exist (or is empty) */
	DEMO_STATE_RUNNING,  /* a demo cluster whose server answers */
	DEMO_STATE_STOPPED,  /* a demo cluster whose server does not answer */
	DEMO_STATE_FOREIGN,  /* something else: never touched */
};

/* `${TMPDIR:-/tmp}/pgrunbook-demo-<uid>`. Caller frees. */
char *demo_default_dir(void);

/* Looks at dir without changing anything. */
enum demo_state demo_probe(const char *dir);

/*
 * Creates a cluster in dir (which must not exist, or be an empty directory), loads shop_dev with
 * every migration, shop_prod with the first ones only, copies shop_prod to shop_staging, sizes
 * the big tables by rows (DEMO_ROWS_MIN..DEMO_ROWS_MAX) and writes DIR/plan/demo.yaml plus
 * DIR/plan/demo/prisma/ (the plan's environments name the cluster's socket, port and user).
 * Progress goes to ctx's bus as log lines of the stage "demo"; ctx may be NULL; a cancel
 * stops between steps. A demo already in dir is refused (code RB_EXIT_STEP, a hint says how to
 * stop it). Any failure after the cluster was created stops and removes it again; cluster
 * failures carry the server log's last lines in the detail. Caller frees with demo_free(); the
 * server keeps running until demo_stop().
 */
struct demo *demo_start(const char *dir, int rows, struct rb_ctx *ctx, struct rb_error *err);

/*
 * Stops the demo cluster in dir and removes dir. *found tells whether there was a demo
 * (running or stopped) to remove; no demo is not an error. A directory that holds something
 * else is refused and left alone (RB_EXIT_STEP).
 */
bool demo_stop(const char *dir, bool *found, struct rb_error *err);

/*
 * Writes the embedded plan and Prisma folder under plan_dir (created as needed): plan_dir/demo.yaml
 * and plan_dir/demo/prisma/... With a cluster, the plan's conninfo strings gain the cluster's
 * host, port and user and its header says where it came from; with NULL the files are written
 * exactly as in plans/. Existing files are replaced.
 */
bool demo_write_plan(const char *plan_dir, const struct cluster *c, struct rb_error *err);

void demo_free(struct demo *d);

#endif
