/*
 * daemon/netwatch_poll.c: systems without netlink have no change feed; the
 * remotes' backoff timer (at most 5 minutes) is the periodic probe.
 */
#include "daemon_int.h"

int fsd_netwatch_open(fs_errbuf *eb)
{
	fs_err_set(eb, FS_E_IO, "no netlink on this system");
	return -1;
}

int fsd_netwatch_read(int fd)
{
	(void)fd;
	return 0;
}
