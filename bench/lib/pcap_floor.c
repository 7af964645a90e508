/* The physical floor of a pcap replay on this machine: walk a legacy pcap
 * (Ethernet, optional 802.1Q tags, IPv4/IPv6) reading each record header and
 * the IP header's length field, and sum the IP-layer bytes.  Nothing else: no
 * flow table, no output.  Any flow meter that reads the same file cannot be
 * faster than this, so its wall time bounds what a replay benchmark can show.
 *
 *   pcap_floor FILE THREADS MODE      MODE = mmap | read
 *
 * mmap: the file is mapped once; each thread populates its own part ahead of
 *       the walk with MADV_POPULATE_READ (16 MiB windows), as the agent does.
 * read: each thread pread()s its part into a private 4 MiB buffer (a copy out
 *       of the page cache, no page tables).
 * THREADS > 1: the file is cut into equal parts; every part but the first
 *       starts at the first offset from which 16 records chain consistently
 *       (the same resynchronisation a parallel reader needs), and a part ends
 *       exactly where the next one starts (checked).
 * Prints one line: packets=N ip_bytes=N threads=N mode=M seconds=S (walk only).
 * Exit 1 on a malformed file or a part boundary the walk did not land on.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define MAXT 16
#define WINDOW (16u << 20)
#define BUF (4u << 20)

static const uint8_t *map;
static int fd;
static size_t size;
static uint32_t snaplen;
static int use_read;

struct part {
    size_t start, end;
    uint64_t packets, bytes;
    int bad;
    pthread_t th;
};

static inline uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* IP-layer bytes of one Ethernet frame (0 if not IP). */
static inline uint64_t ip_bytes(const uint8_t *f, uint32_t len) {
    uint32_t off = 12;
    if (len < 14) return 0;
    uint16_t et = be16(f + off);
    while ((et == 0x8100 || et == 0x88a8) && off + 6 <= len) {
        off += 4;
        et = be16(f + off);
    }
    off += 2;
    if (et == 0x0800 && off + 4 <= len) return be16(f + off + 2);
    if (et == 0x86dd && off + 6 <= len) return (uint64_t)be16(f + off + 4) + 40;
    return 0;
}

/* Does a record header at `o` look like one, and do `n` more follow it? */
static int chains(const uint8_t *d, size_t o, size_t lim, int n) {
    for (int i = 0; i < n; i++) {
        if (o + 16 > lim) return 0;
        uint32_t incl = le32(d + o + 8), orig = le32(d + o + 12), usec = le32(d + o + 4);
        if (incl == 0 || incl > snaplen || incl > orig || usec >= 1000000) return 0;
        o += 16 + (size_t)incl;
    }
    return 1;
}

/* Walk records from `p->start` (file offset) to `p->end` over bytes `d`
 * that hold the file from offset `base` on, `have` of them. */
static size_t walk(struct part *p, const uint8_t *d, size_t base, size_t have, size_t o) {
    while (o < p->end) {
        if (o + 16 > base + have) break;
        const uint8_t *h = d + (o - base);
        uint32_t incl = le32(h + 8);
        if (o + 16 + incl > base + have) break;
        p->bytes += ip_bytes(h + 16, incl);
        p->packets++;
        o += 16 + (size_t)incl;
    }
    return o;
}

static void *run(void *arg) {
    struct part *p = arg;
    size_t o = p->start;
    if (!use_read) {
        size_t populated = p->start & ~(size_t)4095;
        while (o < p->end) {
            size_t upto = populated + WINDOW < size ? populated + WINDOW : size;
            if (upto > populated) {
                madvise((void *)(map + populated), upto - populated, MADV_POPULATE_READ);
                populated = upto;
            }
            size_t lim = populated;
            size_t n = walk(p, map, 0, lim, o);
            if (n == o && lim >= size) break; /* cut record at the end */
            o = n;
        }
    } else {
        uint8_t *buf = malloc(BUF);
        if (!buf) { p->bad = 1; return NULL; }
        size_t base = o, have = 0;
        while (o < p->end) {
            /* keep the unread tail, then refill behind it */
            size_t keep = base + have - o;
            memmove(buf, buf + (o - base), keep);
            base = o;
            ssize_t r = pread(fd, buf + keep, BUF - keep, (off_t)(base + keep));
            if (r <= 0) break;
            have = keep + (size_t)r;
            o = walk(p, buf, base, have, o);
        }
        free(buf);
    }
    if (o != p->end) p->bad = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s FILE THREADS mmap|read\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > MAXT) { fprintf(stderr, "THREADS 1..%d\n", MAXT); return 2; }
    use_read = strcmp(argv[3], "read") == 0;
    fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[1]); return 2; }
    size = (size_t)st.st_size;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 2; }
    if (size < 24 || le32(map) != 0xa1b2c3d4 || le32(map + 20) != 1) {
        fprintf(stderr, "%s: not a little-endian microsecond Ethernet pcap\n", argv[1]);
        return 1;
    }
    snaplen = le32(map + 16);
    struct part parts[MAXT];
    memset(parts, 0, sizeof parts);
    parts[0].start = 24;
    for (int i = 1; i < threads; i++) {
        size_t o = size / threads * i;
        while (o < size && !chains(map, o, size, 16)) o++;
        parts[i].start = o;
        parts[i - 1].end = o;
    }
    parts[threads - 1].end = size;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&parts[i].th, NULL, run, &parts[i]) != 0) { perror("pthread_create"); return 2; }
    uint64_t packets = 0, bytes = 0;
    int bad = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(parts[i].th, NULL);
        packets += parts[i].packets;
        bytes += parts[i].bytes;
        bad |= parts[i].bad;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("packets=%llu ip_bytes=%llu threads=%d mode=%s seconds=%.4f\n", (unsigned long long)packets,
           (unsigned long long)bytes, threads, use_read ? "read" : "mmap",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (bad) { fprintf(stderr, "a part did not end on the next part's first record\n"); return 1; }
    return 0;
}
