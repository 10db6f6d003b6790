/*
 * A stand-in for libnvidia-ml with the same C ABI for the functions the
 * loader calls. Behaviour is fixed at compile time (-D flags), so each test
 * builds its own copy and tests running in parallel do not share state:
 *
 *   FAKE_GPUS=n          devices NVML reports (default 1)
 *   FAKE_BUS_BASE=b      device i sits at 00000000:(b+i):00.0 (default 0x3b)
 *   FAKE_CC_FEATURE=0|1  system CC feature (default 1)
 *   FAKE_DEVTOOLS=0|1    devtools mode (default 0)
 *   FAKE_ENVIRONMENT=n   0 unavailable, 1 simulation, 2 production (default 2)
 *   FAKE_NO_CC_STATE     leave nvmlSystemGetConfComputeState out (old driver)
 *   FAKE_REPORT_RC=rc    the report call returns rc (default 0 = success)
 *   FAKE_WRONG_NONCE     the report answers another nonce
 *   FAKE_CERT_RC=rc      the certificate call returns rc (default 0 = success)
 *   FAKE_INIT_RC=rc      nvmlInit_v2 returns rc (default 0)
 *   FAKE_DIR="dir"       answer with real reports and chains instead of the
 *                        filler ones: report-<nonce as 64 hex digits>.bin
 *                        (absent: the call fails) and chain-<i>.pem
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef FAKE_GPUS
#define FAKE_GPUS 1
#endif
#ifndef FAKE_BUS_BASE
#define FAKE_BUS_BASE 0x3b
#endif
#ifndef FAKE_CC_FEATURE
#define FAKE_CC_FEATURE 1
#endif
#ifndef FAKE_DEVTOOLS
#define FAKE_DEVTOOLS 0
#endif
#ifndef FAKE_ENVIRONMENT
#define FAKE_ENVIRONMENT 2
#endif
#ifndef FAKE_REPORT_RC
#define FAKE_REPORT_RC 0
#endif
#ifndef FAKE_CERT_RC
#define FAKE_CERT_RC 0
#endif
#ifndef FAKE_INIT_RC
#define FAKE_INIT_RC 0
#endif

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2

typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int environment;
    unsigned int ccFeature;
    unsigned int devToolsMode;
} nvmlConfComputeSystemState_t;

typedef struct {
    unsigned int isCecAttestationReportPresent;
    unsigned int attestationReportSize;
    unsigned int cecAttestationReportSize;
    unsigned char nonce[32];
    unsigned char attestationReport[8192];
    unsigned char cecAttestationReport[4096];
} nvmlConfComputeGpuAttestationReport_t;

typedef struct {
    unsigned int certChainSize;
    unsigned int attestationCertChainSize;
    unsigned char certChain[4096];
    unsigned char attestationCertChain[5120];
} nvmlConfComputeGpuCertificate_t;

static int initialized;
static unsigned int ready;

static int device_index(nvmlDevice_t d) {
    uintptr_t v = (uintptr_t)d;
    if (v < 1 || v > FAKE_GPUS) return -1;
    return (int)(v - 1);
}

nvmlReturn_t nvmlInit_v2(void) {
    if (FAKE_INIT_RC != 0) return FAKE_INIT_RC;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t rc) {
    return rc == NVML_SUCCESS ? "Success" : "Fake NVML error";
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = FAKE_GPUS;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= FAKE_GPUS) return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    int i = device_index(device);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (i < 0 || !pci) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    pci->bus = FAKE_BUS_BASE + i;
    pci->pciDeviceId = 0x233010de;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    return NVML_SUCCESS;
}

#ifndef FAKE_NO_CC_STATE
nvmlReturn_t nvmlSystemGetConfComputeState(nvmlConfComputeSystemState_t *state) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!state) return NVML_ERROR_INVALID_ARGUMENT;
    state->environment = FAKE_ENVIRONMENT;
    state->ccFeature = FAKE_CC_FEATURE;
    state->devToolsMode = FAKE_DEVTOOLS;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlSystemGetConfComputeGpusReadyState(unsigned int *is_accepting_work) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!is_accepting_work) return NVML_ERROR_INVALID_ARGUMENT;
    *is_accepting_work = ready;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemSetConfComputeGpusReadyState(unsigned int is_accepting_work) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (is_accepting_work > 1) return NVML_ERROR_INVALID_ARGUMENT;
    ready = is_accepting_work;
    return NVML_SUCCESS;
}

#ifdef FAKE_DIR
/* Read at most cap bytes of FAKE_DIR/name into buf; the count, or -1. */
static long read_answer(const char *name, unsigned char *buf, size_t cap) {
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
#endif

/*
 * Without FAKE_DIR: a structurally valid SPDM 1.1 GET_MEASUREMENTS request +
 * MEASUREMENTS response: no blocks, no opaque data, a filler signature; the
 * device index is in the responder nonce so reports differ per GPU.
 */
nvmlReturn_t nvmlDeviceGetConfComputeGpuAttestationReport(
    nvmlDevice_t device, nvmlConfComputeGpuAttestationReport_t *r) {
    int i = device_index(device);
    unsigned char *p;
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (i < 0 || !r) return NVML_ERROR_INVALID_ARGUMENT;
    if (FAKE_REPORT_RC != 0) return FAKE_REPORT_RC;
#ifdef FAKE_DIR
    {
        char name[128];
        long n;
        int k;
        strcpy(name, "report-");
        for (k = 0; k < 32; k++) sprintf(name + 7 + 2 * k, "%02x", r->nonce[k]);
        strcat(name, ".bin");
        n = read_answer(name, r->attestationReport, sizeof r->attestationReport);
        if (n < 0) return NVML_ERROR_INVALID_ARGUMENT;
        r->attestationReportSize = (unsigned int)n;
        r->isCecAttestationReportPresent = 0;
        r->cecAttestationReportSize = 0;
        return NVML_SUCCESS;
    }
#endif
    p = r->attestationReport;
    *p++ = 0x11; *p++ = 0xE0; *p++ = 0x01; *p++ = 0x00;
    memcpy(p, r->nonce, 32);
#ifdef FAKE_WRONG_NONCE
    p[0] ^= 0x01;
#endif
    p += 32;
    *p++ = 0x00;                                   /* slot */
    *p++ = 0x11; *p++ = 0x60; *p++ = 0x00; *p++ = 0x00;
    *p++ = 0x00;                                   /* number of blocks */
    *p++ = 0x00; *p++ = 0x00; *p++ = 0x00;         /* record length */
    memset(p, 0xA0 + i, 32); p += 32;              /* responder nonce */
    *p++ = 0x00; *p++ = 0x00;                      /* opaque length */
    memset(p, 0x5A, 96); p += 96;                  /* signature */
    r->attestationReportSize = (unsigned int)(p - r->attestationReport);
    r->isCecAttestationReportPresent = 0;
    r->cecAttestationReportSize = 0;
    return NVML_SUCCESS;
}

static const char CHAIN[] =
    "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";

nvmlReturn_t nvmlDeviceGetConfComputeGpuCertificate(
    nvmlDevice_t device, nvmlConfComputeGpuCertificate_t *c) {
    int i = device_index(device);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (i < 0 || !c) return NVML_ERROR_INVALID_ARGUMENT;
    if (FAKE_CERT_RC != 0) return FAKE_CERT_RC;
    memset(c, 0, sizeof *c);
#ifdef FAKE_DIR
    {
        char name[64];
        long n;
        snprintf(name, sizeof name, "chain-%d.pem", i);
        n = read_answer(name, c->attestationCertChain, sizeof c->attestationCertChain);
        if (n < 0) return NVML_ERROR_INVALID_ARGUMENT;
        c->attestationCertChainSize = (unsigned int)n;
        return NVML_SUCCESS;
    }
#endif
    memcpy(c->attestationCertChain, CHAIN, sizeof CHAIN - 1);
    c->attestationCertChainSize = sizeof CHAIN - 1;
    memcpy(c->certChain, CHAIN, sizeof CHAIN - 1);
    c->certChainSize = sizeof CHAIN - 1;
    return NVML_SUCCESS;
}
