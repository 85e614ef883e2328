/* ctx.h: what every core operation receives: the event bus and the cancel flag. */
#ifndef PGRUNBOOK_CTX_H
#define PGRUNBOOK_CTX_H

#include <stdatomic.h>
#include <stdbool.h>

struct events;

/*
 * Passed to every operation. `bus` may be NULL (then events go nowhere). `cancel` may be NULL;
 * when it points to a non-zero value the operation stops at its next check and fails with
 * RB_EXIT_STEP. Borrowed by the operation; the caller owns everything here.
 */
struct rb_ctx {
	struct events               *bus;
	atomic_int                  *cancel;
};

static inline bool
rb_ctx_cancelled(const struct rb_ctx *ctx)
{
	return ctx && ctx->cancel && atomic_load(ctx->cancel) != 0;
}

#endif
