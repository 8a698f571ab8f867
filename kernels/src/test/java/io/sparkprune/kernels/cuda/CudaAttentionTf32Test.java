package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.AttentionReference;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.Tf32;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The TF32 tensor-core attention {@code attention_tf32} ({@link CudaBackend#attentionTf32Device}, the
 * attention of TF32 workspaces) on fresh random inputs (the seed is in every message):
 * <ul>
 *   <li>against the fp64 reference of the TF32-rounded operands ({@link AttentionReference}), element by
 *       element within its bound (TF32's unit roundoff 2^-11 for the weights' rounding plus fp32
 *       roundings), and against the CPU twin ({@link io.sparkprune.kernels.cpu.CpuBackend} with
 *       {@link AttentionJob#tf32()}) within the sum of both bounds, over causal and bidirectional
 *       masks, sliding windows, grouped KV heads, padding key lengths, packed sequences of odd lengths
 *       (1, 17, 130, 300), an empty sequence, head widths 8, 64, 120 and 128 and 2048-token sequences,
 *       with 16-byte aligned operands (cp.async) and misaligned ones (offset by one float, odd row
 *       strides: plain loads); outputs poisoned with NaN first, rows outside the sequences and the
 *       strides' padding must keep a sentinel;</li>
 *   <li>rows that see one key (window 1) give the TF32-rounded value exactly (the rounding is
 *       {@code cvt.rna}, not the tensor cores' truncation);</li>
 *   <li>the result is not the fp32 kernel's: its error against the unrounded operands is many times the
 *       fp32 kernel's;</li>
 *   <li>a TF32 {@link ForwardWorkspace} runs it (bitwise the same output) for head widths that are
 *       multiples of 8, and {@code attention_f32} for other widths and in fp32 workspaces.</li>
 * </ul>
 * Skipped, with the reason, when no CUDA device is usable.
 */
@Tag("gpu")
class CudaAttentionTf32Test extends CudaSuite {
    private static final float SENTINEL = 12345.5f;

    /**
     * A TF32 job on random operands; {@code aligned}: offsets 0 and row strides equal to the widths
     * (multiples of 8: the kernel's cp.async path), else offset 1 and odd strides (plain loads). The
     * output array holds the sentinel outside the job's window and NaN inside.
     */
    private static AttentionJob job(SplittableRandom r, int heads, int kvHeads, int hd, boolean causal, int window,
                                    int[] starts, int[] keyLengths, boolean aligned) {
        int seqs = starts.length - 1;
        int rows = starts[seqs];
        int qc = heads * hd;
        int kc = kvHeads * hd;
        int off = aligned ? 0 : 1;
        int ldq = aligned ? qc : qc + 1;
        int ldk = aligned ? kc : kc + 3;
        int ldv = aligned ? kc : kc + 1;
        int ldo = aligned ? qc : qc + 5;
        float[] q = AttentionReference.randomF(r, off + rows * ldq, 1.5);
        float[] k = AttentionReference.randomF(r, off + rows * ldk, 1.5);
        float[] v = AttentionReference.randomF(r, off + rows * ldv, 1);
        float[] o = new float[off + rows * ldo + 2];
        Arrays.fill(o, SENTINEL);
        AttentionJob j = new AttentionJob(heads, kvHeads, hd, (float) (1 / Math.sqrt(hd)), causal, window, seqs, starts,
                keyLengths, new FloatView(q, off, ldq), new FloatView(k, off, ldk), new FloatView(v, off, ldv),
                new FloatView(o, off, ldo), true);
        return withOut(j, AttentionReference.poisoned(o, j), true);
    }

    private static AttentionJob withOut(AttentionJob j, float[] out, boolean tf32) {
        return new AttentionJob(j.heads(), j.kvHeads(), j.headDim(), j.scale(), j.causal(), j.window(), j.sequences(),
                j.seqStarts(), j.keyLengths(), j.q(), j.k(), j.v(), new FloatView(out, j.out().offset(), j.out().ld()),
                tf32);
    }

    /** A copy of the job writing into a fresh copy of its (poisoned) output array. */
    private static AttentionJob copy(AttentionJob j, boolean tf32) {
        return withOut(j, j.out().data().clone(), tf32);
    }

    /** Runs attention_tf32 on device copies of the job's arrays (same offsets and strides), into job.out(). */
    private static void runOnDevice(AttentionJob job) {
        int seqs = job.sequences();
        int[] tiles = CudaBackend.attentionTiles(seqs, job.seqStarts(), CudaBackend.ATTENTION_TF32_QUERY_TILE);
        assertThat(tiles.length).isPositive();
        int[] meta = new int[tiles.length + 2 * seqs + 1];
        System.arraycopy(tiles, 0, meta, 0, tiles.length);
        System.arraycopy(job.seqStarts(), 0, meta, tiles.length, seqs + 1);
        if (job.keyLengths() != null) {
            System.arraycopy(job.keyLengths(), 0, meta, tiles.length + seqs + 1, seqs);
        }
        float[] q = job.q().data();
        float[] k = job.k().data();
        float[] v = job.v().data();
        float[] o = job.out().data();
        synchronized (gpu) {
            gpu.makeCurrent();
            try (DeviceBuffer dq = gpu.allocate(4L * q.length, "test q");
                 DeviceBuffer dk = gpu.allocate(4L * k.length, "test k");
                 DeviceBuffer dv = gpu.allocate(4L * v.length, "test v");
                 DeviceBuffer dout = gpu.allocate(4L * o.length, "test out");
                 DeviceBuffer dmeta = gpu.allocate(4L * meta.length, "test tiles")) {
                dq.upload(q, 0, q.length, 0);
                dk.upload(k, 0, k.length, 0);
                dv.upload(v, 0, v.length, 0);
                dout.upload(o, 0, o.length, 0);
                CudaBackend.uploadInts(dmeta, meta, 0, meta.length, "test tiles");
                CUdeviceptr kl = job.keyLengths() != null ? dmeta.at(4L * (tiles.length + seqs + 1)) : new CUdeviceptr();
                gpu.attentionTf32Device(job.heads(), job.kvHeads(), job.headDim(), job.scale(), job.causal(),
                        job.window(), tiles.length / 2, dmeta.at(4L * tiles.length), kl, dmeta.pointer(),
                        dq.at(4L * job.q().offset()), job.q().ld(), dk.at(4L * job.k().offset()), job.k().ld(),
                        dv.at(4L * job.v().offset()), job.v().ld(), dout.at(4L * job.out().offset()), job.out().ld());
                dout.download(0, o, 0, o.length);
            }
        }
    }

    /** Every element outside the job's output rows (gaps, stride padding, offset) still holds the sentinel. */
    private static void assertOnlyWindowWritten(AttentionJob job, String tag) {
        float[] o = job.out().data();
        boolean[] inside = new boolean[o.length];
        int cols = job.heads() * job.headDim();
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                Arrays.fill(inside, job.out().index(r, 0), job.out().index(r, 0) + cols, true);
            }
        }
        for (int i = 0; i < o.length; i++) {
            if (!inside[i]) {
                assertThat(o[i]).as(tag + ": element " + i + " outside the output rows changed").isEqualTo(SENTINEL);
            }
        }
    }

    /** GPU (device path) and CPU TF32 against the reference and each other. */
    private static void check(AttentionJob job, String what) {
        String tag = what + " seed=" + SEED;
        AttentionJob onCpu = copy(job, true);
        runOnDevice(job);
        cpu.attention(onCpu);
        assertOnlyWindowWritten(job, tag);
        AttentionReference.Result ref = AttentionReference.compute(job, true);
        float[] g = job.out().data();
        float[] c = onCpu.out().data();
        assertThat(AttentionReference.worstRatio(g, job, ref)).as("GPU vs reference " + tag + ": "
                + AttentionReference.check(g, job, ref)).isLessThanOrEqualTo(1.0);
        assertThat(AttentionReference.worstRatio(c, onCpu, ref)).as("CPU vs reference " + tag + ": "
                + AttentionReference.check(c, onCpu, ref)).isLessThanOrEqualTo(1.0);
        int cols = job.heads() * job.headDim();
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                for (int col = 0; col < cols; col++) {
                    int i = job.out().index(r, col);
                    double diff = Math.abs((double) g[i] - c[i]);
                    if (!(diff <= 2 * ref.bound(r, col))) {
                        throw new AssertionError("GPU vs CPU " + tag + ": row " + r + " col " + col + ": GPU " + g[i]
                                + ", CPU " + c[i] + ", allowed " + 2 * ref.bound(r, col));
                    }
                }
            }
        }
        System.out.printf("attention_tf32 %s: worst error / bound GPU %.3f, CPU %.3f%n", what,
                AttentionReference.worstRatio(g, job, ref), AttentionReference.worstRatio(c, onCpu, ref));
    }

    @Test
    void matchesTheReferenceAndTheCpuForEveryMaskLayoutAndWidth() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        check(job(r, 4, 2, 128, true, 0, AttentionReference.packed(3, 1, 17, 130, 300), null, true), "causal gqa 4/2 packed hd=128");
        check(job(r, 4, 2, 128, true, 0, AttentionReference.packed(3, 1, 17, 130, 300), null, false),
                "causal gqa 4/2 packed hd=128 misaligned");
        check(job(r, 2, 2, 64, false, 0, AttentionReference.packed(0, 1, 17, 130, 300), null, true), "bidirectional packed hd=64");
        check(job(r, 2, 2, 64, false, 0, AttentionReference.packed(0, 300, 17, 1, 130), null, false),
                "bidirectional packed hd=64 misaligned");
        check(job(r, 6, 2, 64, true, 50, AttentionReference.packed(0, 333, 130), null, true), "causal window=50 gqa 6/2 hd=64");
        check(job(r, 4, 4, 128, true, 200, AttentionReference.packed(0, 300, 17), null, false), "causal window=200 hd=128 misaligned");
        check(job(r, 4, 1, 128, false, 0, new int[] {0, 300, 600, 900}, new int[] {255, 0, 300}, true),
                "padded bidirectional mqa 4/1 hd=128");
        check(job(r, 2, 1, 64, true, 0, new int[] {0, 130, 260}, new int[] {77, 130}, false),
                "padded causal hd=64 misaligned");
        check(job(r, 3, 3, 8, false, 0, new int[] {0, 65, 65, 130}, new int[] {0, 0, 64}, true),
                "empty sequence, zero key length, hd=8");
        check(job(r, 2, 1, 120, true, 0, AttentionReference.packed(0, 17, 300), null, true), "causal hd=120");
        check(job(r, 2, 1, 128, true, 0, AttentionReference.packed(0, 2048), null, true), "causal 2048 hd=128");
        check(job(r, 2, 2, 64, false, 0, AttentionReference.packed(0, 2048), null, false), "bidirectional 2048 hd=64 misaligned");
    }

    @Test
    void hostArrayAttentionRunsTheSameKernel() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        AttentionJob job = job(r, 4, 2, 128, true, 0, AttentionReference.packed(3, 1, 17, 130, 300), null, false);
        AttentionJob host = copy(job, true);
        runOnDevice(job);
        gpu.attention(host);
        // the host path packs the operands (aligned strides), the device path reads them in place: same kernel,
        // same sums, same bits
        assertThat(host.out().data()).as("seed=" + SEED).isEqualTo(job.out().data());
    }

    @Test
    void rowsThatSeeOneKeyGetTheTf32RoundedValueExactly() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        for (int hd : new int[] {64, 128}) {
            AttentionJob job = job(r, 4, 2, hd, true, 1, AttentionReference.packed(0, 1, 17, 130, 300), null, hd == 64);
            runOnDevice(job);
            for (int row = 0; row < job.rows(); row++) {
                for (int h = 0; h < job.heads(); h++) {
                    for (int d = 0; d < hd; d++) {
                        float v = job.v().data()[job.v().index(row, (h / 2) * hd + d)];
                        assertThat(job.out().data()[job.out().index(row, h * hd + d)])
                                .as("hd=%d row %d head %d dim %d seed=%d", hd, row, h, d, SEED)
                                .isEqualTo(Tf32.round(v));
                    }
                }
            }
        }
    }

    @Test
    void differsFromTheFp32Kernel() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        AttentionJob t = job(r, 2, 1, 128, true, 0, AttentionReference.packed(0, 2048), null, true);
        AttentionJob f = copy(t, false);
        runOnDevice(t);
        gpu.attention(f);
        AttentionReference.Result exact = AttentionReference.compute(t, false);
        double errT = AttentionReference.maxAbsError(t.out().data(), t, exact);
        double errF = AttentionReference.maxAbsError(f.out().data(), f, exact);
        System.out.printf("attention 2048 causal hd=128, max error against the unrounded operands: fp32 %.3g,"
                + " tf32 %.3g%n", errF, errT);
        assertThat(errF).as("attention_f32 error, seed=" + SEED).isLessThan(1e-5);
        assertThat(errT).as("attention_tf32 error against the unrounded operands, seed=" + SEED)
                .isGreaterThan(8 * errF);
    }

    @Test
    void tf32WorkspacesUseTheTf32KernelForMultiplesOf8() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        int heads = 4;
        int kvHeads = 2;
        int[] starts = {0, 130, 147};
        int rows = 147;
        for (int hd : new int[] {64, 12}) {
            float[] q = AttentionReference.randomF(r, rows * heads * hd, 1.5);
            float[] k = AttentionReference.randomF(r, rows * kvHeads * hd, 1.5);
            float[] v = AttentionReference.randomF(r, rows * kvHeads * hd, 1);
            float scale = (float) (1 / Math.sqrt(hd));
            for (ForwardPrecision p : ForwardPrecision.values()) {
                boolean tf32 = p == ForwardPrecision.TF32 && hd % 8 == 0;
                float[] expected = new float[rows * heads * hd];
                gpu.attention(new AttentionJob(heads, kvHeads, hd, scale, true, 0, 2, starts, null,
                        new FloatView(q, 0, heads * hd), new FloatView(k, 0, kvHeads * hd),
                        new FloatView(v, 0, kvHeads * hd), new FloatView(expected, 0, heads * hd), tf32));
                try (ForwardWorkspace ws = gpu.openWorkspace(p, "test")) {
                    Matrix out = ws.allocate(rows, heads * hd);
                    ws.attention(heads, kvHeads, hd, scale, true, 0, 2, starts, null, ws.upload(q, rows, heads * hd),
                            ws.upload(k, rows, kvHeads * hd), ws.upload(v, rows, kvHeads * hd), out);
                    assertThat(ws.download(out)).as(p + " hd=" + hd + " seed=" + SEED).isEqualTo(expected);
                }
            }
        }
        assertThat(CudaBackend.kernelStatus().get("attention")).contains("attention_tf32");
    }
}
