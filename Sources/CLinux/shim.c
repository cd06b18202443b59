#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "CLinux.h"

int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int clinux_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int clinux_malloc_trim(size_t pad) { return malloc_trim(pad); }

/* The steps a child can fail at, reported to the parent through a close-on-exec pipe as their index and the
   errno. An empty read means the execve succeeded. */
static const char *const spawn_steps[] = {
    "dup2", "setgroups", "setgid", "setuid", "setsid", "chdir", "execve", "sigprocmask",
};

struct spawn_report {
    int step;
    int error;
};

static void spawn_fail(int report_fd, int step) {
    struct spawn_report report = { step, errno };
    ssize_t unused = write(report_fd, &report, sizeof report);
    (void) unused;
    _exit(127);
}

/* Moves `fd` above 2 so that the dup2 calls onto 0, 1 and 2 cannot overwrite one another's source. */
static int spawn_lift(int fd) {
    if (fd < 0 || fd > 2) return fd;
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

pid_t clinux_spawn(const char *path, char *const argv[], char *const envp[],
                   const struct clinux_spawn_options *options, int *pidfd, const char **failed_step) {
    *failed_step = NULL;
    *pidfd = -1;
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return -1;
    sigset_t all, old;
    sigfillset(&all);
    /* No signal handler of ours may run in the child between fork and execve. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        for (int sig = 1; sig < NSIG; sig++) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            (void) sigaction(sig, &dfl, NULL);
        }
        int in = spawn_lift(options->stdin_fd), out = spawn_lift(options->stdout_fd), err = spawn_lift(options->stderr_fd);
        if (in < 0 || out < 0 || err < 0) spawn_fail(report[1], 0);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) spawn_fail(report[1], 0);
        /* Everything but 0, 1, 2 and the report pipe (close-on-exec) goes. */
        for (int fd = 3; fd < report[1]; fd++) (void) close(fd);
        if (syscall(SYS_close_range, (unsigned) report[1] + 1, ~0U, 0) < 0) {
            for (int fd = report[1] + 1; fd < 65536; fd++) (void) close(fd);
        }
        if (options->change_identity) {
            if (setgroups(options->group_count, options->groups) < 0) spawn_fail(report[1], 1);
            if (setgid(options->gid) < 0) spawn_fail(report[1], 2);
            if (setuid(options->uid) < 0) spawn_fail(report[1], 3);
        }
        if (options->new_session && setsid() < 0) spawn_fail(report[1], 4);
        if (options->directory && chdir(options->directory) < 0) spawn_fail(report[1], 5);
        sigset_t none;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) spawn_fail(report[1], 7);
        execve(path, argv, envp);
        spawn_fail(report[1], 6);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        errno = fork_errno;
        return -1;
    }
    struct spawn_report child;
    ssize_t n;
    do { n = read(report[0], &child, sizeof child); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t) sizeof child) {
        /* The child failed before execve and has exited: reap it here. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        *failed_step = spawn_steps[child.step];
        errno = child.error;
        return -1;
    }
    int fd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        /* Without a pidfd (a kernel before 5.3) nobody could wait for it: stop it rather than leak it. */
        int saved = errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        errno = saved;
        return -1;
    }
    (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
    *pidfd = fd;
    return pid;
}
