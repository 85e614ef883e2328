/* plan.h: the runbook plan (YAML, man 5 pgrunbook-plan): loading, validation, hashing. */
#ifndef PGRUNBOOK_PLAN_H
#define PGRUNBOOK_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "util.h"

/* A position in the plan file, 1-based (0 when not from the file). */
struct plan_mark {
	int line;
	int column;
};

enum plan_env_kind {
	PLAN_ENV_SERVICE,   /* libpq service name (pg_service.conf) */
	PLAN_ENV_DSN_ENV,   /* name of an environment variable holding a URI or conninfo */
	PLAN_ENV_CONNINFO,  /* a conninfo string or URI without password */
};

struct plan_env {
	char               *name;
	enum plan_env_kind  kind;
	char               *value;      /* service name, variable name, or conninfo */
	struct plan_mark    mark;
};

enum plan_backup_format { PLAN_BACKUP_CUSTOM, PLAN_BACKUP_DIRECTORY };

struct plan_backup {
	bool                    present;
	char                   *dir;        /* as written; relative paths are relative to the plan file */
	enum plan_backup_format format;
	int                     jobs;       /* >= 1; > 1 only with the directory format */
	int64_t                 max_age_ms; /* default 24h */
};

struct plan_staging {
	bool  present;
	char *environment;
};

enum plan_terminate { PLAN_TERMINATE_ASK, PLAN_TERMINATE_NEVER };

struct plan_maintenance {
	bool                present;
	bool                block_connections;  /* default true */
	bool                read_only;          /* default true */
	enum plan_terminate terminate_sessions; /* default ask */
	char               *on_sql, *off_sql;          /* app maintenance flag hooks, may be NULL */
	char               *on_command, *off_command;  /* shell hooks, may be NULL */
	char               *pgbouncer_dsn_env;         /* admin console URI variable, may be NULL */
};

enum plan_migrations_format { PLAN_MIGRATIONS_PRISMA, PLAN_MIGRATIONS_SQL };

struct plan_migrations {
	bool                        present;
	char                       *dir;
	enum plan_migrations_format format;
	char                       *schema;          /* default "public" */
	int64_t                     lock_timeout_ms;  /* default 2s */
	int64_t                     statement_timeout_ms; /* default 15min */
	int                         retries;          /* lock-timeout retries, default 5 */
};

enum plan_sync_mode { PLAN_MODE_SKIP, PLAN_MODE_APPEND, PLAN_MODE_UPSERT };
enum plan_on_conflict { PLAN_CONFLICT_PROD_WINS, PLAN_CONFLICT_LOCAL_WINS, PLAN_CONFLICT_ERROR };

struct plan_sync_table {
	char                 *name;       /* as written: "Table" or "schema.Table" */
	enum plan_sync_mode   mode;
	bool                  mode_explicit; /* the entry sets mode itself (not from sync.defaults) */
	enum plan_on_conflict on_conflict;
	struct strlist        key;        /* empty means: the primary key, found at run time */
	struct strlist        columns;    /* empty means: all columns */
	bool                  delete_rows;/* "delete: true" */
	bool                  protected_; /* matched a protected glob */
	struct plan_mark      mark;
};

struct plan_sync {
	bool                    present;
	enum plan_sync_mode     default_mode;        /* default skip */
	enum plan_on_conflict   default_on_conflict; /* default prod_wins */
	struct strlist          protected_globs;
	struct plan_sync_table *tables;
	size_t                  ntables;
};

enum plan_row_counts { PLAN_ROWCOUNT_SHRINK_FORBIDDEN, PLAN_ROWCOUNT_TOLERANCE, PLAN_ROWCOUNT_OFF };

struct plan_check {
	char            *name;
	char            *sql;
	char            *expect;   /* expected single value, compared as text */
	struct plan_mark mark;
};

struct plan_verify {
	bool                 present;
	enum plan_row_counts row_counts;        /* default shrink_forbidden */
	double               tolerance_percent; /* with PLAN_ROWCOUNT_TOLERANCE */
	bool                 orphans;           /* "auto" = true, "off" = false; default true */
	struct plan_check   *checks;
	size_t               nchecks;
};

enum plan_notify_format { PLAN_NOTIFY_SLACK, PLAN_NOTIFY_GENERIC, PLAN_NOTIFY_PAGERDUTY };

struct plan_notify {
	char                   *url_env;        /* for pagerduty: variable with the routing key */
	enum plan_notify_format format;
	struct strlist          events;         /* empty: NOTIFY_DEFAULT_EVENTS (core/notify.h) */
	char                   *secret_env;     /* may be NULL; generic only */
	char                   *events_url_env; /* may be NULL; pagerduty only: the Events API URL */
	int64_t                 timeout_ms;     /* per attempt, total; default 10 s */
	int64_t                 connect_timeout_ms; /* default 5 s */
	int64_t                 backoff_ms;     /* the first retry's delay; default 1 s */
	int                     max_attempts;   /* default 10 */
	struct plan_mark        mark;
};

/* Stage identifiers, in run order. */
#define PLAN_STAGES(_) \
	_(PREFLIGHT,   "preflight") \
	_(BACKUP,      "backup") \
	_(STAGING,     "staging") \
	_(MAINT_ON,    "maintenance") \
	_(MIGRATE,     "migrate") \
	_(SYNC,        "sync") \
	_(VERIFY,      "verify") \
	_(MAINT_OFF,   "maintenance_off") \
	_(REPORT,      "report")
#define PLAN_STAGE_ENUM(id, name) PLAN_STAGE_##id,
enum plan_stage { PLAN_STAGES(PLAN_STAGE_ENUM) PLAN_STAGE_COUNT };
#undef PLAN_STAGE_ENUM

struct plan {
	char                   *path;        /* as given to plan_load */
	char                   *base_dir;    /* directory of the plan file, for relative paths */
	char                   *name;
	char                   *description; /* may be NULL */
	struct plan_env        *envs;
	size_t                  nenvs;
	char                   *source;      /* may be NULL when nothing reads from a source */
	char                   *target;
	struct plan_backup      backup;
	struct plan_staging     staging;
	struct plan_maintenance maintenance;
	struct plan_migrations  migrations;
	struct plan_sync        sync;
	struct plan_verify      verify;
	struct plan_notify     *notify;
	size_t                  nnotify;
	struct strlist          checklist_before;
	struct strlist          checklist_after;
	int64_t                 budget_ms[PLAN_STAGE_COUNT]; /* 0 = no budget */
	int64_t                 budget_total_ms;
	char                    hash[65];    /* SHA-256 hex of the normalised plan */
};

/*
 * One validation problem. Messages read "FILE:LINE:COLUMN: what was found; what was expected".
 */
struct plan_diag {
	struct plan_mark mark;
	char            *message;  /* full line including the file:line:column prefix */
};

struct plan_diags {
	struct plan_diag *items;
	size_t            len;      /* at most 50: the first problems by position */
};
/* Frees the messages and the array; leaves d empty. Accepts an empty record. */
void plan_diags_free(struct plan_diags *d);

/*
 * Loads and validates the plan at path. On success returns a plan (caller frees with plan_free()).
 * On failure returns NULL, fills diags with every problem found (sorted by position) and sets err
 * to a one-line summary with code RB_EXIT_PLAN. Never connects to a database.
 */
struct plan *plan_load(const char *path, struct plan_diags *diags, struct rb_error *err);
/* Frees the plan and everything it owns; accepts NULL. */
void plan_free(struct plan *p);

/* The environment with that name, or NULL. Borrowed from the plan. */
const struct plan_env *plan_env_find(const struct plan *p, const char *name);
/* Whether the plan enables the stage (preflight and report always are). */
bool plan_stage_enabled(const struct plan *p, enum plan_stage s);
const char *plan_stage_name(enum plan_stage s);
/*
 * Whether a table name matches one of the protected globs (plan_glob_matches() with the
 * migrations schema, default "public").
 */
bool plan_table_protected(const struct plan *p, const char *table);
/* The normalised plan as JSON text (sorted keys, defaults filled); its SHA-256 is plan->hash. Caller frees. */
char *plan_normalised_json(const struct plan *p);
/* Resolves a path from the plan relative to the plan's directory. Caller frees. */
char *plan_path(const struct plan *p, const char *rel);
const char *plan_mode_name(enum plan_sync_mode m);
const char *plan_on_conflict_name(enum plan_on_conflict c);
/* The plan-file spellings of the other enums ("service", "slack", "custom", "prisma"). */
const char *plan_env_kind_name(enum plan_env_kind k);
const char *plan_notify_format_name(enum plan_notify_format f);
const char *plan_backup_format_name(enum plan_backup_format f);
const char *plan_migrations_format_name(enum plan_migrations_format f);
/*
 * Whether one protected glob matches a table (fnmatch): against the name as written, and also
 * against the bare table of "schema.table", or against "<schema>.table" for an unqualified name.
 */
bool plan_glob_matches(const char *glob, const char *table, const char *schema);

/*
 * Parses "30s", "15min", "2h", "1h30min", "500ms", "2d" into milliseconds: one or more
 * <digits><unit> groups, units ms, s, min, h, d from largest to smallest, each at most once.
 * A bare number, "m", spaces and more than 100 years are rejected. "0s" parses (the plan loader
 * itself wants durations above zero).
 */
bool plan_parse_duration(const char *s, int64_t *ms_out);
/* Formats milliseconds as the shortest duration text ("1h30min", "2s", "250ms") into out. */
void plan_format_duration(int64_t ms, char *out, size_t outlen);

#endif
