/* error.c: filling and formatting struct rb_error. */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static bool
set_message(struct rb_error *err, int code, const char *fmt, va_list ap)
{
	if (err == NULL)
		return false;
	rb_error_clear(err);
	err->message = xvasprintf(fmt, ap);
	err->code = code;
	return false;
}

bool
rb_error_set(struct rb_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_message(err, RB_EXIT_USAGE, fmt, ap);
	va_end(ap);
	return false;
}

bool
rb_error_setc(struct rb_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_message(err, code, fmt, ap);
	va_end(ap);
	return false;
}

void
rb_error_detail(struct rb_error *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	free(err->detail);
	err->detail = xvasprintf(fmt, ap);
	va_end(ap);
}

void
rb_error_hint(struct rb_error *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	free(err->hint);
	err->hint = xvasprintf(fmt, ap);
	va_end(ap);
}

void
rb_error_clear(struct rb_error *err)
{
	if (err == NULL)
		return;
	free(err->message);
	free(err->detail);
	free(err->hint);
	memset(err, 0, sizeof *err);
}

char *
rb_error_format(const struct rb_error *err)
{
	struct strbuf sb = {0};
	strbuf_adds(&sb, err->message ? err->message : "unknown error");
	if (err->detail)
		strbuf_addf(&sb, "\nDETAIL:  %s", err->detail);
	if (err->hint)
		strbuf_addf(&sb, "\nHINT:  %s", err->hint);
	return strbuf_detach(&sb);
}

void
rb_error_prefix(struct rb_error *err, const char *fmt, ...)
{
	if (err == NULL || err->message == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = xasprintf("%s: %s", what, err->message);
	free(what);
	free(err->message);
	err->message = msg;
}
