/* mkrun.c: test fixture: writes a run journal through the real event bus and journal code. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/plan.h"

static void
usage(void)
{
	fputs("Usage: mkrun [--runs-dir DIR] [--hold] --new NAME HASH [--path FILE] [EVENT...]\n"
	      "       mkrun [--runs-dir DIR] [--hold] --open RUN HASH [EVENT...]\n"
	      "EVENT is four arguments: TYPE STAGE MESSAGE DATA, \"-\" for none; TYPE is a journal\n"
	      "type name, or log:info, log:warn, log:error. Events go through an event bus the\n"
	      "journal is attached to (progress events are therefore not journaled). Prints the\n"
	      "run id. --hold keeps the run open until standard input is closed.\n", stderr);
}

static const char *
opt(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

static int
fail(struct rb_error *err)
{
	char *s = rb_error_format(err);
	fprintf(stderr, "mkrun: %s\n", s);
	free(s);
	rb_error_clear(err);
	return 3;
}

int
main(int argc, char **argv)
{
	const char *runs_dir = NULL, *name = NULL, *hash = NULL, *run = NULL, *path = NULL;
	bool hold = false;
	int i = 1;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--runs-dir") == 0 && i + 1 < argc) {
			runs_dir = argv[++i];
		} else if (strcmp(argv[i], "--hold") == 0) {
			hold = true;
		} else if (strcmp(argv[i], "--new") == 0 && i + 2 < argc) {
			name = argv[++i];
			hash = argv[++i];
		} else if (strcmp(argv[i], "--open") == 0 && i + 2 < argc) {
			run = argv[++i];
			hash = argv[++i];
		} else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else {
			break;
		}
	}
	if ((name == NULL) == (run == NULL) || (argc - i) % 4 != 0 || strlen(hash) > 64) {
		usage();
		return 1;
	}

	struct plan plan;
	memset(&plan, 0, sizeof plan);
	plan.name = (char *)(name ? name : "reopened");
	plan.path = (char *)path;
	snprintf(plan.hash, sizeof plan.hash, "%s", hash);

	struct rb_error err = {0};
	struct journal *j = name ? journal_create(runs_dir, &plan, &err)
	                         : journal_open(runs_dir, run, &plan, &err);
	if (j == NULL)
		return fail(&err);

	struct events *bus = events_new();
	journal_attach(j, bus);
	int rc = 0;
	for (; i + 3 < argc; i += 4) {
		enum rb_event_type type;
		enum rb_log_level level = LOG_LEVEL_INFO;
		const char *tname = argv[i];
		if (strncmp(tname, "log:", 4) == 0) {
			if (!events_level_from_name(tname + 4, &level)) {
				fprintf(stderr, "mkrun: unknown level \"%s\"\n", tname + 4);
				rc = 1;
				break;
			}
			type = EV_LOG;
		} else if (!events_type_from_name(tname, &type)) {
			fprintf(stderr, "mkrun: unknown event type \"%s\"\n", tname);
			rc = 1;
			break;
		}
		json_t *data = NULL;
		if (opt(argv[i + 3]) != NULL) {
			json_error_t jerr;
			data = json_loads(argv[i + 3], 0, &jerr);
			if (data == NULL) {
				fprintf(stderr, "mkrun: bad JSON \"%s\": %s\n", argv[i + 3], jerr.text);
				rc = 1;
				break;
			}
		}
		struct rb_event ev = {
			.type = type,
			.stage = opt(argv[i + 1]),
			.message = opt(argv[i + 2]),
			.level = level,
			.data = data,
		};
		events_emit(bus, &ev);
		json_decref(data);
	}
	events_free(bus);
	if (rc == 0 && journal_failed(j, &err))
		rc = fail(&err);
	if (rc == 0) {
		printf("%s\n", journal_run_id(j));
		fflush(stdout);
		if (hold) {
			char buf[256];
			while (fread(buf, 1, sizeof buf, stdin) > 0)
				;
		}
	}
	journal_close(j);
	return rc;
}
