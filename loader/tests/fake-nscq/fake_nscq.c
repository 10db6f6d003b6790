/*
 * A stand-in for libnvidia-nscq (attestation API 2.0, nscq_attestation.h)
 * with the same C ABI for the calls the loader makes. Behaviour is fixed at
 * compile time (-D flags), so each test builds its own copy:
 *
 *   FAKE_SWITCHES=n     switches enumerated (default 1); labels "ls10-<i>"
 *   FAKE_DIR="dir"      where answers are read (required):
 *                         report-<nonce as 64 hex digits>.bin  the report a
 *                           switch gives for that nonce (any switch; absent:
 *                           the callback gets NSCQ_RC_ERROR_UNEXPECTED_VALUE)
 *                         chain-<i>.pem  switch i's certificate chain
 *   FAKE_PCIE_MODE=m    /config/pcie_mode of every switch (default 3: TNVL
 *                       mode on, locked)
 *   FAKE_ARCH=a         /id/arch (default 2, LS10)
 *   FAKE_CREATE_RC=rc   nscq_session_create fails with rc
 *   FAKE_REPORT_RC=rc   the report callback gets rc
 *   FAKE_REPORT_SIZE=n  the report callback claims n bytes
 *   FAKE_BAD_LABEL      labels contain a '/'
 *   FAKE_TWICE          per-device callbacks fire twice
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef FAKE_SWITCHES
#define FAKE_SWITCHES 1
#endif
#ifndef FAKE_PCIE_MODE
#define FAKE_PCIE_MODE 3
#endif
#ifndef FAKE_ARCH
#define FAKE_ARCH 2
#endif
#ifndef FAKE_REPORT_RC
#define FAKE_REPORT_RC 0
#endif

typedef int8_t nscq_rc_t;
typedef void (*nscq_fn_t)(void);
typedef struct { uint8_t bytes[16]; } nscq_uuid_t;
typedef struct { char data[64]; } nscq_label_t;
typedef struct {
    uint32_t report_size;
    uint8_t report[0x2000];
} nscq_attestation_report_t;
typedef struct {
    uint8_t cert_chain[0x1400];
    uint32_t cert_chain_size;
} nscq_attestation_certificate_t;
typedef struct nscq_session_st *nscq_session_t;
typedef struct { nscq_rc_t rc; nscq_session_t session; } nscq_session_result_t;

#define RC_INVALID_UUID (-2)
#define RC_UNEXPECTED_VALUE (-5)

const uint32_t nscq_api_version = (2u << 24);

struct nscq_session_st {
    int open;
    int have_nonce;
    uint8_t nonce[32];
};
static struct nscq_session_st the_session;
static nscq_uuid_t uuids[FAKE_SWITCHES];

typedef void (*uuid_cb)(const nscq_uuid_t *, nscq_rc_t, const nscq_uuid_t *, void *);
typedef void (*i8_cb)(const nscq_uuid_t *, nscq_rc_t, int8_t, void *);
typedef void (*report_cb)(const nscq_uuid_t *, nscq_rc_t, nscq_attestation_report_t, void *);
typedef void (*cert_cb)(const nscq_uuid_t *, nscq_rc_t, nscq_attestation_certificate_t, void *);

nscq_session_result_t nscq_session_create(uint32_t flags) {
    nscq_session_result_t r;
    int i;
    (void)flags;
#ifdef FAKE_CREATE_RC
    r.rc = FAKE_CREATE_RC;
    r.session = 0;
    return r;
#endif
    for (i = 0; i < FAKE_SWITCHES; i++) {
        memset(&uuids[i], 0, sizeof uuids[i]);
        uuids[i].bytes[0] = 0x5a;
        uuids[i].bytes[15] = (uint8_t)i;
    }
    the_session.open = 1;
    the_session.have_nonce = 0;
    r.rc = 0;
    r.session = &the_session;
    return r;
}

void nscq_session_destroy(nscq_session_t s) {
    if (s) s->open = 0;
}

nscq_rc_t nscq_uuid_to_label(const nscq_uuid_t *uuid, nscq_label_t *label, uint32_t flags) {
    (void)flags;
    if (!uuid || !label || uuid->bytes[0] != 0x5a || uuid->bytes[15] >= FAKE_SWITCHES)
        return RC_INVALID_UUID;
    memset(label, 0, sizeof *label);
#ifdef FAKE_BAD_LABEL
    snprintf(label->data, sizeof label->data, "ls10/%d", uuid->bytes[15]);
#else
    snprintf(label->data, sizeof label->data, "ls10-%d", uuid->bytes[15]);
#endif
    return 0;
}

nscq_rc_t nscq_session_set_input(nscq_session_t s, uint32_t flags, void *input, uint32_t size) {
    (void)flags;
    if (!s || !s->open || !input || size != 32) return RC_UNEXPECTED_VALUE;
    memcpy(s->nonce, input, 32);
    s->have_nonce = 1;
    return 0;
}

/* Read at most cap bytes of dir/name into buf; the count, or -1. */
static long read_file(const char *name, uint8_t *buf, size_t cap) {
    char path[4096];
    FILE *f;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", FAKE_DIR, name);
    f = fopen(path, "rb");
    if (!f) return -1;
    n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

static void answer(nscq_session_t s, int i, const char *what, nscq_fn_t cb, void *user) {
    const nscq_uuid_t *dev = &uuids[i];
    if (!strcmp(what, "id/arch")) {
        ((i8_cb)cb)(dev, 0, FAKE_ARCH, user);
    } else if (!strcmp(what, "config/pcie_mode")) {
        ((i8_cb)cb)(dev, 0, FAKE_PCIE_MODE, user);
    } else if (!strcmp(what, "config/certificate")) {
        static nscq_attestation_certificate_t c;
        char name[64];
        long n;
        memset(&c, 0, sizeof c);
        snprintf(name, sizeof name, "chain-%d.pem", i);
        n = read_file(name, c.cert_chain, sizeof c.cert_chain);
        c.cert_chain_size = n < 0 ? 0 : (uint32_t)n;
        ((cert_cb)cb)(dev, n < 0 ? RC_UNEXPECTED_VALUE : 0, c, user);
    } else if (!strcmp(what, "config/attestation_report")) {
        static nscq_attestation_report_t r;
        char name[128];
        long n = -1;
        int k;
        memset(&r, 0, sizeof r);
        if (s->have_nonce) {
            strcpy(name, "report-");
            for (k = 0; k < 32; k++) sprintf(name + 7 + 2 * k, "%02x", s->nonce[k]);
            strcat(name, ".bin");
            n = read_file(name, r.report, sizeof r.report);
        }
        r.report_size = n < 0 ? 0 : (uint32_t)n;
#ifdef FAKE_REPORT_SIZE
        r.report_size = FAKE_REPORT_SIZE;
#endif
        ((report_cb)cb)(dev, n < 0 ? RC_UNEXPECTED_VALUE : FAKE_REPORT_RC, r, user);
    }
}

nscq_rc_t nscq_session_path_observe(nscq_session_t s, const char *path, nscq_fn_t cb,
                                    void *user, uint32_t flags) {
    char label[64];
    const char *rest;
    size_t len;
    int i;
    (void)flags;
    if (!s || !s->open || !path || !cb) return RC_UNEXPECTED_VALUE;
    if (!strcmp(path, "/drv/nvswitch/{device}/uuid")) {
        for (i = 0; i < FAKE_SWITCHES; i++) ((uuid_cb)cb)(0, 0, &uuids[i], user);
        return 0;
    }
    if (path[0] != '/') return RC_UNEXPECTED_VALUE;
    rest = strchr(path + 1, '/');
    if (!rest) return RC_UNEXPECTED_VALUE;
    len = (size_t)(rest - path - 1);
    if (len >= sizeof label) return RC_INVALID_UUID;
    memcpy(label, path + 1, len);
    label[len] = 0;
    for (i = 0; i < FAKE_SWITCHES; i++) {
        nscq_label_t l;
        if (nscq_uuid_to_label(&uuids[i], &l, 0) == 0 && !strcmp(l.data, label)) {
            answer(s, i, rest + 1, cb, user);
#ifdef FAKE_TWICE
            answer(s, i, rest + 1, cb, user);
#endif
            return 0;
        }
    }
    return RC_INVALID_UUID;
}
