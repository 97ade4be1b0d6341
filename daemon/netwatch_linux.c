/*
 * daemon/netwatch_linux.c: the connectivity watcher on Linux: a
 * NETLINK_ROUTE socket subscribed to link, address and route changes, so
 * the loop sleeps while nothing happens and wakes when a network appears.
 */
#include "daemon_int.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int fsd_netwatch_open(fs_errbuf *eb)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0) {
		fs_err_set(eb, FS_E_IO, "netlink: %s", strerror(errno));
		return -1;
	}
	sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR |
	               RTMGRP_IPV6_ROUTE;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fs_err_set(eb, FS_E_IO, "netlink bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int fsd_netwatch_read(int fd)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct nlmsghdr))));
	int changed = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0 || (n < 0 && errno == ENOBUFS)) {
		if (n < 0) {
			changed = 1; /* we missed messages: something surely changed */
			continue;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
		     h = NLMSG_NEXT(h, n)) {
			switch (h->nlmsg_type) {
			case RTM_NEWLINK:
			case RTM_DELLINK:
			case RTM_NEWADDR:
			case RTM_DELADDR:
			case RTM_NEWROUTE:
			case RTM_DELROUTE:
				changed = 1;
				break;
			default:
				break;
			}
		}
	}
	return changed;
}
