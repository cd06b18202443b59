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

#include <sys/socket.h>

/* SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups. A macro Swift does not import from
   asm-generic/socket.h. */
static const int clinux_so_peergroups = SO_PEERGROUPS;

/* glibc's malloc_trim(3): gives freed heap memory back to the system. */
int clinux_malloc_trim(size_t pad);

#include <sys/types.h>

/* How a child is started by clinux_spawn. */
struct clinux_spawn_options {
    /* Standard input, output and error: descriptors the child gets as 0, 1 and 2. */
    int stdin_fd, stdout_fd, stderr_fd;
    /* Whether to become uid/gid with exactly these supplementary groups (root keeps its own). */
    int change_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t group_count;
    /* A session (and process group) of its own: setsid(2). */
    int new_session;
    /* The working directory; NULL keeps ours. */
    const char *directory;
};

/* Starts `path` with `argv` and `envp` (both NULL-terminated) as `options` say, in a forked child that makes
   only async-signal-safe calls before execve: it resets every signal's disposition and mask, takes the three
   descriptors, closes every other one, sets groups, gid and uid (in that order), makes its session and
   changes directory. Returns the child's pid and, in *pidfd, a pidfd(2) for it (close-on-exec), which becomes
   readable when the child exits; -1 with errno set if it could not be started, where `*failed_step` names
   the step that failed in the child ("execve", "setuid", ...) or is NULL for a failure in the parent. */
pid_t clinux_spawn(const char *path, char *const argv[], char *const envp[],
                   const struct clinux_spawn_options *options, int *pidfd, const char **failed_step);

#endif
