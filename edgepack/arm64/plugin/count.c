/*
 * edgepack's instruction counter: a QEMU TCG plugin (plugin API v1, QEMU 7.2) for qemu-aarch64.
 *
 * Every translated block gets inline counter adds, one per instruction class present in it, so
 * counting costs a few host instructions per block. The classes come from the A64 encoding:
 *   sdot, udot      SDOT/UDOT (vector and by element, FEAT_DotProd)
 *   fmla            FMLA vector and by element (single, double, half precision)
 *   vector          every other Advanced SIMD vector instruction (and SVE, which a76/n1 lack)
 *   fp_scalar       scalar floating point and Advanced SIMD scalar forms
 *   load, load_vector, store, store_vector   loads and stores to general / SIMD&FP registers
 *   scalar          the rest: integer data processing, branches, system
 * The guest marks the region to count with a syscall number QEMU does not know (it returns
 * ENOSYS): syscall(0x7151, 1) starts a region, syscall(0x7151, 2) ends it. Counts inside all
 * regions are summed. At exit the plugin writes JSON to the file named by its `out=` argument:
 *   {"plugin": "edgepack-count", "version": 1, "regions": N, "counts": {...}, "whole_run": {...}}
 * Counters are plain (not atomic): count single-threaded guests only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_SYSCALL 0x7151

enum cls { SDOT, UDOT, FMLA, VECTOR, FP_SCALAR, LOAD, LOAD_VECTOR, STORE, STORE_VECTOR, SCALAR, NCLS };
static const char *names[NCLS] = {"sdot", "udot", "fmla", "vector", "fp_scalar",
                                  "load", "load_vector", "store", "store_vector", "scalar"};

static uint64_t counts[NCLS];  /* everything executed since start */
static uint64_t start[NCLS];   /* counts[] when the open region began */
static uint64_t region[NCLS];  /* summed over closed regions */
static int regions, open_region;
static char *out_path;

static int classify(uint32_t i)
{
    uint32_t op0 = (i >> 25) & 0xf;
    if ((i & 0xBFE0FC00) == 0x0E809400 || (i & 0xBFC0F400) == 0x0F80E000) return SDOT;
    if ((i & 0xBFE0FC00) == 0x2E809400 || (i & 0xBFC0F400) == 0x2F80E000) return UDOT;
    if ((i & 0xBFA0FC00) == 0x0E20CC00 || (i & 0xBF80F400) == 0x0F801000 ||
        (i & 0xBFE0FC00) == 0x0E400400 || (i & 0xBFC0F400) == 0x0F001000) return FMLA;
    if ((op0 & 0x7) == 0x7) return (i >> 28) & 1 ? FP_SCALAR : VECTOR;   /* x111: SIMD & FP */
    if (op0 == 0x2) return VECTOR;                                        /* SVE */
    if ((op0 & 0x5) == 0x4) {                                             /* x1x0: loads and stores */
        int v = (i >> 26) & 1, l = (i >> 22) & 1, store;
        uint32_t top = (i >> 27) & 0x7;
        if (top == 0x7) store = !l && (v || !((i >> 23) & 1));            /* register forms: opc */
        else if (top == 0x3 && !((i >> 24) & 1)) store = 0;               /* literal */
        else store = !l;                                                  /* pair, exclusive, structures */
        return store ? (v ? STORE_VECTOR : STORE) : (v ? LOAD_VECTOR : LOAD);
    }
    return SCALAR;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t n[NCLS] = {0};
    size_t k, insns = qemu_plugin_tb_n_insns(tb);
    for (k = 0; k < insns; k++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
        uint32_t word = 0;
        size_t size = qemu_plugin_insn_size(insn);
        memcpy(&word, qemu_plugin_insn_data(insn), size < 4 ? size : 4);
        n[classify(word)]++;
    }
    for (k = 0; k < NCLS; k++)
        if (n[k]) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counts[k], n[k]);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    int k;
    if (num != MARK_SYSCALL) return;
    if (a1 == 1 && !open_region) {
        memcpy(start, counts, sizeof counts);
        open_region = 1;
    } else if (a1 == 2 && open_region) {
        for (k = 0; k < NCLS; k++) region[k] += counts[k] - start[k];
        open_region = 0;
        regions++;
    }
}

static void write_counts(FILE *f, const uint64_t *c)
{
    int k;
    fputc('{', f);
    for (k = 0; k < NCLS; k++) fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", names[k], c[k]);
    fputc('}', f);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (!f) return;
    fprintf(f, "{\"plugin\": \"edgepack-count\", \"version\": 1, \"regions\": %d, \"open_region\": %d, \"counts\": ",
            regions, open_region);
    write_counts(f, region);
    fputs(", \"whole_run\": ", f);
    write_counts(f, counts);
    fputs("}\n", f);
    if (f != stderr) fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int k;
    for (k = 0; k < argc; k++)
        if (strncmp(argv[k], "out=", 4) == 0) out_path = strdup(argv[k] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
