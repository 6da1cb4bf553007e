/* bench/run's small-file reader: the same process natively, through a mount, and inside
 * `imafs run --rootfs LOWER` (built static, so it needs nothing else in the rootfs).
 *
 *     reader DIR PASSES
 *
 * Prints "start" as soon as it runs (the caller times a container's start-up to that line),
 * then walks DIR PASSES times, opening, fstat-ing, reading and closing every regular file as
 * `cat` does, and prints "pass I SECONDS FILES" after each pass. Exits 1 on any error. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 17];

static void die(const char *what, const char *name)
{
    fprintf(stderr, "reader: %s %s: ", what, name);
    perror(NULL);
    exit(1);
}

static long walk(int dfd, const char *path)
{
    DIR *d = fdopendir(dfd);
    if (!d)
        die("fdopendir", path);
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
                die("stat", e->d_name);
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                die("open", e->d_name);
            n += walk(sub, e->d_name);
        } else if (type == DT_REG) {
            int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st))
                die("open", e->d_name);
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0)
                ;
            if (r < 0)
                die("read", e->d_name);
            close(fd);
            n++;
        }
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reader DIR PASSES\n");
        return 2;
    }
    puts("start");
    fflush(stdout);
    int passes = atoi(argv[2]);
    for (int i = 1; i <= passes; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            die("open", argv[1]);
        long n = walk(dfd, argv[1]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("pass %d %.6f %ld\n", i, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, n);
        fflush(stdout);
    }
    return 0;
}
