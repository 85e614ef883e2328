/* util.h: memory helpers that abort on OOM, a growable string buffer, small string tools. */
#ifndef PGRUNBOOK_UTIL_H
#define PGRUNBOOK_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define RB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Called before the process aborts on a fatal error (out of memory): the TUI sets it to give the
 * terminal back (STYLE.md's one die() that restores the terminal). Core stays curses-free.
 */
void util_set_fatal_hook(void (*hook)(void));

/* Allocators: never return NULL; print a message and abort when memory runs out. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string; caller frees. */
char *xasprintf(const char *fmt, ...) RB_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) RB_PRINTF(1, 0);

/* A growable NUL-terminated byte buffer. Zero-initialise, or use strbuf_init(). */
struct strbuf {
	char  *buf;
	size_t len;
	size_t cap;
};
void strbuf_init(struct strbuf *sb);
void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) RB_PRINTF(2, 3);
void strbuf_reset(struct strbuf *sb);
/* Returns the buffer (never NULL) and leaves sb empty; caller frees the result. */
char *strbuf_detach(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);

/* A growable array of owned strings. */
struct strlist {
	char  **items;
	size_t  len;
	size_t  cap;
};
void strlist_push(struct strlist *l, const char *s);        /* copies s */
void strlist_push_owned(struct strlist *l, char *s);        /* takes s */
bool strlist_contains(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);                        /* frees items, leaves l empty */

/*
 * Who runs pgrunbook, for the journal: $USER when set, else the name of the effective uid, else
 * "unknown". The returned string is static or from the environment; do not free it.
 */
const char *util_user_name(void);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);
/* SHA-256 of data as 64 lowercase hex digits plus NUL into out[65]. */
void sha256_hex(const void *data, size_t len, char out[65]);

/* Reads a whole file; returns a NUL-terminated buffer (caller frees) or NULL with errno set. */
char *file_read_all(const char *path, size_t *len_out);
/* mkdir -p with the given mode for every directory it creates; false with errno set on failure. */
bool mkdir_p(const char *path, unsigned mode);
/* Removes a directory tree; false with errno set on the first failure. */
bool remove_tree(const char *path);
/* A byte count as pg_size_pretty would show it, with one decimal: "812 bytes", "8.5 MB". */
void format_bytes(long long bytes, char *out, size_t outlen);
/* Current UTC time as RFC 3339 with milliseconds ("2026-11-23T15:49:24.123Z") into out[32]. */
void time_now_rfc3339(char out[32]);
/*
 * Milliseconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fff]Z" (what time_now_rfc3339() and the
 * journal write); false when s is not in that form.
 */
bool time_parse_rfc3339(const char *s, long long *ms);
/*
 * In a child between fork and exec: every descriptor from 3 up closes on exec, so a program
 * pgrunbook runs (pg_dump, a maintenance hook, initdb) inherits none of the parent's files or
 * sockets (a library's own, such as libcurl's wakeup socketpair, included). Async-signal-safe.
 */
void util_cloexec_above_stderr(void);
/* fsync of a directory (after a rename or create in it); false with errno set. */
bool util_fsync_dir(const char *dir);
/*
 * Writes len bytes to path atomically and durably: a temporary file beside it ("<path>.tmp.<pid>",
 * O_EXCL | O_NOFOLLOW, mode 0600), every byte written, fsync, rename over path, fsync of the
 * directory. False with *why (caller frees: the file and strerror) on any failure; the temporary
 * file is removed then.
 */
bool util_write_file_atomic(const char *path, const char *data, size_t len, char **why);
/* The same without the fsyncs: readers never see a partial file, a power loss may lose it. */
bool util_write_file_replace(const char *path, const char *data, size_t len, char **why);
/* A duration for people: "850 ms", "12.5 s", "3 min 07 s", "2 h 05 min" (negative: 0 ms). */
void time_format_elapsed(long long ms, char *out, size_t outlen);
/* Milliseconds since the epoch, now (wall clock). */
long long time_now_ms(void);
/* Milliseconds on a monotonic clock. */
long long time_monotonic_ms(void);

#endif
