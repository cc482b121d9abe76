/* lint: reading and checking sequence files, shared by `relance lint`,
 * `relance apply`, `relance preview` and the HTTP API's PUT
 * /v1/sequences/{name} (see lint.h), so that apply refuses exactly what
 * lint reports.
 *
 * It owns finding the files (a folder means its *.yaml and *.yml files,
 * sorted by name, not recursing, skipping hidden ones), reading them, the
 * time-zone check against the system's tz database (TZDIR or
 * /usr/share/zoneinfo, the files PostgreSQL on Debian uses too), the
 * checks across files (a sequence name used twice) and the output. The
 * rules themselves live in sequence.c; the command line in cmd/lint.c.
 *
 * Output: every problem on stdout as "file:line:column: message" or
 * "file:line:column: warning: message", files in the order given, problems
 * in file order; a path that cannot be read is reported on stderr. */
#include "lint.h"
#include "config.h"
#include "sequence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct seen_name {
    char *name, *where;        /* "file:line:col" of its first use */
};

struct lint_run {
    const struct sequence_options *opt;
    struct seen_name *names;
    size_t n_names;
    int errors;
    struct lint_files *out;    /* clean files with their models, or NULL */
    const char *const *bulk;   /* the pools marked bulk: true, or NULL */
    const struct config *cfg;  /* the configuration, for the tracking hosts; NULL: not checked */
};

static const char *zone_dir(void)
{
    const char *d = getenv("TZDIR");
    return d && *d ? d : "/usr/share/zoneinfo";
}

/* True when name is a compiled zone (a file starting with "TZif") in
 * the tz database. The name is refused outright when it could leave the
 * directory. */
static int zone_exists(const char *name, void *arg)
{
    (void)arg;
    if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 200)
        return 0;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", zone_dir(), name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    char magic[4];
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
             memcmp(magic, "TZif", 4) == 0;
    close(fd);
    return ok;
}

/* Reads a regular file into *buf (NUL-terminated). Returns 0, or -1 with
 * errno set; *size gets the file's size even when it is too large. */
static int read_file(const char *path, char **buf, size_t *len, off_t *size)
{
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    char *p = NULL;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto fail;
    }
    *size = st.st_size;
    if (st.st_size > SEQUENCE_MAX_BYTES) {
        close(fd);
        return 0;
    }
    p = malloc((size_t)st.st_size + 1);
    if (!p)
        goto fail;
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, p + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    p[n] = '\0';
    close(fd);
    *buf = p;
    *len = n;
    return 0;
fail:;
    int saved = errno;
    free(p);
    close(fd);
    errno = saved;
    return -1;
}

static void remember_name(struct lint_run *l, const char *file, const struct sequence *seq, struct sequence_diags *d)
{
    for (size_t i = 0; i < l->n_names; i++) {
        if (strcmp(l->names[i].name, seq->name) == 0) {
            sequence_diags_add(d, seq->name_line, seq->name_col, SEQUENCE_ERROR,
                               "duplicate sequence name '%s' (first in %s)", seq->name, l->names[i].where);
            return;
        }
    }
    struct seen_name *grown = realloc(l->names, (l->n_names + 1) * sizeof *grown);
    if (!grown)
        return;
    l->names = grown;
    struct seen_name *s = &l->names[l->n_names];
    s->name = strdup(seq->name);
    if (asprintf(&s->where, "%s:%d:%d", file, seq->name_line, seq->name_col) < 0)
        s->where = NULL;
    if (!s->name || !s->where) {
        free(s->name);
        free(s->where);
        return;
    }
    l->n_names++;
}

/* A sequence of a bulk pool with no link to opt out: volume senders must
 * show one (the header alone is a client's button, not always shown). */
static void check_bulk(const struct lint_run *l, const struct sequence *seq, struct sequence_diags *d)
{
    int bulk = 0;
    for (size_t i = 0; l->bulk && l->bulk[i] && !bulk; i++)
        bulk = strcmp(l->bulk[i], seq->sender_pool) == 0;
    const char *step = bulk ? sequence_step_without_opt_out(seq) : NULL;
    if (step)
        sequence_diags_add(d, seq->pool_line, seq->pool_col, SEQUENCE_WARNING,
                           "pool '%s' is marked bulk: true, and step %s shows no link to opt out: add "
                           "unsubscribe: {footer: \"... {{unsubscribe_url}}\"} or {{unsubscribe_url}} to the step",
                           seq->sender_pool, step);
}

/* A tracked sequence whose pool sends from a domain without its own
 * tracking host: its links go through http.public_url, a host shared by
 * every sending domain (block lists see them together), or, without
 * one, are not tracked at all. One warning per domain. */
static void check_tracking(const struct lint_run *l, const struct sequence *seq, struct sequence_diags *d)
{
    if (!l->cfg || !(seq->track_clicks || seq->track_opens))
        return;
    for (size_t i = 0; i < l->cfg->n_pools; i++) {
        const struct config_pool *pool = &l->cfg->pools[i];
        if (strcmp(pool->name, seq->sender_pool) != 0)
            continue;
        for (size_t j = 0; j < pool->n_accounts; j++) {
            const char *at = strrchr(pool->accounts[j].email, '@');
            const char *domain = at ? at + 1 : pool->accounts[j].email;
            int seen = 0;
            for (size_t k = 0; k < j && !seen; k++) {
                const char *o = strrchr(pool->accounts[k].email, '@');
                seen = strcasecmp(o ? o + 1 : pool->accounts[k].email, domain) == 0;
            }
            if (seen || config_tracking_domain(l->cfg, domain))
                continue;
            if (l->cfg->public_url)
                sequence_diags_add(d, seq->track_line, seq->track_col, SEQUENCE_WARNING,
                                   "track is on and %s (pool '%s') has no tracking_domain: its links use "
                                   "http.public_url; set tracking: {domains: {%s: {tracking_domain: links.%s}}}",
                                   domain, pool->name, domain, domain);
            else
                sequence_diags_add(d, seq->track_line, seq->track_col, SEQUENCE_WARNING,
                                   "track is on and %s (pool '%s') has no tracking_domain nor http.public_url: "
                                   "nothing it sends is tracked",
                                   domain, pool->name);
        }
    }
}

/* Prints a file's problems; keeps a clean file (taking buf) in l->out. */
static void finish(struct lint_run *l, const char *path, char *buf, size_t len)
{
    struct sequence *seq = NULL;
    struct sequence_diags d;
    if (sequence_parse(path, buf, len, l->opt, &seq, &d) == 0) {
        remember_name(l, path, seq, &d);
        check_bulk(l, seq, &d);
        check_tracking(l, seq, &d);
    }
    char line[600];
    for (size_t i = 0; i < d.n; i++) {
        sequence_diag_format(&d, i, line, sizeof line);
        puts(line);
    }
    if (d.errors || d.nomem)
        l->errors += d.errors ? (int)d.errors : 1;
    if (!d.errors && !d.nomem && l->out) {
        struct lint_file *grown = realloc(l->out->items, (l->out->n + 1) * sizeof *grown);
        char *p = strdup(path);
        if (grown)
            l->out->items = grown;
        if (grown && p) {
            l->out->items[l->out->n++] = (struct lint_file){p, buf, len, seq};
            seq = NULL;
            buf = NULL;
        } else {
            free(p);
            fprintf(stderr, "relance: lint: out of memory\n");
            l->errors++;
        }
    }
    sequence_free(seq);
    sequence_diags_free(&d);
    free(buf);
}

static void lint_file(struct lint_run *l, const char *path)
{
    char *buf;
    size_t len = 0;
    off_t size;
    if (read_file(path, &buf, &len, &size) < 0) {
        fprintf(stderr, "relance: lint: cannot read '%s': %s\n", path, strerror(errno));
        l->errors++;
        return;
    }
    if (!buf) {
        printf("%s:1:1: file too large (%lld bytes; a sequence file is at most %d)\n", path, (long long)size,
               SEQUENCE_MAX_BYTES);
        l->errors++;
        return;
    }
    finish(l, path, buf, len);
}

static int yaml_name(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return 0;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) || (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lint_dir(struct lint_run *l, const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "relance: lint: cannot read folder '%s': %s\n", path, strerror(errno));
        l->errors++;
        return;
    }
    char **files = NULL;
    size_t n = 0;
    struct dirent *e;
    for (;;) {
        e = readdir(dir);
        if (!e)
            break;
        if (!yaml_name(e->d_name))
            continue;
        char **grown = realloc(files, (n + 1) * sizeof *files);
        if (!grown)
            break;
        files = grown;
        size_t plen = strlen(path);
        const char *sep = plen && path[plen - 1] == '/' ? "" : "/";
        if (asprintf(&files[n], "%s%s%s", path, sep, e->d_name) < 0)
            break;
        n++;
    }
    closedir(dir);
    if (n == 0) {
        fprintf(stderr, "relance: lint: no .yaml or .yml files in '%s'\n", path);
        l->errors++;
    }
    if (n > 1)
        qsort(files, n, sizeof *files, by_name);
    for (size_t i = 0; i < n; i++) {
        lint_file(l, files[i]);
        free(files[i]);
    }
    free(files);
}

static void free_names(struct lint_run *l)
{
    for (size_t i = 0; i < l->n_names; i++) {
        free(l->names[i].name);
        free(l->names[i].where);
    }
    free(l->names);
}

int lint_collect(int n, char **paths, const char *const *pools, struct lint_files *out)
{
    return lint_collect_bulk(n, paths, pools, NULL, NULL, out);
}

int lint_collect_bulk(int n, char **paths, const char *const *pools, const char *const *bulk_pools,
                      const struct config *cfg, struct lint_files *out)
{
    struct sequence_options opt = {zone_exists, NULL, pools};
    struct lint_run l = {&opt, NULL, 0, 0, out, bulk_pools, cfg};
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            lint_dir(&l, paths[i]);
        else
            lint_file(&l, paths[i]);
    }
    fflush(stdout);
    free_names(&l);
    return l.errors;
}

int lint_parse_source(const char *file, const char *src, size_t len, struct lint_files *out)
{
    struct sequence_options opt = {zone_exists, NULL, NULL};
    struct lint_run l = {&opt, NULL, 0, 0, out, NULL, NULL};
    char *buf = malloc(len + 1);
    if (!buf) {
        fprintf(stderr, "relance: out of memory\n");
        return -1;
    }
    memcpy(buf, src, len);
    buf[len] = '\0';
    size_t before = out ? out->n : 0;
    finish(&l, file, buf, len);
    fflush(stdout);
    free_names(&l);
    return l.errors || (out && out->n == before) ? -1 : 0;
}

int lint_source(const char *file, const char *src, size_t len, struct sequence **seq, struct sequence_diags *diags)
{
    /* apply's options: the same zone check, no pool check */
    struct sequence_options opt = {zone_exists, NULL, NULL};
    return sequence_parse(file, src, len, &opt, seq, diags);
}

void lint_files_free(struct lint_files *files)
{
    if (!files)
        return;
    for (size_t i = 0; i < files->n; i++) {
        free(files->items[i].path);
        free(files->items[i].source);
        sequence_free(files->items[i].seq);
    }
    free(files->items);
    files->items = NULL;
    files->n = 0;
}
