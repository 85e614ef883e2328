/* confirm.h: typed confirmation phrases, computed and checked in core so no front end can skip them. */
#ifndef PGRUNBOOK_CONFIRM_H
#define PGRUNBOOK_CONFIRM_H

#include <stdbool.h>

#include "ctx.h"
#include "error.h"

/* The phrase a protected overwrite needs in addition to its own (seed 001). */
#define CONFIRM_OVERWRITE_PHRASE "I_UNDERSTAND_PROD_OVERWRITE"

/* Why a typed phrase was refused; reported and journaled instead of the typed text. */
enum confirm_miss {
	CONFIRM_MATCH = 0,
	CONFIRM_MISS_EMPTY,        /* nothing typed */
	CONFIRM_MISS_WHITESPACE,   /* right words, extra or missing spaces/tabs/newlines */
	CONFIRM_MISS_CASE,         /* right letters, other case */
	CONFIRM_MISS_OTHER,        /* a different phrase */
};

/* "<verb> <database>", e.g. "deploy shop_prod". Caller frees. */
char *confirm_phrase(const char *verb, const char *database);

/*
 * Compares typed with expected byte for byte: no trimming, no case folding, no normalisation.
 * Returns CONFIRM_MATCH or the reason for the miss.
 */
enum confirm_miss confirm_compare(const char *expected, const char *typed);

/* A one-line explanation of a miss ("the phrase has extra or missing spaces"). */
const char *confirm_miss_text(enum confirm_miss m);

/*
 * Checks a confirmation for a dangerous step of `stage`. On a match emits confirm_ok and returns
 * true. Otherwise emits confirm_miss (the expected phrase, the reason and the typed length, never
 * the typed text, which might be something pasted by mistake) and returns false with err set
 * (code RB_EXIT_STEP): what was expected and how to proceed. typed may be NULL (not given).
 */
bool confirm_check(struct rb_ctx *ctx, const char *stage, const char *expected, const char *typed,
                   struct rb_error *err);

/*
 * The backup precondition of a step that writes to database (DESIGN.md "Preconditions"): true when
 * backup_ok (the caller knows the run has a verified backup or a journaled waiver); otherwise
 * waive_backup must be the typed "waive-backup <database>", checked here (confirm_ok or
 * confirm_miss) and journaled as stage_waived of stage "backup" with who. stage ("migrate",
 * "sync") and verb ("deploy", "apply") word the messages. False with err set (RB_EXIT_STEP).
 */
bool confirm_backup_precondition(struct rb_ctx *ctx, const char *stage, const char *verb, const char *database,
                                 bool backup_ok, const char *waive_backup, const char *who,
                                 struct rb_error *err);

#endif
