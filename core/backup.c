/* backup.c: pg_dump as a child process, checksums, manifests and restore-tested verification. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <openssl/evp.h>

#include "backup.h"
#include "confirm.h"
#include "db.h"
#include "events.h"
#include "util.h"

#define STAGE "backup"
#define MANIFEST_VERSION 1

extern char **environ;

/* --- child processes --- */

struct child {
	pid_t pid;
	int   err_fd;   /* read end of its stderr; -1 once closed */
	int   out_fd;   /* read end of its stdout, or -1 */
};

typedef void (*child_line_fn)(const char *line, void *ud);

struct child_io {
	child_line_fn  on_line;   /* each stderr line; may be NULL */
	void         (*tick)(void *ud);  /* about four times a second; may be NULL */
	void          *ud;
	struct strbuf  out;       /* its stdout, when captured */
	struct strbuf  errors;    /* stderr lines that are not --verbose chatter (capped) */
	struct strbuf  partial;   /* an unfinished stderr line */
	bool           cancelled; /* the cancel flag stopped it */
	bool           stopped;   /* it stopped (wanting the terminal: a password prompt) and was killed */
};

/*
 * Starts argv[0] (a path) in its own process group with stdin from /dev/null, stderr (and
 * stdout when capture_out) to pipes, umask 077, and an environment without PGPASSWORD.
 */
static bool
child_start(char *const argv[], bool capture_out, struct child *c, struct rb_error *err)
{
	int ep[2], op[2] = { -1, -1 };
	c->pid = -1;
	c->err_fd = c->out_fd = -1;
	if (pipe2(ep, O_CLOEXEC) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not create a pipe: %s", strerror(errno));
	if (capture_out && pipe2(op, O_CLOEXEC) != 0) {
		close(ep[0]);
		close(ep[1]);
		return rb_error_setc(err, RB_EXIT_STEP, "could not create a pipe: %s", strerror(errno));
	}
	size_t n = 0;
	for (char **e = environ; *e; e++)
		n++;
	char **envp = xcalloc(n + 1, sizeof *envp);
	size_t k = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "PGPASSWORD=", 11) != 0)
			envp[k++] = *e;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
#else
		(void)parent;
#endif
		umask(077);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(capture_out ? op[1] : (devnull >= 0 ? devnull : 2), 1);
		dup2(ep[1], 2);
		util_cloexec_above_stderr();
		execve(argv[0], argv, envp);
		_exit(127);
	}
	int saved = errno;
	free(envp);
	close(ep[1]);
	if (op[1] >= 0)
		close(op[1]);
	if (pid < 0) {
		close(ep[0]);
		if (op[0] >= 0)
			close(op[0]);
		return rb_error_setc(err, RB_EXIT_STEP, "could not fork: %s", strerror(saved));
	}
	setpgid(pid, pid);  /* also here, so the group exists before any kill */
	c->pid = pid;
	c->err_fd = ep[0];
	c->out_fd = op[0];
	return true;
}

static bool
is_chatter(const char *line)
{
	/* pg_dump/pg_restore --verbose lines: "pg_dump: reading ...", never "pg_dump: error: ..." */
	const char *p = strchr(line, ':');
	if (p == NULL || strncmp(line, "pg_", 3) != 0)
		return false;
	p++;
	while (*p == ' ')
		p++;
	return strncmp(p, "error:", 6) != 0 && strncmp(p, "warning:", 8) != 0 && strncmp(p, "detail:", 7) != 0 &&
	       strncmp(p, "hint:", 5) != 0 && strncmp(p, "while ", 6) != 0 && strncmp(p, "from TOC", 8) != 0;
}

static void
child_feed_err(struct child_io *io, const char *buf, size_t n, bool eof)
{
	strbuf_add(&io->partial, buf, n);
	for (;;) {
		char *nl = io->partial.buf ? memchr(io->partial.buf, '\n', io->partial.len) : NULL;
		if (nl == NULL && !(eof && io->partial.len > 0))
			break;
		size_t len = nl ? (size_t)(nl - io->partial.buf) : io->partial.len;
		char *line = xstrndup(io->partial.buf, len);
		if (io->on_line)
			io->on_line(line, io->ud);
		if (!is_chatter(line) && io->errors.len < 4000) {
			strbuf_adds(&io->errors, line);
			strbuf_addc(&io->errors, '\n');
		}
		free(line);
		size_t rest = io->partial.len - len - (nl ? 1 : 0);
		memmove(io->partial.buf, io->partial.buf + len + (nl ? 1 : 0), rest);
		io->partial.len = rest;
		io->partial.buf[rest] = '\0';
	}
}

/*
 * Reads the child's output until it exits, calling io's hooks; when ctx's cancel flag is set the
 * process group gets SIGTERM, and SIGKILL 5 s later. Returns the wait status.
 */
static int
child_wait(struct child *c, const struct rb_ctx *ctx, struct child_io *io)
{
	long long term_at = 0;
	int status = 0;
	bool exited = false;
	char buf[8192];
	while (!exited || c->err_fd >= 0 || c->out_fd >= 0) {
		if (!exited && rb_ctx_cancelled(ctx)) {
			long long now = time_monotonic_ms();
			if (term_at == 0) {
				kill(-c->pid, SIGTERM);
				term_at = now;
				io->cancelled = true;
			} else if (now - term_at > 5000) {
				kill(-c->pid, SIGKILL);
			}
		}
		struct pollfd fds[2];
		int nfds = 0;
		if (c->err_fd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = c->err_fd, .events = POLLIN };
		if (c->out_fd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = c->out_fd, .events = POLLIN };
		if (nfds > 0) {
			int r = poll(fds, (nfds_t)nfds, 250);
			if (r < 0 && errno != EINTR)
				break;
			for (int i = 0; r > 0 && i < nfds; i++) {
				if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t got = read(fds[i].fd, buf, sizeof buf);
				if (got < 0 && errno == EINTR)
					continue;
				bool is_err = fds[i].fd == c->err_fd;
				if (got <= 0) {
					close(fds[i].fd);
					if (is_err) {
						child_feed_err(io, "", 0, true);
						c->err_fd = -1;
					} else {
						c->out_fd = -1;
					}
				} else if (is_err) {
					child_feed_err(io, buf, (size_t)got, false);
				} else {
					strbuf_add(&io->out, buf, (size_t)got);
				}
			}
		} else {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (!exited) {
			/*
			 * WNOWAIT: the leader stays a zombie until the group is killed below, so its pid (the
			 * group's id) cannot be reused by another process meanwhile. A stopped child (a
			 * password prompt on the terminal would stop it with SIGTTIN) is killed, never waited
			 * for.
			 */
			siginfo_t info = {0};
			int w = waitid(P_PID, (id_t)c->pid, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT);
			if (w == 0 && info.si_pid == c->pid && info.si_code == CLD_STOPPED) {
				kill(-c->pid, SIGKILL);
				kill(-c->pid, SIGCONT);
				io->stopped = true;
			} else if ((w == 0 && info.si_pid == c->pid) || (w < 0 && errno == ECHILD)) {
				exited = true;
			}
		}
		if (io->tick)
			io->tick(io->ud);
	}
	/* workers of a parallel dump may outlive their leader for a moment; the zombie leader keeps the id */
	kill(-c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	return status;
}

static void
child_io_release(struct child_io *io)
{
	strbuf_release(&io->out);
	strbuf_release(&io->errors);
	strbuf_release(&io->partial);
}

/* "exited with status 1", "was terminated by signal 25 (File size limit exceeded)". Caller frees. */
static char *
describe_status(int status)
{
	if (WIFEXITED(status))
		return xasprintf("exited with status %d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return xasprintf("was terminated by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	return xasprintf("ended with wait status %d", status);
}

static bool
status_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The last non-empty lines of a child's error text, joined for a message. Caller frees. */
static char *
errors_text(const struct child_io *io)
{
	if (io->errors.len == 0)
		return xstrdup("(no error output)");
	char *s = xstrdup(io->errors.buf);
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '\n')
		s[--n] = '\0';
	return s;
}

/* --- finding pg_dump and pg_restore --- */

/* Runs "<path> --version"; the major version (0 when it cannot be read) and the text. */
static int
tool_major(const char *path, char **text)
{
	char *argv[] = { (char *)path, (char *)"--version", NULL };
	struct child c;
	struct rb_error err = {0};
	*text = NULL;
	if (!child_start(argv, true, &c, &err)) {
		rb_error_clear(&err);
		return 0;
	}
	struct child_io io = {0};
	int status = child_wait(&c, NULL, &io);
	int major = 0;
	const char *v = io.out.buf ? strstr(io.out.buf, "(PostgreSQL) ") : NULL;
	if (status_ok(status) && v) {
		major = atoi(v + 13);
		*text = xstrndup(io.out.buf, strcspn(io.out.buf, "\n"));
	}
	child_io_release(&io);
	return major;
}

struct tools {
	char *bindir;
	char *pg_dump;
	char *pg_restore;
	char *version;   /* "pg_dump (PostgreSQL) 15.8 ..." */
	int   major;
};

static void
tools_free(struct tools *t)
{
	free(t->bindir);
	free(t->pg_dump);
	free(t->pg_restore);
	free(t->version);
	memset(t, 0, sizeof *t);
}

/* Finds pg_dump and pg_restore for a server of major version `server_major` (see backup.h). */
static bool
tools_find(int server_major, struct tools *out, struct rb_error *err)
{
	struct strlist dirs = {0};
	const char *e = getenv("PG_BINDIR");
	if (e && *e)
		strlist_push(&dirs, e);
	strlist_push_owned(&dirs, xasprintf("/usr/lib/postgresql/%d/bin", server_major));
	const char *path = getenv("PATH");
	if (path) {
		char *copy = xstrdup(path), *save = NULL;
		for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
			if (*d && !strlist_contains(&dirs, d))
				strlist_push(&dirs, d);
		free(copy);
	}
	struct strbuf seen = {0};
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < dirs.len; i++) {
		char *dump = xasprintf("%s/pg_dump", dirs.items[i]);
		char *restore = xasprintf("%s/pg_restore", dirs.items[i]);
		char *text = NULL;
		int major = 0;
		if (access(dump, X_OK) == 0 && access(restore, X_OK) == 0)
			major = tool_major(dump, &text);
		if (major > 0)
			strbuf_addf(&seen, "%s%s (%d)", seen.len ? ", " : "", dump, major);
		bool better = major == server_major ? (out->major != server_major)
		                                    : (major > server_major && out->major == 0);
		if (better) {
			tools_free(out);
			out->bindir = xstrdup(dirs.items[i]);
			out->pg_dump = dump;
			out->pg_restore = restore;
			out->version = text;
			out->major = major;
		} else {
			free(dump);
			free(restore);
			free(text);
		}
	}
	strlist_free(&dirs);
	if (out->major == 0) {
		rb_error_setc(err, RB_EXIT_STEP, "no pg_dump of major version %d or newer found", server_major);
		if (seen.len)
			rb_error_detail(err, "Found only older ones: %s. An older pg_dump cannot dump a newer server.", seen.buf);
		else
			rb_error_detail(err, "Looked in $PG_BINDIR, /usr/lib/postgresql/%d/bin and $PATH.", server_major);
		rb_error_hint(err, "Install the client of the server's version (\"apt-get install postgresql-client-%d\") "
		              "or set PG_BINDIR to its bin directory.", server_major);
	}
	strbuf_release(&seen);
	return out->major != 0;
}

/* --- checksums and sizes --- */

static bool
sha256_file(const char *path, char out[65], int64_t *size, struct rb_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not open %s: %s", path, strerror(errno));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		close(fd);
		return rb_error_setc(err, RB_EXIT_USAGE, "could not initialise SHA-256");
	}
	size_t cap = 1 << 20;
	unsigned char *buf = xmalloc(cap);
	int64_t total = 0;
	bool ok = true;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ok = rb_error_setc(err, RB_EXIT_STEP, "could not read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		total += n;
	}
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	if (ok && (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32))
		ok = rb_error_setc(err, RB_EXIT_USAGE, "could not compute SHA-256 of %s", path);
	if (ok) {
		hex_encode(digest, 32, out);
		*size = total;
	}
	free(buf);
	EVP_MD_CTX_free(md);
	close(fd);
	return ok;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file under dir (recursively), relative paths into files. */
static bool
tree_list(const char *root, const char *rel, struct strlist *files, struct rb_error *err)
{
	char *dir = rel ? xasprintf("%s/%s", root, rel) : xstrdup(root);
	DIR *d = opendir(dir);
	if (d == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "could not open directory %s: %s", dir, strerror(errno));
		free(dir);
		return false;
	}
	bool ok = true;
	struct dirent *de;
	while (ok && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *r = rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		char *full = xasprintf("%s/%s", root, r);
		struct stat st;
		if (lstat(full, &st) != 0)
			ok = rb_error_setc(err, RB_EXIT_STEP, "could not stat %s: %s", full, strerror(errno));
		else if (S_ISDIR(st.st_mode))
			ok = tree_list(root, r, files, err);
		else if (S_ISREG(st.st_mode))
			strlist_push(files, r);
		else
			ok = rb_error_setc(err, RB_EXIT_STEP, "%s is neither a file nor a directory", full);
		free(full);
		free(r);
	}
	closedir(d);
	free(dir);
	return ok;
}

/* SHA-256 and size of an archive: a file, or a directory (see backup.h). */
static bool
archive_checksum(const char *path, char out[65], int64_t *size, struct rb_error *err)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not stat %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return sha256_file(path, out, size, err);
	struct strlist files = {0};
	bool ok = tree_list(path, NULL, &files, err);
	if (ok && files.len > 1)
		qsort(files.items, files.len, sizeof *files.items, cmp_str);
	struct strbuf sb = {0};
	int64_t total = 0;
	for (size_t i = 0; ok && i < files.len; i++) {
		char *full = xasprintf("%s/%s", path, files.items[i]);
		char hex[65];
		int64_t n = 0;
		ok = sha256_file(full, hex, &n, err);
		free(full);
		if (ok) {
			strbuf_addf(&sb, "%s  %s\n", hex, files.items[i]);
			total += n;
		}
	}
	if (ok) {
		sha256_hex(sb.buf ? sb.buf : "", sb.len, out);
		*size = total;
	}
	strbuf_release(&sb);
	strlist_free(&files);
	return ok;
}

/* Bytes in a file or directory tree so far (for progress); 0 when it does not exist yet. */
static int64_t
tree_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return (int64_t)st.st_size;
	int64_t total = 0;
	DIR *d = opendir(path);
	if (d == NULL)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *full = xasprintf("%s/%s", path, de->d_name);
		total += tree_size(full);
		free(full);
	}
	closedir(d);
	return total;
}

/* --- files --- */

static void
fsync_dir_of(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	int fd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Writes the manifest atomically (mode 0600): util_write_file_atomic(). */
static bool
manifest_write(const char *path, json_t *m, struct rb_error *err)
{
	char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	char *with_nl = xasprintf("%s\n", text ? text : "");
	char *why = NULL;
	bool ok = text != NULL && util_write_file_atomic(path, with_nl, strlen(with_nl), &why);
	if (!ok)
		rb_error_setc(err, RB_EXIT_STEP, "%s", why ? why : "could not encode the manifest");
	free(why);
	free(with_nl);
	free(text);
	return ok;
}

static json_t *
manifest_read(const char *path, struct rb_error *err)
{
	json_error_t jerr;
	json_t *m = json_load_file(path, 0, &jerr);
	if (m == NULL) {
		if (access(path, F_OK) != 0)
			rb_error_setc(err, RB_EXIT_STEP, "the backup has no manifest %s: %s", path, strerror(errno));
		else
			rb_error_setc(err, RB_EXIT_STEP, "the manifest %s is not valid JSON: line %d: %s", path, jerr.line,
			              jerr.text);
		return NULL;
	}
	if (!json_is_object(m) || json_integer_value(json_object_get(m, "pgrunbook_backup")) != MANIFEST_VERSION ||
	    !json_is_string(json_object_get(m, "sha256")) || !json_is_integer(json_object_get(m, "size")) ||
	    !json_is_string(json_object_get(m, "database")) || !json_is_array(json_object_get(m, "table_list"))) {
		rb_error_setc(err, RB_EXIT_STEP, "%s is not a pgrunbook backup manifest", path);
		rb_error_detail(err, "It lacks pgrunbook_backup: %d, database, size, sha256 or table_list.",
		                MANIFEST_VERSION);
		json_decref(m);
		return NULL;
	}
	return m;
}

/* --- tables and row counts --- */

struct btable {
	char   *schema;
	char   *name;
	bool    partitioned;
	int64_t rows;
};

struct btables {
	struct btable *items;
	size_t         n;
};

static void
btables_free(struct btables *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->items[i].schema);
		free(t->items[i].name);
	}
	free(t->items);
	memset(t, 0, sizeof *t);
}

static const char tables_sql[] =
	"SELECT n.nspname, c.relname, c.relkind OPERATOR(pg_catalog.=) 'p' "
	"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
	"WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[]) "
	"AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'pg_toast']::pg_catalog.name[]) "
	"AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_' "
	"AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d "
	"  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	"  AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e') "
	"ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"";

/* Lists the counted tables and counts their rows, in the caller's transaction (see backup.h). */
static bool
tables_count(PGconn *conn, const struct rb_ctx *ctx, struct btables *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	PGresult *res = db_exec(conn, tables_sql, 0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		rb_error_prefix(err, "could not list the tables");
		PQclear(res);
		return false;
	}
	out->n = (size_t)PQntuples(res);
	out->items = xcalloc(out->n ? out->n : 1, sizeof *out->items);
	for (size_t i = 0; i < out->n; i++) {
		out->items[i].schema = xstrdup(PQgetvalue(res, (int)i, 0));
		out->items[i].name = xstrdup(PQgetvalue(res, (int)i, 1));
		out->items[i].partitioned = PQgetvalue(res, (int)i, 2)[0] == 't';
	}
	PQclear(res);
	for (size_t i = 0; i < out->n; i++) {
		struct btable *t = &out->items[i];
		char *qs = db_quote_ident(conn, t->schema), *qn = db_quote_ident(conn, t->name);
		char *sql = xasprintf("SELECT pg_catalog.count(*) FROM %s%s.%s", t->partitioned ? "" : "ONLY ", qs, qn);
		free(qs);
		free(qn);
		res = db_exec(conn, sql, 0, NULL, ctx);
		free(sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_error_from_result(err, res, RB_EXIT_STEP);
			rb_error_prefix(err, "could not count the rows of %s.%s", t->schema, t->name);
			PQclear(res);
			btables_free(out);
			return false;
		}
		t->rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	return true;
}

static char *
table_key(const char *schema, const char *name)
{
	return xasprintf("%s.%s", schema, name);
}

static json_t *
tables_json(const struct btables *t, json_t **list_out)
{
	json_t *obj = json_object(), *list = json_array();
	for (size_t i = 0; i < t->n; i++) {
		char *k = table_key(t->items[i].schema, t->items[i].name);
		json_object_set_new(obj, k, json_integer(t->items[i].rows));
		free(k);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I}", "schema", t->items[i].schema, "name",
		                                      t->items[i].name, "kind",
		                                      t->items[i].partitioned ? "partitioned" : "table",
		                                      "rows", (json_int_t)t->items[i].rows));
	}
	*list_out = list;
	return obj;
}

/* --- connection strings --- */

static void
conninfo_add(struct strbuf *sb, const char *key, const char *val)
{
	strbuf_addf(sb, "%s%s='", sb->len ? " " : "", key);
	for (const char *p = val; *p; p++) {
		if (*p == '\'' || *p == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *p);
	}
	strbuf_addc(sb, '\'');
}

/*
 * A conninfo for database dbname on the very server conn is connected to: conn's options
 * (PQconninfo) with the host and port it reached, without any password. Caller frees.
 */
static char *
conninfo_for(PGconn *conn, const char *dbname)
{
	struct strbuf sb = {0};
	PQconninfoOption *opts = PQconninfo(conn);
	bool had_hostaddr = false;
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0 ||
		    strcmp(o->keyword, "dbname") == 0 || strcmp(o->keyword, "host") == 0 ||
		    strcmp(o->keyword, "port") == 0 ||
		    strcmp(o->keyword, "target_session_attrs") == 0 || strcmp(o->keyword, "client_encoding") == 0 ||
		    strcmp(o->keyword, "options") == 0 || strcmp(o->keyword, "fallback_application_name") == 0)
			continue;
		if (strcmp(o->keyword, "hostaddr") == 0) {
			had_hostaddr = true;
			continue;
		}
		conninfo_add(&sb, o->keyword, o->val);
	}
	PQconninfoFree(opts);
	const char *host = PQhost(conn), *port = PQport(conn);
	if (host && *host)
		conninfo_add(&sb, "host", host);
	const char *ha = PQhostaddr(conn);
	if (had_hostaddr && ha && *ha)
		conninfo_add(&sb, "hostaddr", ha);
	if (port && *port)
		conninfo_add(&sb, "port", port);
	conninfo_add(&sb, "dbname", dbname);
	return strbuf_detach(&sb);
}

/* Connects with conninfo (from conninfo_for(); dbname names the database for messages). */
static PGconn *
connect_conninfo(const char *conninfo, const char *dbname, struct rb_error *err)
{
	const char *const kw[] = { "dbname", "fallback_application_name", "client_encoding", NULL };
	const char *const val[] = { conninfo, "pgrunbook", "UTF8", NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		char *m = c ? xstrndup(PQerrorMessage(c), strcspn(PQerrorMessage(c), "\n")) : xstrdup("out of memory");
		rb_error_setc(err, RB_EXIT_CONNECT, "could not connect to database %s: %s", dbname, m);
		free(m);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* The plan's backup.dir resolved against the plan file, without "./" segments. Caller frees. */
static char *
backup_dir(const struct plan *p)
{
	char *d = plan_path(p, p->backup.dir);
	char *w = d;
	for (const char *r = d; *r;) {
		if (r[0] == '.' && (r[1] == '/' || r[1] == '\0') && (r == d || r[-1] == '/')) {
			r += r[1] ? 2 : 1;
			continue;
		}
		if (r[0] == '/' && w > d && w[-1] == '/') {
			r++;
			continue;
		}
		*w++ = *r++;
	}
	while (w > d + 1 && w[-1] == '/')
		w--;
	*w = '\0';
	if (*d == '\0') {
		free(d);
		d = xstrdup(".");
	}
	return d;
}

/* --- steps and results --- */

static void
step_emit(const struct rb_ctx *ctx, const char *stage, const char *kind, const char *step, bool ok, json_t *fields,
          const char *fmt, ...) RB_PRINTF(7, 8);

/* A step event of stage `stage`: fields (consumed; may be NULL) plus kind, step and state. */
static void
step_emit(const struct rb_ctx *ctx, const char *stage, const char *kind, const char *step, bool ok, json_t *fields,
          const char *fmt, ...)
{
	json_t *data = fields ? fields : json_object();
	json_object_set_new(data, "kind", json_string(kind));
	json_object_set_new(data, "step", json_string(step));
	json_object_set_new(data, "state", json_string(ok ? "done" : "failed"));
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	events_emitf(ctx ? ctx->bus : NULL, EV_STEP, stage, data, "%s", msg);
	free(msg);
	json_decref(data);
}

/* A backup step (stage and kind "backup"). */
#define step_event(ctx, step, ok, fields, ...) step_emit((ctx), STAGE, "backup", (step), (ok), (fields), __VA_ARGS__)

void
backup_result_free(struct backup_result *r)
{
	if (r == NULL)
		return;
	free(r->path);
	free(r->manifest_path);
	free(r->environment);
	free(r->database);
	free(r->format);
	free(r->why);
	json_decref(r->manifest);
	memset(r, 0, sizeof *r);
}

json_t *
backup_result_json(const struct backup_result *r)
{
	json_t *tables = r->manifest ? json_object_get(r->manifest, "tables") : NULL;
	return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:s?, s:b, s:s?, s:O?}", "path", r->path, "manifest",
	                 r->manifest_path, "environment", r->environment, "database", r->database, "format", r->format,
	                 "size", (json_int_t)r->size, "sha256", r->sha256[0] ? r->sha256 : NULL, "verified",
	                 r->verified, "why", r->why, "tables", tables);
}

static void
stage_end(const struct rb_ctx *ctx, const struct backup_result *r, bool ok, const struct rb_error *err,
          const char *done_msg)
{
	json_t *res = backup_result_json(r);
	events_emitf(ctx ? ctx->bus : NULL, EV_STAGE_RESULT, STAGE, res, "backup result");
	json_decref(res);
	if (ok)
		events_emitf(ctx ? ctx->bus : NULL, EV_STAGE_DONE, STAGE, NULL, "%s", done_msg);
	else
		events_emitf(ctx ? ctx->bus : NULL, EV_STAGE_FAILED, STAGE, NULL, "%s",
		             err->message ? err->message : "backup failed");
}

/* --- server identity --- */

struct server_id {
	char *host;
	char *port;
	char *sysid;    /* NULL when not readable */
	char *version;  /* server_version */
};

static void
server_id_free(struct server_id *s)
{
	free(s->host);
	free(s->port);
	free(s->sysid);
	free(s->version);
	memset(s, 0, sizeof *s);
}

static void
server_id_read(PGconn *conn, struct server_id *s)
{
	s->host = xstrdup(PQhost(conn) ? PQhost(conn) : "");
	s->port = xstrdup(PQport(conn) ? PQport(conn) : "");
	PGresult *res = PQexec(conn, "SELECT pg_catalog.current_setting('server_version'), "
	                             "(SELECT system_identifier::pg_catalog.text FROM pg_catalog.pg_control_system())");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		s->version = xstrdup(PQgetvalue(res, 0, 0));
		if (!PQgetisnull(res, 0, 1))
			s->sysid = xstrdup(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	if (s->version == NULL) {  /* pg_control_system() not allowed: the version alone */
		res = PQexec(conn, "SELECT pg_catalog.current_setting('server_version')");
		s->version = xstrdup(PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "");
		PQclear(res);
	}
}

static json_t *
server_id_json(const struct server_id *s)
{
	return json_pack("{s:s, s:s, s:s?, s:s}", "host", s->host, "port", s->port, "system_identifier", s->sysid,
	                 "version", s->version);
}

/* Whether a manifest's server is this one: system identifiers when both are known, else host and port. */
static bool
server_matches(json_t *mserver, const struct server_id *s)
{
	/* Host and port must match; the system identifier too when both sides know it. */
	const char *sysid = json_string_value(json_object_get(mserver, "system_identifier"));
	if (sysid && s->sysid && strcmp(sysid, s->sysid) != 0)
		return false;
	const char *host = json_string_value(json_object_get(mserver, "host"));
	const char *port = json_string_value(json_object_get(mserver, "port"));
	return host && port && s->host && s->port && strcmp(host, s->host) == 0 && strcmp(port, s->port) == 0;
}

/* --- verification --- */

struct verifier {
	const struct plan *p;
	struct rb_ctx     *ctx;
	PGconn            *conn;      /* control connection on the target's server, outside a transaction */
	const struct tools *tools;
	const char        *path;      /* the archive */
	json_t            *manifest;  /* borrowed */
	const char        *database;  /* for the scratch database's name */
	char              *scratch;   /* the scratch database's name, once chosen */
};

/*
 * The archive's size and SHA-256 against the manifest's: a step event "checksum" of kind `kind`
 * in `stage`. False with err saying what differs (RB_EXIT_STEP).
 */
static bool
archive_matches(const struct rb_ctx *ctx, const char *stage, const char *kind, const char *path, json_t *manifest,
                struct rb_error *err)
{
	char hex[65];
	int64_t size = 0;
	if (!archive_checksum(path, hex, &size, err)) {
		step_emit(ctx, stage, kind, "checksum", false, json_pack("{s:s}", "error", err->message), "checksum: %s",
		          err->message);
		return false;
	}
	json_int_t want_size = json_integer_value(json_object_get(manifest, "size"));
	const char *want = json_string_value(json_object_get(manifest, "sha256"));
	if (size != (int64_t)want_size) {
		rb_error_setc(err, RB_EXIT_STEP, "the archive %s is %" PRId64 " bytes, the manifest says %" JSON_INTEGER_FORMAT,
		              path, size, want_size);
		rb_error_detail(err, "The backup was cut off or changed after it was taken.");
	} else if (want == NULL || strcmp(hex, want) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "checksum mismatch: the archive %s has SHA-256 %s, the manifest says %s",
		              path, hex, want ? want : "nothing");
		rb_error_detail(err, "The backup was changed after it was taken.");
	} else {
		step_emit(ctx, stage, kind, "checksum", true, json_pack("{s:s, s:I}", "sha256", hex, "size", (json_int_t)size),
		          "checksum: SHA-256 %s matches the manifest", hex);
		return true;
	}
	step_emit(ctx, stage, kind, "checksum", false, json_pack("{s:s}", "error", err->message), "checksum: %s",
	          err->message);
	return false;
}

/* Step 1 of a verification: the archive against its manifest. */
static bool
verify_checksum(struct verifier *v, struct rb_error *err)
{
	return archive_matches(v->ctx, STAGE, "backup", v->path, v->manifest, err);
}

/* Step 2: pg_restore --list parses the archive and lists every counted table's data. */
static bool
verify_list(struct verifier *v, struct rb_error *err)
{
	char *argv[] = { v->tools->pg_restore, (char *)"--list", (char *)v->path, NULL };
	struct child c;
	if (!child_start(argv, true, &c, err))
		return false;
	struct child_io io = {0};
	int status = child_wait(&c, v->ctx, &io);
	bool ok = true;
	if (io.cancelled) {
		ok = rb_error_setc(err, RB_EXIT_STEP, "the verification was cancelled");
	} else if (!status_ok(status)) {
		char *how = describe_status(status), *text = errors_text(&io);
		ok = rb_error_setc(err, RB_EXIT_STEP, "pg_restore --list could not read the archive %s: it %s", v->path, how);
		rb_error_detail(err, "%s", text);
		free(how);
		free(text);
	}
	/* entries: "<dumpid>; <tableoid> <oid> <desc> <schema> <tag> <owner>" */
	struct strlist entries = {0};
	if (ok) {
		char *save = NULL;
		for (char *line = strtok_r(io.out.buf ? io.out.buf : (char *)"", "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (line[0] == ';')
				continue;
			char *p = strstr(line, "; ");
			if (p == NULL)
				continue;
			p += 2;
			for (int skip = 0; skip < 2 && p; skip++) {
				p = strchr(p, ' ');
				if (p)
					p++;
			}
			if (p)
				strlist_push(&entries, p);
		}
	}
	json_t *list = json_object_get(v->manifest, "table_list");
	size_t i;
	json_t *t;
	struct strbuf missing = {0};
	size_t nmissing = 0;
	json_array_foreach(list, i, t) {
		if (!ok)
			break;
		const char *schema = json_string_value(json_object_get(t, "schema"));
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *kind = json_string_value(json_object_get(t, "kind"));
		bool part = kind && strcmp(kind, "partitioned") == 0;
		char *want = xasprintf("%s %s %s ", part ? "TABLE" : "TABLE DATA", schema ? schema : "", name ? name : "");
		bool found = false;
		for (size_t k = 0; k < entries.len && !found; k++)
			found = strncmp(entries.items[k], want, strlen(want)) == 0;
		if (!found) {
			if (nmissing++ < 5)
				strbuf_addf(&missing, "%s%s.%s", nmissing > 1 ? ", " : "", schema, name);
		}
		free(want);
	}
	if (ok && nmissing > 0) {
		ok = rb_error_setc(err, RB_EXIT_STEP, "pg_restore --list does not list the data of %zu table%s counted at "
		                   "dump time: %s%s", nmissing, nmissing == 1 ? "" : "s", missing.buf,
		                   nmissing > 5 ? ", ..." : "");
		rb_error_detail(err, "The archive does not hold every table of the database it was taken from.");
	}
	if (ok)
		step_event(v->ctx, "list", true, json_pack("{s:I, s:I}", "entries", (json_int_t)entries.len, "tables",
		                                             (json_int_t)json_array_size(list)),
		           "pg_restore --list: %zu entries, the data of all %zu tables listed", entries.len,
		           json_array_size(list));
	else
		step_event(v->ctx, "list", false, json_pack("{s:s}", "error", err->message), "pg_restore --list: %s",
		           err->message);
	strbuf_release(&missing);
	strlist_free(&entries);
	child_io_release(&io);
	return ok;
}

/* "<db>_pgrunbook_verify_<6 hex>", within NAMEDATALEN - 1 bytes. Caller frees. */
static char *
scratch_name(const char *db)
{
	unsigned char rnd[3];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		unsigned v = (unsigned)time_monotonic_ms() ^ (unsigned)getpid();
		memcpy(rnd, &v, sizeof rnd);
	}
	char hex[7];
	hex_encode(rnd, 3, hex);
	size_t max = 63 - strlen("_pgrunbook_verify_") - 6, len = strlen(db);
	if (len > max) {
		len = max;
		while (len > 0 && ((unsigned char)db[len] & 0xC0) == 0x80)
			len--;   /* never cut a UTF-8 character */
	}
	return xasprintf("%.*s_pgrunbook_verify_%s", (int)len, db, hex);
}

/* --- restoring an archive into a new database: the test restore and backup_restore() --- */

/*
 * One restore of an archive into a new database on conn's server: CREATE DATABASE ... TEMPLATE
 * template0, pg_restore --exit-on-error --no-subscriptions, then every table's row count
 * compared with the manifest's. The verification's test restore (test: a scratch database that
 * is always dropped, "test restore" in the messages, step events of kind "backup") and
 * backup_restore() (kept on success, dropped on failure, step events of kind "restore") are
 * both this one function.
 */
struct restore_job {
	const struct plan  *p;
	struct rb_ctx      *ctx;
	PGconn             *conn;        /* on the server, outside a transaction */
	const struct tools *tools;
	const char         *path;        /* the archive */
	json_t             *want;        /* the manifest's {"schema.table": rows}; borrowed */
	const char         *dbname;      /* the new database */
	const char         *create_opts; /* appended to CREATE DATABASE <db> TEMPLATE template0; may be NULL */
	bool                no_owner;    /* pg_restore --no-owner --no-privileges */
	bool                test;        /* the verification's test restore (see above) */
	const char         *stage;
	json_t             *counts;      /* out, when !test and it succeeded: {"schema.table": rows}; caller decrefs */
	bool                created;     /* out: the database was created (by this job) */
	long long           t0;
	long long           last_tick;
};

static const char *
restore_kind(const struct restore_job *j)
{
	return j->test ? "backup" : "restore";
}

static const char *
restore_dbfield(const struct restore_job *j)
{
	return j->test ? "scratch_database" : "database";
}

/* Progress while pg_restore runs (not a test restore): about twice a second. */
static void
restore_tick(void *ud)
{
	struct restore_job *j = ud;
	long long now = time_monotonic_ms();
	if (now - j->last_tick < 500)
		return;
	j->last_tick = now;
	json_t *pr = json_pack("{s:s, s:s, s:s, s:I}", "kind", "restore", "phase", "restore", "database", j->dbname,
	                       "elapsed_ms", (json_int_t)(now - j->t0));
	events_emitf(j->ctx->bus, EV_PROGRESS, j->stage, pr, "restoring into %s", j->dbname);
	json_decref(pr);
}

/* Drops the new database, whatever happened before (never cancelled). */
static void
restore_drop(const struct restore_job *j)
{
	if (PQstatus(j->conn) != CONNECTION_OK)
		PQreset(j->conn);
	char *q = db_quote_ident(j->conn, j->dbname);
	char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
	struct rb_error e = {0};
	if (!db_run(j->conn, sql, 0, NULL, NULL, &e))
		events_log(j->ctx->bus, LOG_LEVEL_ERROR, j->stage, "could not drop the %s database %s: %s",
		           j->test ? "scratch" : "partly restored", j->dbname, e.message);
	rb_error_clear(&e);
	free(sql);
	free(q);
}

/* Compares restored counts with the manifest's; false with err (what: "the test restore") naming the differences. */
static bool
compare_counts(const struct btables *got, json_t *want, const char *what, struct rb_error *err)
{
	struct strbuf diff = {0};
	size_t ndiff = 0;
	json_t *seen = json_object();
	for (size_t i = 0; i < got->n; i++) {
		char *k = table_key(got->items[i].schema, got->items[i].name);
		json_t *w = json_object_get(want, k);
		json_object_set_new(seen, k, json_true());
		if (w == NULL) {
			if (ndiff++ < 5)
				strbuf_addf(&diff, "%s%s: restored (%" PRId64 " rows) but not counted at dump time", ndiff > 1 ? "; " : "",
				            k, got->items[i].rows);
		} else if (json_integer_value(w) != (json_int_t)got->items[i].rows) {
			if (ndiff++ < 5)
				strbuf_addf(&diff, "%s%s: %" PRId64 " rows restored, %" JSON_INTEGER_FORMAT " at dump time",
				            ndiff > 1 ? "; " : "", k, got->items[i].rows, json_integer_value(w));
		}
		free(k);
	}
	const char *k;
	json_t *w;
	json_object_foreach(want, k, w) {
		if (json_object_get(seen, k) == NULL && ndiff++ < 5)
			strbuf_addf(&diff, "%s%s: %" JSON_INTEGER_FORMAT " rows at dump time, missing after the restore",
			            ndiff > 1 ? "; " : "", k, json_integer_value(w));
	}
	json_decref(seen);
	bool ok = ndiff == 0;
	if (!ok) {
		rb_error_setc(err, RB_EXIT_STEP, "%s differs from the dump-time row counts in %zu table%s", what, ndiff,
		              ndiff == 1 ? "" : "s");
		rb_error_detail(err, "%s%s.", diff.buf, ndiff > 5 ? "; ..." : "");
	}
	strbuf_release(&diff);
	return ok;
}

/* Creates the database (false: nothing was created). */
static bool
restore_create(struct restore_job *j, struct rb_error *err)
{
	char *q = db_quote_ident(j->conn, j->dbname);
	char *sql = xasprintf("CREATE DATABASE %s TEMPLATE template0%s%s", q, j->create_opts ? " " : "",
	                      j->create_opts ? j->create_opts : "");
	free(q);
	bool ok = db_run(j->conn, sql, 0, NULL, j->ctx, err);
	free(sql);
	if (!ok) {
		rb_error_prefix(err, "could not create the %s database %s", j->test ? "scratch" : "new", j->dbname);
		if (j->test)
			step_emit(j->ctx, j->stage, "backup", "restore", false, json_pack("{s:s, s:s}", "scratch_database",
			          j->dbname, "error", err->message), "test restore: %s", err->message);
		else
			step_emit(j->ctx, j->stage, "restore", "create", false, json_pack("{s:s, s:s}", "database", j->dbname,
			          "error", err->message), "create: %s", err->message);
		return false;
	}
	j->created = true;
	if (!j->test) {
		step_emit(j->ctx, j->stage, "restore", "create", true, json_pack("{s:s}", "database", j->dbname),
		          "create: database %s created from template0", j->dbname);
	}
	return ok;
}

/* pg_restore into the new database. */
static bool
restore_pg_restore(struct restore_job *j, const char *ci, struct rb_error *err)
{
	int jobs = j->p->backup.jobs > 1 ? j->p->backup.jobs : 1;
	char *jobs_arg = xasprintf("--jobs=%d", jobs);
	/* No subscriptions: a restored one would connect to its publisher and keep the database from being dropped. */
	char *argv[12];
	int n = 0;
	argv[n++] = j->tools->pg_restore;
	argv[n++] = (char *)"--no-password";
	if (j->no_owner) {
		argv[n++] = (char *)"--no-owner";
		argv[n++] = (char *)"--no-privileges";
	}
	argv[n++] = (char *)"--no-subscriptions";
	argv[n++] = (char *)"--exit-on-error";
	argv[n++] = jobs_arg;
	argv[n++] = (char *)"--dbname";
	argv[n++] = (char *)ci;
	argv[n++] = (char *)j->path;
	argv[n] = NULL;
	j->t0 = j->last_tick = time_monotonic_ms();
	json_t *pr = j->test ? json_pack("{s:s, s:s, s:s}", "kind", "verify", "phase", "restore", "scratch_database",
	                                 j->dbname)
	                     : json_pack("{s:s, s:s, s:s, s:I}", "kind", "restore", "phase", "restore", "database",
	                                 j->dbname, "elapsed_ms", (json_int_t)0);
	events_emitf(j->ctx->bus, EV_PROGRESS, j->stage, pr, "restoring into %s", j->dbname);
	json_decref(pr);
	struct child c;
	bool ok = child_start(argv, false, &c, err);
	struct child_io io = { .tick = j->test ? NULL : restore_tick, .ud = j };
	if (ok) {
		int status = child_wait(&c, j->ctx, &io);
		if (io.cancelled) {
			if (j->test)
				ok = rb_error_setc(err, RB_EXIT_STEP, "the verification was cancelled during the test restore");
			else
				ok = rb_error_setc(err, RB_EXIT_STEP, "the restore into %s was cancelled", j->dbname);
		} else if (!status_ok(status)) {
			char *how = describe_status(status), *text = errors_text(&io);
			ok = rb_error_setc(err, RB_EXIT_STEP, "the %s into %s failed: pg_restore %s",
			                   j->test ? "test restore" : "restore", j->dbname, how);
			rb_error_detail(err, "%s", text);
			free(how);
			free(text);
		}
	}
	child_io_release(&io);
	free(jobs_arg);
	long long ms = time_monotonic_ms() - j->t0;
	const char *what = j->test ? "test restore" : "restore";
	if (ok)
		step_emit(j->ctx, j->stage, restore_kind(j), "restore", true, json_pack("{s:s, s:I}", restore_dbfield(j),
		          j->dbname, "ms", (json_int_t)ms), "%s into %s: done in %.1f s", what, j->dbname,
		          (double)ms / 1000.0);
	else
		step_emit(j->ctx, j->stage, restore_kind(j), "restore", false, json_pack("{s:s, s:s}", restore_dbfield(j),
		          j->dbname, "error", err->message), "%s: %s", what, err->message);
	return ok;
}

/* Counts the restored tables and compares them with the manifest's. */
static bool
restore_counts(struct restore_job *j, const char *ci, struct rb_error *err)
{
	PGconn *sc = connect_conninfo(ci, j->dbname, err);
	struct btables got = {0};
	bool ok = sc != NULL;
	if (ok)
		ok = db_run(sc, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, j->ctx, err) &&
		     tables_count(sc, j->ctx, &got, err);
	char *what = j->test ? xstrdup("the test restore") : xasprintf("the restore into %s", j->dbname);
	if (ok)
		ok = compare_counts(&got, j->want, what, err);
	if (ok && j->test)
		step_emit(j->ctx, j->stage, "backup", "counts", true, json_pack("{s:I}", "tables", (json_int_t)got.n),
		          "row counts: all %zu tables of the test restore match the dump-time counts", got.n);
	else if (ok)
		step_emit(j->ctx, j->stage, "restore", "counts", true, json_pack("{s:s, s:I}", "database", j->dbname,
		          "tables", (json_int_t)got.n),
		          "row counts: all %zu tables restored into %s match the dump-time counts", got.n, j->dbname);
	else
		step_emit(j->ctx, j->stage, restore_kind(j), "counts", false, json_pack("{s:s, s:s}", restore_dbfield(j),
		          j->dbname, "error", err->message), "row counts: %s", err->message);
	if (ok && !j->test) {
		json_t *list = NULL;
		j->counts = tables_json(&got, &list);
		json_decref(list);
	}
	free(what);
	btables_free(&got);
	PQfinish(sc);
	return ok;
}

/*
 * Runs the job: create, pg_restore, counts. The database is dropped afterwards when this is a
 * test restore, and on any failure after it was created.
 */
static bool
restore_run(struct restore_job *j, struct rb_error *err)
{
	if (!restore_create(j, err))
		return false;
	char *ci = conninfo_for(j->conn, j->dbname);
	bool ok = restore_pg_restore(j, ci, err) && restore_counts(j, ci, err);
	free(ci);
	if (j->test || !ok)
		restore_drop(j);
	return ok;
}

/* Step 3 of a verification: the test restore into a scratch database (always dropped). */
static bool
verify_restore(struct verifier *v, struct rb_error *err)
{
	v->scratch = scratch_name(v->database);
	struct restore_job j = { .p = v->p, .ctx = v->ctx, .conn = v->conn, .tools = v->tools, .path = v->path,
	                         .want = json_object_get(v->manifest, "tables"), .dbname = v->scratch,
	                         .no_owner = true, .test = true, .stage = STAGE };
	bool ok = restore_run(&j, err);
	if (!j.created) {  /* nothing of ours to name in the manifest */
		free(v->scratch);
		v->scratch = NULL;
	}
	return ok;
}

/* Runs the verification steps (checksum unless skip_checksum); false with err saying why. */
static bool
verify_all(struct verifier *v, bool skip_checksum, struct rb_error *err)
{
	if (!skip_checksum && !verify_checksum(v, err))
		return false;
	if (rb_ctx_cancelled(v->ctx))
		return rb_error_setc(err, RB_EXIT_STEP, "the verification was cancelled");
	if (!verify_list(v, err))
		return false;
	if (rb_ctx_cancelled(v->ctx))
		return rb_error_setc(err, RB_EXIT_STEP, "the verification was cancelled");
	return verify_restore(v, err);
}

static void
manifest_set_verified(json_t *m, bool ok, const char *why, const char *scratch)
{
	char now[32];
	time_now_rfc3339(now);
	json_object_set_new(m, "verified", json_boolean(ok));
	json_object_set_new(m, "verification", json_pack("{s:s, s:s, s:s?}", "at", now, "why", why,
	                                                 "scratch_database", scratch));
}

static const char verified_why[] =
	"the SHA-256 matches, pg_restore --list lists every table's data, and a test restore holds the dump-time "
	"row count of every table";

/* --- taking a backup --- */

struct dumper {
	struct rb_ctx *ctx;
	const char    *partial;
	size_t         tables_total;
	size_t         started;    /* "dumping contents of table" lines */
	size_t         finished;   /* "finished item ... TABLE DATA" lines (parallel dumps) */
	long long      t0;
	long long      last_emit;
	size_t         last_done;
};

static size_t
dumper_done(const struct dumper *d)
{
	size_t done = d->finished > 0 ? d->finished : (d->started > 0 ? d->started - 1 : 0);
	return done > d->tables_total ? d->tables_total : done;
}

static void
dumper_emit(struct dumper *d, bool force)
{
	long long now = time_monotonic_ms();
	size_t done = dumper_done(d);
	if (!force && done == d->last_done && now - d->last_emit < 250)
		return;
	d->last_emit = now;
	d->last_done = done;
	int64_t bytes = tree_size(d->partial);
	double secs = (double)(now - d->t0) / 1000.0;
	json_int_t rate = secs > 0 ? (json_int_t)((double)bytes / secs) : 0;
	json_t *data = json_pack("{s:s, s:I, s:I, s:I, s:I}", "kind", "backup", "tables_done", (json_int_t)done,
	                         "tables_total", (json_int_t)d->tables_total, "bytes", (json_int_t)bytes, "rate", rate);
	events_emitf(d->ctx->bus, EV_PROGRESS, STAGE, data, NULL);
	json_decref(data);
}

static void
dumper_line(const char *line, void *ud)
{
	struct dumper *d = ud;
	if (strstr(line, ": dumping contents of table "))
		d->started++;
	else if (strstr(line, ": finished item ") && strstr(line, " TABLE DATA "))
		d->finished++;
	else
		return;
	dumper_emit(d, false);
}

static void
dumper_tick(void *ud)
{
	dumper_emit(ud, false);
}

/* "name" made safe for a file name: [A-Za-z0-9_.-] kept, the rest '_', no leading dot. Caller frees. */
static char *
file_safe(const char *s)
{
	char *r = xstrdup(*s ? s : "db");
	for (char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-' || *p == '.'))
			*p = '_';
	if (r[0] == '.')
		r[0] = '_';
	return r;
}

static bool
exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Moves what a failed dump left to "<final>.failed" (replacing an older one). */
static void
mark_failed(const char *partial, const char *final, char **failed_out)
{
	*failed_out = NULL;
	if (!exists(partial))
		return;
	char *failed = xasprintf("%s.failed", final);
	if (exists(failed))
		remove_tree(failed);
	if (rename(partial, failed) == 0) {
		*failed_out = failed;
		fsync_dir_of(failed);
	} else {
		remove_tree(partial);
		free(failed);
	}
}

static int64_t
database_size(PGconn *conn, struct rb_error *err)
{
	char *v = db_query_value(conn, "SELECT pg_catalog.pg_database_size(pg_catalog.current_database())", err);
	if (v == NULL)
		return -1;
	int64_t n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

/* The free-space check (see backup_take()). */
static bool
check_space(struct rb_ctx *ctx, const char *dir, int64_t dbsize, const char *database, struct rb_error *err)
{
	struct statvfs vfs;
	if (statvfs(dir, &vfs) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not read the free space of %s: %s", dir, strerror(errno));
	int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
	char fa[32], fd[32], fq[32];
	format_bytes(avail, fa, sizeof fa);
	format_bytes(dbsize, fd, sizeof fd);
	format_bytes(dbsize / 4, fq, sizeof fq);
	json_t *data = json_pack("{s:I, s:I, s:s}", "free", (json_int_t)avail, "database_size", (json_int_t)dbsize, "dir", dir);
	if (avail < dbsize / 4) {
		rb_error_setc(err, RB_EXIT_STEP, "not enough free space in %s for a backup of %s: %s free, the database is %s",
		              dir, database, fa, fd);
		rb_error_detail(err, "The estimate is the database size (pg_database_size, %" PRId64 " bytes). A dump "
		                "leaves out indexes and the custom format is compressed, so it is usually smaller, but "
		                "one below a quarter of the database (%s) is not to be counted on; %" PRId64 " bytes are free.",
		                dbsize, fq, avail);
		rb_error_hint(err, "Free space in %s or point backup.dir at a larger file system.", dir);
		step_event(ctx, "space", false, data, "free space: %s in %s, database %s: refused", fa, dir, fd);
		return false;
	}
	if (avail < dbsize)
		events_log(ctx->bus, LOG_LEVEL_WARN, STAGE, "only %s free in %s for a database of %s: the dump may not fit "
		           "(it is usually smaller than the database)", fa, dir, fd);
	step_event(ctx, "space", true, data, "free space: %s in %s, database %s", fa, dir, fd);
	return true;
}

bool
backup_take(const struct plan *p, const struct backup_opts *opts, struct rb_ctx *ctx, struct backup_result *r,
            struct rb_error *err)
{
	struct rb_ctx none = {0};
	if (ctx == NULL)
		ctx = &none;
	memset(r, 0, sizeof *r);
	const char *env = opts && opts->env ? opts->env : p->target;
	const char *who = opts && opts->who ? opts->who : util_user_name();
	r->environment = xstrdup(env);
	r->format = xstrdup(plan_backup_format_name(p->backup.format));
	json_t *sdata = json_pack("{s:s, s:s, s:s}", "environment", env, "who", who, "action", "take");
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sdata, "backing up %s", env);
	json_decref(sdata);

	char started[32];
	time_now_rfc3339(started);
	char *dir = NULL, *snapshot = NULL, *final = NULL, *partial = NULL, *conninfo = NULL, *manifest_path = NULL;
	struct tools tools = {0};
	struct server_id sid = {0};
	struct btables tables = {0};
	bool in_tx = false, ok = false;
	PGconn *conn = NULL;

	if (!p->backup.present) {
		rb_error_setc(err, RB_EXIT_PLAN, "the plan has no backup section");
		rb_error_hint(err, "Add \"backup: { dir: ./backups }\" to the plan (see pgrunbook-plan(5)).");
		goto out;
	}
	dir = backup_dir(p);
	if (!mkdir_p(dir, 0700)) {
		rb_error_setc(err, RB_EXIT_STEP, "could not create the backup directory %s: %s", dir, strerror(errno));
		goto out;
	}
	conn = db_connect_ctx(p, env, ctx, err);
	if (conn == NULL)
		goto out;
	r->database = xstrdup(PQdb(conn));
	server_id_read(conn, &sid);
	if (!tools_find(PQserverVersion(conn) / 10000, &tools, err))
		goto out;
	int64_t dbsize = database_size(conn, err);
	if (dbsize < 0)
		goto out;
	if (!check_space(ctx, dir, dbsize, r->database, err))
		goto out;

	/* The snapshot the counts and the dump share. */
	if (!db_run(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, ctx, err))
		goto out;
	in_tx = true;
	snapshot = db_query_value(conn, "SELECT pg_catalog.pg_export_snapshot()", err);
	if (snapshot == NULL || !tables_count(conn, ctx, &tables, err)) {
		step_event(ctx, "snapshot", false, json_pack("{s:s}", "error", err->message), "snapshot: %s", err->message);
		goto out;
	}
	step_event(ctx, "snapshot", true, json_pack("{s:s, s:I}", "snapshot", snapshot, "tables", (json_int_t)tables.n),
	           "snapshot %s exported; rows of %zu tables counted in it", snapshot, tables.n);

	/* Names: <db>-<UTC yyyymmddThhmmssZ>.dump|.dir; a suffix when taken twice in a second. */
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char ts[32];
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	char *safe = file_safe(r->database);
	const char *ext = p->backup.format == PLAN_BACKUP_DIRECTORY ? "dir" : "dump";
	for (int n = 1;; n++) {
		final = n == 1 ? xasprintf("%s/%s-%s.%s", dir, safe, ts, ext)
		               : xasprintf("%s/%s-%s-%d.%s", dir, safe, ts, n, ext);
		partial = xasprintf("%s.partial", final);
		manifest_path = xasprintf("%s.json", final);
		if (!exists(final) && !exists(partial) && !exists(manifest_path))
			break;
		free(final);
		free(partial);
		free(manifest_path);
	}
	free(safe);

	/* The dump. */
	conninfo = conninfo_for(conn, r->database);
	char *snap_arg = xasprintf("--snapshot=%s", snapshot);
	char *file_arg = xasprintf("--file=%s", partial);
	char *jobs_arg = xasprintf("--jobs=%d", p->backup.jobs > 1 ? p->backup.jobs : 1);
	char *argv[12];
	int a = 0;
	argv[a++] = tools.pg_dump;
	argv[a++] = (char *)"--verbose";
	argv[a++] = (char *)"--no-password";
	/* A lock queued behind pgrunbook's own snapshot transaction would wait forever unseen. */
	argv[a++] = (char *)"--lock-wait-timeout=30s";
	argv[a++] = (char *)(p->backup.format == PLAN_BACKUP_DIRECTORY ? "--format=directory" : "--format=custom");
	if (p->backup.format == PLAN_BACKUP_DIRECTORY)
		argv[a++] = jobs_arg;
	argv[a++] = snap_arg;
	argv[a++] = file_arg;
	argv[a++] = (char *)"--dbname";
	argv[a++] = conninfo;
	argv[a] = NULL;
	size_t nordinary = 0;
	for (size_t i = 0; i < tables.n; i++)
		nordinary += !tables.items[i].partitioned;
	struct dumper d = { .ctx = ctx, .partial = partial, .tables_total = nordinary, .t0 = time_monotonic_ms() };
	events_log(ctx->bus, LOG_LEVEL_INFO, STAGE, "running %s (%s format%s) into %s", tools.pg_dump, r->format,
	           p->backup.format == PLAN_BACKUP_DIRECTORY ? jobs_arg + 1 : "", partial);
	dumper_emit(&d, true);
	struct child c;
	bool started_ok = child_start(argv, false, &c, err);
	struct child_io io = { .on_line = dumper_line, .tick = dumper_tick, .ud = &d };
	int status = 0;
	if (started_ok)
		status = child_wait(&c, ctx, &io);
	free(snap_arg);
	free(file_arg);
	free(jobs_arg);
	/* The snapshot is no longer needed once pg_dump is done. */
	struct rb_error cerr = {0};
	db_run(conn, "COMMIT", 0, NULL, NULL, &cerr);
	rb_error_clear(&cerr);
	in_tx = false;
	if (started_ok && status_ok(status) && !io.cancelled && exists(partial)) {
		d.started = d.finished = nordinary + 1;
		dumper_emit(&d, true);
		if (rename(partial, final) != 0) {
			rb_error_setc(err, RB_EXIT_STEP, "could not rename %s to %s: %s", partial, final, strerror(errno));
			started_ok = false;
		} else {
			fsync_dir_of(final);
		}
	} else if (started_ok) {
		char *how = describe_status(status), *text = errors_text(&io);
		if (io.cancelled)
			rb_error_setc(err, RB_EXIT_STEP, "the backup was cancelled: pg_dump %s", how);
		else
			rb_error_setc(err, RB_EXIT_STEP, "pg_dump %s", how);
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ)
			rb_error_detail(err, "It hit the file size limit (ulimit -f) while writing %s.", partial);
		else if (io.stopped)
			rb_error_detail(err, "pg_dump stopped to read from the terminal (a password prompt) and was killed. "
			                "Passwords come only from .pgpass, PGPASSFILE or a service file.");
		else
			rb_error_detail(err, "%s", text);
		free(how);
		free(text);
		started_ok = false;
	}
	child_io_release(&io);
	if (!started_ok) {
		char *failed = NULL;
		mark_failed(partial, final, &failed);
		r->path = failed;
		step_event(ctx, "dump", false, json_pack("{s:s, s:s?}", "error", err->message, "left", failed),
		           "pg_dump: %s%s%s", err->message, failed ? "; what it wrote is kept as " : "", failed ? failed : "");
		goto out;
	}
	r->path = xstrdup(final);
	step_event(ctx, "dump", true, json_pack("{s:s, s:I}", "path", final, "ms", (json_int_t)(time_monotonic_ms() - d.t0)),
	           "pg_dump: %s written", final);

	/* Checksum, then the manifest (unverified), then verification. */
	if (!archive_checksum(final, r->sha256, &r->size, err)) {
		step_event(ctx, "checksum", false, json_pack("{s:s}", "error", err->message), "checksum: %s", err->message);
		goto out;
	}
	step_event(ctx, "checksum", true, json_pack("{s:s, s:I}", "sha256", r->sha256, "size", (json_int_t)r->size),
	           "SHA-256 %s of %" PRId64 " bytes", r->sha256, r->size);
	char finished[32];
	time_now_rfc3339(finished);
	json_t *list = NULL;
	json_t *tobj = tables_json(&tables, &list);
	char *base = strrchr(final, '/');
	r->manifest = json_pack("{s:i, s:s, s:s, s:s, s:o, s:s, s:s?, s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:o, s:o, "
	                        "s:b, s:n, s:s}",
	                        "pgrunbook_backup", MANIFEST_VERSION, "file", base ? base + 1 : final, "database",
	                        r->database, "environment", env, "server", server_id_json(&sid), "plan_hash", p->hash,
	                        "run_id", opts ? opts->run_id : NULL, "who", who, "started", started, "finished", finished,
	                        "format", r->format, "jobs", p->backup.jobs > 1 ? p->backup.jobs : 1, "size",
	                        (json_int_t)r->size, "sha256", r->sha256, "pg_dump", tools.version ? tools.version : "",
	                        "tables", tobj, "table_list", list, "verified", false, "verification", "pgrunbook_version",
	                        PACKAGE_VERSION);
	if (!manifest_write(manifest_path, r->manifest, err)) {
		step_event(ctx, "manifest", false, json_pack("{s:s}", "error", err->message), "manifest: %s", err->message);
		goto out;
	}
	r->manifest_path = xstrdup(manifest_path);

	struct verifier v = { .p = p, .ctx = ctx, .conn = conn, .tools = &tools, .path = final, .manifest = r->manifest,
	                      .database = r->database };
	ok = verify_all(&v, true, err);
	r->verified = ok;
	r->why = xstrdup(ok ? verified_why : err->message);
	manifest_set_verified(r->manifest, ok, r->why, v.scratch);
	free(v.scratch);
	struct rb_error merr = {0};
	if (!manifest_write(manifest_path, r->manifest, &merr)) {
		if (ok) {
			rb_error_clear(err);
			*err = merr;
			memset(&merr, 0, sizeof merr);
			ok = r->verified = false;
		}
		rb_error_clear(&merr);
	}
	step_event(ctx, "manifest", true, json_pack("{s:s, s:b}", "path", manifest_path, "verified", ok),
	           "manifest %s written (verified: %s)", manifest_path, ok ? "yes" : "no");
out:
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	if (!ok && r->why == NULL && err->message)
		r->why = xstrdup(err->message);
	if (in_tx) {
		struct rb_error rerr = {0};
		db_run(conn, "ROLLBACK", 0, NULL, NULL, &rerr);
		rb_error_clear(&rerr);
	}
	char size_text[32];
	format_bytes(r->size, size_text, sizeof size_text);
	char *done = xasprintf("backup of %s verified: %s (%s)", env, r->path ? r->path : "", size_text);
	stage_end(ctx, r, ok, err, done);
	free(done);
	PQfinish(conn);
	btables_free(&tables);
	server_id_free(&sid);
	tools_free(&tools);
	free(dir);
	free(snapshot);
	free(final);
	free(partial);
	free(conninfo);
	free(manifest_path);
	return ok;
}

/* --- verifying an existing backup --- */

/* "<x>.json" for an archive, the archive for "<x>.json". Both caller-freed. */
static void
split_paths(const char *path, char **archive, char **manifest)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n > 5 && strncmp(path + n - 5, ".json", 5) == 0) {
		*archive = xstrndup(path, n - 5);
		*manifest = xstrndup(path, n);
	} else {
		*archive = xstrndup(path, n);
		*manifest = xasprintf("%s.json", *archive);
	}
}

bool
backup_verify(const struct plan *p, const char *path, struct rb_ctx *ctx, struct backup_result *r,
              struct rb_error *err)
{
	struct rb_ctx none = {0};
	if (ctx == NULL)
		ctx = &none;
	memset(r, 0, sizeof *r);
	char *archive = NULL, *mpath = NULL;
	split_paths(path, &archive, &mpath);
	r->path = xstrdup(archive);
	json_t *m = manifest_read(mpath, err);
	const char *menv = m ? json_string_value(json_object_get(m, "environment")) : NULL;
	const char *env = menv && plan_env_find(p, menv) ? menv : p->target;
	r->environment = xstrdup(env);
	json_t *sdata = json_pack("{s:s, s:s, s:s, s:s}", "environment", env, "who", util_user_name(), "action", "verify",
	                          "path", archive);
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sdata, "verifying the backup %s", archive);
	json_decref(sdata);
	bool ok = false;
	PGconn *conn = NULL;
	struct tools tools = {0};
	struct verifier v = {0};
	if (m == NULL)
		goto out;
	r->manifest = m;
	r->manifest_path = xstrdup(mpath);
	r->database = xstrdup(json_string_value(json_object_get(m, "database")));
	const char *fmt = json_string_value(json_object_get(m, "format"));
	r->format = fmt ? xstrdup(fmt) : NULL;
	r->size = json_integer_value(json_object_get(m, "size"));
	snprintf(r->sha256, sizeof r->sha256, "%s", json_string_value(json_object_get(m, "sha256")));
	if (!exists(archive)) {
		rb_error_setc(err, RB_EXIT_STEP, "the archive %s does not exist", archive);
		rb_error_detail(err, "Its manifest %s is there.", mpath);
		goto mark;
	}
	conn = db_connect_ctx(p, env, ctx, err);
	if (conn == NULL)
		goto out;
	if (!tools_find(PQserverVersion(conn) / 10000, &tools, err))
		goto out;
	v = (struct verifier){ .p = p, .ctx = ctx, .conn = conn, .tools = &tools, .path = archive, .manifest = m,
	                       .database = r->database };
	ok = verify_all(&v, false, err);
mark:
	if (!ok && rb_ctx_cancelled(ctx))
		goto out;  /* cancelled: says nothing about the backup, the manifest stays as it was */
	r->verified = ok;
	r->why = xstrdup(ok ? verified_why : err->message);
	manifest_set_verified(m, ok, r->why, v.scratch);
	struct rb_error merr = {0};
	if (!manifest_write(mpath, m, &merr))  /* a read-only copy can still be verified */
		events_log(ctx->bus, LOG_LEVEL_WARN, STAGE, "the outcome could not be recorded in the manifest: %s",
		           merr.message);
	rb_error_clear(&merr);
out:
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	if (!ok && r->why == NULL && err->message)
		r->why = xstrdup(err->message);
	char *done = xasprintf("backup %s verified", archive);
	stage_end(ctx, r, ok, err, done);
	free(done);
	free(v.scratch);
	if (r->manifest == NULL)
		json_decref(m);
	PQfinish(conn);
	tools_free(&tools);
	free(archive);
	free(mpath);
	return ok;
}

/* --- the newest verified backup --- */

struct candidate {
	char     *manifest_path;
	json_t   *m;
	long long finished_ms;   /* the manifest's "finished", to the millisecond */
};

static int
cmp_candidate(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	/* newest first; two backups finished in the same second are ordered by their milliseconds,
	 * not by name ("X.dump" would sort after "X-2.dump") */
	if (x->finished_ms != y->finished_ms)
		return x->finished_ms < y->finished_ms ? 1 : -1;
	return strcmp(y->manifest_path, x->manifest_path);
}

bool
backup_find_recent(const struct plan *p, const char *env, int64_t max_age_ms, struct backup_result *r,
                   struct rb_error *err)
{
	memset(r, 0, sizeof *r);
	if (!p->backup.present)
		return rb_error_setc(err, RB_EXIT_PLAN, "the plan has no backup section");
	if (env == NULL)
		env = p->target;
	if (max_age_ms <= 0)
		max_age_ms = p->backup.max_age_ms;
	PGconn *conn = db_connect(p, env, err);
	if (conn == NULL)
		return false;
	struct server_id sid = {0};
	server_id_read(conn, &sid);
	char *database = xstrdup(PQdb(conn));
	PQfinish(conn);

	char *dir = backup_dir(p);
	struct candidate *cands = NULL;
	size_t ncand = 0, cap = 0;
	size_t n_other = 0, n_unverified = 0, n_old = 0, n_damaged = 0;
	long long now_ms = time_now_ms();
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		char *mp = xasprintf("%s/%s", dir, de->d_name);
		struct rb_error e = {0};
		json_t *m = manifest_read(mp, &e);
		rb_error_clear(&e);
		long long fin_ms;
		if (m == NULL) {
			free(mp);
			continue;
		}
		/*
		 * The same environment of the plan, database and server: a physical clone (a standby, a
		 * pg_basebackup copy) shares the system identifier, so that alone is not enough.
		 */
		const char *menv = json_string_value(json_object_get(m, "environment"));
		const char *mdb = json_string_value(json_object_get(m, "database"));
		if (menv == NULL || strcmp(menv, env) != 0 || mdb == NULL || strcmp(mdb, database) != 0 ||
		    !server_matches(json_object_get(m, "server"), &sid)) {
			n_other++;
		} else if (!json_is_true(json_object_get(m, "verified"))) {
			n_unverified++;
		} else if (!time_parse_rfc3339(json_string_value(json_object_get(m, "finished")), &fin_ms) ||
		           now_ms - fin_ms > max_age_ms || fin_ms > now_ms + 300000) {
			n_old++;
		} else {
			if (ncand == cap) {
				cap = cap ? cap * 2 : 8;
				cands = xrealloc(cands, cap * sizeof *cands);
			}
			cands[ncand++] = (struct candidate){ .manifest_path = mp, .m = m, .finished_ms = fin_ms };
			continue;
		}
		json_decref(m);
		free(mp);
	}
	if (d)
		closedir(d);
	if (ncand > 1)
		qsort(cands, ncand, sizeof *cands, cmp_candidate);
	bool found = false;
	struct strbuf damaged = {0};
	for (size_t i = 0; i < ncand; i++) {
		if (found) {
			json_decref(cands[i].m);
			free(cands[i].manifest_path);
			continue;
		}
		const char *file = json_string_value(json_object_get(cands[i].m, "file"));
		char *archive = file && !strchr(file, '/') ? xasprintf("%s/%s", dir, file) : NULL;
		char hex[65];
		int64_t size = 0;
		struct rb_error e = {0};
		bool same = archive && archive_checksum(archive, hex, &size, &e) &&
		            size == (int64_t)json_integer_value(json_object_get(cands[i].m, "size")) &&
		            strcmp(hex, json_string_value(json_object_get(cands[i].m, "sha256"))) == 0;
		rb_error_clear(&e);
		if (same) {
			found = true;
			r->path = archive;
			r->manifest_path = cands[i].manifest_path;
			r->manifest = cands[i].m;
			r->environment = xstrdup(env);
			r->database = xstrdup(database);
			const char *fmt = json_string_value(json_object_get(cands[i].m, "format"));
			r->format = fmt ? xstrdup(fmt) : NULL;
			r->size = size;
			memcpy(r->sha256, hex, sizeof hex);
			r->verified = true;
			r->why = xstrdup("its manifest says verified and its SHA-256 still matches");
			continue;
		}
		n_damaged++;
		strbuf_addf(&damaged, "%s%s", damaged.len ? ", " : "", archive ? archive : cands[i].manifest_path);
		free(archive);
		json_decref(cands[i].m);
		free(cands[i].manifest_path);
	}
	free(cands);
	if (!found) {
		char age[32];
		plan_format_duration(max_age_ms, age, sizeof age);
		rb_error_setc(err, RB_EXIT_STEP, "no verified backup of %s (%s) younger than %s in %s", database, env, age, dir);
		rb_error_detail(err, "Found: %zu older, %zu not verified, %zu of another database or server, %zu whose archive "
		                "no longer matches its SHA-256%s%s.", n_old, n_unverified, n_other, n_damaged,
		                damaged.len ? ": " : "", damaged.len ? damaged.buf : "");
		rb_error_hint(err, "Take one with \"pgrunbook backup --plan %s%s%s\".", p->path, env == p->target ? "" : " --env ",
		              env == p->target ? "" : env);
	}
	strbuf_release(&damaged);
	server_id_free(&sid);
	free(database);
	free(dir);
	return found;
}

bool
backup_precondition(const struct plan *p, const char *env, const char *database, const char *stage,
                    const char *verb, bool backup_ok, const char *waive_backup, const char *who,
                    struct rb_ctx *ctx, struct rb_error *err)
{
	if (backup_ok)
		return true;
	char *none = NULL;   /* why no recent backup counts */
	if (p->backup.present) {
		struct backup_result br = {0};
		struct rb_error e = {0};
		if (backup_find_recent(p, env, 0, &br, &e)) {
			const char *finished = json_string_value(json_object_get(br.manifest, "finished"));
			json_t *data = json_pack("{s:s, s:s, s:s, s:s?}", "kind", "backup_found", "path", br.path,
			                         "sha256", br.sha256, "finished", finished);
			events_emitf(ctx->bus, EV_STEP, stage, data, "using the verified backup %s of %s (finished %s)",
			             br.path, database, finished ? finished : "?");
			json_decref(data);
			backup_result_free(&br);
			rb_error_clear(&e);
			return true;
		}
		none = e.detail ? xasprintf("%s: %s", e.message ? e.message : "none found", e.detail) :
		       xstrdup(e.message ? e.message : "none found");
		backup_result_free(&br);
		rb_error_clear(&e);
	} else {
		none = xstrdup("the plan has no backup section, so pgrunbook takes none");
	}
	bool ok = confirm_backup_precondition(ctx, stage, verb, database, false, waive_backup, who, err);
	if (!ok && waive_backup == NULL) {
		rb_error_detail(err, "%c%s needs a verified backup of its target: one taken in this run, or one taken by "
		                "pgrunbook backup within backup.max_age (DESIGN.md \"Preconditions\"), or a typed waiver. "
		                "No backup counts: %s.", toupper((unsigned char)stage[0]), stage + 1, none);
		char *phrase = confirm_phrase("waive-backup", database);
		rb_error_hint(err, "Take one with pgrunbook backup --plan FILE%s, or %s without a backup by typing the "
		              "waiver: --waive-backup \"%s\" (it is journaled).", p->backup.present ? "" :
		              " (after adding a backup section to the plan)", verb, phrase);
		free(phrase);
	}
	free(none);
	return ok;
}

/* --- restoring into a new database --- */

PGconn *
backup_connect_server(const struct plan *p, const char *env, const char *dbname, char **env_db,
                      struct rb_error *err)
{
	if (env_db)
		*env_db = NULL;
	if (env == NULL)
		env = p->target;
	const struct plan_env *e = plan_env_find(p, env);
	if (e == NULL) {
		rb_error_setc(err, RB_EXIT_PLAN, "the plan has no environment \"%s\"", env);
		return NULL;
	}
	char *ci = db_env_conninfo(e, err);
	if (ci == NULL)
		return NULL;
	if (env_db) {
		/* the options as libpq resolves them (service file, environment), without connecting */
		const char *const kw[] = { "dbname", NULL };
		const char *const val[] = { ci, NULL };
		PGconn *probe = PQconnectStartParams(kw, val, 1);
		if (probe && PQdb(probe) && *PQdb(probe))  /* set once the options are parsed, even if connecting fails */
			*env_db = xstrdup(PQdb(probe));
		PQfinish(probe);
		if (*env_db == NULL) {
			rb_error_setc(err, RB_EXIT_CONNECT, "could not tell the database of environment \"%s\"", env);
			free(ci);
			return NULL;
		}
	}
	const char *names[2] = { dbname, NULL };
	if (dbname == NULL) {
		names[0] = "postgres";
		names[1] = "template1";
	}
	PGconn *c = NULL;
	for (int i = 0; i < 2 && names[i] && c == NULL; i++) {
		rb_error_clear(err);
		/* the second dbname is a plain name and overrides the one in the connection string */
		const char *const kw[] = { "dbname", "dbname", "fallback_application_name", "client_encoding",
		                           "options", NULL };
		const char *const val[] = { ci, names[i], "pgrunbook", "UTF8",
		                            "-c default_transaction_read_only=off -c TimeZone=UTC", NULL };
		c = PQconnectdbParams(kw, val, 1);
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			char *m = c ? xstrndup(PQerrorMessage(c), strcspn(PQerrorMessage(c), "\n")) : xstrdup("out of memory");
			rb_error_setc(err, RB_EXIT_CONNECT, "could not connect to database %s of environment \"%s\": %s",
			              names[i], env, m);
			free(m);
			PQfinish(c);
			c = NULL;
		}
	}
	free(ci);
	if (c == NULL && env_db) {
		free(*env_db);
		*env_db = NULL;
	}
	return c;
}

/*
 * CREATE DATABASE options giving the new database the encoding and locale of database `like`
 * (PG 15: also its locale provider). Caller frees; NULL with err when `like` is not found.
 */
static char *
create_opts_like(PGconn *conn, const char *like, const struct rb_ctx *ctx, struct rb_error *err)
{
	bool v15 = PQserverVersion(conn) >= 150000;
	const char *sql = v15 ?
		"SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, datlocprovider::pg_catalog.text, "
		"daticulocale FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1" :
		"SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, 'c', NULL "
		"FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1";
	const char *params[1] = { like };
	PGresult *res = db_exec(conn, sql, 1, params, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			db_error_from_result(err, res, RB_EXIT_STEP);
		else
			rb_error_setc(err, RB_EXIT_STEP, "database %s does not exist", like);
		rb_error_prefix(err, "could not read the encoding and locale of %s", like);
		PQclear(res);
		return NULL;
	}
	struct strbuf sb = {0};
	const char *keys[] = { "ENCODING", "LC_COLLATE", "LC_CTYPE" };
	for (int i = 0; i < 3; i++) {
		char *lit = PQescapeLiteral(conn, PQgetvalue(res, 0, i), strlen(PQgetvalue(res, 0, i)));
		strbuf_addf(&sb, "%s%s %s", i ? " " : "", keys[i], lit ? lit : "''");
		PQfreemem(lit);
	}
	if (PQgetvalue(res, 0, 3)[0] == 'i' && !PQgetisnull(res, 0, 4)) {
		char *lit = PQescapeLiteral(conn, PQgetvalue(res, 0, 4), strlen(PQgetvalue(res, 0, 4)));
		strbuf_addf(&sb, " LOCALE_PROVIDER icu ICU_LOCALE %s", lit ? lit : "''");
		PQfreemem(lit);
	}
	PQclear(res);
	return strbuf_detach(&sb);
}

bool
backup_restore(const struct plan *p, const char *path, const struct backup_restore_opts *opts,
               struct rb_ctx *ctx, json_t **counts, struct rb_error *err)
{
	struct rb_ctx none = {0};
	if (ctx == NULL)
		ctx = &none;
	if (counts)
		*counts = NULL;
	const char *stage = opts->stage ? opts->stage : STAGE;
	const char *env = opts->env ? opts->env : p->target;
	const char *dbname = opts->dbname;
	if (dbname == NULL || dbname[0] == '\0' || strlen(dbname) > 63)
		return rb_error_setc(err, RB_EXIT_STEP, "invalid name for the new database: \"%s\"", dbname ? dbname : "");
	char *archive = NULL, *mpath = NULL, *env_db = NULL, *create_opts = NULL;
	split_paths(path, &archive, &mpath);
	struct tools tools = {0};
	PGconn *conn = NULL;
	bool ok = false;
	json_t *m = manifest_read(mpath, err);
	if (m == NULL) {
		step_emit(ctx, stage, "restore", "checksum", false, json_pack("{s:s, s:s}", "database", dbname, "error",
		          err->message), "checksum: %s", err->message);
		goto out;
	}
	if (!json_is_true(json_object_get(m, "verified"))) {
		const char *why = json_string_value(json_object_get(json_object_get(m, "verification"), "why"));
		rb_error_setc(err, RB_EXIT_STEP, "the backup %s is not verified", archive);
		rb_error_detail(err, "Its manifest says: %s.", why ? why : "never verified");
		rb_error_hint(err, "Verify it with \"pgrunbook backup verify %s\" or take a new one.", archive);
		step_emit(ctx, stage, "restore", "checksum", false, json_pack("{s:s, s:s}", "database", dbname, "error",
		          err->message), "checksum: %s", err->message);
		goto out;
	}
	if (!exists(archive)) {
		rb_error_setc(err, RB_EXIT_STEP, "the archive %s does not exist", archive);
		rb_error_detail(err, "Its manifest %s is there.", mpath);
		step_emit(ctx, stage, "restore", "checksum", false, json_pack("{s:s, s:s}", "database", dbname, "error",
		          err->message), "checksum: %s", err->message);
		goto out;
	}
	if (!archive_matches(ctx, stage, "restore", archive, m, err))
		goto out;
	if (rb_ctx_cancelled(ctx)) {
		rb_error_setc(err, RB_EXIT_STEP, "the restore into %s was cancelled", dbname);
		goto out;
	}
	conn = backup_connect_server(p, env, NULL, &env_db, err);
	if (conn == NULL)
		goto out;
	if (!tools_find(PQserverVersion(conn) / 10000, &tools, err))
		goto out;
	const char *params[1] = { dbname };
	PGresult *res = db_exec(conn, "SELECT FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1", 1,
	                        params, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		goto out;
	}
	bool taken = PQntuples(res) > 0;
	PQclear(res);
	if (taken) {
		rb_error_setc(err, RB_EXIT_STEP, "database %s already exists", dbname);
		rb_error_detail(err, "A restore goes into a new database only; nothing was changed.");
		step_emit(ctx, stage, "restore", "create", false, json_pack("{s:s, s:s}", "database", dbname, "error",
		          err->message), "create: %s", err->message);
		goto out;
	}
	create_opts = create_opts_like(conn, env_db, ctx, err);
	if (create_opts == NULL)
		goto out;
	struct restore_job j = { .p = p, .ctx = ctx, .conn = conn, .tools = &tools, .path = archive,
	                         .want = json_object_get(m, "tables"), .dbname = dbname, .create_opts = create_opts,
	                         .no_owner = opts->no_owner, .test = false, .stage = stage };
	ok = restore_run(&j, err);
	if (ok && counts)
		*counts = j.counts;
	else
		json_decref(j.counts);
out:
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	json_decref(m);
	PQfinish(conn);
	tools_free(&tools);
	free(create_opts);
	free(env_db);
	free(archive);
	free(mpath);
	return ok;
}

bool
backup_check(const struct plan *p, const char *env, const char *path, struct backup_result *r, struct rb_error *err)
{
	memset(r, 0, sizeof *r);
	if (env == NULL)
		env = p->target;
	char *archive = NULL, *mpath = NULL, *env_db = NULL;
	split_paths(path, &archive, &mpath);
	bool ok = false;
	json_t *m = manifest_read(mpath, err);
	r->path = archive;
	r->environment = xstrdup(env);
	if (m == NULL)
		goto out;
	r->manifest = m;
	r->manifest_path = xstrdup(mpath);
	const char *mdb = json_string_value(json_object_get(m, "database"));
	const char *fmt = json_string_value(json_object_get(m, "format"));
	r->database = xstrdup(mdb);
	r->format = fmt ? xstrdup(fmt) : NULL;
	r->size = json_integer_value(json_object_get(m, "size"));
	if (!json_is_true(json_object_get(m, "verified"))) {
		const char *why = json_string_value(json_object_get(json_object_get(m, "verification"), "why"));
		rb_error_setc(err, RB_EXIT_STEP, "the backup %s is not verified", archive);
		rb_error_detail(err, "Its manifest says: %s.", why ? why : "never verified");
		goto out;
	}
	PGconn *conn = backup_connect_server(p, env, NULL, &env_db, err);
	if (conn == NULL)
		goto out;
	struct server_id sid = {0};
	server_id_read(conn, &sid);
	PQfinish(conn);
	bool same_server = server_matches(json_object_get(m, "server"), &sid);
	server_id_free(&sid);
	if (strcmp(mdb, env_db) != 0 || !same_server) {
		rb_error_setc(err, RB_EXIT_STEP, "the backup %s is of %s, not of %s (%s)", archive,
		              strcmp(mdb, env_db) != 0 ? "another database" : "another server", env_db, env);
		rb_error_detail(err, "Its manifest names database %s on %s:%s.", mdb,
		                json_string_value(json_object_get(json_object_get(m, "server"), "host")),
		                json_string_value(json_object_get(json_object_get(m, "server"), "port")));
		goto out;
	}
	int64_t size = 0;
	if (!exists(archive)) {
		rb_error_setc(err, RB_EXIT_STEP, "the archive %s does not exist", archive);
		goto out;
	}
	if (!archive_checksum(archive, r->sha256, &size, err))
		goto out;
	const char *want = json_string_value(json_object_get(m, "sha256"));
	if (size != r->size || strcmp(r->sha256, want) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "the archive %s no longer matches its manifest (%s)", archive,
		              size != r->size ? "size" : "SHA-256");
		rb_error_detail(err, "The backup was cut off or changed after it was taken.");
		goto out;
	}
	r->verified = true;
	r->why = xstrdup("its manifest says verified and its SHA-256 still matches");
	ok = true;
out:
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	if (!ok && r->why == NULL && err->message)
		r->why = xstrdup(err->message);
	if (r->manifest == NULL)
		json_decref(m);
	free(env_db);
	free(mpath);
	return ok;
}

void
backup_warn_leftovers(PGconn *conn, struct events *bus, const char *stage, const char *db, const char *suffix,
               const char *tail, const char *what)
{
	if (bus == NULL)
		return;
	char *pattern = xasprintf("^%s%s$", suffix, tail);
	const char *params[2] = { db, pattern };
	PGresult *res = db_exec(conn, "SELECT datname FROM pg_catalog.pg_database WHERE pg_catalog.\"left\"(datname, "
	                        "pg_catalog.length($1)) OPERATOR(pg_catalog.=) $1 AND pg_catalog.substr(datname, "
	                        "pg_catalog.length($1) OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.~) $2 ORDER BY 1",
	                        2, params, NULL);
	for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
		char *q = db_quote_ident(conn, PQgetvalue(res, i, 0));
		events_log(bus, LOG_LEVEL_WARN, stage, "the database %s is left over from an earlier %s (a full copy; it "
		           "is not dropped automatically): when nothing needs it, run DROP DATABASE %s",
		           PQgetvalue(res, i, 0), what, q);
		free(q);
	}
	PQclear(res);
	free(pattern);
}
