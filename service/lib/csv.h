/* csv: an RFC 4180 reader that takes bytes in chunks and yields records.
 *
 * Dialect: fields separated by a delimiter, ',' unless the reader is told
 * otherwise (csv_reader_delimiter: ';' or a tab, what spreadsheets in many
 * locales write); a field is either bare or quoted with '"' (a quote
 * inside a quoted field is written ""), and a quoted field may hold
 * delimiters and line breaks. Records end at LF, CRLF or a bare CR. A UTF-8
 * byte order mark at the very start is skipped. Blank lines are skipped
 * (they yield nothing); a line holding only "" is a record with one empty
 * field.
 *
 * Errors belong to one record, never to the stream: a quote inside a bare
 * field, text after a closing quote, a quoted field still open at the end
 * of the input, a field, record or field count over the limits, a NUL byte
 * or invalid UTF-8. Such a record is yielded with `error` set and no
 * fields, and the reader resynchronises at the start of the line after the
 * one where the record began: a stray quote that swallowed the following
 * lines gives those lines back, so later good rows are kept.
 *
 * Usage (no assignments in conditions, so the loops are spelled out):
 *
 *     struct csv_reader *r = csv_reader_new(NULL);
 *     while (more input) {
 *         csv_reader_feed(r, buf, n);            buf stays valid until ...
 *         for (;;) {
 *             int rc = csv_reader_next(r, &rec);  ... this returns 0
 *             if (rc <= 0) break;                 rc < 0: out of memory
 *             use rec
 *         }
 *     }
 *     csv_reader_finish(r);                       then drain next() again
 */
#ifndef RELANCE_CSV_H
#define RELANCE_CSV_H

#include <stddef.h>

#define CSV_MAX_FIELD_DEFAULT (64 * 1024)   /* bytes of one field, unquoted */
#define CSV_MAX_RECORD_DEFAULT (256 * 1024) /* bytes of one record as written */
#define CSV_MAX_FIELDS_DEFAULT 1024         /* fields in one record */

/* Zero members take the defaults above. */
struct csv_limits {
    size_t max_field;
    size_t max_record;
    size_t max_fields;
};

struct csv_record {
    unsigned long line;       /* 1-based line where the record starts */
    size_t n_fields;          /* 0 when error is set */
    char *const *fields;      /* NUL-terminated, unquoted; valid until the next call */
    const size_t *lengths;    /* byte length of each field */
    const char *error;        /* NULL, or why the record was refused (a fixed phrase) */
    unsigned long error_line; /* with error: the line where the problem was seen */
};

struct csv_reader;

/* A reader with the given limits (NULL: defaults); NULL when out of
 * memory. Free it with csv_reader_free. */
struct csv_reader *csv_reader_new(const struct csv_limits *limits);
void csv_reader_free(struct csv_reader *r);

/* The delimiters a reader accepts, in the order csv_delimiter_detect
 * prefers them on a tie. */
#define CSV_DELIMITERS ",;\t"

/* Sets the field delimiter, one of CSV_DELIMITERS; before the first feed.
 * -EINVAL for any other byte (the reader keeps its delimiter). */
int csv_reader_delimiter(struct csv_reader *r, char delimiter) __attribute__((warn_unused_result));

/* Guesses the delimiter of a file from its start, data[0..len): the one
 * of CSV_DELIMITERS that splits the header line (the first line, after a
 * UTF-8 BOM, a line break inside quotes not ending it) into the most
 * fields, counting delimiters outside quotes only; on a tie the earlier
 * in CSV_DELIMITERS (',' for a single column). Give it at least the whole header line when the file has
 * one: only the bytes given are looked at. */
char csv_delimiter_detect(const char *data, size_t len);

/* Reads a delimiter as a user writes it on a command line: ",", ";", a
 * tab character, the two characters \t, or "tab". The byte, or -EINVAL. */
int csv_delimiter_parse(const char *s) __attribute__((warn_unused_result));

/* Hands the reader the next chunk of input. The reader keeps a pointer to
 * data, not a copy: data must stay valid and unchanged until
 * csv_reader_next returns 0. Must not be called while input from the
 * previous feed is left, nor after csv_reader_finish. */
void csv_reader_feed(struct csv_reader *r, const char *data, size_t len);

/* Says that no more input will come: the last record may lack a line
 * break, and a quoted field still open becomes an error. */
void csv_reader_finish(struct csv_reader *r);

/* The next complete record: 1 and *rec filled (its pointers valid until
 * the next call on r), 0 when the reader needs more input (or, after
 * csv_reader_finish, when everything was read), -ENOMEM when out of
 * memory (the reader is then unusable). */
int csv_reader_next(struct csv_reader *r, struct csv_record *rec) __attribute__((warn_unused_result));

/* The number of input bytes consumed so far (for progress reports). */
unsigned long long csv_reader_offset(const struct csv_reader *r);

/* The index of the field equal to name, comparing case-insensitively (ASCII)
 * after trimming spaces and tabs around the field, or -1. For header rows. */
int csv_record_find(const struct csv_record *rec, const char *name);

#endif
