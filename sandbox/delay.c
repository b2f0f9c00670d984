/* delay - answers held back on purpose (fault delay_ms), without holding a thread.
 *
 * A delayed call is suspended (MHD_suspend_connection) with a wake time;
 * one timer thread resumes it when due, and libmicrohttpd calls the handler
 * again, which sends the answer computed before the wait. Sleeping in the
 * handler instead would stall every connection of that pool thread.
 * Suspension happens under our mutex and resumption only for entries taken
 * out under it, so a connection is never resumed before it is suspended.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "sandbox.h"

typedef struct waiter_t {
    struct MHD_Connection *conn;
    long long wake_ms;
    struct waiter_t *next;
} waiter_t;

struct sbx_delay_t {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    waiter_t *head; /* sorted by wake_ms */
    bool stopping;
};

/* s_mono_ms - monotonic milliseconds (the condition variable's clock) */
static long long s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_resume_all - resume every waiter in list and free it (no lock held); how many */
static int s_resume_all(waiter_t *list)
{
    int n = 0;
    for (; list; n++) {
        waiter_t *next = list->next;
        MHD_resume_connection(list->conn);
        free(list);
        list = next;
    }
    return n;
}

/* s_run - the timer thread: wait for the earliest wake time, resume what is due */
static void *s_run(void *arg)
{
    sbx_delay_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stopping) {
        if (!self->head) {
            pthread_cond_wait(&self->cond, &self->mu);
            continue;
        }
        long long now = s_mono_ms();
        if (self->head->wake_ms > now) {
            long long at = self->head->wake_ms;
            struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000};
            pthread_cond_timedwait(&self->cond, &self->mu, &ts);
            continue;
        }
        waiter_t *due = NULL, **tail = &due;
        while (self->head && self->head->wake_ms <= now) {
            waiter_t *w = self->head;
            self->head = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        }
        pthread_mutex_unlock(&self->mu);
        s_resume_all(due);
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* sbx_delay_new - start the timer thread */
sbx_delay_t *sbx_delay_new(void)
{
    sbx_delay_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&self->mu, NULL);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mu);
        free(self);
        return NULL;
    }
    return self;
}

/* sbx_delay_suspend - park conn until ms from now (called from the access handler) */
bool sbx_delay_suspend(sbx_delay_t *self, struct MHD_Connection *conn, long ms)
{
    waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return false;
    w->conn = conn;
    w->wake_ms = s_mono_ms() + ms;
    pthread_mutex_lock(&self->mu);
    if (self->stopping) {
        pthread_mutex_unlock(&self->mu);
        free(w);
        return false;
    }
    waiter_t **p = &self->head;
    while (*p && (*p)->wake_ms <= w->wake_ms)
        p = &(*p)->next;
    w->next = *p;
    *p = w;
    MHD_suspend_connection(conn);
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return true;
}

/* sbx_delay_stop - answer everything still waiting now (a daemon must not be
 * stopped with suspended connections); how many were waiting */
int sbx_delay_stop(sbx_delay_t *self)
{
    if (!self)
        return 0;
    pthread_mutex_lock(&self->mu);
    bool was = self->stopping;
    self->stopping = true;
    waiter_t *all = self->head;
    self->head = NULL;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mu);
    if (!was)
        pthread_join(self->thread, NULL);
    return s_resume_all(all);
}

/* sbx_delay_destroy - stop, free, NULL the pointer */
void sbx_delay_destroy(sbx_delay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sbx_delay_t *self = *self_p;
    sbx_delay_stop(self);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
