/* report.h: the Markdown report of a run, rendered only from what its journal holds. */
#ifndef PGRUNBOOK_REPORT_H
#define PGRUNBOOK_REPORT_H

#include "journal.h"

/* Renders st as Markdown. Caller frees. */
char *report_markdown(const struct run_state *st);

#endif
