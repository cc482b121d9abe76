/* ytree: libyaml events to a positioned tree, refusing what we never want
 * to expand (aliases) or could be made to spend unbounded memory on. */
#include "ytree.h"

#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct builder {
    struct ynode *stack[YTREE_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    struct ynode *root;
};

static void set_error(struct yerror *err, int line, int col, const char *msg)
{
    err->line = line;
    err->col = col;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

static struct ynode *node_new(enum ynode_type type, const yaml_mark_t *mark)
{
    struct ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->type = type;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

static int node_append(struct ynode *parent, struct ynode *child)
{
    if ((parent->n & (parent->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = parent->n ? parent->n * 2 : 4;
        struct ynode **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return -1;
        parent->items = items;
    }
    parent->items[parent->n++] = child;
    return 0;
}

/* Attaches a finished or opened node to the current container. */
static int attach(struct builder *b, struct ynode *n, struct yerror *err)
{
    if (++b->nodes > YTREE_MAX_NODES) {
        set_error(err, n->line, n->col, "document too large");
        ytree_free(n);
        return -1;
    }
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    if (node_append(b->stack[b->depth - 1], n) < 0) {
        ytree_free(n);
        set_error(err, 0, 0, "out of memory");
        return -1;
    }
    return 0;
}

static int open_container(struct builder *b, enum ynode_type type,
                          const yaml_mark_t *mark, struct yerror *err)
{
    if (b->depth >= YTREE_MAX_DEPTH) {
        set_error(err, (int)mark->line + 1, (int)mark->column + 1, "nesting too deep");
        return -1;
    }
    struct ynode *n = node_new(type, mark);
    if (!n || attach(b, n, err) < 0)
        return -1;
    b->stack[b->depth++] = n;
    return 0;
}

/* The 1-based line and column of byte off, columns counted in characters
 * as libyaml counts them. */
static void position_at(const char *buf, size_t off, int *line, int *col)
{
    *line = *col = 1;
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n')
            ++*line, *col = 1;
        else if (((unsigned char)buf[i] & 0xC0) != 0x80)
            ++*col;
}

/* libyaml's reader checks the encoding ahead of its scanner, in chunks,
 * and leaves no mark: its error would point at 1:1. Report where the
 * first byte that is not UTF-8 is instead. */
static int reader_error(const char *buf, size_t len, const yaml_parser_t *parser, struct yerror *err)
{
    size_t off = 0, n;
    int line, col;
    char msg[200];
    while (off < len && (n = utf8_decode((const unsigned char *)buf + off, len - off, NULL)) > 0)
        off += n;
    if (off < len) {
        position_at(buf, off, &line, &col);
        snprintf(msg, sizeof msg, "invalid UTF-8 (byte 0x%02X); save the file as UTF-8", (unsigned char)buf[off]);
    } else {
        position_at(buf, parser->problem_offset < len ? parser->problem_offset : len, &line, &col);
        snprintf(msg, sizeof msg, "invalid YAML: %s", parser->problem ? parser->problem : "unreadable input");
    }
    set_error(err, line, col, msg);
    return -1;
}

/* libyaml names a tab in the indentation only sometimes ("found
 * character that cannot start any token" otherwise). A tab among the
 * leading blanks of the line the error is on is the cause: say so, at
 * the tab. Returns 0 when that line has no such tab. */
static int tab_error(const char *buf, size_t len, size_t line0, struct yerror *err)
{
    size_t i = 0;
    for (size_t l = 0; l < line0 && i < len; i++)
        if (buf[i] == '\n')
            l++;
    for (size_t start = i; i < len && (buf[i] == ' ' || buf[i] == '\t'); i++)
        if (buf[i] == '\t') {
            set_error(err, (int)line0 + 1, (int)(i - start) + 1, "a tab cannot indent YAML; use spaces");
            return -1;
        }
    return 0;
}

int ytree_parse(const char *buf, size_t len, struct ynode **out, struct yerror *err)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b = {0};
    int rc = -1, done = 0, docs = 0;

    *out = NULL;
    memset(err, 0, sizeof *err);
    if (!yaml_parser_initialize(&parser)) {
        set_error(err, 0, 0, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR) {
                (void)reader_error(buf, len, &parser, err);
                goto fail;
            }
            if (parser.error == YAML_SCANNER_ERROR && tab_error(buf, len, parser.problem_mark.line, err) < 0)
                goto fail;
            const yaml_mark_t *m = parser.problem_mark.line || parser.problem_mark.column
                                       ? &parser.problem_mark : &parser.context_mark;
            char msg[200];
            snprintf(msg, sizeof msg, "invalid YAML: %s%s%s",
                     parser.problem ? parser.problem : "syntax error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            set_error(err, (int)m->line + 1, (int)m->column + 1, msg);
            goto fail;
        }
        int bad = 0;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                set_error(err, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                          "only one YAML document per file");
                bad = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            set_error(err, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                      "YAML aliases (*name) are not supported");
            bad = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                                               : ev.data.mapping_start.anchor;
            if (anchor) {
                set_error(err, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                          "YAML anchors (&name) are not supported");
                bad = 1;
            } else if (ev.type == YAML_SCALAR_EVENT) {
                struct ynode *n = node_new(YNODE_SCALAR, &ev.start_mark);
                if (!n) {
                    set_error(err, 0, 0, "out of memory");
                    bad = 1;
                    break;
                }
                n->len = ev.data.scalar.length;
                n->value = malloc(n->len + 1);
                if (!n->value) {
                    ytree_free(n);
                    set_error(err, 0, 0, "out of memory");
                    bad = 1;
                    break;
                }
                memcpy(n->value, ev.data.scalar.value, n->len);
                n->value[n->len] = '\0';
                n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                bad = attach(&b, n, err) < 0;
            } else {
                bad = open_container(&b, ev.type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQ : YNODE_MAP,
                                     &ev.start_mark, err) < 0;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            b.depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (bad)
            goto fail;
    }
    *out = b.root;
    b.root = NULL;
    rc = 0;
fail:
    ytree_free(b.root);
    yaml_parser_delete(&parser);
    return rc;
}

void ytree_free(struct ynode *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++)
        ytree_free(node->items[i]);
    free(node->items);
    free(node->value);
    free(node);
}

const struct ynode *ytree_get(const struct ynode *map, const char *key)
{
    if (!map || map->type != YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct ynode *k = map->items[i];
        if (k->type == YNODE_SCALAR && strcmp(k->value, key) == 0)
            return map->items[i + 1];
    }
    return NULL;
}

int ytree_is_null(const struct ynode *node)
{
    if (!node)
        return 1;
    if (node->type != YNODE_SCALAR || node->quoted)
        return 0;
    return node->len == 0 || strcmp(node->value, "~") == 0 || strcmp(node->value, "null") == 0 ||
           strcmp(node->value, "Null") == 0 || strcmp(node->value, "NULL") == 0;
}

/* Optimal string alignment distance: insertions, deletions, substitutions
 * and swaps of two neighbours each count as one edit. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t rows[3][65];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *ytree_suggest(const char *word, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) <= 4 ? 1 : 2;
    for (size_t i = 0; known[i]; i++) {
        size_t d = edit_distance(word, known[i]);
        if (d <= limit && d < best_d) {
            best = known[i];
            best_d = d;
        }
    }
    return best;
}

const char *ytree_type_name(const struct ynode *node)
{
    switch (node->type) {
    case YNODE_MAP:
        return "a mapping";
    case YNODE_SEQ:
        return "a list";
    default:
        return "a scalar";
    }
}
