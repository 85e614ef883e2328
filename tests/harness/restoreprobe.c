/* restoreprobe.c: test fixture: calls backup_restore() on the real server and prints its events and outcome. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup.h"
#include "core/error.h"
#include "core/events.h"
#include "core/plan.h"

static void
print_event(const struct rb_event *ev, void *ud)
{
	(void)ud;
	if (ev->type != EV_STEP)
		return;
	char *data = ev->data ? json_dumps(ev->data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	printf("%s %s %s\n", ev->stage ? ev->stage : "-", data ? data : "{}", ev->message ? ev->message : "");
	free(data);
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fputs("Usage: restoreprobe PLAN ARCHIVE NEWDB\n"
		      "Restores ARCHIVE into the new database NEWDB on the plan's target with backup_restore()\n"
		      "(stage \"probe\"), printing each step event and then \"ok\" and the restored counts, or\n"
		      "the error. Exit 0 restored, else the error's exit code.\n", stderr);
		return 1;
	}
	struct plan_diags diags = {0};
	struct rb_error perr = {0};
	struct plan *p = plan_load(argv[1], &diags, &perr);
	plan_diags_free(&diags);
	if (p == NULL) {
		fprintf(stderr, "restoreprobe: cannot load %s: %s\n", argv[1], perr.message ? perr.message : "?");
		rb_error_clear(&perr);
		return 4;
	}
	struct events *bus = events_new();
	events_subscribe(bus, print_event, NULL);
	struct rb_ctx ctx = { .bus = bus };
	struct backup_restore_opts o = { .dbname = argv[3], .stage = "probe" };
	json_t *counts = NULL;
	struct rb_error err = {0};
	bool ok = backup_restore(p, argv[2], &o, &ctx, &counts, &err);
	if (ok) {
		char *c = json_dumps(counts, JSON_COMPACT | JSON_SORT_KEYS);
		printf("ok %s\n", c);
		free(c);
	} else {
		fprintf(stderr, "error: %s\n", err.message ? err.message : "?");
		if (err.detail)
			fprintf(stderr, "detail: %s\n", err.detail);
	}
	int code = ok ? 0 : err.code ? err.code : 3;
	json_decref(counts);
	rb_error_clear(&err);
	events_free(bus);
	plan_free(p);
	return code;
}
