/*
 * virt-proxy: the only part of virt-exporter that runs as root. It reads
 * domain and host information through libxenctrl (loaded at run time) and
 * answers a fixed list of read-only requests (native/PROTOCOL.md), either
 * over stdin/stdout (--stdio, a child of a root exporter) or on a unix
 * socket (--socket, for non-root exporters; peers checked with SO_PEERCRED).
 * It has no write operation and never runs a shell.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "requests.h"
#include "vp-protocol.h"
#include "wire.h"

#define MAX_CLIENTS 64
#define MAX_ALLOWED_UIDS 64
#define CLIENT_IDLE_SECONDS 30

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void logmsg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(const char *level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "virt-proxy[%ld]: %s: %s\n", (long)getpid(), level, line);
}

static void usage(FILE *f)
{
    fputs("usage: virt-proxy --stdio [options]\n"
          "       virt-proxy --socket PATH [--group NAME] [--allow-uid UID ...] [options]\n"
          "       virt-proxy --probe [options]\n"
          "options: --xenctrl PATH (or env VIRT_PROXY_XENCTRL)  --sysfs-root DIR (default /sys)\n"
          "         --proc-net-dev FILE (default /proc/net/dev)\n"
          "Serves read-only Xen domain and host information; see native/PROTOCOL.md.\n",
          f);
}

/* ---- stdio mode ---- */

static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got == 0 ? 0 : -1; /* 0: clean EOF between frames, -1: truncated */
        got += (size_t)r;
    }
    return 1;
}

static int write_full(int fd, const uint8_t *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

static int run_stdio(struct proxy_ctx *ctx)
{
    uint8_t frame[VP_PREFIX_LEN + VP_MAX_REQUEST_BODY];
    size_t hn = hello_frame(ctx->scratch, VP_PREFIX_LEN + VP_MAX_REPLY_BODY);
    if (hn == 0 || write_full(1, ctx->scratch, hn) != 0) {
        logmsg("warn", "cannot write the greeting to stdout: %s", strerror(errno));
        return 2;
    }
    for (;;) {
        int r = read_full(0, frame, VP_PREFIX_LEN);
        if (r == 0)
            return 0;
        if (r < 0) {
            logmsg("warn", "stdin closed inside a frame prefix");
            return 2;
        }
        size_t flen = 0;
        if (frame_check(frame, VP_PREFIX_LEN, &flen) == FRAME_BAD_LENGTH) {
            size_t n = error_frame(ctx->scratch, VP_PREFIX_LEN + VP_MAX_REPLY_BODY, VP_TYPE_ERROR, 0,
                                   VP_E_BAD_FRAME, "frame length out of bounds (8..64 bytes)");
            (void)write_full(1, ctx->scratch, n);
            logmsg("warn", "bad frame length %u on stdin; closing", (unsigned)be32_get(frame));
            return 2;
        }
        if (read_full(0, frame + VP_PREFIX_LEN, be32_get(frame)) != 1) {
            logmsg("warn", "stdin closed inside a frame");
            return 2;
        }
        int close_after = 0;
        size_t n = handle_frame(ctx, frame, VP_PREFIX_LEN + be32_get(frame), &close_after);
        if (n == 0 || write_full(1, ctx->scratch, n) != 0) {
            logmsg("warn", "cannot write reply to stdout: %s", strerror(errno));
            return 2;
        }
        if (close_after)
            return 2;
    }
}

/* ---- socket mode ---- */

struct client {
    int fd;
    pid_t pid;
    uid_t uid;
    uint8_t in[VP_PREFIX_LEN + VP_MAX_REQUEST_BODY];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off;
    int close_after_flush;
    time_t last_activity;
};

struct access_policy {
    int have_group;
    gid_t gid;
    uid_t allow[MAX_ALLOWED_UIDS];
    size_t nallow;
};

static int peer_allowed(const struct access_policy *pol, uid_t uid, gid_t gid)
{
    if (uid == 0)
        return 1;
    for (size_t i = 0; i < pol->nallow; i++)
        if (pol->allow[i] == uid)
            return 1;
    if (!pol->have_group)
        return 0;
    if (gid == pol->gid)
        return 1;
    /* Supplementary groups of the peer's account (bounded). */
    struct passwd *pw = getpwuid(uid);
    if (pw == NULL)
        return 0;
    gid_t groups[256];
    int ng = 256;
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
        ng = 256; /* more than 256: check the first 256 */
    for (int i = 0; i < ng && i < 256; i++)
        if (groups[i] == pol->gid)
            return 1;
    return 0;
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Queues a reply (copied out of the shared scratch buffer). Returns -1 when out of memory. */
static int client_queue(struct client *c, const uint8_t *data, size_t n)
{
    c->out = malloc(n);
    if (c->out == NULL)
        return -1;
    memcpy(c->out, data, n);
    c->out_len = n;
    c->out_off = 0;
    return 0;
}

/* Processes complete frames in the input buffer while no reply is pending. */
static int client_process(struct proxy_ctx *ctx, struct client *c)
{
    while (c->out == NULL && !c->close_after_flush) {
        size_t flen = 0;
        int st = frame_check(c->in, c->in_len, &flen);
        if (st == FRAME_NEED_MORE)
            return 0;
        size_t n;
        int close_after = 0;
        if (st == FRAME_BAD_LENGTH) {
            n = error_frame(ctx->scratch, VP_PREFIX_LEN + VP_MAX_REPLY_BODY, VP_TYPE_ERROR, 0, VP_E_BAD_FRAME,
                            "frame length out of bounds (8..64 bytes)");
            close_after = 1;
            flen = c->in_len;
            logmsg("warn", "client pid=%ld uid=%ld sent a frame length out of bounds; closing", (long)c->pid,
                   (long)c->uid);
        } else {
            n = handle_frame(ctx, c->in, flen, &close_after);
            if (close_after)
                logmsg("warn", "client pid=%ld uid=%ld sent a bad frame; closing", (long)c->pid, (long)c->uid);
        }
        memmove(c->in, c->in + flen, c->in_len - flen);
        c->in_len -= flen;
        if (n == 0 || client_queue(c, ctx->scratch, n) != 0)
            return -1;
        c->close_after_flush = close_after;
    }
    return 0;
}

static int client_flush(struct client *c)
{
    while (c->out != NULL && c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w <= 0)
            return -1;
        c->out_off += (size_t)w;
    }
    if (c->out != NULL) {
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = 0;
    }
    return c->close_after_flush ? -1 : 0;
}

/* Answers every complete frame that is buffered, as far as the socket takes the replies. */
static int client_pump(struct proxy_ctx *ctx, struct client *c)
{
    for (;;) {
        if (c->out != NULL) {
            if (client_flush(c) != 0)
                return -1;
            if (c->out != NULL)
                return 0; /* socket full: wait for POLLOUT */
        }
        if (client_process(ctx, c) != 0)
            return -1;
        if (c->out == NULL)
            return 0; /* no complete frame left */
    }
}

static void refuse(int fd, int status, const char *msg)
{
    uint8_t buf[VP_PREFIX_LEN + VP_HEADER_LEN + 2 + VP_MAX_ERROR_MSG];
    size_t n = error_frame(buf, sizeof(buf), VP_TYPE_ERROR, 0, status, msg);
    if (n > 0)
        (void)send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static int bind_socket(const char *path, const struct access_policy *pol)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        logmsg("error", "socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        logmsg("error", "socket: %s", strerror(errno));
        return -1;
    }
    /* A live server on the path keeps it; a stale socket file is replaced. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg("error", "%s exists and is not a socket; not replacing it", path);
            close(fd);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            close(probe);
            logmsg("error", "another virt-proxy already serves %s", path);
            close(fd);
            return -1;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    mode_t old = umask(0117); /* the socket is born 0660, never briefly wider */
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc != 0 && errno == ENOENT) {
        /* e.g. /run/virt-exporter after a reboot: create the one missing parent directory. */
        char parent[sizeof(addr.sun_path)];
        strcpy(parent, path);
        char *slash = strrchr(parent, '/');
        if (slash != NULL && slash != parent) {
            *slash = '\0';
            umask(0022);
            if (mkdir(parent, 0755) == 0)
                logmsg("info", "created %s", parent);
            umask(0117);
            rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
        }
    }
    umask(old);
    if (rc != 0) {
        logmsg("error", "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (pol->have_group && chown(path, (uid_t)-1, pol->gid) != 0) {
        logmsg("error", "chown %s to group %ld: %s", path, (long)pol->gid, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    if (chmod(path, 0660) != 0 || listen(fd, 64) != 0) {
        logmsg("error", "chmod/listen %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

static void accept_clients(int lfd, struct client *clients, const struct access_policy *pol)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: poll again */
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
            logmsg("warn", "refused a client: SO_PEERCRED failed (%s)", strerror(errno));
            refuse(fd, VP_E_DENIED, "peer credentials unavailable");
            continue;
        }
        if (!peer_allowed(pol, cred.uid, cred.gid)) {
            logmsg("warn", "refused client pid=%ld uid=%ld gid=%ld: uid not allowed", (long)cred.pid, (long)cred.uid,
                   (long)cred.gid);
            refuse(fd, VP_E_DENIED, "permission denied: this uid may not use virt-proxy");
            continue;
        }
        struct client *slot = NULL;
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd < 0) {
                slot = &clients[i];
                break;
            }
        if (slot == NULL) {
            logmsg("warn", "refused client pid=%ld uid=%ld: too many clients", (long)cred.pid, (long)cred.uid);
            refuse(fd, VP_E_BUSY, "too many clients");
            continue;
        }
        logmsg("info", "accepted client pid=%ld uid=%ld gid=%ld", (long)cred.pid, (long)cred.uid, (long)cred.gid);
        slot->fd = fd;
        slot->pid = cred.pid;
        slot->uid = cred.uid;
        slot->in_len = 0;
        slot->out = NULL;
        slot->close_after_flush = 0;
        slot->last_activity = time(NULL);
        uint8_t hello[64];
        size_t hn = hello_frame(hello, sizeof(hello));
        if (hn == 0 || client_queue(slot, hello, hn) != 0 || client_flush(slot) != 0)
            client_close(slot);
    }
}

static int run_socket(struct proxy_ctx *ctx, const char *path, const struct access_policy *pol)
{
    int lfd = bind_socket(path, pol);
    if (lfd < 0)
        return 1;
    logmsg("info", "listening on %s", path);
    struct client clients[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++) {
        memset(&clients[i], 0, sizeof(clients[i]));
        clients[i].fd = -1;
    }
    struct pollfd pfd[MAX_CLIENTS + 1];
    int idx[MAX_CLIENTS + 1];
    while (!stop_requested) {
        nfds_t n = 0;
        pfd[n].fd = lfd;
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd < 0)
                continue;
            pfd[n].fd = clients[i].fd;
            /* One reply in flight per client: stop reading until it is sent. */
            pfd[n].events = clients[i].out != NULL ? POLLOUT : POLLIN;
            idx[n++] = i;
        }
        int rc = poll(pfd, n, 1000);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            logmsg("error", "poll: %s", strerror(errno));
            break;
        }
        time_t now = time(NULL);
        for (nfds_t k = 1; k < n; k++) {
            struct client *c = &clients[idx[k]];
            int drop = 0;
            if (pfd[k].revents & (POLLERR | POLLNVAL)) {
                drop = 1;
            } else if (pfd[k].revents & POLLOUT) {
                drop = client_pump(ctx, c) != 0;
                c->last_activity = now;
            } else if (pfd[k].revents & (POLLIN | POLLHUP)) {
                size_t room = sizeof(c->in) - c->in_len;
                ssize_t r = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r <= 0) {
                    drop = 1;
                } else {
                    c->in_len += (size_t)r;
                    c->last_activity = now;
                    drop = client_pump(ctx, c) != 0;
                }
            } else if (now - c->last_activity > CLIENT_IDLE_SECONDS) {
                logmsg("info", "closing idle client pid=%ld uid=%ld", (long)c->pid, (long)c->uid);
                drop = 1;
            }
            if (drop)
                client_close(c);
        }
        if (pfd[0].revents & POLLIN)
            accept_clients(lfd, clients, pol);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0)
            client_close(&clients[i]);
    close(lfd);
    unlink(path);
    logmsg("info", "stopped");
    return 0;
}

static int run_probe(struct proxy_ctx *ctx)
{
    char err[VP_MAX_ERROR_MSG];
    unsigned major, minor;
    char extra[VP_XEN_EXTRAVERSION_LEN + 1];
    if (xb_version(&ctx->xb, &major, &minor, extra, err, sizeof(err)) != VP_OK) {
        fprintf(stderr, "virt-proxy: %s\n", err);
        return 1;
    }
    printf("xen %u.%u%s via %s\n", major, minor, extra, ctx->xb.lib_name);
    return 0;
}

static int parse_uid(const char *s, uid_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v >= (unsigned long)(uid_t)-1)
        return -1;
    *out = (uid_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *socket_path = NULL, *group = NULL;
    struct proxy_ctx ctx;
    struct access_policy pol;
    memset(&ctx, 0, sizeof(ctx));
    memset(&pol, 0, sizeof(pol));
    /*
     * Never setuid, setgid or with file capabilities (the libvirt_proxy
     * lesson): --xenctrl and the environment choose code to load. AT_SECURE
     * is what the kernel sets for every such exec (file capabilities included,
     * where the uids stay equal); the uid/gid check covers the rest.
     */
    if (getauxval(AT_SECURE) != 0 || getuid() != geteuid() || getgid() != getegid()) {
        fprintf(stderr, "virt-proxy: refusing to run setuid/setgid or with file capabilities (AT_SECURE); run it as root (--stdio child or --socket daemon)\n");
        return 2;
    }
    /* Only the real root chooses which library to load (it could load one anyway). */
    const int may_choose_lib = getuid() == 0;
    ctx.sysfs_root = "/sys";
    ctx.proc_net_dev = "/proc/net/dev";
    ctx.xb.lib_path = secure_getenv("VIRT_PROXY_XENCTRL");
    if (ctx.xb.lib_path != NULL && ctx.xb.lib_path[0] == '\0')
        ctx.xb.lib_path = NULL;
    if (ctx.xb.lib_path != NULL && !may_choose_lib) {
        fprintf(stderr, "virt-proxy: ignoring VIRT_PROXY_XENCTRL: only root may choose the Xen control library\n");
        ctx.xb.lib_path = NULL;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--stdio") == 0 || strcmp(a, "--probe") == 0) {
            mode = a + 2;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (val == NULL) {
            fprintf(stderr, "virt-proxy: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--socket") == 0) {
            mode = "socket";
            socket_path = val;
            i++;
        } else if (strcmp(a, "--group") == 0) {
            group = val;
            i++;
        } else if (strcmp(a, "--allow-uid") == 0) {
            if (pol.nallow >= MAX_ALLOWED_UIDS || parse_uid(val, &pol.allow[pol.nallow]) != 0) {
                fprintf(stderr, "virt-proxy: bad --allow-uid value: %s\n", val);
                return 2;
            }
            pol.nallow++;
            i++;
        } else if (strcmp(a, "--xenctrl") == 0) {
            if (may_choose_lib)
                ctx.xb.lib_path = val;
            else
                fprintf(stderr, "virt-proxy: ignoring --xenctrl %s: only root may choose the Xen control library\n", val);
            i++;
        } else if (strcmp(a, "--sysfs-root") == 0) {
            ctx.sysfs_root = val;
            i++;
        } else if (strcmp(a, "--proc-net-dev") == 0) {
            ctx.proc_net_dev = val;
            i++;
        } else {
            fprintf(stderr, "virt-proxy: unknown option: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (mode == NULL) {
        usage(stderr);
        return 2;
    }
    if (group != NULL) {
        struct group *gr = getgrnam(group);
        uid_t numeric;
        if (gr != NULL) {
            pol.gid = gr->gr_gid;
        } else if (parse_uid(group, &numeric) == 0) {
            pol.gid = (gid_t)numeric;
        } else {
            fprintf(stderr, "virt-proxy: unknown group: %s\n", group);
            return 2;
        }
        pol.have_group = 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ctx.scratch = malloc(VP_PREFIX_LEN + VP_MAX_REPLY_BODY);
    if (ctx.scratch == NULL) {
        fprintf(stderr, "virt-proxy: out of memory\n");
        return 1;
    }
    int rc;
    if (strcmp(mode, "stdio") == 0)
        rc = run_stdio(&ctx);
    else if (strcmp(mode, "probe") == 0)
        rc = run_probe(&ctx);
    else
        rc = run_socket(&ctx, socket_path, &pol);
    xb_close(&ctx.xb);
    free(ctx.scratch);
    return rc;
}
