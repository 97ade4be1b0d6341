/*
 * hub/hub_srv.h: what server.c (HTTP, lifecycle) and api.c (the CouchDB
 * endpoints) share: the hub itself, one request's state and the reply
 * helpers. Kept apart from hub_int.h so the parsers build without
 * libmicrohttpd for the fuzz target.
 */
#ifndef FS_HUB_SRV_H
#define FS_HUB_SRV_H

#include <microhttpd.h>

#include "hub_int.h"

#define FS_HUB_VERSION    "0.1.0"
#define FS_HUB_FAIL_SLOTS 64

struct hub_fail {
	char addr[64];
	unsigned n;
	uint64_t last_ms;
};

struct fs_hub {
	char dir[512];
	hub_conf conf;
	int quiet;
	hub_auth *auth;
	char uuid[33];
	char *cert_pem, *key_pem;
	struct MHD_Daemon *d;
	unsigned port;
	int stopping;            /* read with __atomic_load_n */
	pthread_mutex_t mu;      /* dbs (the list) and fails */
	pthread_mutex_t open_mu; /* one database file opened at a time; never under mu */
	hub_db *dbs;
	struct hub_fail fails[FS_HUB_FAIL_SLOTS];
};

typedef struct hub_req {
	uint64_t t0;
	char method[16];
	char path[256];
	hub_buf body;
	int toobig;
	int responded;
	int authed;
	hub_who who;
	unsigned status;
	size_t bytes;
} hub_req;

uint64_t hub_now_ms(void);
int hub_db_get(fs_hub *h, const char *name, int create, hub_db **out, fs_errbuf *eb) FS_WUR;
int hub_db_list(fs_hub *h, hub_buf *b);
void hub_wake_all(fs_hub *h);

/* Each takes b's memory (b is left empty). */
enum MHD_Result hub_send(hub_req *r, struct MHD_Connection *c, unsigned status, hub_buf *b);
enum MHD_Result hub_send_err(hub_req *r, struct MHD_Connection *c, unsigned status,
                             const char *error, const char *reason);
enum MHD_Result hub_send_fs_err(hub_req *r, struct MHD_Connection *c, int code,
                                const fs_errbuf *eb);

/* api.c: a complete request (body read, credentials checked if any came). */
enum MHD_Result hub_route(fs_hub *h, hub_req *r, struct MHD_Connection *c, const char *url,
                          const char *method);

#endif
