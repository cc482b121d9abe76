/* capture: Maildir delivery for the capture transport, and the erasure
 * of a person from it. Small synchronous writes: the files are a few
 * kilobytes and capture is for trying sequences, not for volume. */
#include "capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

#define ERASE_FILE_MAX (16 << 20) /* a captured message is a few kilobytes; larger files are not ours */

/* Whether file path (a regular file) holds needle, in any case. */
static int file_names(const char *path, const char *needle)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ERASE_FILE_MAX) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    int found = 0;
    if (n >= 0) {
        buf[n] = '\0';
        /* a NUL inside would hide the rest from strcasestr: search each run */
        for (char *p = buf; p < buf + n && !found; p += strlen(p) + 1)
            found = strcasestr(p, needle) != NULL;
    }
    free(buf);
    return found;
}

long capture_erase(const char *dir, const char *address)
{
    static const char *const folders[] = {"new", "cur", "tmp"};
    long removed = 0;
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, folders[i]) >= (int)sizeof path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        DIR *d = opendir(path);
        if (!d) {
            if (errno == ENOENT)
                continue;
            return -1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            char file[4096 + 256];
            if (e->d_name[0] == '.')
                continue;
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            if (file_names(file, address) && unlink(file) == 0)
                removed++;
        }
        closedir(d);
    }
    return removed;
}
