/* lint: reading and checking sequence files, shared by `relance lint`,
 * `relance apply` and `relance preview`, so that apply refuses exactly
 * what lint reports. Problems are printed as lint prints them
 * ("file:line:column: message" on stdout). */
#ifndef RELANCE_LINT_H
#define RELANCE_LINT_H

#include "sequence.h"

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

/* Parses one stored source (from the database) into out as its only
 * file. Returns 0, or -1 after printing the problems. */
int lint_parse_source(const char *file, const char *src, size_t len, struct lint_files *out);

void lint_files_free(struct lint_files *files);

#endif
