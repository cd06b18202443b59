#ifndef SENSD_CLINUX_H
#define SENSD_CLINUX_H

/* Linux and glibc calls that Swift's Glibc module leaves out (they need _GNU_SOURCE, or their header is not
   in the module). Kept apart from CSystemd, which holds libsystemd and nothing else. */

#include <stddef.h>
#include <sys/epoll.h>

/* pipe2(2): both ends created with `flags` (O_CLOEXEC, O_NONBLOCK) at once, so that a child spawned by
   another thread in between cannot inherit them. */
int clinux_pipe2(int fds[2], int flags);

/* accept4(2) without the peer address: the new descriptor has `flags` (SOCK_CLOEXEC, SOCK_NONBLOCK) from the
   start. */
int clinux_accept4(int fd, int flags);

/* glibc's malloc_trim(3): gives freed heap memory back to the system. */
int clinux_malloc_trim(size_t pad);

#endif
