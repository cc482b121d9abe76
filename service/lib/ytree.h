/* ytree: a YAML document as a small tree of positioned nodes.
 *
 * Built from libyaml's event stream rather than its document API so that
 * hostile input is refused while reading: aliases and anchors are not
 * accepted (no billion-laughs expansion is possible), nesting deeper than
 * YTREE_MAX_DEPTH and documents over YTREE_MAX_NODES are errors, and
 * libyaml rejects invalid UTF-8 and tabs used as indentation. Every node
 * keeps its 1-based line and column for `file:line:column` errors.
 * Pure: no I/O, no logging. */
#ifndef RELANCE_YTREE_H
#define RELANCE_YTREE_H

#include <stddef.h>

#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_NODES 200000

enum ynode_type { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
    enum ynode_type type;
    int line, col;          /* 1-based */
    int quoted;             /* scalar written with quotes or as a block */
    char *value;            /* scalar text, NUL-terminated */
    size_t len;             /* scalar length in bytes */
    struct ynode **items;   /* SEQ: elements; MAP: key, value, key, value... */
    size_t n;               /* number of entries in items */
};

struct yerror {
    int line, col;          /* 1-based; 0 when unknown */
    char msg[256];
};

/* Parses one document. On success *out owns the tree (ytree_free) and 0
 * is returned; on failure -1 and err says where and why. An empty input
 * yields *out == NULL and 0. */
int ytree_parse(const char *buf, size_t len, struct ynode **out, struct yerror *err)
    __attribute__((warn_unused_result));
void ytree_free(struct ynode *node);

/* The value for key in a map node, or NULL. */
const struct ynode *ytree_get(const struct ynode *map, const char *key);
/* True if a scalar node is null (~, null, empty, unquoted). */
int ytree_is_null(const struct ynode *node);
/* The closest name in known (NULL-terminated) within a small edit
 * distance, for "did you mean ...?", or NULL. */
const char *ytree_suggest(const char *word, const char *const *known);
/* A printable name for a node type: "a mapping", "a list", "a scalar". */
const char *ytree_type_name(const struct ynode *node);

#endif
