#ifndef SENSD_CSYSTEMD_SHIM_H
#define SENSD_CSYSTEMD_SHIM_H

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-login.h>

/* The EPOLL* bits sd-event's I/O sources take and report (not in Glibc's Swift module). */
#include <sys/epoll.h>

#endif
