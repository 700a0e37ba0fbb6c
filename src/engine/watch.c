/*
 * watch.c - reload on a change of the -c file (watch_*).
 *
 * inotify watches directories, not the file: an editor that writes a new
 * file and renames it over the old one, and Kubernetes, which updates a
 * mounted ConfigMap by renaming a fresh ..data symlink over the old one
 * (ppfwd.yaml -> ..data/ppfwd.yaml -> ..2026_12_04_.../ppfwd.yaml), both
 * replace the inode a file watch would hold. So the thread watches the
 * file's directory for the file's own name and for Kubernetes' "..*"
 * entries, plus the directory the file resolves to (a symlink elsewhere),
 * re-resolved after each burst. The first event of a burst starts a
 * WATCH_COALESCE_MS wait; then the file's content decides: a reload only
 * when it differs from the last one seen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

#include "engine/watch.h"
#include "util/log.h"

#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF |       \
     IN_MOVE_SELF | IN_ONLYDIR)

struct watch {
    char *path; /* as given to -c */
    char *base; /* its last component */
    watch_cb *cb;
    void *arg;
    int ifd;       /* inotify */
    int stopfd;    /* eventfd: watch_stop */
    int wd_dir;    /* the directory of path */
    int wd_target; /* the directory path resolves to, when another; else -1 */
    char target_base[NAME_MAX + 1];
    uint64_t last; /* fingerprint at start or at the last cb */
    pthread_t thread;
};

uint64_t watch_fingerprint(const char *path)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return 0;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n == -1) {
            if (errno == EINTR)
                continue;
            close(fd);
            return 0;
        }
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
    }
    close(fd);
    return h == 0 ? 1 : h;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Watches the directory path resolves to, if it is not path's own (a
 * symlink into another directory, or Kubernetes' ..data chain). */
static void retarget(struct watch *w)
{
    char real[PATH_MAX], *slash;
    int wd = -1;

    if (realpath(w->path, real) != NULL && (slash = strrchr(real, '/')) != NULL) {
        snprintf(w->target_base, sizeof(w->target_base), "%s", slash + 1);
        *slash = '\0';
        wd = inotify_add_watch(w->ifd, real[0] ? real : "/", WATCH_MASK);
        if (wd == w->wd_dir)
            wd = -1;
    }
    if (w->wd_target != -1 && w->wd_target != wd)
        inotify_rm_watch(w->ifd, w->wd_target); /* EINVAL if already gone: fine */
    w->wd_target = wd;
}

/* Reads the pending events; returns 1 if one may concern the file. */
static int drain_events(struct watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    ssize_t n;

    while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)(const void *)p;
            const char *name = e->len ? e->name : "";
            if ((e->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF)) ||
                strcmp(name, w->base) == 0 || strncmp(name, "..", 2) == 0 ||
                (e->wd == w->wd_target && strcmp(name, w->target_base) == 0))
                relevant = 1;
            p += sizeof(*e) + e->len;
        }
    }
    return relevant;
}

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    struct pollfd pf[2] = {{.fd = w->stopfd, .events = POLLIN}, {.fd = w->ifd, .events = POLLIN}};
    uint64_t due = 0;

    for (;;) {
        int timeout = -1;
        if (due) {
            uint64_t now = now_ms();
            timeout = due > now ? (int)(due - now) : 0;
        }
        if (poll(pf, 2, timeout) == -1 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        if ((pf[1].revents & POLLIN) && drain_events(w) && !due)
            due = now_ms() + WATCH_COALESCE_MS;
        if (due && now_ms() >= due) {
            uint64_t fp;
            due = 0;
            retarget(w);
            fp = watch_fingerprint(w->path);
            if (fp != w->last) {
                w->last = fp;
                w->cb(w->arg, "watch");
            }
        }
    }
    return NULL;
}

static void watch_free(struct watch *w)
{
    if (w->ifd != -1)
        close(w->ifd);
    if (w->stopfd != -1)
        close(w->stopfd);
    free(w->path);
    free(w);
}

struct watch *watch_start(const char *path, watch_cb *cb, void *arg)
{
    struct watch *w = calloc(1, sizeof(*w));
    char *dir = NULL, *slash;
    const char *err = NULL;

    if (w == NULL) {
        log_event(LOG_ERROR, "watch_error", NULL, "file", LOG_STR, path, "error", LOG_STR,
                  strerror(ENOMEM), LOG_END);
        return NULL;
    }
    w->ifd = w->stopfd = w->wd_target = -1;
    if ((w->path = strdup(path)) == NULL || (dir = strdup(path)) == NULL) {
        err = strerror(ENOMEM);
        goto fail;
    }
    w->cb = cb;
    w->arg = arg;
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    slash = strrchr(dir, '/');
    w->base = slash ? w->path + (slash - dir) + 1 : w->path;
    if (slash)
        *slash = '\0';
    if (w->stopfd == -1 || w->ifd == -1 ||
        (w->wd_dir = inotify_add_watch(w->ifd,
                                       !slash   ? "."
                                       : dir[0] ? dir
                                                : "/",
                                       WATCH_MASK)) == -1) {
        err = strerror(errno);
        goto fail;
    }
    retarget(w);
    w->last = watch_fingerprint(path);
    if ((errno = pthread_create(&w->thread, NULL, watch_main, w)) != 0) {
        err = strerror(errno);
        goto fail;
    }
    log_event(LOG_INFO, "watch_start", NULL, "file", LOG_STR, path, LOG_END);
    free(dir);
    return w;
fail:
    log_event(LOG_ERROR, "watch_error", NULL, "file", LOG_STR, path, "error", LOG_STR, err,
              LOG_END);
    free(dir);
    watch_free(w);
    return NULL;
}

void watch_stop(struct watch *w)
{
    uint64_t one = 1;

    if (w == NULL)
        return;
    if (write(w->stopfd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_event(LOG_ERROR, "watch_error", NULL, "error", LOG_STR, strerror(errno), LOG_END);
    pthread_join(w->thread, NULL);
    watch_free(w);
}
