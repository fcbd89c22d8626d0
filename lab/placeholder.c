/*
 * k8s-workers lab PLACEHOLDER executable: NOT kubelet, kube-proxy or containerd.
 *
 * The lab mirror serves this program under the names of the real binaries until a later
 * issue builds them. It appends the arguments it was started with to
 * /var/log/k8s-workers-placeholders.log (so tests can compare them with the unit's
 * ExecStart), tells systemd it is ready when started as a Type=notify service, and then
 * stays running until it is stopped.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PATH "/var/log/k8s-workers-placeholders.log"

static void notify_ready(void) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0') return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(addr.sun_path)) return;
    memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    const char msg[] = "READY=1";
    sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&addr,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

int main(int argc, char **argv) {
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    FILE *log = fopen(LOG_PATH, "a");
    if (log != NULL) {
        fprintf(log, "%s pid=%d args:", name, (int)getpid());
        for (int i = 1; i < argc; i++) fprintf(log, " %s", argv[i]);
        fputc('\n', log);
        fclose(log);
    }
    notify_ready();
    for (;;) pause(); /* SIGTERM's default action ends us */
    return 0;
}
