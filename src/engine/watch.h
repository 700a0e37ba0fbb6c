/*
 * watch.h - reload when the -c file changes (--watch, YAML `watch: true`):
 * inotify on the file's directory, and on the directory of what it points to
 * when it is a symlink, so that editors' write-and-rename and Kubernetes'
 * ConfigMap update (a new ..data symlink renamed over the old one) are seen
 * as well as writes in place (watch_*).
 */
#ifndef PPFWD_WATCH_H
#define PPFWD_WATCH_H

#include <stdint.h>

/* Called from the watch thread, once per burst of changes. */
typedef void watch_cb(void *arg, const char *why);

/* Changes closer together than this make one reload: the first change of a
 * burst starts the wait, the ones during it are part of it. */
#define WATCH_COALESCE_MS 200

struct watch;

/* Starts a thread that watches path and calls cb(arg, "watch") WATCH_COALESCE_MS
 * after the first of a burst of changes, when the file's content then
 * differs from what it was at the previous call (or at start): a file
 * rewritten unchanged, or another file of the directory, reloads nothing;
 * a file removed counts as a change (the reload then reports it). Returns
 * NULL (logged as watch_error) when inotify or the thread cannot start. */
struct watch *watch_start(const char *path, watch_cb *cb, void *arg);

/* Stops the thread and frees w (NULL is fine). */
void watch_stop(struct watch *w);

/* A fingerprint of the file's content (FNV-1a over its bytes), 0 when it
 * cannot be read; exposed for the tests. */
uint64_t watch_fingerprint(const char *path);

#endif /* PPFWD_WATCH_H */
