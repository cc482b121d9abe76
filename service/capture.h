/* capture: the transport that writes each message into a Maildir instead
 * of sending it (transport: capture). It is how users try a sequence end
 * to end before sending for real, and how the scheduler is tested. */
#ifndef RELANCE_CAPTURE_H
#define RELANCE_CAPTURE_H

#include <stddef.h>

/* Creates dir/{tmp,new,cur} as needed. Returns 0 or -1 (errno set). */
int capture_open(const char *dir) __attribute__((warn_unused_result));
/* Writes one message atomically (tmp/ then rename into new/). name_hint
 * (the Message-ID) makes the file name unique. Returns 0 or -1. */
int capture_write(const char *dir, const char *name_hint, const char *msg, size_t len)
    __attribute__((warn_unused_result));

/* Removes from the Maildir every message that names address (in any
 * case): a person erased (DELETE /v1/contacts/{id}) leaves nothing in
 * what capture wrote either. Synchronous file reads: run it off the loop.
 * Returns how many were removed, or -1 (errno set) when a folder cannot
 * be read. */
long capture_erase(const char *dir, const char *address) __attribute__((warn_unused_result));

#endif
