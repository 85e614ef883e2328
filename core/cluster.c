/* cluster.c: throwaway local PostgreSQL clusters (initdb + pg_ctl) for the demo and the tests. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cluster.h"

#define CLUSTER_SUPERUSER "postgres"
#define SOCKET_PATH_MAX 107

static bool
is_executable(const char *dir, const char *prog)
{
	char *p = xasprintf("%s/%s", dir, prog);
	bool ok = access(p, X_OK) == 0;
	free(p);
	return ok;
}

/* Runs argv[0] with argv and returns its stdout's first line (caller frees), or NULL. */
static char *
capture_line(char *const argv[])
{
	int fds[2];
	if (pipe(fds) != 0)
		return NULL;
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		util_cloexec_above_stderr();
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return NULL;
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return len ? xstrdup(buf) : NULL;
}

char *
cluster_find_bindir(struct rb_error *err)
{
	const char *env = getenv("PG_BINDIR");
	if (env && *env) {
		if (is_executable(env, "initdb") && is_executable(env, "pg_ctl"))
			return xstrdup(env);
		rb_error_setc(err, RB_EXIT_STEP, "PG_BINDIR=%s holds no initdb and pg_ctl", env);
		return NULL;
	}
	char *const argv[] = { (char *)"pg_config", (char *)"--bindir", NULL };
	char *dir = capture_line(argv);
	if (dir && is_executable(dir, "initdb") && is_executable(dir, "pg_ctl"))
		return dir;
	free(dir);

	/* Debian layout: /usr/lib/postgresql/<major>/bin; take the newest. */
	DIR *d = opendir("/usr/lib/postgresql");
	int best = -1;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char *end;
			long v = strtol(de->d_name, &end, 10);
			if (*end != '\0' || v <= 0 || v > 1000)
				continue;
			char *bin = xasprintf("/usr/lib/postgresql/%ld/bin", v);
			if (is_executable(bin, "initdb") && is_executable(bin, "pg_ctl") && v > best)
				best = (int)v;
			free(bin);
		}
		closedir(d);
	}
	if (best > 0)
		return xasprintf("/usr/lib/postgresql/%d/bin", best);
	rb_error_setc(err, RB_EXIT_STEP, "no PostgreSQL server binaries found (initdb, pg_ctl)");
	rb_error_hint(err, "Install them with \"apt-get install -y postgresql-15\", or set PG_BINDIR.");
	return NULL;
}

/* The user the server must run as: NULL when we are not root. */
static char *
pick_run_user(void)
{
	if (geteuid() != 0)
		return NULL;
	const char *u = getenv("PGRUNBOOK_CLUSTER_USER");
	return xstrdup(u && *u ? u : "nobody");
}

/*
 * Runs a program, as c->run_user when set, with stdout and stderr appended to logpath.
 * Returns true when it exits 0.
 */
static bool
run_as(const struct cluster *c, char *const argv[], const char *logpath, struct rb_error *err)
{
	uid_t uid = 0;
	gid_t gid = 0;
	if (c->run_user) {
		struct passwd *pw = getpwnam(c->run_user);
		if (pw == NULL)
			return rb_error_setc(err, RB_EXIT_STEP, "user \"%s\" to run the server as does not exist",
			                     c->run_user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	pid_t pid = fork();
	if (pid < 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		if (c->run_user) {
			if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
				perror("pgrunbook: could not switch user");
				_exit(126);
			}
		}
		if (chdir(c->base) != 0)
			_exit(126);
		/* Our own libpq settings must not leak into initdb/pg_ctl. */
		unsetenv("PGDATA");
		unsetenv("PGPORT");
		unsetenv("PGHOST");
		util_cloexec_above_stderr();
		execv(argv[0], argv);
		perror("pgrunbook: exec");
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return rb_error_setc(err, RB_EXIT_STEP, "waitpid: %s", strerror(errno));
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	rb_error_setc(err, RB_EXIT_STEP, "%s failed (%s %d)", argv[0],
	              WIFEXITED(status) ? "exit code" : "signal",
	              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return false;
}

/* Adds the last lines of a log file to err's detail. */
static void
detail_from_log(struct rb_error *err, const char *path)
{
	size_t len = 0;
	char *text = file_read_all(path, &len);
	if (text == NULL)
		return;
	size_t start = len;
	int lines = 0;
	while (start > 0 && lines < 8) {
		start--;
		if (text[start] == '\n' && start + 1 < len)
			lines++;
	}
	if (lines == 8)
		start++;
	char *tail = text + start;
	size_t tl = strlen(tail);
	while (tl > 0 && tail[tl - 1] == '\n')
		tail[--tl] = '\0';
	if (tl > 0)
		rb_error_detail(err, "Last lines of %s:\n%s", path, tail);
	free(text);
}

static int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool
save_state(const struct cluster *c, struct rb_error *err)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}",
	                      "base", c->base, "datadir", c->datadir, "sockdir", c->sockdir,
	                      "logfile", c->logfile, "bindir", c->bindir, "superuser", c->superuser,
	                      "port", c->port);
	json_object_set_new(o, "run_user", c->run_user ? json_string(c->run_user) : json_null());
	char *path = xasprintf("%s/cluster.json", c->base);
	int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (rc != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not write %s: %s", path, strerror(errno));
		free(path);
		return false;
	}
	free(path);
	return true;
}

static bool
append_conf(const struct cluster *c, struct rb_error *err)
{
	char *path = xasprintf("%s/postgresql.conf", c->datadir);
	FILE *f = fopen(path, "a");
	if (f == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "could not open %s: %s", path, strerror(errno));
		free(path);
		return false;
	}
	fprintf(f,
	        "\n# pgrunbook throwaway cluster\n"
	        "listen_addresses = '127.0.0.1'\n"
	        "port = %d\n"
	        "unix_socket_directories = '%s'\n"  /* quotes refused in cluster_create */
	        "unix_socket_permissions = 0777\n"
	        "fsync = off\n"
	        "synchronous_commit = off\n"
	        "full_page_writes = off\n"
	        "max_connections = 100\n"
	        "wal_level = replica\n"
	        "max_wal_senders = 4\n"
	        "log_min_messages = warning\n"
	        "log_line_prefix = '%%m [%%p] '\n",
	        c->port, c->sockdir);
	bool ok = fclose(f) == 0;
	if (!ok)
		rb_error_setc(err, RB_EXIT_STEP, "could not write %s: %s", path, strerror(errno));
	free(path);
	return ok;
}

/* Replaces `port = N` in our block by writing the block again (last setting wins). */
static bool
set_port(struct cluster *c, struct rb_error *err)
{
	c->port = free_port();
	if (c->port <= 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not find a free TCP port on 127.0.0.1");
	return append_conf(c, err);
}

static struct cluster *
cluster_alloc(const char *base)
{
	struct cluster *c = xcalloc(1, sizeof *c);
	c->base = xstrdup(base);
	c->datadir = xasprintf("%s/data", base);
	c->sockdir = xasprintf("%s/sock", base);
	c->logfile = xasprintf("%s/server.log", base);
	return c;
}

static bool
chown_to(const struct cluster *c, const char *path, struct rb_error *err)
{
	if (c->run_user == NULL)
		return true;
	struct passwd *pw = getpwnam(c->run_user);
	if (pw == NULL)
		return rb_error_setc(err, RB_EXIT_STEP, "user \"%s\" to run the server as does not exist",
		                     c->run_user);
	if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not give %s to %s: %s", path, c->run_user,
		                     strerror(errno));
	return true;
}

struct cluster *
cluster_create(const char *base, struct rb_error *err)
{
	char *bindir = cluster_find_bindir(err);
	if (bindir == NULL)
		return NULL;

	char *dir;
	if (base == NULL) {
		const char *tmp = getenv("TMPDIR");
		char *templ = xasprintf("%s/pgrunbook-cluster-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(templ) == NULL) {
			rb_error_setc(err, RB_EXIT_STEP, "could not create a directory from %s: %s", templ,
			              strerror(errno));
			free(templ);
			free(bindir);
			return NULL;
		}
		dir = templ;
	} else {
		if (mkdir(base, 0700) != 0) {
			rb_error_setc(err, RB_EXIT_STEP, "could not create cluster directory %s: %s", base,
			              strerror(errno));
			free(bindir);
			return NULL;
		}
		dir = realpath(base, NULL);
		if (dir == NULL) {
			rb_error_setc(err, RB_EXIT_STEP, "could not resolve %s: %s", base, strerror(errno));
			free(bindir);
			return NULL;
		}
	}

	struct cluster *c = cluster_alloc(dir);
	free(dir);
	c->bindir = bindir;
	c->run_user = pick_run_user();
	c->superuser = xstrdup(CLUSTER_SUPERUSER);

	if (strpbrk(c->base, "'\\\n,") != NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "cluster directory %s holds a quote, backslash, comma or "
		              "newline, which postgresql.conf cannot take", c->base);
		rb_error_hint(err, "Choose another directory.");
		goto fail;
	}
	if (strlen(c->sockdir) + sizeof("/.s.PGSQL.65535") > SOCKET_PATH_MAX) {
		rb_error_setc(err, RB_EXIT_STEP, "cluster directory path too long for a Unix socket: %s", c->sockdir);
		rb_error_hint(err, "Choose a shorter directory.");
		goto fail;
	}
	/*
	 * The base directory stays ours (root's, when root): only data/, sock/ and server.log are
	 * given to the server's user, so that user can never plant a link where we write
	 * cluster.json or the logs. Under root the base must be searchable by the server's user.
	 */
	if (c->run_user && chmod(c->base, 0755) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not chmod %s: %s", c->base, strerror(errno));
		goto fail;
	}
	if (mkdir(c->sockdir, 0700) != 0 || mkdir(c->datadir, 0700) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not create directories in %s: %s", c->base,
		              strerror(errno));
		goto fail;
	}
	int logfd = open(c->logfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (logfd < 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not create %s: %s", c->logfile, strerror(errno));
		goto fail;
	}
	close(logfd);
	if (!chown_to(c, c->sockdir, err) || !chown_to(c, c->datadir, err) ||
	    !chown_to(c, c->logfile, err))
		goto fail;

	char *initdb = xasprintf("%s/initdb", c->bindir);
	char *const argv[] = { initdb, (char *)"-D", c->datadir, (char *)"-U", c->superuser,
	                       (char *)"--auth-local=trust", (char *)"--auth-host=scram-sha-256",
	                       (char *)"-E", (char *)"UTF8", (char *)"--no-locale", (char *)"--no-sync",
	                       NULL };
	char *initlog = xasprintf("%s/initdb.log", c->base);
	bool ok = run_as(c, argv, initlog, err);
	free(initdb);
	if (!ok) {
		detail_from_log(err, initlog);
		if (c->run_user)
			rb_error_hint(err, "The server runs as \"%s\"; every directory above %s must be "
			              "searchable by that user.", c->run_user, c->base);
		free(initlog);
		goto fail;
	}
	free(initlog);

	for (int attempt = 0; attempt < 3; attempt++) {
		rb_error_clear(err);
		if (!set_port(c, err) || !save_state(c, err))
			goto fail;
		if (cluster_start(c, err))
			return c;
	}
fail:
	cluster_free(c);
	return NULL;
}

/*
 * cluster.json is trusted only when we wrote it: a regular file (not a link) owned by us and
 * writable by nobody else. Even then the programs run and the user they run as are never taken
 * from it (a planted file must not choose what root executes).
 */
static bool
state_file_trusted(const char *path, struct rb_error *err)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "cannot read %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%s was not written by this user; not trusting it", path);
		rb_error_detail(err, "It must be a regular file owned by uid %lu and writable only by it.",
		                (unsigned long)geteuid());
		return false;
	}
	return true;
}

struct cluster *
cluster_load(const char *base, struct rb_error *err)
{
	char *path = xasprintf("%s/cluster.json", base);
	if (access(path, F_OK) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "no cluster in %s (cluster.json not found)", base);
		free(path);
		return NULL;
	}
	if (!state_file_trusted(path, err)) {
		free(path);
		return NULL;
	}
	json_error_t jerr;
	json_t *o = json_load_file(path, 0, &jerr);
	free(path);
	if (o == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "no cluster in %s (%s)", base, jerr.text);
		return NULL;
	}
	const char *b = NULL, *superuser = NULL;
	int port = 0;
	if (json_unpack(o, "{s:s, s:s, s:i}", "base", &b, "superuser", &superuser, "port", &port) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%s/cluster.json is not a pgrunbook cluster description", base);
		json_decref(o);
		return NULL;
	}
	char *real = realpath(base, NULL);
	if (real == NULL || strcmp(real, b) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%s/cluster.json describes %s, not this directory", base, b);
		free(real);
		json_decref(o);
		return NULL;
	}
	free(real);
	char *bindir = cluster_find_bindir(err);
	if (bindir == NULL) {
		json_decref(o);
		return NULL;
	}
	struct cluster *c = cluster_alloc(b);
	c->bindir = bindir;
	c->superuser = xstrdup(superuser);
	c->run_user = pick_run_user();
	c->port = port;
	json_decref(o);
	return c;
}

bool
cluster_start(struct cluster *c, struct rb_error *err)
{
	char *pg_ctl = xasprintf("%s/pg_ctl", c->bindir);
	char *const argv[] = { pg_ctl, (char *)"-D", c->datadir, (char *)"-l", c->logfile,
	                       (char *)"-w", (char *)"-t", (char *)"60", (char *)"start", NULL };
	char *ctllog = xasprintf("%s/pg_ctl.log", c->base);
	bool ok = run_as(c, argv, ctllog, err);
	if (!ok) {
		detail_from_log(err, c->logfile);
		rb_error_hint(err, "pg_ctl's own output is in %s.", ctllog);
	}
	free(ctllog);
	free(pg_ctl);
	return ok;
}

bool
cluster_running(const struct cluster *c)
{
	char *path = xasprintf("%s/postmaster.pid", c->datadir);
	char *text = file_read_all(path, NULL);
	free(path);
	if (text == NULL)
		return false;
	long pid = strtol(text, NULL, 10);
	free(text);
	if (pid <= 0)
		return false;
	/* A pid reused by another process counts as alive: the safe side. */
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

bool
cluster_stop(struct cluster *c, struct rb_error *err)
{
	if (!cluster_running(c)) {
		/* A server that died (kill -9, a reboot) leaves a stale postmaster.pid pg_ctl trips on. */
		char *pid = xasprintf("%s/postmaster.pid", c->datadir);
		unlink(pid);
		free(pid);
		return true;
	}
	char *pg_ctl = xasprintf("%s/pg_ctl", c->bindir);
	char *ctllog = xasprintf("%s/pg_ctl.log", c->base);
	char *const fast[] = { pg_ctl, (char *)"-D", c->datadir, (char *)"-m", (char *)"fast",
	                       (char *)"-w", (char *)"-t", (char *)"30", (char *)"stop", NULL };
	bool ok = run_as(c, fast, ctllog, err);
	if (!ok) {
		rb_error_clear(err);
		char *const immediate[] = { pg_ctl, (char *)"-D", c->datadir, (char *)"-m",
		                            (char *)"immediate", (char *)"-w", (char *)"-t", (char *)"30",
		                            (char *)"stop", NULL };
		ok = run_as(c, immediate, ctllog, err);
		if (!ok)
			detail_from_log(err, ctllog);
	}
	free(ctllog);
	free(pg_ctl);
	return ok;
}

bool
cluster_destroy(struct cluster *c, struct rb_error *err)
{
	if (!cluster_stop(c, err))
		return false;
	if (!remove_tree(c->base))
		return rb_error_setc(err, RB_EXIT_STEP, "could not remove %s: %s", c->base, strerror(errno));
	return true;
}

/* Appends key='value' with conninfo quoting. */
static void
add_kv(struct strbuf *sb, const char *key, const char *v)
{
	if (sb->len)
		strbuf_addc(sb, ' ');
	strbuf_addf(sb, "%s='", key);
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *p);
	}
	strbuf_addc(sb, '\'');
}

char *
cluster_conninfo(const struct cluster *c, const char *dbname)
{
	struct strbuf sb = {0};
	char port[16];
	snprintf(port, sizeof port, "%d", c->port);
	add_kv(&sb, "host", c->sockdir);
	add_kv(&sb, "port", port);
	add_kv(&sb, "user", c->superuser);
	add_kv(&sb, "dbname", dbname);
	return strbuf_detach(&sb);
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	free(c->base);
	free(c->datadir);
	free(c->sockdir);
	free(c->logfile);
	free(c->bindir);
	free(c->run_user);
	free(c->superuser);
	free(c);
}
