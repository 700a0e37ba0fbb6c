/*
 * control.h - the server's control thread: reloads off the signal thread,
 * requested by anyone, and the serving state that /healthz reports
 * (control_*, server_request_reload, server_state).
 *
 * A reload runs in two halves, both in server.c: loading the file (slow: it
 * may take seconds, it touches nothing shared) and applying it (quick: the
 * provider's routes join the file's, the route set is swapped under
 * srv->lock and the workers are woken). The
 * control thread runs them one reload at a time; requests that come while
 * one runs are coalesced into one more. SIGTERM never waits for a load: a
 * reload still loading when the server stops is discarded when its load
 * ends, its config freed.
 */
#ifndef PPFWD_CONTROL_H
#define PPFWD_CONTROL_H

struct server;
struct control;
struct server_load;

/*
 * Asks for the config to be read again and applied, as SIGHUP does; why
 * names the trigger for the log ("SIGHUP", "watch", "docker"; a string
 * that lives as long as the process, e.g. a literal). Thread-safe, never
 * blocks on a reload: it records the request and returns. Requests made
 * while a reload runs give exactly one more reload after it; requests
 * before the control thread starts wait for it; after the server began
 * stopping they are ignored.
 */
void server_request_reload(struct server *srv, const char *why);

enum server_state {
    SERVER_STARTING, /* the workers are not all running yet */
    SERVER_SERVING,
    SERVER_DRAINING, /* SIGTERM/SIGINT came: listeners close, connections finish */
};

/* Where srv is in its life; any thread (what /healthz reports). */
enum server_state server_state(struct server *srv);

/* Creates the control state for srv (path: -c FILE, or NULL; compose: a
 * provider's routes join the file's or command line's, so a reload without
 * a file still has something to do), before any other thread may look at
 * it. Returns NULL when out of memory. */
struct control *control_new(struct server *srv, const char *path, int compose);

/* Starts the control thread: srv serves from now on. Returns 0 or -errno. */
int control_start(struct control *ctl);

/* The server stops: from the return on, no reload is applied (one being
 * applied has finished; one loading will be discarded). Never waits for
 * a load. */
void control_stop(struct control *ctl);

/* Joins the control thread and frees ctl, after control_stop. A thread
 * still loading a config is left to finish (detached): it frees the config
 * and ctl itself, and touches nothing else of the server. */
void control_free(struct control *ctl);

/* server.c: the two halves of a reload, called by the control thread. */

/* Loads and checks path. Without a file (routes came as URLs), there is
 * nothing to load: with compose, the command line's routes are what the
 * apply composes with the provider's; without, nothing to reload. Returns
 * what to apply, or NULL after logging why (reload_error, reload_failed).
 * Touches no server state. */
struct server_load *server_reload_load(const char *path, int compose);

/* Applies ld (taking it) as the new route set: its routes, then the
 * provider's current ones that can join them; why is the trigger, for the
 * reload log line. Failures are logged and the running set kept. */
void server_reload_apply(struct server *srv, struct server_load *ld, const char *why);

/* Drops a load that will not be applied. */
void server_reload_discard(struct server_load *ld);

#endif /* PPFWD_CONTROL_H */
