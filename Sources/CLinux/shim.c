#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include "CLinux.h"

int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int clinux_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int clinux_malloc_trim(size_t pad) { return malloc_trim(pad); }
