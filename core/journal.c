/* journal.c: run directories, the hash-chained JSON-lines journal, its replay and run lookup. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "util.h"

#define JOURNAL_FILE  "journal.jsonl"
#define OWNER_FILE    "owner.pid"
#define HEAD_FILE     "journal.head"
#define HEAD_SLOT     512   /* two slots at 0 and 512: a torn write only damages one */
#define HEAD_MAGIC    "pgrunbook journal.head v1 seq="
#define CHECKSUM_PFX  "{\"checksum\":\""
#define CHECKSUM_PFX_LEN (sizeof(CHECKSUM_PFX) - 1)
#define ZERO_CHECKSUM "0000000000000000000000000000000000000000000000000000000000000000"

struct journal {
	pthread_mutex_t mu;
	int             fd;        /* journal.jsonl, O_APPEND, holding the OFD write lock */
	int             head_fd;   /* journal.head, or -1 */
	char           *id;
	char           *dir;
	char           *path;
	char           *owner_path;
	long            seq;       /* of the last record written */
	char            last[65];  /* checksum of the last record written */
	off_t           size;      /* file size after the last complete record */
	bool            broken;    /* an append failed: no later append may hide the gap */
	bool            failed;    /* a subscriber append failed */
	struct rb_error failure;   /* the first such failure */
};

#define STAGE_NAME(id, name) name,
static const char *const stage_names[] = { PLAN_STAGES(STAGE_NAME) };
#undef STAGE_NAME

static const char *const status_names[] = {
	"pending", "running", "done", "failed", "skipped", "waived"
};

const char *
journal_stage_status_name(enum run_stage_status s)
{
	if ((int)s < 0 || (size_t)s >= RB_ARRAY_LEN(status_names))
		return "unknown";
	return status_names[s];
}

bool
journal_stage_from_name(const char *name, enum plan_stage *out)
{
	if (name == NULL)
		return false;
	for (int i = 0; i < PLAN_STAGE_COUNT; i++) {
		if (strcmp(stage_names[i], name) == 0) {
			*out = (enum plan_stage)i;
			return true;
		}
	}
	return false;
}

const char *
journal_stage_name(enum plan_stage s)
{
	if ((int)s < 0 || s >= PLAN_STAGE_COUNT)
		return "unknown";
	return stage_names[s];
}

char *
journal_runs_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	/* The XDG spec says relative values are invalid and must be ignored. */
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/pgrunbook/runs", xdg);
	const char *home = getenv("HOME");
	if (home == NULL || home[0] == '\0') {
		struct passwd *pw = getpwuid(geteuid());
		home = pw && pw->pw_dir ? pw->pw_dir : ".";
	}
	return xasprintf("%s/.local/state/pgrunbook/runs", home);
}

json_t *
journal_json_text(const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *v = json_string(s);
	if (v != NULL)
		return v;
	char *copy = xstrdup(s);
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v ? v : json_string("");
}

/* Takes the whole-file OFD write lock without waiting; false with errno EAGAIN when held. */
static bool
lock_fd(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	while (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		if (errno != EINTR)
			return false;
	}
	return true;
}

/* Whether some open file description holds a write lock on path. Takes no lock itself. */
static bool
path_locked(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	bool locked = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return locked;
}

/* The pid recorded by the process holding the run, or 0. */
static long
read_owner_pid(const char *dir)
{
	char *path = xasprintf("%s/" OWNER_FILE, dir);
	char *text = file_read_all(path, NULL);
	free(path);
	long pid = text ? strtol(text, NULL, 10) : 0;
	free(text);
	return pid > 0 ? pid : 0;
}

static void
write_owner(struct journal *j)
{
	int fd = open(j->owner_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		/* Only used to name the holder in an error message; nothing to undo. */
	}
	close(fd);
}

static struct journal *
journal_alloc(const char *dir, const char *id, int fd)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->mu, NULL);
	j->fd = fd;
	j->head_fd = -1;
	j->dir = xstrdup(dir);
	j->id = xstrdup(id);
	j->path = xasprintf("%s/" JOURNAL_FILE, dir);
	j->owner_path = xasprintf("%s/" OWNER_FILE, dir);
	memcpy(j->last, ZERO_CHECKSUM, 65);
	return j;
}

static void
journal_free(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->head_fd >= 0)
		close(j->head_fd);
	pthread_mutex_destroy(&j->mu);
	rb_error_clear(&j->failure);
	free(j->id);
	free(j->dir);
	free(j->path);
	free(j->owner_path);
	free(j);
}

static bool
is_hex64(const char *s, size_t len)
{
	if (len < 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * journal.head: the seq and checksum of the last acknowledged record, so that whole records cut
 * off the end of the journal are detected. Written after the record is fsync'd, with one pwrite
 * of a fixed-size slot and fdatasync. Two slots (seq even at 0, odd at HEAD_SLOT), each with its
 * own check: a torn slot write leaves the other slot, one record behind, which replay accepts
 * like a crash between the two writes.
 */
struct head {
	bool present;   /* the file exists */
	long seq;       /* 0 when no slot is valid */
	char sum[65];
};

/* Fills buf (HEAD_SLOT bytes) with the slot for seq and sum. */
static void
head_slot(long seq, const char *sum, char *buf)
{
	memset(buf, 0, HEAD_SLOT);
	int n = snprintf(buf, HEAD_SLOT, HEAD_MAGIC "%020ld sum=%.64s", seq, sum);
	char chk[65];
	sha256_hex(buf, (size_t)n, chk);
	snprintf(buf + n, (size_t)(HEAD_SLOT - n), " chk=%.16s\n", chk);
}

/* Parses one slot; false when it is not a complete, self-consistent slot. */
static bool
head_parse_slot(const char *buf, size_t len, long *seq, char sum[65])
{
	size_t mlen = strlen(HEAD_MAGIC);
	size_t body = mlen + 20 + 5 + 64;
	if (len < body + 5 + 16 + 1 || memcmp(buf, HEAD_MAGIC, mlen) != 0 ||
	    memcmp(buf + body, " chk=", 5) != 0 || buf[body + 5 + 16] != '\n')
		return false;
	char chk[65];
	sha256_hex(buf, body, chk);
	if (memcmp(chk, buf + body + 5, 16) != 0)
		return false;
	char num[21];
	memcpy(num, buf + mlen, 20);
	num[20] = '\0';
	char *end;
	long v = strtol(num, &end, 10);
	if (*end != '\0' || v < 1 || !is_hex64(buf + mlen + 20 + 5, 64))
		return false;
	*seq = v;
	memcpy(sum, buf + mlen + 20 + 5, 64);
	sum[64] = '\0';
	return true;
}

/* Reads run_dir's journal.head into h; false (errno set) when it exists but cannot be read. */
static bool
head_read(const char *run_dir, struct head *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->sum, ZERO_CHECKSUM, 65);
	char *path = xasprintf("%s/" HEAD_FILE, run_dir);
	size_t len = 0;
	char *buf = file_read_all(path, &len);
	free(path);
	if (buf == NULL)
		return errno == ENOENT;
	h->present = true;
	for (size_t off = 0; off < len && off < 2 * HEAD_SLOT; off += HEAD_SLOT) {
		long seq;
		char sum[65];
		size_t n = len - off < HEAD_SLOT ? len - off : HEAD_SLOT;
		if (head_parse_slot(buf + off, n, &seq, sum) && seq > h->seq) {
			h->seq = seq;
			memcpy(h->sum, sum, 65);
		}
	}
	free(buf);
	return true;
}

/* Records seq and sum in journal.head, durably. */
static bool
head_write(struct journal *j, long seq, const char *sum, struct rb_error *err)
{
	char buf[HEAD_SLOT];
	head_slot(seq, sum, buf);
	off_t off = (seq % 2) ? HEAD_SLOT : 0;
	size_t done = 0;
	while (done < HEAD_SLOT) {
		ssize_t n = pwrite(j->head_fd, buf + done, HEAD_SLOT - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			return rb_error_set(err, "could not write \"%s/" HEAD_FILE "\": %s", j->dir,
			                    strerror(e));
		}
		done += (size_t)n;
	}
	if (fdatasync(j->head_fd) != 0)
		return rb_error_set(err, "could not fsync \"%s/" HEAD_FILE "\": %s", j->dir,
		                    strerror(errno));
	return true;
}

/* Builds the record text (with newline) for seq after prev; fills sum with its checksum. */
static char *
record_line(long seq, const char *ts, enum rb_event_type type, const char *stage,
            const char *message, json_t *data, enum rb_log_level level, const char *prev,
            char sum[65], size_t *len_out)
{
	json_t *rec = json_object();
	json_object_set_new(rec, "seq", json_integer(seq));
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "type", json_string(events_type_name(type)));
	if (stage != NULL)
		json_object_set_new(rec, "stage", journal_json_text(stage));
	if (message != NULL)
		json_object_set_new(rec, "message", journal_json_text(message));
	if (data != NULL)
		json_object_set(rec, "data", data);
	if (type == EV_LOG)
		json_object_set_new(rec, "level", json_string(events_level_name(level)));
	char *body = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rec);
	if (body == NULL)
		return NULL;

	struct strbuf sb = {0};
	strbuf_adds(&sb, prev);
	strbuf_adds(&sb, body);
	sha256_hex(sb.buf, sb.len, sum);
	strbuf_reset(&sb);
	strbuf_adds(&sb, CHECKSUM_PFX);
	strbuf_adds(&sb, sum);
	strbuf_adds(&sb, "\",");
	strbuf_adds(&sb, body + 1);
	strbuf_addc(&sb, '\n');
	free(body);
	*len_out = sb.len;
	return strbuf_detach(&sb);
}

static bool
append_locked(struct journal *j, enum rb_event_type type, const char *stage, const char *message,
              json_t *data, enum rb_log_level level, struct rb_error *err)
{
	if (j->broken) {
		rb_error_set(err, "journal of run %s cannot be appended to after a failed write", j->id);
		rb_error_detail(err, "An earlier record could not be written; later records would hide "
		                "the gap.");
		return false;
	}
	char ts[32];
	time_now_rfc3339(ts);
	char sum[65];
	size_t len = 0;
	char *line = record_line(j->seq + 1, ts, type, stage, message, data, level, j->last, sum,
	                         &len);
	if (line == NULL)
		return rb_error_set(err, "could not encode a %s record for the journal of run %s",
		                    events_type_name(type), j->id);

	size_t off = 0;
	while (off < len) {
		ssize_t n = write(j->fd, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			/* Cut a partial line off again so the journal stays valid. */
			if (off > 0 && ftruncate(j->fd, j->size) != 0) {
				/* The partial line stays: replay reports it as torn. */
			}
			j->broken = true;
			free(line);
			rb_error_set(err, "could not write to journal \"%s\": %s", j->path, strerror(e));
			return false;
		}
		off += (size_t)n;
	}
	free(line);
	if (fsync(j->fd) != 0) {
		int e = errno;
		j->broken = true;
		rb_error_set(err, "could not fsync journal \"%s\": %s", j->path, strerror(e));
		rb_error_detail(err, "The last record may or may not be on disk.");
		return false;
	}
	j->seq++;
	j->size += (off_t)len;
	memcpy(j->last, sum, 65);
	if (!head_write(j, j->seq, sum, err)) {
		/* The record is on disk, the head one behind: replay accepts that. */
		j->broken = true;
		rb_error_detail(err, "The last record is in the journal, but no further record may be "
		                "appended.");
		return false;
	}
	return true;
}

bool
journal_append(struct journal *j, enum rb_event_type type, const char *stage,
               const char *message, json_t *data, struct rb_error *err)
{
	pthread_mutex_lock(&j->mu);
	bool ok = append_locked(j, type, stage, message, data, LOG_LEVEL_INFO, err);
	pthread_mutex_unlock(&j->mu);
	return ok;
}

bool
journal_append_event(struct journal *j, const struct rb_event *ev, struct rb_error *err)
{
	pthread_mutex_lock(&j->mu);
	bool ok = append_locked(j, ev->type, ev->stage, ev->message, ev->data, ev->level, err);
	pthread_mutex_unlock(&j->mu);
	return ok;
}

static void
journal_on_event(const struct rb_event *ev, void *userdata)
{
	struct journal *j = userdata;
	if (ev->type == EV_PROGRESS)
		return;
	struct rb_error e = {0};
	pthread_mutex_lock(&j->mu);
	if (!append_locked(j, ev->type, ev->stage, ev->message, ev->data, ev->level, &e) &&
	    !j->failed) {
		j->failed = true;
		j->failure = e;
		memset(&e, 0, sizeof e);
	}
	pthread_mutex_unlock(&j->mu);
	rb_error_clear(&e);
}

void
journal_attach(struct journal *j, struct events *bus)
{
	events_subscribe(bus, journal_on_event, j);
}

bool
journal_failed(const struct journal *cj, struct rb_error *err)
{
	struct journal *j = (struct journal *)cj;  /* the mutex only */
	pthread_mutex_lock(&j->mu);
	bool failed = j->failed;
	if (failed && err != NULL) {
		rb_error_setc(err, j->failure.code, "%s", j->failure.message);
		if (j->failure.detail)
			rb_error_detail(err, "%s", j->failure.detail);
		if (j->failure.hint)
			rb_error_hint(err, "%s", j->failure.hint);
		memcpy(err->sqlstate, j->failure.sqlstate, sizeof err->sqlstate);
	}
	pthread_mutex_unlock(&j->mu);
	return failed;
}

const char *
journal_run_id(const struct journal *j)
{
	return j->id;
}

const char *
journal_dir(const struct journal *j)
{
	return j->dir;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	/* Remove the owner file while still holding the lock, so it never names a dead holder. */
	unlink(j->owner_path);
	journal_free(j);
}

static void
random_hex6(char out[7])
{
	unsigned char b[3];
	ssize_t n = getrandom(b, sizeof b, GRND_NONBLOCK);
	if (n != (ssize_t)sizeof b) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, b, sizeof b) : -1;
		if (fd >= 0)
			close(fd);
		if (n != (ssize_t)sizeof b) {
			/* Last resort; uniqueness is still enforced by mkdir's EEXIST. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			unsigned long v = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 8);
			b[0] = (unsigned char)v;
			b[1] = (unsigned char)(v >> 8);
			b[2] = (unsigned char)(v >> 16);
		}
	}
	hex_encode(b, sizeof b, out);
}

static char *
current_user(void)
{
	const char *u = getenv("USER");
	if (u != NULL && u[0] != '\0')
		return xstrdup(u);
	struct passwd *pw = getpwuid(geteuid());
	if (pw != NULL && pw->pw_name != NULL)
		return xstrdup(pw->pw_name);
	return xasprintf("uid %ld", (long)geteuid());
}

struct journal *
journal_create(const char *runs_dir, const struct plan *plan, struct rb_error *err)
{
	char *own_runs = runs_dir ? NULL : journal_runs_dir();
	const char *base = runs_dir ? runs_dir : own_runs;
	struct journal *j = NULL;
	char *dir = NULL;
	bool made_dir = false;
	char id[40];

	if (!mkdir_p(base, 0700)) {
		rb_error_set(err, "could not create directory \"%s\": %s", base, strerror(errno));
		rb_error_hint(err, "Set XDG_STATE_HOME to a writable directory.");
		goto out;
	}
	for (int attempt = 0; ; attempt++) {
		/* Milliseconds keep ids in creation order when runs start within one second. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		size_t n = strftime(id, sizeof id, "%Y%m%dT%H%M%S", &tm);
		n += (size_t)snprintf(id + n, sizeof id - n, ".%03dZ-", (int)(ts.tv_nsec / 1000000L) % 1000);
		random_hex6(id + n);
		free(dir);
		dir = xasprintf("%s/%s", base, id);
		if (mkdir(dir, 0700) == 0) {
			made_dir = true;
			break;
		}
		if (errno != EEXIST || attempt >= 20) {
			rb_error_set(err, "could not create run directory \"%s\": %s", dir,
			             strerror(errno));
			goto out;
		}
	}
	chmod(dir, 0700);  /* whatever the umask */
	util_fsync_dir(base);

	char *path = xasprintf("%s/" JOURNAL_FILE, dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rb_error_set(err, "could not create journal \"%s\": %s", path, strerror(errno));
		free(path);
		goto out;
	}
	free(path);
	fchmod(fd, 0600);
	j = journal_alloc(dir, id, fd);
	if (!lock_fd(fd)) {
		rb_error_set(err, "could not lock journal \"%s\": %s", j->path, strerror(errno));
		goto out;
	}
	write_owner(j);
	char *hpath = xasprintf("%s/" HEAD_FILE, dir);
	j->head_fd = open(hpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->head_fd < 0) {
		rb_error_set(err, "could not create \"%s\": %s", hpath, strerror(errno));
		free(hpath);
		goto out;
	}
	free(hpath);
	fchmod(j->head_fd, 0600);
	if (!util_fsync_dir(dir)) {
		rb_error_set(err, "could not fsync run directory \"%s\": %s", dir, strerror(errno));
		goto out;
	}

	json_t *data = json_object();
	json_object_set_new(data, "plan_name", journal_json_text(plan->name ? plan->name : ""));
	if (plan->path != NULL) {
		char *abs = realpath(plan->path, NULL);
		json_object_set_new(data, "plan_path", journal_json_text(abs ? abs : plan->path));
		free(abs);
	} else {
		json_object_set_new(data, "plan_path", json_null());
	}
	json_object_set_new(data, "plan_hash", journal_json_text(plan->hash));
	char *user = current_user();
	json_object_set_new(data, "user", journal_json_text(user));
	free(user);
	char host[HOST_NAME_MAX + 1] = "";
	if (gethostname(host, sizeof host) != 0)
		host[0] = '\0';
	host[HOST_NAME_MAX] = '\0';
	json_object_set_new(data, "host", journal_json_text(host));
	json_object_set_new(data, "pid", json_integer((json_int_t)getpid()));
	json_object_set_new(data, "version", json_string(PACKAGE_VERSION));
	bool ok = journal_append(j, EV_RUN_STARTED, NULL, plan->name, data, err);
	json_decref(data);
	if (ok) {
		free(dir);
		free(own_runs);
		return j;
	}
out:
	/* Leave nothing behind: a run without its first record would be listed as corrupt. */
	journal_close(j);
	if (made_dir) {
		remove_tree(dir);
		util_fsync_dir(base);
	}
	free(dir);
	free(own_runs);
	return NULL;
}

/* ---- replay ---- */

static void
set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

static const char *
obj_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
mark_torn(struct run_state *st, long line, const char *fmt, ...) RB_PRINTF(3, 4);

static void
mark_torn(struct run_state *st, long line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	st->torn = true;
	st->torn_line = line;
	free(st->torn_message);
	st->torn_message = xasprintf("line %ld: %s", line, what);
	free(what);
}

struct replay {
	struct run_state *st;
	char              prev[65];
	long              next_seq;
	bool              finished;
	char             *finished_state;
	bool              last_was_failure;  /* the last stage lifecycle record is stage_failed */
};

static void
apply_record(struct replay *rp, const struct journal_record *r)
{
	struct run_state *st = rp->st;
	enum plan_stage s;
	bool known = journal_stage_from_name(r->stage, &s);
	struct run_stage_state *ss = known ? &st->stages[s] : NULL;

	switch (r->type) {
	case EV_RUN_STARTED:
		set_str(&st->plan_name, obj_str(r->data, "plan_name"));
		set_str(&st->plan_path, obj_str(r->data, "plan_path"));
		set_str(&st->plan_hash, obj_str(r->data, "plan_hash"));
		set_str(&st->user, obj_str(r->data, "user"));
		set_str(&st->host, obj_str(r->data, "host"));
		set_str(&st->version, obj_str(r->data, "version"));
		st->pid = (long)json_integer_value(json_object_get(r->data, "pid"));
		set_str(&st->started, r->ts);
		break;
	case EV_RUN_FINISHED: {
		const char *state = obj_str(r->data, "state");
		if (state == NULL || (strcmp(state, "done") != 0 && strcmp(state, "failed") != 0 &&
		                      strcmp(state, "aborted") != 0))
			state = "done";
		rp->finished = true;
		set_str(&rp->finished_state, state);
		set_str(&st->finished, r->ts);
		break;
	}
	case EV_STAGE_STARTED:
		rp->last_was_failure = false;
		if (ss == NULL)
			break;
		ss->status = STAGE_RUNNING;
		set_str(&ss->started, r->ts);
		set_str(&ss->finished, NULL);
		set_str(&ss->message, NULL);
		set_str(&st->last_stage, r->stage);
		break;
	case EV_STAGE_DONE:
	case EV_STAGE_FAILED:
	case EV_STAGE_SKIPPED:
	case EV_STAGE_WAIVED:
		rp->last_was_failure = r->type == EV_STAGE_FAILED;
		if (ss == NULL)
			break;
		ss->status = r->type == EV_STAGE_DONE ? STAGE_DONE :
		             r->type == EV_STAGE_FAILED ? STAGE_FAILED :
		             r->type == EV_STAGE_SKIPPED ? STAGE_SKIPPED : STAGE_WAIVED;
		set_str(&ss->finished, r->ts);
		set_str(&ss->message, r->message);
		set_str(&st->last_stage, r->stage);
		break;
	case EV_STAGE_RESULT:
		if (ss == NULL)
			break;
		json_decref(ss->result);
		ss->result = r->data ? json_incref(r->data) : NULL;
		break;
	default:
		break;
	}
}

/* Checks one complete line (without its newline); on success appends it to st->records. */
static bool
replay_line(struct replay *rp, long lineno, const char *line, size_t len)
{
	struct run_state *st = rp->st;
	if (len == 0) {
		mark_torn(st, lineno, "empty line (record lost or file edited)");
		return false;
	}
	json_error_t jerr;
	json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(obj)) {
		json_decref(obj);
		mark_torn(st, lineno, "not valid JSON (record altered or written partially)");
		return false;
	}
	bool ok = false;
	if (len < CHECKSUM_PFX_LEN + 64 + 3 || memcmp(line, CHECKSUM_PFX, CHECKSUM_PFX_LEN) != 0 ||
	    !is_hex64(line + CHECKSUM_PFX_LEN, len - CHECKSUM_PFX_LEN) ||
	    memcmp(line + CHECKSUM_PFX_LEN + 64, "\",", 2) != 0) {
		mark_torn(st, lineno, "no checksum at the start of the record (record altered)");
		goto out;
	}
	json_t *jseq = json_object_get(obj, "seq");
	const char *ts = obj_str(obj, "ts");
	const char *type = obj_str(obj, "type");
	json_t *jstage = json_object_get(obj, "stage");
	json_t *jmsg = json_object_get(obj, "message");
	json_t *jlevel = json_object_get(obj, "level");
	if (!json_is_integer(jseq) || ts == NULL || type == NULL ||
	    (jstage && !json_is_string(jstage)) || (jmsg && !json_is_string(jmsg)) ||
	    (jlevel && !json_is_string(jlevel))) {
		mark_torn(st, lineno, "malformed record (seq, ts, type, stage, message or level "
		          "missing or of the wrong type)");
		goto out;
	}
	long seq = (long)json_integer_value(jseq);
	if (seq != rp->next_seq) {
		mark_torn(st, lineno, "record out of sequence (seq %ld where %ld was expected): a record "
		          "was deleted, duplicated or reordered", seq, rp->next_seq);
		goto out;
	}

	/* The chain: SHA-256 of the previous checksum and this record without its checksum. */
	struct strbuf sb = {0};
	strbuf_adds(&sb, rp->prev);
	strbuf_addc(&sb, '{');
	size_t rest = CHECKSUM_PFX_LEN + 64 + 2;
	strbuf_add(&sb, line + rest, len - rest);
	char sum[65];
	sha256_hex(sb.buf, sb.len, sum);
	strbuf_release(&sb);
	if (memcmp(sum, line + CHECKSUM_PFX_LEN, 64) != 0) {
		mark_torn(st, lineno, "checksum mismatch (record altered or written partially)");
		goto out;
	}

	struct journal_record r = {0};
	if (!events_type_from_name(type, &r.type)) {
		mark_torn(st, lineno, "unknown record type \"%s\" (written by a newer pgrunbook?)",
		          type);
		goto out;
	}
	if (lineno == 1 && r.type != EV_RUN_STARTED) {
		mark_torn(st, lineno, "the journal does not start with a run_started record");
		goto out;
	}
	if (lineno > 1 && r.type == EV_RUN_STARTED) {
		mark_torn(st, lineno, "a second run_started record");
		goto out;
	}
	json_t *data = json_object_get(obj, "data");
	if (r.type == EV_RUN_STARTED && obj_str(data, "plan_hash") == NULL) {
		mark_torn(st, lineno, "run_started record without a plan hash");
		goto out;
	}
	r.seq = seq;
	r.ts = xstrdup(ts);
	r.stage = jstage ? xstrdup(json_string_value(jstage)) : NULL;
	r.message = jmsg ? xstrdup(json_string_value(jmsg)) : NULL;
	r.data = data ? json_incref(data) : NULL;
	r.level = LOG_LEVEL_INFO;
	if (jlevel)
		events_level_from_name(json_string_value(jlevel), &r.level);

	st->records = xrealloc(st->records, (st->nrecords + 1) * sizeof(*st->records));
	st->records[st->nrecords++] = r;
	apply_record(rp, &r);
	memcpy(rp->prev, sum, 65);
	rp->next_seq++;
	ok = true;
out:
	json_decref(obj);
	return ok;
}

/*
 * Replays journal text into st (already zeroed, id and dir set). writer_live: a live process
 * holds the run, so an incomplete last line is a write in progress. last_sum/last_seq/good_len
 * (may be NULL) receive the chain position after the last good record.
 */
static void
replay_text(const char *buf, size_t len, bool writer_live, const struct head *hd,
            struct run_state *st, char last_sum[65], long *last_seq, size_t *good_len)
{
	struct replay rp = { .st = st, .next_seq = 1 };
	memcpy(rp.prev, ZERO_CHECKSUM, 65);
	size_t pos = 0;
	long lineno = 0;
	while (pos < len) {
		lineno++;
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (nl == NULL) {
			if (!writer_live)
				mark_torn(st, lineno, "incomplete last record (no newline): the process "
				          "was probably killed while writing");
			break;
		}
		if (!replay_line(&rp, lineno, buf + pos, (size_t)(nl - (buf + pos))))
			break;
		pos = (size_t)(nl - buf) + 1;
		if (hd->seq == rp.next_seq - 1 && memcmp(rp.prev, hd->sum, 64) != 0) {
			mark_torn(st, lineno, "record %ld is not the one acknowledged in " HEAD_FILE
			          ": records were removed or replaced", hd->seq);
			break;
		}
	}
	if (!st->torn && st->nrecords == 0 && !writer_live)
		mark_torn(st, 1, "the journal is empty: the run was interrupted before its first "
		          "record was written");
	long last = rp.next_seq - 1;
	if (!st->torn && st->nrecords > 0) {
		if (!hd->present)
			mark_torn(st, last + 1, HEAD_FILE " is missing: records removed from the end "
			          "of the journal could not be detected");
		else if (hd->seq > last)
			mark_torn(st, last + 1, "journal ends at record %ld but record %ld was "
			          "acknowledged: records were removed", last, hd->seq);
		else if (hd->seq < last - 1 && !writer_live)
			mark_torn(st, last + 1, HEAD_FILE " acknowledges record %ld but the journal "
			          "holds %ld: " HEAD_FILE " is stale or was replaced", hd->seq, last);
	}

	const char *state = st->torn ? "corrupt" :
	                    rp.finished ? rp.finished_state :
	                    rp.last_was_failure ? "failed" : "running";
	set_str(&st->state, state);
	free(rp.finished_state);
	if (last_sum)
		memcpy(last_sum, rp.prev, 65);
	if (last_seq)
		*last_seq = rp.next_seq - 1;
	if (good_len)
		*good_len = pos;
}

static char *
base_name(const char *dir)
{
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	size_t start = len;
	while (start > 0 && dir[start - 1] != '/')
		start--;
	return xstrndup(dir + start, len - start);
}

bool
journal_replay(const char *run_dir, struct run_state *out, struct rb_error *err)
{
	char *path = xasprintf("%s/" JOURNAL_FILE, run_dir);
	for (int attempt = 0; ; attempt++) {
		memset(out, 0, sizeof(*out));
		out->id = base_name(run_dir);
		out->dir = xstrdup(run_dir);
		/*
		 * Order matters against a live writer, which writes the record, then the head: test
		 * the lock first (an incomplete tail is then a write in progress), read the head
		 * before the journal (so the head is never ahead of what was read).
		 */
		out->in_use = path_locked(path);
		struct head hd;
		if (!head_read(run_dir, &hd)) {
			rb_error_set(err, "could not read \"%s/" HEAD_FILE "\": %s", run_dir,
			             strerror(errno));
			free(path);
			set_str(&out->state, "corrupt");
			return false;
		}
		size_t len = 0;
		char *buf = file_read_all(path, &len);
		if (buf == NULL) {
			rb_error_set(err, "could not read journal \"%s\": %s", path, strerror(errno));
			free(path);
			set_str(&out->state, "corrupt");
			return false;
		}
		replay_text(buf, len, out->in_use, &hd, out, NULL, NULL, NULL);
		free(buf);
		/* A writer that took the run while we read may explain the damage: read again. */
		if (out->torn && !out->in_use && attempt == 0 && path_locked(path)) {
			run_state_free(out);
			continue;
		}
		break;
	}
	out->in_use_pid = out->in_use ? read_owner_pid(run_dir) : 0;
	free(path);
	return true;
}

void
run_state_free(struct run_state *st)
{
	if (st == NULL)
		return;
	free(st->id);
	free(st->dir);
	free(st->plan_name);
	free(st->plan_path);
	free(st->plan_hash);
	free(st->user);
	free(st->host);
	free(st->version);
	free(st->started);
	free(st->finished);
	free(st->state);
	free(st->last_stage);
	for (int i = 0; i < PLAN_STAGE_COUNT; i++) {
		free(st->stages[i].started);
		free(st->stages[i].finished);
		free(st->stages[i].message);
		json_decref(st->stages[i].result);
	}
	for (size_t i = 0; i < st->nrecords; i++) {
		free(st->records[i].ts);
		free(st->records[i].stage);
		free(st->records[i].message);
		json_decref(st->records[i].data);
	}
	free(st->records);
	free(st->torn_message);
	memset(st, 0, sizeof(*st));
}

/* ---- listing and lookup ---- */

static bool
is_dir(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Names of the run directories under runs_dir, sorted newest (largest id) first. */
static bool
scan_runs(const char *runs_dir, struct strlist *names, struct rb_error *err)
{
	DIR *d = opendir(runs_dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return true;
		return rb_error_set(err, "could not open directory \"%s\": %s", runs_dir,
		                    strerror(errno));
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", runs_dir, de->d_name);
		if (is_dir(p))
			strlist_push(names, de->d_name);
		free(p);
	}
	closedir(d);
	for (size_t i = 1; i < names->len; i++) {
		char *key = names->items[i];
		size_t k = i;
		while (k > 0 && strcmp(names->items[k - 1], key) < 0) {
			names->items[k] = names->items[k - 1];
			k--;
		}
		names->items[k] = key;
	}
	return true;
}

bool
journal_list_runs(const char *runs_dir, struct run_state **out, size_t *n, struct rb_error *err)
{
	*out = NULL;
	*n = 0;
	char *own = runs_dir ? NULL : journal_runs_dir();
	const char *base = runs_dir ? runs_dir : own;
	struct strlist names = {0};
	if (!scan_runs(base, &names, err)) {
		free(own);
		return false;
	}
	struct run_state *runs = xcalloc(names.len ? names.len : 1, sizeof(*runs));
	for (size_t i = 0; i < names.len; i++) {
		char *dir = xasprintf("%s/%s", base, names.items[i]);
		struct rb_error e = {0};
		if (!journal_replay(dir, &runs[i], &e)) {
			runs[i].torn = true;
			runs[i].torn_line = 0;
			set_str(&runs[i].torn_message, e.message);
		}
		rb_error_clear(&e);
		free(dir);
	}
	*out = runs;
	*n = names.len;
	strlist_free(&names);
	free(own);
	return true;
}

char *
journal_find_run(const char *runs_dir, const char *run, struct rb_error *err)
{
	if (run == NULL || run[0] == '\0') {
		rb_error_set(err, "no run given");
		return NULL;
	}
	if (strchr(run, '/') != NULL || strcmp(run, ".") == 0 || strcmp(run, "..") == 0) {
		char *journal = xasprintf("%s/" JOURNAL_FILE, run);
		struct stat sb;
		bool ok = stat(journal, &sb) == 0 && S_ISREG(sb.st_mode);
		free(journal);
		if (!ok) {
			rb_error_setc(err, RB_EXIT_STEP, "\"%s\" is not a run directory", run);
			rb_error_detail(err, "It has no readable " JOURNAL_FILE ".");
			return NULL;
		}
		return xstrdup(run);
	}

	char *own = runs_dir ? NULL : journal_runs_dir();
	const char *base = runs_dir ? runs_dir : own;
	char *result = NULL;
	char *exact = xasprintf("%s/%s", base, run);
	if (is_dir(exact)) {
		free(own);
		return exact;
	}
	free(exact);

	struct strlist names = {0}, matches = {0};
	if (!scan_runs(base, &names, err))
		goto out;
	size_t plen = strlen(run);
	for (size_t i = 0; i < names.len; i++)
		if (strncmp(names.items[i], run, plen) == 0)
			strlist_push(&matches, names.items[i]);
	if (matches.len == 1) {
		result = xasprintf("%s/%s", base, matches.items[0]);
	} else if (matches.len == 0) {
		rb_error_setc(err, RB_EXIT_STEP, "run \"%s\" not found", run);
		rb_error_detail(err, "No run in %s has an id starting with \"%s\".", base, run);
		rb_error_hint(err, "List the runs with \"pgrunbook runs\".");
	} else {
		struct strbuf sb = {0};
		for (size_t i = 0; i < matches.len; i++) {
			if (i > 0)
				strbuf_adds(&sb, ", ");
			strbuf_adds(&sb, matches.items[i]);
		}
		rb_error_setc(err, RB_EXIT_STEP, "run id prefix \"%s\" is ambiguous", run);
		rb_error_detail(err, "It matches %zu runs: %s.", matches.len, sb.buf);
		rb_error_hint(err, "Give more characters of the run id.");
		strbuf_release(&sb);
	}
out:
	strlist_free(&names);
	strlist_free(&matches);
	free(own);
	return result;
}

struct journal *
journal_open(const char *runs_dir, const char *run, const struct plan *plan, struct rb_error *err)
{
	char *dir = journal_find_run(runs_dir, run, err);
	if (dir == NULL)
		return NULL;
	char *id = base_name(dir);
	char *path = xasprintf("%s/" JOURNAL_FILE, dir);
	struct journal *j = NULL;
	struct run_state st = {0};
	char *buf = NULL;

	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rb_error_set(err, "could not open journal \"%s\": %s", path, strerror(errno));
		goto out;
	}
	j = journal_alloc(dir, id, fd);
	if (!lock_fd(fd)) {
		if (errno == EAGAIN || errno == EACCES) {
			long pid = read_owner_pid(dir);
			if (pid > 0)
				rb_error_setc(err, RB_EXIT_STEP, "run %s is in use by another pgrunbook "
				              "process (pid %ld)", id, pid);
			else
				rb_error_setc(err, RB_EXIT_STEP, "run %s is in use by another pgrunbook "
				              "process", id);
			rb_error_hint(err, "Wait for that process to finish, or stop it, and try again.");
		} else {
			rb_error_set(err, "could not lock journal \"%s\": %s", path, strerror(errno));
		}
		goto fail;
	}

	/* Under the lock nobody else writes: read what is there and check it. */
	size_t len = 0;
	buf = file_read_all(path, &len);
	if (buf == NULL) {
		rb_error_set(err, "could not read journal \"%s\": %s", path, strerror(errno));
		goto fail;
	}
	st.id = xstrdup(id);
	st.dir = xstrdup(dir);
	struct head hd;
	if (!head_read(dir, &hd)) {
		rb_error_set(err, "could not read \"%s/" HEAD_FILE "\": %s", dir, strerror(errno));
		goto fail;
	}
	size_t good = 0;
	replay_text(buf, len, false, &hd, &st, j->last, &j->seq, &good);
	if (st.torn) {
		rb_error_setc(err, RB_EXIT_STEP, "the journal of run %s is damaged", id);
		rb_error_detail(err, "%s: %s.", path, st.torn_message);
		rb_error_hint(err, "pgrunbook does not append to a damaged journal. \"pgrunbook report "
		              "%s\" shows what it holds; start a new run to continue.", id);
		goto fail;
	}
	if (st.finished != NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "run %s is finished; start a new run", id);
		rb_error_detail(err, "It finished at %s with state %s.", st.finished, st.state);
		goto fail;
	}
	if (plan->hash[0] == '\0' || st.plan_hash == NULL || strcmp(st.plan_hash, plan->hash) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "the plan changed since the run started");
		rb_error_detail(err, "Run %s was started with plan %s (hash %.12s); the plan given now "
		                "has hash %.12s.", id, st.plan_path ? st.plan_path : "(unknown path)",
		                st.plan_hash ? st.plan_hash : "?", plan->hash);
		rb_error_hint(err, "Restore the plan file as it was when the run started, or start a "
		              "new run.");
		goto fail;
	}
	char *hpath = xasprintf("%s/" HEAD_FILE, dir);
	j->head_fd = open(hpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (j->head_fd < 0) {
		rb_error_set(err, "could not open \"%s\": %s", hpath, strerror(errno));
		free(hpath);
		goto fail;
	}
	free(hpath);
	/* Bring a head left one behind by a crash up to date, so both slots are recent again. */
	if (hd.seq != j->seq && !head_write(j, j->seq, j->last, err))
		goto fail;
	j->size = (off_t)good;
	write_owner(j);
	goto out;
fail:
	if (j != NULL)
		journal_free(j);
	j = NULL;
out:
	run_state_free(&st);
	free(buf);
	free(path);
	free(id);
	free(dir);
	return j;
}
