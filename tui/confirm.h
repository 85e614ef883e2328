/* confirm.h: the typed-confirmation prompt for dangerous steps (the phrase comes from core). */
#ifndef PGRUNBOOK_TUI_CONFIRM_H
#define PGRUNBOOK_TUI_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>

#include "tui/app.h"

#define TUI_CONFIRM_MAX_MISSES 3
#define TUI_CONFIRM_INPUT_MAX  256

enum tui_confirm_result {
	TUI_CONFIRM_PENDING,    /* the prompt stays open */
	TUI_CONFIRM_OK,         /* the exact phrase was typed */
	TUI_CONFIRM_CANCELLED,  /* Esc or Ctrl-C: "no" */
	TUI_CONFIRM_REFUSED,    /* too many wrong phrases */
};

/*
 * True when typed (typed_len bytes) is byte for byte the phrase: no trimming, no case folding,
 * no Unicode normalisation.
 */
bool tui_confirm_matches(const char *phrase, const char *typed, size_t typed_len);

/* The prompt's logic, without a terminal (the screen below wraps it; tests drive it directly). */
struct tui_confirm_state {
	const char *phrase;       /* borrowed */
	int         max_misses;
	int         misses;
	char        input[TUI_CONFIRM_INPUT_MAX];
	size_t      len;
	bool        overflow;     /* more was typed than input holds: the attempt is a miss */
	void      (*miss)(void *ud, const char *typed, int misses);
	void       *ud;
};

/* Starts with empty input; max_misses <= 0 means TUI_CONFIRM_MAX_MISSES. miss may be NULL. */
void tui_confirm_state_init(struct tui_confirm_state *st, const char *phrase, int max_misses,
                            void (*miss)(void *ud, const char *typed, int misses), void *ud);
/*
 * Feeds one raw key (commands.h): a printable character is appended (UTF-8), Backspace removes
 * the last character, Ctrl-U clears, Esc and Ctrl-C cancel, Enter submits. Enter on empty input
 * does nothing (it is not an attempt). A wrong phrase counts a miss, calls miss(ud, typed, misses)
 * before anything else happens (so the caller can journal it), clears the input and, at the
 * limit, gives TUI_CONFIRM_REFUSED. There is no default answer. Other keys are ignored.
 */
enum tui_confirm_result tui_confirm_state_key(struct tui_confirm_state *st, int raw);

/* What the prompt shows and whom it tells. Every string is copied by tui_confirm(). */
struct tui_confirm_opts {
	const char        *title;        /* "Apply migrations" */
	const char        *action;       /* what will happen: "apply 2 migrations, 1 dangerous" */
	const char        *environment;  /* "prod" */
	bool               prod;         /* draws the environment in the prod role */
	const char        *target;       /* "db1.example.com:5432/shop_prod" */
	const char *const *details;      /* more lines (rows touched ...), NULL-terminated; may be NULL */
	const char        *phrase;       /* the exact text to type, computed by core */
	int                max_misses;   /* 0: TUI_CONFIRM_MAX_MISSES */
	void             (*miss)(void *ud, const char *typed, int misses);
	/* typed: what the person typed (on OK; NULL otherwise), to hand to core, which compares again */
	void             (*done)(void *ud, enum tui_confirm_result result, const char *typed);
	void              *ud;
};

/*
 * Pushes the prompt (an overlay). It closes on OK, CANCELLED or REFUSED and then calls
 * done(ud, result, typed) (after it left the stack, so done may push another screen). The caller
 * passes the typed text to core, which compares again: the prompt is not the safety, core is.
 * Returns the screen, NULL when opts lack a phrase.
 */
struct screen *tui_confirm(struct tui_app *app, const struct tui_confirm_opts *opts);

#endif
