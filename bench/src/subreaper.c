/*
 * subreaper.c -- runs CMD as a child subreaper (PR_SET_CHILD_SUBREAPER, kept
 * across execve): every process CMD starts that detaches (double fork, as a
 * daemon does) is reparented to CMD instead of init, so CMD can find, kill and
 * reap all of them. bench/keeper.sh re-executes itself under this helper.
 *
 * Build: cc -O2 -o subreaper subreaper.c
 * Usage: subreaper CMD [ARG...]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: subreaper CMD [ARG...]\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("subreaper: prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("subreaper: execvp");
    return 127;
}
