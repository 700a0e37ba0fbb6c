/*
 * udp.c - UDP routes (udp_*). Not written yet: a UDP route is refused at
 * start with a clear error rather than silently not served.
 */
#include "log.h"
#include "proxy.h"
#include "udp.h"

int udp_listen(struct worker *w, struct listener *ls)
{
    (void)w;
    log_event(LOG_ERROR, "start_error", ls->r->cfg->name, "error", LOG_STR,
              "UDP routes are not implemented yet", LOG_END);
    return -1;
}

void udp_stop(struct worker *w, struct listener *ls)
{
    (void)w, (void)ls;
}
