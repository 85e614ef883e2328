/* confirm.c: typed confirmation phrases: computing, exact comparison, journaled misses. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "confirm.h"
#include "util.h"
#include "events.h"

char *
confirm_phrase(const char *verb, const char *database)
{
	return xasprintf("%s %s", verb, database);
}

/* Copies s without whitespace, optionally lowercased (ASCII only: a hint, never the comparison). */
static char *
squeeze(const char *s, bool fold)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isspace(*p))
			continue;
		out[n++] = (char)(fold ? tolower(*p) : *p);
	}
	out[n] = '\0';
	return out;
}

enum confirm_miss
confirm_compare(const char *expected, const char *typed)
{
	if (typed == NULL || *typed == '\0')
		return CONFIRM_MISS_EMPTY;
	if (strcmp(expected, typed) == 0)
		return CONFIRM_MATCH;

	enum confirm_miss why = CONFIRM_MISS_OTHER;
	char *e = squeeze(expected, false), *t = squeeze(typed, false);
	if (strcmp(e, t) == 0)
		why = CONFIRM_MISS_WHITESPACE;
	free(e);
	free(t);
	if (why == CONFIRM_MISS_OTHER && strlen(expected) == strlen(typed) && strcasecmp(expected, typed) == 0)
		why = CONFIRM_MISS_CASE;
	if (why == CONFIRM_MISS_OTHER) {
		e = squeeze(expected, true);
		t = squeeze(typed, true);
		if (strcmp(e, t) == 0)
			why = CONFIRM_MISS_CASE;
		free(e);
		free(t);
	}
	return why;
}

const char *
confirm_miss_text(enum confirm_miss m)
{
	switch (m) {
	case CONFIRM_MATCH:
		return "the phrase matches";
	case CONFIRM_MISS_EMPTY:
		return "no phrase was given";
	case CONFIRM_MISS_WHITESPACE:
		return "the phrase has extra or missing spaces";
	case CONFIRM_MISS_CASE:
		return "the phrase differs in letter case";
	case CONFIRM_MISS_OTHER:
		break;
	}
	return "the phrase is different";
}

bool
confirm_check(struct rb_ctx *ctx, const char *stage, const char *expected, const char *typed,
              struct rb_error *err)
{
	enum confirm_miss m = confirm_compare(expected, typed);
	struct events *bus = ctx ? ctx->bus : NULL;
	if (m == CONFIRM_MATCH) {
		json_t *d = json_pack("{s:s, s:s}", "phrase", expected, "who", util_user_name());
		events_emitf(bus, EV_CONFIRM_OK, stage, d, "confirmed \"%s\"", expected);
		json_decref(d);
		return true;
	}
	json_t *d = json_pack("{s:s, s:s, s:s, s:I}", "phrase", expected, "who", util_user_name(), "reason", confirm_miss_text(m),
	                      "typed_length", (json_int_t)(typed ? strlen(typed) : 0));
	events_emitf(bus, EV_CONFIRM_MISS, stage, d, "confirmation refused: %s", confirm_miss_text(m));
	json_decref(d);
	rb_error_setc(err, RB_EXIT_STEP, "confirmation refused: %s; nothing was run", confirm_miss_text(m));
	rb_error_hint(err, "Type exactly \"%s\" (headless: --confirm \"%s\").", expected, expected);
	return false;
}

bool
confirm_backup_precondition(struct rb_ctx *ctx, const char *stage, const char *verb, const char *database,
                            bool backup_ok, const char *waive_backup, const char *who, struct rb_error *err)
{
	if (backup_ok)
		return true;
	char *phrase = confirm_phrase("waive-backup", database);
	bool ok;
	if (waive_backup == NULL) {
		ok = rb_error_setc(err, RB_EXIT_STEP, "no verified backup of %s in this run; nothing was run", database);
		rb_error_detail(err, "%c%s needs a verified backup of its target taken in the same run, or a typed "
		                "waiver (DESIGN.md \"Preconditions\").", toupper((unsigned char)stage[0]), stage + 1);
		rb_error_hint(err, "To %s without a backup, type the waiver: --waive-backup \"%s\" (it is journaled).",
		              verb, phrase);
	} else {
		ok = confirm_check(ctx, "backup", phrase, waive_backup, err);
		if (ok) {
			json_t *data = json_pack("{s:s, s:s?, s:s, s:s}", "database", database, "who", who, "phrase", phrase,
			                         "before", stage);
			events_emitf(ctx->bus, EV_STAGE_WAIVED, "backup", data, "backup waived by %s before %s: no verified "
			             "backup of %s", who ? who : "the operator", stage, database);
			json_decref(data);
		} else {
			rb_error_hint(err, "Type exactly --waive-backup \"%s\".", phrase);
		}
	}
	free(phrase);
	return ok;
}
