/* udpsend: a paced IPFIX-over-UDP sender that costs little CPU per datagram.
 *
 * Strategy: every datagram is built before the clock starts. The pool file holds IPFIX
 * messages as an exporter would send them (templates first, then data messages of at most one
 * MTU each, as benchmarks/antrea_stream.py packs them); each message's record count comes from
 * the sequence numbers the pool was encoded with. Each exporter (--exporters K) is its own
 * socket bound to its own source port, with its own sequence numbers: datagram j of the run goes
 * to exporter j % K. A queued datagram is copied into its batch slot and its sequence number
 * written there (a 1.5 KB copy is cheap next to a system call, and a burst that cycles through
 * the pool within one batch cannot alias). Pacing is by
 * CLOCK_MONOTONIC in ticks (--tick-us, default 1 ms): at each tick the datagrams due by then go
 * out in sendmmsg() batches, one batch per exporter, and the process sleeps until the next
 * tick with clock_nanosleep (no spinning). Templates go out first on every exporter, and again
 * every --template-every data messages of that exporter, as UDP exporters refresh them.
 *
 * The result is one JSON object on stdout: what was sent, how fast, and the sender's own CPU.
 *
 *   udpsend --pool FILE --pool-records N --dest 127.0.0.1:4739 --rate 20000 --seconds 5
 *           [--exporters K] [--template-every M] [--tick-us T] [--sndbuf BYTES]
 *
 * Compiled by benchmarks/bench_peers.py: gcc -O2 -o build/udpsend benchmarks/udpsend.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define MAX_DGRAM 65507

struct msg {
    size_t off, len;   /* in the pool */
    uint32_t records;  /* data records in the message (0 for templates) */
};

struct exporter {
    int fd;
    unsigned char *slots; /* MAX_BATCH buffers of slot_size: the queued datagrams */
    uint32_t seq;        /* data records sent before the next message (RFC 7011 3.1) */
    uint64_t data_sent;  /* data messages since the last template refresh */
    uint16_t port;
    uint64_t datagrams, records, templates, errors;
    struct mmsghdr batch[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    size_t nbatch;
    uint32_t batch_records[MAX_BATCH];
};

static void die(const char *what) {
    fprintf(stderr, "udpsend: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void) {
    fprintf(stderr,
            "usage: udpsend --pool FILE --pool-records N --dest HOST:PORT --rate RECORDS_PER_S "
            "--seconds S [--exporters K] [--template-every M] [--tick-us T] [--sndbuf BYTES]\n");
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* Sends what is queued on the exporter with one sendmmsg() call (or a few, when the kernel
 * takes part of the batch); a datagram the kernel refuses is counted as an error and skipped. */
static void flush(struct exporter *e) {
    size_t done = 0;
    while (done < e->nbatch) {
        int n = sendmmsg(e->fd, e->batch + done, (unsigned)(e->nbatch - done), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            e->errors++; /* ENOBUFS, ECONNREFUSED, ...: this datagram did not leave */
            done++;
            continue;
        }
        for (int i = 0; i < n; i++) {
            e->datagrams += e->batch_records[done + i] > 0; /* data messages only */
            e->records += e->batch_records[done + i];
        }
        done += (size_t)n;
    }
    e->nbatch = 0;
}

static const unsigned char *pool;
static size_t slot_size;

static void queue(struct exporter *e, const struct msg *m) {
    unsigned char *p = e->slots + e->nbatch * slot_size;
    memcpy(p, pool + m->off, m->len);
    put_be32(p + 8, e->seq); /* data records sent before this message; templates carry it too */
    e->seq += m->records;
    e->iov[e->nbatch].iov_base = p;
    e->iov[e->nbatch].iov_len = m->len;
    e->batch_records[e->nbatch] = m->records;
    e->nbatch++;
    if (e->nbatch == MAX_BATCH) flush(e);
}

int main(int argc, char **argv) {
    const char *pool_path = NULL, *dest = NULL;
    long long pool_records = -1;
    double rate = 0, seconds = 0;
    int n_exp = 1;
    long template_every = 0, tick_us = 1000, sndbuf = 4 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--pool")) pool_path = v;
        else if (!strcmp(a, "--pool-records")) pool_records = atoll(v);
        else if (!strcmp(a, "--dest")) dest = v;
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--exporters")) n_exp = atoi(v);
        else if (!strcmp(a, "--template-every")) template_every = atol(v);
        else if (!strcmp(a, "--tick-us")) tick_us = atol(v);
        else if (!strcmp(a, "--sndbuf")) sndbuf = atol(v);
        else usage();
    }
    if (!pool_path || !dest || pool_records < 0 || rate <= 0 || seconds <= 0 || n_exp < 1 || tick_us < 1)
        usage();

    /* The pool: IPFIX messages back to back. */
    FILE *f = fopen(pool_path, "rb");
    if (!f) die(pool_path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(size);
    if (!data || fread(data, 1, size, f) != (size_t)size) die("reading the pool");
    pool = data;
    fclose(f);
    size_t cap = 1024, n_msgs = 0;
    struct msg *msgs = malloc(cap * sizeof *msgs);
    for (size_t off = 0; off + 16 <= (size_t)size;) {
        size_t len = (size_t)pool[off + 2] << 8 | pool[off + 3];
        if ((pool[off] << 8 | pool[off + 1]) != 10 || len < 16 || off + len > (size_t)size || len > MAX_DGRAM) {
            fprintf(stderr, "udpsend: %s: not an IPFIX message at offset %zu\n", pool_path, off);
            return 1;
        }
        if (n_msgs == cap) msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
        msgs[n_msgs++] = (struct msg){off, len, 0};
        if (len > slot_size) slot_size = len;
        off += len;
    }
    /* Record counts from the pool's sequence numbers; template messages (set id 2) carry none. */
    size_t n_tmpl = 0;
    while (n_tmpl < n_msgs && (pool[msgs[n_tmpl].off + 16] << 8 | pool[msgs[n_tmpl].off + 17]) == 2) n_tmpl++;
    if (n_tmpl == 0 || n_tmpl == n_msgs) {
        fprintf(stderr, "udpsend: the pool must start with template messages and hold data messages\n");
        return 1;
    }
    for (size_t i = n_tmpl; i < n_msgs; i++) {
        uint32_t next = i + 1 < n_msgs ? be32(pool + msgs[i + 1].off + 8) : (uint32_t)pool_records;
        msgs[i].records = next - be32(pool + msgs[i].off + 8);
        if (msgs[i].records == 0) {
            fprintf(stderr, "udpsend: data message %zu holds no records (wrong --pool-records?)\n", i);
            return 1;
        }
    }
    size_t n_data = n_msgs - n_tmpl;
    double per_dgram = (double)pool_records / n_data;

    char host[256];
    const char *colon = strrchr(dest, ':');
    if (!colon || (size_t)(colon - dest) >= sizeof host) usage();
    memcpy(host, dest, colon - dest);
    host[colon - dest] = 0;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) usage();

    struct exporter *ex = calloc(n_exp, sizeof *ex);
    for (int k = 0; k < n_exp; k++) {
        struct exporter *e = &ex[k];
        e->fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (e->fd < 0) die("socket");
        setsockopt(e->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (connect(e->fd, (struct sockaddr *)&to, sizeof to) < 0) die("connect");
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        getsockname(e->fd, (struct sockaddr *)&me, &ml);
        e->port = ntohs(me.sin_port);
        e->slots = malloc(MAX_BATCH * slot_size);
        if (!e->slots) die("malloc");
        for (size_t i = 0; i < MAX_BATCH; i++) {
            e->batch[i].msg_hdr.msg_iov = &e->iov[i];
            e->batch[i].msg_hdr.msg_iovlen = 1;
        }
    }

    /* Templates first, alone, on every exporter. */
    for (int k = 0; k < n_exp; k++) {
        for (size_t t = 0; t < n_tmpl; t++) queue(&ex[k], &msgs[t]);
        ex[k].templates++;
        flush(&ex[k]);
    }
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);

    double dgram_rate = rate / per_dgram;
    uint64_t total = (uint64_t)(dgram_rate * seconds);
    if (total == 0) total = 1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double start = t0.tv_sec + t0.tv_nsec / 1e9;
    uint64_t sent = 0, ticks = 0;
    size_t next_msg = 0; /* position in the data messages, shared: the exporters take turns */
    while (sent < total) {
        uint64_t due = (uint64_t)((now_s() - start) * dgram_rate) + 1;
        if (due > total) due = total;
        for (; sent < due; sent++) {
            struct exporter *e = &ex[sent % n_exp];
            if (template_every > 0 && e->data_sent >= (uint64_t)template_every) {
                for (size_t t = 0; t < n_tmpl; t++) queue(e, &msgs[t]);
                e->templates++;
                e->data_sent = 0;
            }
            queue(e, &msgs[n_tmpl + next_msg]);
            e->data_sent++;
            if (++next_msg == n_data) next_msg = 0;
        }
        for (int k = 0; k < n_exp; k++) flush(&ex[k]);
        if (sent >= total) break;
        /* Sleep to the next tick (absolute, so the ticks do not drift). */
        ticks++;
        long long ns = (long long)t0.tv_nsec + (long long)ticks * tick_us * 1000;
        struct timespec wake = {t0.tv_sec + ns / 1000000000, ns % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR) {}
    }
    double elapsed = now_s() - start;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    uint64_t datagrams = 0, records = 0, errors = 0, templates = 0;
    for (int k = 0; k < n_exp; k++) {
        datagrams += ex[k].datagrams;
        records += ex[k].records;
        errors += ex[k].errors;
        templates += ex[k].templates;
    }
    uint64_t data_dgrams = datagrams; /* data messages only: templates are counted apart */
    printf("{\"datagrams\": %llu, \"records\": %llu, \"send_errors\": %llu, \"template_sends\": %llu, "
           "\"seconds\": %.6f, \"records_per_s\": %.3f, \"datagrams_per_s\": %.3f, \"cpu_seconds\": %.6f, "
           "\"exporters\": %d, \"source_ports\": [",
           (unsigned long long)data_dgrams, (unsigned long long)records, (unsigned long long)errors,
           (unsigned long long)templates, elapsed, records / elapsed, data_dgrams / elapsed, cpu, n_exp);
    for (int k = 0; k < n_exp; k++) printf("%s%u", k ? ", " : "", ex[k].port);
    printf("], \"per_exporter_records\": [");
    for (int k = 0; k < n_exp; k++) printf("%s%llu", k ? ", " : "", (unsigned long long)ex[k].records);
    printf("]}\n");
    for (int k = 0; k < n_exp; k++) close(ex[k].fd);
    return 0;
}
