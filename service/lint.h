/* lint: reading and checking sequence files, shared by `relance lint`,
 * `relance apply`, `relance preview` and the HTTP API's sequences, so
 * that apply refuses exactly what lint reports. Problems are printed as
 * lint prints them ("file:line:column: message" on stdout). */
#ifndef RELANCE_LINT_H
#define RELANCE_LINT_H

#include "sequence.h"

struct config;

#include <stddef.h>

struct lint_file {
    char *path;          /* as given, or the stored source_file */
    char *source;        /* the YAML text */
    size_t len;
    struct sequence *seq;
};

struct lint_files {
    struct lint_file *items;
    size_t n;
};

/* Lints every path (files, or folders: their .yaml and .yml files, sorted),
 * printing each problem, and checks names across files. pools, when not
 * NULL, warns about unknown sender pools. Returns the number of errors
 * (0: out holds every file with its model; the caller frees it). */
int lint_collect(int n, char **paths, const char *const *pools, struct lint_files *out);
/* The same, warning too about a sequence of a pool in bulk_pools (when
 * not NULL) that shows no link to opt out, and, given cfg, about a
 * tracked sequence whose pool sends from a domain without its own
 * tracking_domain. */
int lint_collect_bulk(int n, char **paths, const char *const *pools, const char *const *bulk_pools,
                      const struct config *cfg, struct lint_files *out);

/* Parses one stored source (from the database) into out as its only
 * file. Returns 0, or -1 after printing the problems. */
int lint_parse_source(const char *file, const char *src, size_t len, struct lint_files *out);

/* Checks one sequence given as text (the HTTP API's PUT), as lint_collect
 * and apply check one file, printing nothing: diags gets every problem
 * (sequence_diag_format writes it as lint prints it) whatever the result;
 * the caller frees it. Returns 0 and the model in *seq (the caller frees
 * it) when there is no error, else -1 with *seq NULL. The time zones are
 * looked up in the tz database's files, synchronously. */
int lint_source(const char *file, const char *src, size_t len, struct sequence **seq, struct sequence_diags *diags)
    __attribute__((warn_unused_result));

void lint_files_free(struct lint_files *files);

#endif
