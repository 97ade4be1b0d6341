/*
 * hub/wait.c: requests that wait without holding a thread. A longpoll
 * waiting for a write, a failed login waiting out its delay and a login
 * waiting for Argon2id are parked: their connection is suspended
 * (MHD_suspend_connection) and the request's pool thread goes on serving
 * others. A write to the database, a timer thread or the end of a job on
 * one of a few worker threads resumes them. The server's threads are thus
 * the pool, the timer and the workers, however many requests wait. The
 * timer also calls the server back once at a time it asks for (the idle
 * checkpoints), and the workers take jobs that belong to no request.
 *
 * One mutex orders parking against waking, so a wake-up is never lost: a
 * request parks only after checking, under it, that nothing it waits for
 * has happened yet. MHD_suspend_connection and MHD_resume_connection are
 * called under it; they take only a lock of libmicrohttpd's own, which
 * libmicrohttpd never holds while it calls back into the hub.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_srv.h"

struct hub_wait {
	pthread_mutex_t mu;
	pthread_cond_t timer_cv; /* the timer's next deadline may have moved */
	pthread_cond_t job_cv;   /* a job was queued, or the end came */
	pthread_cond_t idle_cv;  /* a job ended */
	hub_waiter *parked;      /* doubly linked */
	hub_waiter *queue_head, *queue_tail;
	unsigned running;    /* jobs being run */
	int closing;         /* no new jobs */
	int stopping;        /* no new parks: read with __atomic_load_n elsewhere */
	int quit;            /* threads end */
	uint64_t timer_next; /* when the timer will look next (UINT64_MAX: when signalled) */
	uint64_t tick_due;   /* call tick then (0: not asked) */
	void (*tick)(void *);
	void *tick_arg;
	pthread_t timer;
	int timer_started;
	pthread_t *workers;
	unsigned n_workers; /* started */
};

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* Takes x out of the parked list and resumes its connection; under w->mu. */
static void unpark(hub_wait *w, hub_waiter *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		w->parked = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	x->parked = 0;
	MHD_resume_connection(x->c);
}

/* The job of x ended (or will never run): wake its request; under w->mu. */
static void kick(hub_wait *w, hub_waiter *x)
{
	if (x->c == NULL) /* a job of no request */
		return;
	if (x->parked)
		unpark(w, x);
	else
		x->kicked = 1; /* it has not parked yet: its park returns at once */
}

static void *timer_main(void *arg)
{
	hub_wait *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->quit) {
		uint64_t now = hub_now_ms(), next = UINT64_MAX;
		hub_waiter *x, *nx;
		if (w->tick_due && w->tick_due <= now) {
			w->tick_due = 0;
			pthread_mutex_unlock(&w->mu);
			w->tick(w->tick_arg); /* it may ask again: not under w->mu */
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (w->tick_due)
			next = w->tick_due;
		for (x = w->parked; x; x = nx) {
			nx = x->next;
			if (x->due_ms == 0)
				continue;
			if (x->due_ms <= now)
				unpark(w, x);
			else if (x->due_ms < next)
				next = x->due_ms;
		}
		w->timer_next = next;
		if (next == UINT64_MAX) {
			pthread_cond_wait(&w->timer_cv, &w->mu);
		} else {
			struct timespec ts = {.tv_sec = (time_t)(next / 1000u),
			                      .tv_nsec = (long)(next % 1000u) * 1000000L};
			(void)pthread_cond_timedwait(&w->timer_cv, &w->mu, &ts);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void *worker_main(void *arg)
{
	hub_wait *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		hub_waiter *x;
		while (w->queue_head == NULL && !w->quit)
			pthread_cond_wait(&w->job_cv, &w->mu);
		if (w->quit)
			break;
		x = w->queue_head;
		w->queue_head = x->job_next;
		if (w->queue_head == NULL)
			w->queue_tail = NULL;
		x->job_next = NULL;
		x->job_state = HUB_JOB_RUNNING;
		w->running++;
		pthread_mutex_unlock(&w->mu);
		x->job(x->job_arg);
		pthread_mutex_lock(&w->mu);
		x->job_state = HUB_JOB_DONE;
		w->running--;
		kick(w, x);
		pthread_cond_broadcast(&w->idle_cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int hub_wait_new(unsigned workers, void (*tick)(void *), void *tick_arg, hub_wait **out,
                 fs_errbuf *eb)
{
	hub_wait *w;
	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->workers = calloc(workers ? workers : 1, sizeof(*w->workers))) == NULL) {
		free(w);
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	w->tick = tick;
	w->tick_arg = tick_arg;
	pthread_mutex_init(&w->mu, NULL);
	w->timer_next = UINT64_MAX;
	cond_init_mono(&w->timer_cv);
	pthread_cond_init(&w->job_cv, NULL);
	pthread_cond_init(&w->idle_cv, NULL);
	if (pthread_create(&w->timer, NULL, timer_main, w) != 0) {
		hub_wait_free(w);
		return fs_err_set(eb, FS_E_NOMEM, "cannot start the timer thread");
	}
	w->timer_started = 1;
	for (unsigned i = 0; i < workers; i++) {
		if (pthread_create(&w->workers[i], NULL, worker_main, w) != 0) {
			hub_wait_free(w);
			return fs_err_set(eb, FS_E_NOMEM, "cannot start a worker thread");
		}
		w->n_workers++;
	}
	*out = w;
	return FS_OK;
}

void hub_wait_free(hub_wait *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->timer_cv);
	pthread_cond_broadcast(&w->job_cv);
	pthread_mutex_unlock(&w->mu);
	if (w->timer_started)
		pthread_join(w->timer, NULL);
	for (unsigned i = 0; i < w->n_workers; i++)
		pthread_join(w->workers[i], NULL);
	pthread_cond_destroy(&w->timer_cv);
	pthread_cond_destroy(&w->job_cv);
	pthread_cond_destroy(&w->idle_cv);
	pthread_mutex_destroy(&w->mu);
	free(w->workers);
	free(w);
}

void hub_wait_stop(hub_wait *w)
{
	hub_waiter *x;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	/* First no new jobs, and none queued: their requests are woken and
	 * see the job did not run. Requests may still park while the jobs
	 * that run end, so that no job outlives its request. */
	w->closing = 1;
	while ((x = w->queue_head) != NULL) {
		w->queue_head = x->job_next;
		x->job_next = NULL;
		x->job_state = HUB_JOB_CANCELLED;
		kick(w, x);
	}
	w->queue_tail = NULL;
	while (w->running)
		pthread_cond_wait(&w->idle_cv, &w->mu);
	/* Then no new parks, and every parked request resumed: libmicrohttpd
	 * must not be stopped with a connection suspended. */
	__atomic_store_n(&w->stopping, 1, __ATOMIC_SEQ_CST);
	while (w->parked)
		unpark(w, w->parked);
	pthread_mutex_unlock(&w->mu);
}

int hub_wait_stopping(hub_wait *w)
{
	return __atomic_load_n(&w->stopping, __ATOMIC_SEQ_CST);
}

int hub_wait_park(hub_wait *w, hub_waiter *x)
{
	int parked = 0;
	pthread_mutex_lock(&w->mu);
	if (x->kicked) {
		x->kicked = 0;
	} else if (!w->stopping &&
	           !(x->db &&
	             __atomic_load_n(&x->db->writes, __ATOMIC_SEQ_CST) != x->seen_writes) &&
	           !(x->due_ms && hub_now_ms() >= x->due_ms)) {
		x->prev = NULL;
		x->next = w->parked;
		if (w->parked)
			w->parked->prev = x;
		w->parked = x;
		x->parked = 1;
		MHD_suspend_connection(x->c);
		/* Hundreds of longpolls re-park after each heartbeat: the timer
		 * walks its list only when one is due before it would look anyway. */
		if (x->due_ms && x->due_ms < w->timer_next) {
			w->timer_next = x->due_ms;
			pthread_cond_signal(&w->timer_cv);
		}
		parked = 1;
	}
	pthread_mutex_unlock(&w->mu);
	return parked;
}

void hub_wait_forget(hub_wait *w, hub_waiter *x)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	/* Only a bug could end a request while it is parked or its job
	 * queued: libmicrohttpd ends no suspended connection, and a job's
	 * request parks until the job ends. Unlink anyway rather than leave
	 * a freed waiter in a list. */
	if (x->parked)
		unpark(w, x);
	pthread_mutex_unlock(&w->mu);
}

void hub_wait_tick_at(hub_wait *w, uint64_t due_ms)
{
	if (w == NULL || w->tick == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	if (w->tick_due == 0 || due_ms < w->tick_due) {
		w->tick_due = due_ms;
		if (due_ms < w->timer_next) {
			w->timer_next = due_ms;
			pthread_cond_signal(&w->timer_cv);
		}
	}
	pthread_mutex_unlock(&w->mu);
}

void hub_wait_wake_db(hub_wait *w, const hub_db *db)
{
	hub_waiter *x, *nx;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	for (x = w->parked; x; x = nx) {
		nx = x->next;
		if (x->db == db)
			unpark(w, x);
	}
	pthread_mutex_unlock(&w->mu);
}

int hub_wait_submit(hub_wait *w, hub_waiter *x, void (*job)(void *), void *arg)
{
	int rc = FS_OK;
	pthread_mutex_lock(&w->mu);
	if (w->closing) {
		rc = FS_E_STORE_BUSY; /* the hub stops: "retry" is the honest answer */
	} else {
		x->job = job;
		x->job_arg = arg;
		x->job_next = NULL;
		x->job_state = HUB_JOB_QUEUED;
		x->kicked = 0;
		if (w->queue_tail)
			w->queue_tail->job_next = x;
		else
			w->queue_head = x;
		w->queue_tail = x;
		pthread_cond_signal(&w->job_cv);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int hub_wait_job_state(hub_wait *w, const hub_waiter *x)
{
	int s;
	pthread_mutex_lock(&w->mu);
	s = x->job_state;
	pthread_mutex_unlock(&w->mu);
	return s;
}
