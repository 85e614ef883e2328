/* error.h: the error record every core operation fills (message, detail, hint, SQLSTATE). */
#ifndef PGRUNBOOK_ERROR_H
#define PGRUNBOOK_ERROR_H

#include <stdbool.h>
#include "util.h"

/*
 * Messages follow PostgreSQL style: lowercase, no trailing period. detail and hint are full
 * sentences. All strings are owned by the record; rb_error_clear() frees them.
 * `code` is an exit-code hint set by the failing operation (see enum rb_exit).
 */
struct rb_error {
	char *message;
	char *detail;
	char *hint;
	char  sqlstate[6];
	int   code;
};

/* Exit codes shared by every front end (documented in pgrunbook(1)). */
enum rb_exit {
	RB_EXIT_OK = 0,
	RB_EXIT_USAGE = 1,     /* usage or internal error */
	RB_EXIT_CONNECT = 2,   /* connection failure */
	RB_EXIT_STEP = 3,      /* a step failed, was refused or aborted */
	RB_EXIT_PLAN = 4,      /* invalid plan */
};

/* Sets the message (replacing any earlier one), code RB_EXIT_USAGE; returns false for `return rb_error_set(...)`. */
bool rb_error_set(struct rb_error *err, const char *fmt, ...) RB_PRINTF(2, 3);
/* Same, with an explicit exit code. */
bool rb_error_setc(struct rb_error *err, int code, const char *fmt, ...) RB_PRINTF(3, 4);
void rb_error_detail(struct rb_error *err, const char *fmt, ...) RB_PRINTF(2, 3);
void rb_error_hint(struct rb_error *err, const char *fmt, ...) RB_PRINTF(2, 3);
/* Prefixes the message with what was being done: "<what>: <message>" (detail, hint, SQLSTATE kept). */
void rb_error_prefix(struct rb_error *err, const char *fmt, ...) RB_PRINTF(2, 3);
/* Frees the strings and zeroes the record; accepts a zeroed record. */
void rb_error_clear(struct rb_error *err);
/* Formats "message\nDETAIL: ...\nHINT: ..." (caller frees). */
char *rb_error_format(const struct rb_error *err);

#endif
