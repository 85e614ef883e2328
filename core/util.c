/* util.c: allocation helpers, string buffers, hashing and filesystem helpers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"

static void (*fatal_hook)(void);

void
util_set_fatal_hook(void (*hook)(void))
{
	fatal_hook = hook;
}

static void
oom(size_t n)
{
	if (fatal_hook)
		fatal_hook();
	fprintf(stderr, "pgrunbook: out of memory (allocating %zu bytes)\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	n = strnlen(s, n);   /* like strndup: never reads past the end of s */
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		oom(0);
	char *p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void
strbuf_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
}

static void
strbuf_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

void
strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
	strbuf_grow(sb, n);
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void
strbuf_adds(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void
strbuf_addc(struct strbuf *sb, char c)
{
	strbuf_add(sb, &c, 1);
}

void
strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	strbuf_adds(sb, s);
	free(s);
}

void
strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

char *
strbuf_detach(struct strbuf *sb)
{
	char *p = sb->buf ? sb->buf : xstrdup("");
	strbuf_init(sb);
	return p;
}

void
strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	strbuf_init(sb);
}

void
strlist_push_owned(struct strlist *l, char *s)
{
	if (l->len == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
	}
	l->items[l->len++] = s;
}

void
strlist_push(struct strlist *l, const char *s)
{
	strlist_push_owned(l, xstrdup(s));
}

bool
strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->len; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->len; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->len = l->cap = 0;
}

void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		fprintf(stderr, "pgrunbook: SHA-256 failed in libcrypto\n");
		abort();
	}
	hex_encode(md, 32, out);
}

char *
file_read_all(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct strbuf sb = {0};
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			strbuf_release(&sb);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		strbuf_add(&sb, chunk, (size_t)n);
	}
	close(fd);
	if (len_out)
		*len_out = sb.len;
	return strbuf_detach(&sb);
}

bool
mkdir_p(const char *path, unsigned mode)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char saved = *s;
			*s = '\0';
			if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
				int e = errno;
				free(p);
				errno = e;
				return false;
			}
			*s = saved;
			if (saved == '\0')
				break;
		}
	}
	free(p);
	struct stat st;
	if (stat(path, &st) != 0)
		return false;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return false;
	}
	return true;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

bool
remove_tree(const char *path)
{
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return errno == ENOENT;
	return true;
}

void
format_bytes(long long bytes, char *out, size_t outlen)
{
	static const char *const units[] = { "kB", "MB", "GB", "TB", "PB" };
	if (bytes < 10240) {
		snprintf(out, outlen, "%lld bytes", bytes);
		return;
	}
	double v = (double)bytes / 1024.0;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < RB_ARRAY_LEN(units)) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", v, units[u]);
}

void
time_now_rfc3339(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	int ms = (int)(ts.tv_nsec / 1000000L) % 1000;
	snprintf(out + n, 32 - n, ".%03dZ", ms);
}

bool
time_parse_rfc3339(const char *s, long long *ms)
{
	if (s == NULL)
		return false;
	struct tm tm = {0};
	int frac = 0, consumed = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
		return false;
	const char *p = s + consumed;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p != 'Z')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (long long)timegm(&tm) * 1000 + frac;
	return true;
}

void
util_cloexec_above_stderr(void)
{
#if defined(SYS_close_range)
	/* CLOSE_RANGE_CLOEXEC (Linux 5.11): one call marks them all */
	if (syscall(SYS_close_range, 3U, ~0U, 4U) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	}
}

bool
util_fsync_dir(const char *dir)
{
	int fd = open(dir && *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc == 0;
}

static bool write_file_via_tmp(const char *path, const char *data, size_t len, bool sync, char **why);

bool
util_write_file_atomic(const char *path, const char *data, size_t len, char **why)
{
	return write_file_via_tmp(path, data, len, true, why);
}

bool
util_write_file_replace(const char *path, const char *data, size_t len, char **why)
{
	return write_file_via_tmp(path, data, len, false, why);
}

static bool
write_file_via_tmp(const char *path, const char *data, size_t len, bool sync, char **why)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	bool ok = false;
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*why = xasprintf("could not create %s: %s", tmp, strerror(errno));
		free(tmp);
		return false;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = xasprintf("could not write %s: %s", tmp, strerror(n < 0 ? errno : ENOSPC));
			goto fail;
		}
		off += (size_t)n;
	}
	if (sync && fsync(fd) != 0) {
		*why = xasprintf("could not fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		*why = xasprintf("could not write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		*why = xasprintf("could not rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	if (!sync) {
		free(tmp);
		return true;
	}
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	ok = util_fsync_dir(slash ? dir : ".");
	if (!ok)
		*why = xasprintf("could not fsync the directory of %s: %s", path, strerror(errno));
	free(dir);
	free(tmp);
	return ok;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return false;
}

void
time_format_elapsed(long long ms, char *out, size_t outlen)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(out, outlen, "%lld ms", ms);
	else if (ms < 60 * 1000)
		snprintf(out, outlen, "%.1f s", (double)ms / 1000.0);
	else if (ms < 3600 * 1000LL)
		snprintf(out, outlen, "%lld min %02lld s", ms / 60000, (ms / 1000) % 60);
	else
		snprintf(out, outlen, "%lld h %02lld min", ms / 3600000, (ms / 60000) % 60);
}

long long
time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
time_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

const char *
util_user_name(void)
{
	const char *u = getenv("USER");
	if (u && *u)
		return u;
	struct passwd *pw = getpwuid(geteuid());
	return pw && pw->pw_name ? pw->pw_name : "unknown";
}
