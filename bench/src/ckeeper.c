/* ckeeper.c -- the floor of daemonic's start design, in C, for bench/keeper.sh.
 *
 * Usage: ckeeper PIDFILE PROGRAM [ARG]...
 *
 * What `daemonic start` does on the path of a start, and nothing else: the launcher locks the
 * pidfile and forks the keeper once; the keeper makes a session, points its standard streams
 * at /dev/null, becomes a child subreaper, takes its signals through a signalfd, binds its
 * control socket (PIDFILE.sock) and writes its status record (PIDFILE.status), then makes the
 * program with posix_spawn (clone(CLONE_VM|CLONE_VFORK): it returns once the program is
 * executed), writes the program's pid to the pidfile, and tells the launcher, which exits 0.
 * The keeper then reaps whatever exits until it is killed. No option parsing, no checks, no
 * error reporting: a model to measure against, not a tool.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ckeeper PIDFILE PROGRAM [ARG]...\n");
        return 2;
    }
    const char *pidfile = argv[1];
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return 1;
    int lock = open(pidfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) return 1;
    pid_t keeper = fork();
    if (keeper < 0) return 1;
    if (keeper > 0) {
        close(report[1]);
        char byte;
        return read(report[0], &byte, 1) == 1 ? 0 : 1;
    }
    close(report[0]);
    setsid();
    int null = open("/dev/null", O_RDWR | O_NOCTTY);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    if (chdir("/") != 0) _exit(1);
    umask(022);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    int signals = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    char path[4096];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s.sock", pidfile);
    unlink(addr.sun_path);
    int control = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bind(control, (struct sockaddr *)&addr, sizeof addr);
    listen(control, 16);
    snprintf(path, sizeof path, "%s.status", pidfile);
    int status = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
    if (pwrite(status, "starting", 8, 0) != 8) _exit(1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    pid_t program;
    if (posix_spawn(&program, argv[2], NULL, &attr, argv + 2, environ) != 0) _exit(1);
    char text[16];
    int n = snprintf(text, sizeof text, "%d\n", (int)program);
    if (pwrite(lock, text, n, 0) != n) _exit(1);
    if (pwrite(status, "running ", 8, 0) != 8) _exit(1);
    if (write(report[1], "r", 1) != 1) _exit(1);
    close(report[1]);
    for (;;) {
        struct pollfd pfd = {.fd = signals, .events = POLLIN};
        poll(&pfd, 1, -1);
        struct signalfd_siginfo info;
        while (read(signals, &info, sizeof info) > 0) {
        }
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
}
