/*
 * control.c - the control thread: reloads run here, not on the thread that
 * waits for signals, so SIGTERM is acted on at once even while a config
 * takes seconds to load (control_*, server_request_reload, server_state).
 *
 * Before it, a SIGHUP reload ran on the signal thread and a SIGTERM sent
 * during a 27 s load waited 27 s. Now the signal thread only records a
 * request (server_request_reload) or the stop (control_stop), and never
 * waits on a load. The thread's states, under mu:
 *
 *   IDLE --request--> LOADING --loaded--> APPLYING --> IDLE
 *                        \--stopped meanwhile--> discard --> DONE
 *
 * control_stop waits only for APPLYING, which swaps the route set under
 * srv->lock and takes milliseconds; a LOADING thread finds the stop when
 * its load ends, frees the config and exits.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/log.h"
#include "engine/control.h"
#include "engine/notify.h"
#include "engine/server.h"

enum ctl_phase { CTL_IDLE, CTL_LOADING, CTL_APPLYING, CTL_DONE };

struct control {
    struct server *srv;
    const char *path;
    int compose; /* a provider's routes join the file's or command line's */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a request or the stop (thread); APPLYING over (stop) */
    pthread_t thread;
    int started;
    enum ctl_phase phase;
    int pending;         /* a reload was asked for since the last one began */
    const char *why;     /* the latest request's trigger */
    int stopping;        /* control_stop was called */
    int abandoned;       /* control_free left a loading thread to free ctl */
    atomic_int state;    /* enum server_state */
};

void server_request_reload(struct server *srv, const char *why)
{
    struct control *ctl = srv->control;

    pthread_mutex_lock(&ctl->mu);
    if (!ctl->stopping) {
        if (ctl->pending)
            log_event(LOG_DEBUG, "reload_coalesced", NULL, "trigger", LOG_STR, why, LOG_END);
        ctl->pending = 1;
        ctl->why = why;
        pthread_cond_signal(&ctl->cv);
    }
    pthread_mutex_unlock(&ctl->mu);
}

enum server_state server_state(struct server *srv)
{
    return (enum server_state)atomic_load(&srv->control->state);
}

struct control *control_new(struct server *srv, const char *path, int compose)
{
    struct control *ctl = calloc(1, sizeof(*ctl));

    if (ctl == NULL)
        return NULL;
    ctl->srv = srv;
    ctl->path = path;
    ctl->compose = compose;
    pthread_mutex_init(&ctl->mu, NULL);
    pthread_cond_init(&ctl->cv, NULL);
    atomic_init(&ctl->state, SERVER_STARTING);
    return ctl;
}

static void control_destroy(struct control *ctl)
{
    pthread_cond_destroy(&ctl->cv);
    pthread_mutex_destroy(&ctl->mu);
    free(ctl);
}

/* One reload: load without the lock, then apply unless the server began
 * to stop meanwhile. Called and returns with mu held. */
static void reload_one(struct control *ctl)
{
    const char *why = ctl->why;
    struct server_load *nc;

    ctl->pending = 0;
    ctl->phase = CTL_LOADING;
    pthread_mutex_unlock(&ctl->mu);
    /* systemd: RELOADING=1 now, READY=1 once the outcome is known. */
    notify_reloading(ctl->srv);
    nc = server_reload_load(ctl->path, ctl->compose);
    if (nc == NULL) {
        notify_ready(ctl->srv);
        pthread_mutex_lock(&ctl->mu);
        return;
    }
    pthread_mutex_lock(&ctl->mu);
    if (ctl->stopping) {
        pthread_mutex_unlock(&ctl->mu);
        log_event(LOG_INFO, "reload_discarded", NULL, "file", LOG_STR, ctl->path, "trigger",
                  LOG_STR, why, "reason", LOG_STR, "stopping", LOG_END);
        server_reload_discard(nc);
        pthread_mutex_lock(&ctl->mu);
        return;
    }
    ctl->phase = CTL_APPLYING;
    pthread_mutex_unlock(&ctl->mu);
    server_reload_apply(ctl->srv, nc, why);
    notify_ready(ctl->srv);
    pthread_mutex_lock(&ctl->mu);
}

static void *control_main(void *arg)
{
    struct control *ctl = arg;
    int abandoned;

    pthread_mutex_lock(&ctl->mu);
    for (;;) {
        while (!ctl->pending && !ctl->stopping)
            pthread_cond_wait(&ctl->cv, &ctl->mu);
        if (ctl->stopping)
            break;
        reload_one(ctl);
        ctl->phase = CTL_IDLE;
        pthread_cond_broadcast(&ctl->cv);
    }
    ctl->phase = CTL_DONE;
    abandoned = ctl->abandoned;
    pthread_mutex_unlock(&ctl->mu);
    if (abandoned)
        control_destroy(ctl);
    return NULL;
}

int control_start(struct control *ctl)
{
    sigset_t all, old;
    int rc;

    /* Signals belong to the thread that sigwaits for them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&ctl->thread, NULL, control_main, ctl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    ctl->started = 1;
    atomic_store(&ctl->state, SERVER_SERVING);
    return 0;
}

void control_stop(struct control *ctl)
{
    atomic_store(&ctl->state, SERVER_DRAINING);
    pthread_mutex_lock(&ctl->mu);
    ctl->stopping = 1;
    pthread_cond_broadcast(&ctl->cv);
    while (ctl->phase == CTL_APPLYING)
        pthread_cond_wait(&ctl->cv, &ctl->mu);
    pthread_mutex_unlock(&ctl->mu);
}

void control_free(struct control *ctl)
{
    if (ctl == NULL)
        return;
    if (ctl->started) {
        pthread_mutex_lock(&ctl->mu);
        if (ctl->phase == CTL_LOADING) {
            /* The load may take seconds more (a slow file system): exit
             * without it; the thread frees ctl when its load ends. */
            ctl->abandoned = 1;
            pthread_detach(ctl->thread);
            pthread_mutex_unlock(&ctl->mu);
            log_event(LOG_INFO, "reload_abandoned", NULL, "file", LOG_STR, ctl->path, LOG_END);
            return;
        }
        pthread_mutex_unlock(&ctl->mu);
        pthread_join(ctl->thread, NULL);
    }
    control_destroy(ctl);
}
