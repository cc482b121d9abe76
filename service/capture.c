/* capture: Maildir delivery for the capture transport. Small synchronous
 * writes: the files are a few kilobytes and capture is for trying
 * sequences, not for volume. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int capture_open(const char *dir)
{
    static const char *const subs[] = {"tmp", "new", "cur"};
    char path[4096];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
        if (mkdir_p(path) < 0)
            return -1;
    }
    return 0;
}

int capture_write(const char *dir, const char *name_hint, const char *msg, size_t len)
{
    char name[300], tmp[4500], dst[4500];
    size_t n = 0;
    /* a file name from the hint: keep [A-Za-z0-9._-] */
    for (const char *p = name_hint; *p && n + 1 < sizeof name; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
            *p == '-' || *p == '_')
            name[n++] = *p;
    name[n] = '\0';
    snprintf(tmp, sizeof tmp, "%s/tmp/%s", dir, name);
    snprintf(dst, sizeof dst, "%s/new/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, msg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, dst) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}
