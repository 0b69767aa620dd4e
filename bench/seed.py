"""The seed, for comparison in benches/detach.rs: become(umask=0, workdir='/', maxfd=1024,
redirect_to=os.devnull) as the Python module does it, then "ready" written to the FIFO named
by argv[1] (opened after the close loop, since the loop closes every inherited descriptor)."""
import os
import resource
import sys


def become(umask=0, workdir="/", maxfd=1024, redirect_to=os.devnull):
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.chdir(workdir)
    os.umask(umask)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit == resource.RLIM_INFINITY:
        limit = maxfd
    for fd in range(0, limit):
        try:
            os.close(fd)
        except OSError:
            pass
    os.open(redirect_to, os.O_RDWR)
    os.dup2(0, 1)
    os.dup2(0, 2)
    return 0


if __name__ == "__main__":
    fifo = sys.argv[1]
    become()
    with open(fifo, "w") as f:
        f.write("ready\n")
