/* sync_review.c: writes and reads the review file of a sync diff (format in sync_review.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sync_review.h"
#include "util.h"

struct sync_review_writer {
	char        *path;
	char        *tmp;
	FILE        *f;
	EVP_MD_CTX  *md;
	int          err_no;    /* the first write error, 0 when none */
	bool         in_table;
	int64_t      records;
	json_t      *skipped;
};

static void
w_put(struct sync_review_writer *w, const void *data, size_t len)
{
	if (w->err_no)
		return;
	if (len && fwrite(data, 1, len, w->f) != len) {
		w->err_no = errno ? errno : EIO;
		return;
	}
	EVP_DigestUpdate(w->md, data, len);
}

/* "<tag> <compact JSON>\n"; takes v. */
static void
w_json(struct sync_review_writer *w, char tag, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(v);
	if (s == NULL) {
		if (!w->err_no)
			w->err_no = ENOMEM;
		return;
	}
	w_put(w, &tag, 1);
	w_put(w, " ", 1);
	w_put(w, s, strlen(s));
	w_put(w, "\n", 1);
	free(s);
}

static bool
w_failed(struct sync_review_writer *w, struct rb_error *err)
{
	if (!w->err_no)
		return false;
	rb_error_setc(err, RB_EXIT_STEP, "could not write the review file %s: %s", w->tmp, strerror(w->err_no));
	return true;
}

struct sync_review_writer *
sync_review_create(const char *path, const struct plan *plan, const char *target_db, const char *who,
                   struct rb_error *err)
{
	char *tmp = xasprintf("%s.tmp", path);
	/* A leftover .tmp (an earlier diff that died) goes; the new one is ours alone, mode 0600. */
	if (unlink(tmp) != 0 && errno != ENOENT) {
		rb_error_setc(err, RB_EXIT_STEP, "could not remove the leftover %s: %s", tmp, strerror(errno));
		free(tmp);
		return NULL;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not create the review file %s: %s", tmp, strerror(errno));
		free(tmp);
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (f == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rb_error_setc(err, RB_EXIT_STEP, "could not start the review file %s", tmp);
		if (f)
			fclose(f);
		else
			close(fd);
		unlink(tmp);
		EVP_MD_CTX_free(md);
		free(tmp);
		return NULL;
	}
	struct sync_review_writer *w = xcalloc(1, sizeof *w);
	w->path = xstrdup(path);
	w->tmp = tmp;
	w->f = f;
	w->md = md;
	w->skipped = json_array();
	w_put(w, SYNC_REVIEW_MAGIC "\n", strlen(SYNC_REVIEW_MAGIC) + 1);
	w_json(w, 'H', json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s, s:I, s:s?}",
	                         "plan_hash", plan->hash, "plan_name", plan->name, "plan_path", plan->path,
	                         "source", plan->source, "target", plan->target, "target_database", target_db,
	                         "created_at", (json_int_t)time(NULL), "created_by", who));
	return w;
}

bool
sync_review_table_begin(struct sync_review_writer *w, const struct sync_spec *spec, bool mode_explicit,
                        struct rb_error *err)
{
	json_t *cols = json_array();
	for (size_t i = 0; i < spec->ncols; i++)
		json_array_append_new(cols, json_pack("{s:s, s:s, s:b, s:i}", "name", spec->cols[i].name,
		                                      "type", spec->cols[i].type, "key", spec->cols[i].key,
		                                      "order", (int)spec->cols[i].order));
	w_json(w, 'T', json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:o}",
	                         "table", spec->display, "plan_name", spec->plan_name, "schema", spec->schema,
	                         "name", spec->table, "mode", plan_mode_name(spec->mode),
	                         "on_conflict", plan_on_conflict_name(spec->on_conflict),
	                         "delete", spec->delete_rows, "protected", spec->protected_,
	                         "mode_explicit", mode_explicit, "key_from_plan", spec->key_from_plan,
	                         "columns", cols));
	w->in_table = true;
	w->records = 0;
	return !w_failed(w, err);
}

static void
w_record(struct sync_review_writer *w, char kind, const char *line, size_t len)
{
	char pre[2] = { kind, '\t' };
	w_put(w, pre, 2);
	w_put(w, line, len);
	w_put(w, "\n", 1);
	w->records++;
}

bool
sync_review_row(struct sync_review_writer *w, const struct sync_row *row, struct rb_error *err)
{
	switch (row->kind) {
	case SYNC_INSERT:
		w_record(w, 'I', row->src_line, row->src_len);
		break;
	case SYNC_UPDATE:
		w_record(w, 'U', row->src_line, row->src_len);
		w_record(w, 'u', row->dst_line, row->dst_len);
		break;
	case SYNC_CONFLICT:
		w_record(w, 'C', row->src_line, row->src_len);
		w_record(w, 'c', row->dst_line, row->dst_len);
		break;
	case SYNC_DELETE:
		w_record(w, 'D', row->dst_line, row->dst_len);
		break;
	default:
		break;
	}
	return !w_failed(w, err);
}

static json_t *
counts_json(const struct sync_counts *c)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	                 "insert", (json_int_t)c->n[SYNC_INSERT], "update", (json_int_t)c->n[SYNC_UPDATE],
	                 "delete", (json_int_t)c->n[SYNC_DELETE], "conflict", (json_int_t)c->n[SYNC_CONFLICT],
	                 "differs_kept", (json_int_t)c->n[SYNC_DIFFERS_KEPT],
	                 "unchanged", (json_int_t)c->n[SYNC_UNCHANGED],
	                 "source_rows", (json_int_t)c->source_rows, "target_rows", (json_int_t)c->target_rows);
}

bool
sync_review_table_end(struct sync_review_writer *w, const struct sync_counts *counts, const char digest[65],
                      struct rb_error *err)
{
	w_json(w, 'E', json_pack("{s:o, s:s, s:I}", "counts", counts_json(counts), "digest", digest,
	                         "records", (json_int_t)w->records));
	w->in_table = false;
	return !w_failed(w, err);
}

void
sync_review_skipped(struct sync_review_writer *w, const char *table, const char *why)
{
	json_array_append_new(w->skipped, json_pack("{s:s, s:s}", "table", table, "why", why));
}

static void
writer_free(struct sync_review_writer *w)
{
	if (w->f)
		fclose(w->f);
	EVP_MD_CTX_free(w->md);
	json_decref(w->skipped);
	free(w->path);
	free(w->tmp);
	free(w);
}

bool
sync_review_commit(struct sync_review_writer *w, struct rb_error *err)
{
	if (w->in_table && !w->err_no)
		w->err_no = EINVAL;
	w_json(w, 'S', json_pack("{s:O}", "skipped", w->skipped));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[65];
	if (!w->err_no && (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1 || mdlen != 32))
		w->err_no = EIO;
	if (!w->err_no) {
		hex_encode(md, 32, hex);
		if (fprintf(w->f, "Z %s\n", hex) < 0)
			w->err_no = errno ? errno : EIO;
	}
	if (!w->err_no && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
		w->err_no = errno ? errno : EIO;
	if (fclose(w->f) != 0 && !w->err_no)
		w->err_no = errno ? errno : EIO;
	w->f = NULL;
	if (!w->err_no && rename(w->tmp, w->path) != 0)
		w->err_no = errno ? errno : EIO;
	if (w_failed(w, err)) {
		unlink(w->tmp);
		writer_free(w);
		return false;
	}
	/* The rename is durable once the directory is. */
	char *dir = xstrdup(w->path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
	writer_free(w);
	return true;
}

void
sync_review_abort(struct sync_review_writer *w)
{
	if (w == NULL)
		return;
	if (w->f) {
		fclose(w->f);
		w->f = NULL;
	}
	unlink(w->tmp);
	writer_free(w);
}

/* ---- reading ---- */

static bool
bad(struct rb_error *err, const char *path, long lineno, const char *what)
{
	rb_error_setc(err, RB_EXIT_STEP, "review file %s:%ld: %s", path, lineno, what);
	rb_error_hint(err, "Make a new review with pgrunbook sync diff --plan FILE --out REVIEW and check it "
	              "before applying.");
	return false;
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool
enum_from(const char *s, const char *(*name)(int), int n, int *out)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(name(i), s) == 0) {
			*out = i;
			return true;
		}
	return false;
}

static const char *
mode_name_i(int i)
{
	return plan_mode_name((enum plan_sync_mode)i);
}

static const char *
conflict_name_i(int i)
{
	return plan_on_conflict_name((enum plan_on_conflict)i);
}

static bool
parse_table(json_t *o, struct sync_review_table *t)
{
	const char *table = jstr(o, "table"), *plan_name = jstr(o, "plan_name"), *schema = jstr(o, "schema"),
	           *name = jstr(o, "name");
	int mode, conflict;
	json_t *cols = json_object_get(o, "columns");
	if (!table || !plan_name || !schema || !name || !json_is_array(cols) || json_array_size(cols) == 0 ||
	    !enum_from(jstr(o, "mode"), mode_name_i, 3, &mode) ||
	    !enum_from(jstr(o, "on_conflict"), conflict_name_i, 3, &conflict))
		return false;
	t->display = xstrdup(table);
	t->plan_name = xstrdup(plan_name);
	t->schema = xstrdup(schema);
	t->name = xstrdup(name);
	t->mode = (enum plan_sync_mode)mode;
	t->on_conflict = (enum plan_on_conflict)conflict;
	t->delete_rows = json_is_true(json_object_get(o, "delete"));
	t->protected_ = json_is_true(json_object_get(o, "protected"));
	t->mode_explicit = json_is_true(json_object_get(o, "mode_explicit"));
	t->key_from_plan = json_is_true(json_object_get(o, "key_from_plan"));
	t->ncols = json_array_size(cols);
	t->cols = xcalloc(t->ncols, sizeof *t->cols);
	bool keys_done = false;
	for (size_t i = 0; i < t->ncols; i++) {
		json_t *c = json_array_get(cols, i);
		const char *cn = jstr(c, "name"), *ct = jstr(c, "type");
		json_t *ord = json_object_get(c, "order");
		if (!cn || !ct || !json_is_integer(ord) || json_integer_value(ord) < 0 ||
		    json_integer_value(ord) > SYNC_KEY_TEXT)
			return false;
		t->cols[i].name = xstrdup(cn);
		t->cols[i].type = xstrdup(ct);
		t->cols[i].key = json_is_true(json_object_get(c, "key"));
		t->cols[i].order = (enum sync_key_order)json_integer_value(ord);
		if (t->cols[i].key) {
			if (keys_done)
				return false;   /* key columns come first */
			t->nkey++;
		} else {
			keys_done = true;
		}
	}
	return t->nkey > 0;
}

static bool
parse_counts(json_t *o, struct sync_counts *c)
{
	static const char *const names[] = { "insert", "update", "delete", "conflict", "differs_kept", "unchanged" };
	for (int i = 0; i < SYNC_KIND_COUNT; i++) {
		json_t *v = json_object_get(o, names[i]);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return false;
		c->n[i] = json_integer_value(v);
	}
	json_t *s = json_object_get(o, "source_rows"), *d = json_object_get(o, "target_rows");
	if (!json_is_integer(s) || !json_is_integer(d))
		return false;
	c->source_rows = json_integer_value(s);
	c->target_rows = json_integer_value(d);
	return true;
}

static bool
is_hex64(const char *s)
{
	if (s == NULL || strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The length of the first nkey fields of a COPY line. */
static size_t
key_end(const char *line, size_t len, size_t nkey)
{
	size_t pos = 0;
	for (size_t i = 0; i < nkey; i++) {
		const char *tab = memchr(line + pos, '\t', len - pos);
		size_t end = tab ? (size_t)(tab - line) : len;
		if (i + 1 == nkey || tab == NULL)
			return end;
		pos = end + 1;
	}
	return len;
}

static size_t
field_count(const char *line, size_t len)
{
	size_t n = 1;
	for (const char *p = line; (p = memchr(p, '\t', len - (size_t)(p - line))) != NULL; p++)
		n++;
	return n;
}

static void
md_add(EVP_MD_CTX *md, char tag, const char *data, size_t len)
{
	EVP_DigestUpdate(md, &tag, 1);
	EVP_DigestUpdate(md, data, len);
	EVP_DigestUpdate(md, "\n", 1);
}

static bool
md_hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(md, buf, &n) != 1 || n != 32)
		return false;
	hex_encode(buf, 32, out);
	return true;
}

/*
 * Every table of the review is a table of the plan, once, with the plan's rules: the file's own
 * flags (protected, mode, delete) decide what an apply asks for, so they must be the plan's.
 */
static bool
tables_match_plan(const struct plan *plan, const struct sync_review *rv, struct rb_error *err)
{
	for (size_t i = 0; i < rv->ntables; i++) {
		const struct sync_review_table *t = &rv->tables[i];
		const struct plan_sync_table *pt = NULL;
		for (size_t k = 0; k < plan->sync.ntables && !pt; k++)
			if (strcmp(plan->sync.tables[k].name, t->plan_name) == 0)
				pt = &plan->sync.tables[k];
		char *want = pt ? sync_table_display(plan, pt->name) : NULL;
		const char *why = NULL;
		if (pt == NULL)
			why = "is not a sync table of the plan";
		else if (strcmp(want, t->display) != 0)
			why = "names another table than the plan";
		else if (pt->mode == PLAN_MODE_SKIP || pt->mode != t->mode || pt->on_conflict != t->on_conflict ||
		         pt->delete_rows != t->delete_rows || pt->protected_ != t->protected_ ||
		         pt->mode_explicit != t->mode_explicit)
			why = "has other rules (mode, on_conflict, delete, protected) than the plan";
		else if (t->counts.n[SYNC_UPDATE] > 0 &&
		         !(t->mode == PLAN_MODE_UPSERT && t->on_conflict == PLAN_CONFLICT_LOCAL_WINS))
			why = "holds updates its mode cannot make";
		else if (t->counts.n[SYNC_CONFLICT] > 0 && t->on_conflict != PLAN_CONFLICT_ERROR)
			why = "holds conflicts its on_conflict cannot make";
		for (size_t k = 0; k < i && !why; k++)
			if (strcmp(rv->tables[k].display, t->display) == 0)
				why = "appears twice";
		free(want);
		if (why) {
			rb_error_setc(err, RB_EXIT_STEP, "the review %s is not one this plan makes: table %s %s", rv->path,
			              t->display, why);
			rb_error_hint(err, "Make a new review with pgrunbook sync diff --plan FILE --out REVIEW and check it "
			              "before applying.");
			return false;
		}
	}
	return true;
}

bool
sync_review_load(const char *path, const struct plan *plan, struct sync_review *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	out->path = xstrdup(path);
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "could not open the review file %s: %s", path, strerror(errno));
		rb_error_hint(err, "Make one with pgrunbook sync diff --plan FILE --out REVIEW.");
		sync_review_free(out);
		return false;
	}
	EVP_MD_CTX *file_md = EVP_MD_CTX_new(), *tab_md = EVP_MD_CTX_new(), *rec_md = EVP_MD_CTX_new();
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	bool ok = false, ended = false;
	struct sync_review_table *t = NULL;
	size_t cap_tables = 0;
	int64_t recs = 0, nk[SYNC_KIND_COUNT] = {0};
	char pending = 0;   /* 'U' or 'C' waiting for its 'u' or 'c' */
	bool open_table = false;
	if (file_md == NULL || tab_md == NULL || rec_md == NULL || EVP_DigestInit_ex(file_md, EVP_sha256(), NULL) != 1) {
		rb_error_setc(err, RB_EXIT_STEP, "could not start SHA-256 in libcrypto");
		goto out;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		size_t len = (size_t)n;
		if (ended) {
			bad(err, path, lineno, "text after the checksum line");
			goto out;
		}
		if (line[len - 1] != '\n') {
			bad(err, path, lineno, "the file is cut off (the last line has no newline)");
			goto out;
		}
		if (line[0] == 'Z' && len == 67 && line[1] == ' ') {
			char want[65], got[65];
			memcpy(want, line + 2, 64);
			want[64] = '\0';
			if (!md_hex(file_md, got) || strcmp(got, want) != 0) {
				bad(err, path, lineno, "the checksum does not match: the file was changed after it was saved");
				goto out;
			}
			memcpy(out->file_sha256, got, 65);
			ended = true;
			continue;
		}
		EVP_DigestUpdate(file_md, line, len);
		line[--len] = '\0';
		if (lineno == 1) {
			if (strcmp(line, SYNC_REVIEW_MAGIC) != 0) {
				bad(err, path, lineno, "not a pgrunbook review file (expected \"" SYNC_REVIEW_MAGIC "\")");
				goto out;
			}
			continue;
		}
		char tag = line[0];
		bool record = len >= 2 && line[1] == '\t' && strchr("IUuCcD", tag) != NULL;
		if (record) {
			if (!open_table) {
				bad(err, path, lineno, "a row outside a table block");
				goto out;
			}
			const char *l = line + 2;
			size_t ll = len - 2;
			if (field_count(l, ll) != t->ncols) {
				bad(err, path, lineno, "a row with the wrong number of fields");
				goto out;
			}
			if ((pending && tag != (char)(pending + ('a' - 'A'))) || (!pending && (tag == 'u' || tag == 'c'))) {
				bad(err, path, lineno, "rows out of order (an update or conflict needs its target row next)");
				goto out;
			}
			switch (tag) {
			case 'I': nk[SYNC_INSERT]++; md_add(tab_md, 'I', l, key_end(l, ll, t->nkey)); break;
			case 'U': nk[SYNC_UPDATE]++; pending = 'U'; break;
			case 'C': nk[SYNC_CONFLICT]++; pending = 'C'; break;
			case 'u': md_add(tab_md, 'U', l, ll); pending = 0; break;
			case 'c': md_add(tab_md, 'C', l, ll); pending = 0; break;
			case 'D':
				nk[SYNC_DELETE]++;
				if (t->delete_rows)
					md_add(tab_md, 'D', l, ll);
				break;
			}
			EVP_DigestUpdate(rec_md, line, len);
			EVP_DigestUpdate(rec_md, "\n", 1);
			recs++;
			continue;
		}
		if (len < 3 || line[1] != ' ') {
			bad(err, path, lineno, "a line that is neither a row nor a record");
			goto out;
		}
		json_error_t jerr;
		json_t *o = json_loads(line + 2, 0, &jerr);
		if (!json_is_object(o)) {
			json_decref(o);
			bad(err, path, lineno, "a record that is not a JSON object");
			goto out;
		}
		bool good = true;
		switch (tag) {
		case 'H': {
			const char *h = jstr(o, "plan_hash");
			if (lineno != 2 || !is_hex64(h) || !jstr(o, "source") || !jstr(o, "target") ||
			    !jstr(o, "target_database")) {
				good = false;
				break;
			}
			memcpy(out->plan_hash, h, 65);
			out->plan_name = jstr(o, "plan_name") ? xstrdup(jstr(o, "plan_name")) : NULL;
			out->source = xstrdup(jstr(o, "source"));
			out->target = xstrdup(jstr(o, "target"));
			out->target_db = xstrdup(jstr(o, "target_database"));
			out->created_by = jstr(o, "created_by") ? xstrdup(jstr(o, "created_by")) : NULL;
			out->created_at = json_integer_value(json_object_get(o, "created_at"));
			break;
		}
		case 'T':
			if (out->target_db == NULL || open_table) {
				good = false;
				break;
			}
			if (out->ntables == cap_tables) {
				cap_tables = cap_tables ? cap_tables * 2 : 8;
				out->tables = xrealloc(out->tables, cap_tables * sizeof *out->tables);
			}
			t = &out->tables[out->ntables++];
			memset(t, 0, sizeof *t);
			good = parse_table(o, t);
			if (good) {
				t->offset = ftell(f);
				open_table = true;
				recs = 0;
				memset(nk, 0, sizeof nk);
				pending = 0;
				EVP_DigestInit_ex(tab_md, EVP_sha256(), NULL);
				EVP_DigestInit_ex(rec_md, EVP_sha256(), NULL);
			}
			break;
		case 'E': {
			const char *dg = jstr(o, "digest");
			json_t *r = json_object_get(o, "records");
			char got[65];
			if (!open_table || t->offset <= 0 || pending || !is_hex64(dg) ||
			    !json_is_integer(r) || !parse_counts(json_object_get(o, "counts"), &t->counts)) {
				good = false;
				break;
			}
			if (json_integer_value(r) != recs ||
			    nk[SYNC_INSERT] != t->counts.n[SYNC_INSERT] || nk[SYNC_UPDATE] != t->counts.n[SYNC_UPDATE] ||
			    nk[SYNC_DELETE] != t->counts.n[SYNC_DELETE] || nk[SYNC_CONFLICT] != t->counts.n[SYNC_CONFLICT]) {
				json_decref(o);
				bad(err, path, lineno, "the counts do not match the rows stored");
				goto out;
			}
			if (!md_hex(tab_md, got) || strcmp(got, dg) != 0) {
				json_decref(o);
				bad(err, path, lineno, "the digest does not match the rows stored");
				goto out;
			}
			memcpy(t->digest, dg, 65);
			if (!md_hex(rec_md, t->records_sha256)) {
				json_decref(o);
				rb_error_setc(err, RB_EXIT_STEP, "SHA-256 failed in libcrypto");
				goto out;
			}
			t->records = recs;
			open_table = false;
			break;
		}
		case 'S': {
			json_t *sk = json_object_get(o, "skipped");
			size_t i;
			json_t *v;
			if (!json_is_array(sk) || open_table) {
				good = false;
				break;
			}
			json_array_foreach(sk, i, v)
				strlist_push_owned(&out->skipped, xasprintf("%s (%s)", jstr(v, "table") ? jstr(v, "table") : "?",
				                                            jstr(v, "why") ? jstr(v, "why") : "?"));
			break;
		}
		default:
			good = false;
		}
		json_decref(o);
		if (!good) {
			bad(err, path, lineno, "a record of the wrong shape or in the wrong place");
			goto out;
		}
	}
	if (ferror(f)) {
		rb_error_setc(err, RB_EXIT_STEP, "could not read the review file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!ended || open_table) {
		bad(err, path, lineno, lineno == 0 ? "the file is empty" : "the file is cut off (no checksum line)");
		goto out;
	}
	if (out->target_db == NULL) {
		bad(err, path, lineno, "no header line");
		goto out;
	}
	if (plan && strcmp(plan->hash, out->plan_hash) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "the review %s was made for another version of the plan", path);
		rb_error_detail(err, "The plan's hash is %.12s..., the review's %.12s...: what was reviewed may not be "
		                "what this plan would apply.", plan->hash, out->plan_hash);
		rb_error_hint(err, "Run pgrunbook sync diff --plan FILE --out REVIEW again with this plan and review it.");
		goto out;
	}
	if (plan && (strcmp(plan->target ? plan->target : "", out->target) != 0 ||
	             strcmp(plan->source ? plan->source : "", out->source) != 0)) {
		rb_error_setc(err, RB_EXIT_STEP, "the review %s is of %s -> %s, the plan syncs %s -> %s", path,
		              out->source, out->target, plan->source ? plan->source : "?", plan->target ? plan->target : "?");
		goto out;
	}
	if (plan && !tables_match_plan(plan, out, err))
		goto out;
	ok = true;
out:
	free(line);
	fclose(f);
	EVP_MD_CTX_free(file_md);
	EVP_MD_CTX_free(tab_md);
	EVP_MD_CTX_free(rec_md);
	if (!ok)
		sync_review_free(out);
	return ok;
}

void
sync_review_free(struct sync_review *rv)
{
	if (rv == NULL)
		return;
	for (size_t i = 0; i < rv->ntables; i++) {
		struct sync_review_table *t = &rv->tables[i];
		for (size_t j = 0; j < t->ncols; j++) {
			free(t->cols[j].name);
			free(t->cols[j].type);
		}
		free(t->cols);
		free(t->display);
		free(t->plan_name);
		free(t->schema);
		free(t->name);
	}
	free(rv->tables);
	free(rv->path);
	free(rv->plan_name);
	free(rv->source);
	free(rv->target);
	free(rv->target_db);
	free(rv->created_by);
	strlist_free(&rv->skipped);
	memset(rv, 0, sizeof *rv);
}

struct sync_review_cursor {
	FILE   *f;
	char   *line;
	size_t  cap;
	int64_t left;
	const char *path;
	const char *want;       /* the table's records_sha256 */
	EVP_MD_CTX *md;
	bool    checked;
};

struct sync_review_cursor *
sync_review_open(const struct sync_review *rv, const struct sync_review_table *t, struct rb_error *err)
{
	FILE *f = fopen(rv->path, "re");
	if (f == NULL || fseek(f, t->offset, SEEK_SET) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not read the review file %s: %s", rv->path, strerror(errno));
		if (f)
			fclose(f);
		return NULL;
	}
	struct sync_review_cursor *c = xcalloc(1, sizeof *c);
	c->f = f;
	c->left = t->records;
	c->path = rv->path;
	c->want = t->records_sha256;
	c->md = EVP_MD_CTX_new();
	if (c->md == NULL || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		rb_error_setc(err, RB_EXIT_STEP, "could not start SHA-256 in libcrypto");
		sync_review_close(c);
		return NULL;
	}
	return c;
}

int
sync_review_next(struct sync_review_cursor *c, char *kind, const char **line, size_t *len, struct rb_error *err)
{
	if (c->left <= 0) {
		char got[65];
		if (!c->checked && (!md_hex(c->md, got) || strcmp(got, c->want) != 0)) {
			rb_error_setc(err, RB_EXIT_STEP, "the review file %s changed since it was checked", c->path);
			rb_error_hint(err, "Nothing of this table was committed. Make a new review with pgrunbook sync diff "
			              "--out and apply that.");
			return -1;
		}
		c->checked = true;
		return 0;
	}
	ssize_t n = getline(&c->line, &c->cap, c->f);
	if (n < 3 || c->line[n - 1] != '\n' || c->line[1] != '\t' || strchr("IUuCcD", c->line[0]) == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "the review file %s changed while it was being applied", c->path);
		return -1;
	}
	c->left--;
	EVP_DigestUpdate(c->md, c->line, (size_t)n);
	c->line[n - 1] = '\0';
	*kind = c->line[0];
	*line = c->line + 2;
	*len = (size_t)n - 3;
	return 1;
}

void
sync_review_close(struct sync_review_cursor *c)
{
	if (c == NULL)
		return;
	if (c->f)
		fclose(c->f);
	EVP_MD_CTX_free(c->md);
	free(c->line);
	free(c);
}

json_t *
sync_review_json(const struct sync_review *rv)
{
	json_t *tables = json_array(), *skipped = json_array();
	for (size_t i = 0; i < rv->ntables; i++) {
		const struct sync_review_table *t = &rv->tables[i];
		json_array_append_new(tables, json_pack("{s:s, s:s, s:s, s:b, s:b, s:o, s:s}", "table", t->display,
		                                        "mode", plan_mode_name(t->mode),
		                                        "on_conflict", plan_on_conflict_name(t->on_conflict),
		                                        "protected", t->protected_, "delete", t->delete_rows,
		                                        "counts", counts_json(&t->counts), "digest", t->digest));
	}
	for (size_t i = 0; i < rv->skipped.len; i++)
		json_array_append_new(skipped, json_string(rv->skipped.items[i]));
	return json_pack("{s:s?, s:s, s:s, s:s, s:s, s:I, s:s?, s:o, s:o}", "path", rv->path,
	                 "plan_hash", rv->plan_hash, "source", rv->source, "target", rv->target,
	                 "target_database", rv->target_db, "created_at", (json_int_t)rv->created_at,
	                 "created_by", rv->created_by, "tables", tables, "skipped", skipped);
}
