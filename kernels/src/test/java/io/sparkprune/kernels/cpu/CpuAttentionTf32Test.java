package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.AttentionReference;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.HostWorkspace;
import io.sparkprune.kernels.Tf32;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The TF32 attention of {@link CpuBackend} ({@link AttentionJob#tf32()}, the CPU twin of the GPU kernel
 * {@code attention_tf32}): against the fp64 reference of {@link AttentionReference} computed from the
 * TF32-rounded operands, within its bound derived from TF32's unit roundoff 2^-11 (the weights' rounding)
 * and fp32 arithmetic; rows with a single allowed key equal the TF32-rounded value exactly; a two-key
 * case follows the documented order of roundings to the bit; the result differs from the fp32 path;
 * {@link HostWorkspace} uses it exactly in TF32 workspaces for head widths that are multiples of 8
 * up to 128, and the fp32 path otherwise.
 */
class CpuAttentionTf32Test {
    private static final List<CpuBackend> BACKENDS = new ArrayList<>();
    private static final long SEED = new Random().nextLong();

    @BeforeAll
    static void setUp() {
        BACKENDS.add(CpuBackend.create(2, false));
        if (CpuBackend.simdAvailable()) {
            BACKENDS.add(CpuBackend.create(2, true));
        }
    }

    @AfterAll
    static void tearDown() {
        BACKENDS.forEach(CpuBackend::close);
        BACKENDS.clear();
    }

    /** A job over random operands with padded row strides (and offsets), fp32 or TF32. */
    private static AttentionJob job(SplittableRandom r, int heads, int kvHeads, int hd, boolean causal, int window,
                                    int[] starts, int[] keyLengths, boolean tf32) {
        int seqs = starts.length - 1;
        int rows = starts[seqs];
        int ldq = heads * hd + 3;
        int ldk = kvHeads * hd + 1;
        float[] q = AttentionReference.randomF(r, rows * ldq + 2, 1.5);
        float[] k = AttentionReference.randomF(r, rows * ldk + 1, 1.5);
        float[] v = AttentionReference.randomF(r, rows * ldk + 1, 1);
        float[] o = new float[rows * heads * hd];
        return new AttentionJob(heads, kvHeads, hd, (float) (1 / Math.sqrt(hd)), causal, window, seqs, starts,
                keyLengths, new FloatView(q, 2, ldq), new FloatView(k, 1, ldk), new FloatView(v, 0, ldk),
                new FloatView(o, 0, heads * hd), tf32);
    }

    /** The same operands with a fresh output array and the given precision. */
    private static AttentionJob withOut(AttentionJob j, boolean tf32) {
        return new AttentionJob(j.heads(), j.kvHeads(), j.headDim(), j.scale(), j.causal(), j.window(), j.sequences(),
                j.seqStarts(), j.keyLengths(), j.q(), j.k(), j.v(),
                new FloatView(new float[j.out().data().length], 0, j.out().ld()), tf32);
    }

    private static void checkWithinBound(CpuBackend be, AttentionJob job, String what) {
        be.attention(job);
        AttentionReference.Result ref = AttentionReference.compute(job, true);
        assertThat(AttentionReference.worstRatio(job.out().data(), job, ref))
                .as("%s simd=%s seed=%d: %s", what, be.simd(), SEED, AttentionReference.check(job.out().data(), job, ref))
                .isLessThanOrEqualTo(1.0);
    }

    @Test
    void tf32MatchesTheReferenceOfTheRoundedOperandsWithinTheTf32Bound() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            checkWithinBound(be, job(r, 4, 2, 128, true, 0, AttentionReference.packed(3, 1, 17, 130, 300), null, true),
                    "causal gqa packed hd=128");
            checkWithinBound(be, job(r, 2, 2, 64, false, 0, AttentionReference.packed(0, 1, 17, 130, 300), null, true),
                    "bidirectional packed hd=64");
            checkWithinBound(be, job(r, 6, 2, 64, true, 50, AttentionReference.packed(0, 333, 130), null, true),
                    "causal window=50 gqa 6/2 hd=64");
            checkWithinBound(be, job(r, 2, 1, 32, false, 0, new int[] {0, 130, 260, 390},
                    new int[] {100, 0, 130}, true), "padded bidirectional hd=32");
            checkWithinBound(be, job(r, 2, 1, 8, true, 0, new int[] {0, 130, 260}, new int[] {77, 130}, true),
                    "padded causal hd=8");
        }
    }

    @Test
    void rowsWithOneAllowedKeyAreTheTf32RoundedValuesExactly() {
        SplittableRandom r = new SplittableRandom(SEED + 1);
        for (CpuBackend be : BACKENDS) {
            // window 1: every query sees only its own key, so out = v' (weight 1, denominator 1)
            AttentionJob t = job(r, 4, 2, 64, true, 1, AttentionReference.packed(0, 70, 5), null, true);
            AttentionJob f = withOut(t, false);
            be.attention(t);
            be.attention(f);
            int differs = 0;
            int total = 0;
            for (int row = 0; row < t.rows(); row++) {
                for (int h = 0; h < t.heads(); h++) {
                    for (int d = 0; d < t.headDim(); d++) {
                        float vv = t.v().data()[t.v().index(row, (h / 2) * t.headDim() + d)];
                        float got = t.out().data()[t.out().index(row, h * t.headDim() + d)];
                        assertThat(got).as("row %d head %d dim %d seed=%d", row, h, d, SEED).isEqualTo(Tf32.round(vv));
                        assertThat(f.out().data()[f.out().index(row, h * t.headDim() + d)]).isEqualTo(vv);
                        total++;
                        if (got != vv) {
                            differs++;
                        }
                    }
                }
            }
            // a uniform fp32 value is a TF32 value with probability 2^-13
            assertThat(differs).as("values the rounding changed").isGreaterThan(total * 9 / 10);
        }
    }

    @Test
    void twoKeysFollowTheDocumentedRoundingsToTheBit() {
        // hd 8, scale 1, one query at position 1 seeing keys 0 and 1; all operands TF32 values, so the
        // scores are exact: s0 = -1, s1 = 0, max 0, weights p0 = tf32(fp32(e^-1)), p1 = 1
        float[] q = new float[16];
        float[] k = new float[16];
        float[] v = new float[16];
        q[8] = 1f;
        k[0] = -1f;
        for (int d = 0; d < 8; d++) {
            v[d] = 1.5f + d;
            v[8 + d] = -0.75f * d;
        }
        float p0 = Tf32.round((float) Math.exp(-1.0f));
        assertThat(p0).isNotEqualTo((float) Math.exp(-1.0f));
        float inv = (float) (1.0 / (p0 + 1.0));
        for (CpuBackend be : BACKENDS) {
            float[] out = new float[16];
            be.attention(new AttentionJob(1, 1, 8, 1f, true, 0, 1, new int[] {0, 2}, null, new FloatView(q, 0, 8),
                    new FloatView(k, 0, 8), new FloatView(v, 0, 8), new FloatView(out, 0, 8), true));
            for (int d = 0; d < 8; d++) {
                // fp32 sum of the exact products p0·v0 + 1·v1, then the fp32 product with fp32(1 / (p0 + 1))
                float expected = (float) ((double) p0 * v[d] + v[8 + d]) * inv;
                assertThat(out[8 + d]).as("dim " + d).isEqualTo(expected);
                assertThat(out[d]).as("row 0 sees key 0 only").isEqualTo(v[d]);
            }
        }
    }

    @Test
    void tf32DiffersFromFp32AndFp32IsUnchanged() {
        SplittableRandom r = new SplittableRandom(SEED + 2);
        for (CpuBackend be : BACKENDS) {
            AttentionJob t = job(r, 2, 1, 64, true, 0, AttentionReference.packed(0, 200), null, true);
            AttentionJob f = withOut(t, false);
            AttentionJob legacy = new AttentionJob(t.heads(), t.kvHeads(), t.headDim(), t.scale(), t.causal(),
                    t.window(), t.sequences(), t.seqStarts(), t.keyLengths(), t.q(), t.k(), t.v(),
                    new FloatView(new float[t.out().data().length], 0, t.out().ld()));
            assertThat(legacy.tf32()).isFalse();
            be.attention(t);
            be.attention(f);
            be.attention(legacy);
            assertThat(legacy.out().data()).as("the 13-argument job is the fp32 one").isEqualTo(f.out().data());
            int differs = 0;
            float[] a = t.out().data();
            float[] b = f.out().data();
            for (int i = 0; i < a.length; i++) {
                if (a[i] != b[i]) {
                    differs++;
                }
            }
            assertThat(differs).as("elements where TF32 and fp32 differ").isGreaterThan(a.length * 9 / 10);
            // fp32 is the fp32 attention: within fp32 noise of the unrounded fp64 reference, and TF32 is not
            AttentionReference.Result exact = AttentionReference.compute(f, false);
            double errF = AttentionReference.maxAbsError(b, f, exact);
            double errT = AttentionReference.maxAbsError(a, t, exact);
            assertThat(errF).as("fp32 error").isLessThan(1e-5);
            assertThat(errT).as("tf32 error against the unrounded operands").isGreaterThan(8 * errF);
        }
    }

    @Test
    void hostWorkspaceRunsTf32AttentionForTf32WorkspacesAndSupportedWidths() {
        SplittableRandom r = new SplittableRandom(SEED + 3);
        CpuBackend be = BACKENDS.get(0);
        assertThat(AttentionJob.supportsTf32(128)).isTrue();
        assertThat(AttentionJob.supportsTf32(8)).isTrue();
        assertThat(AttentionJob.supportsTf32(12)).isFalse();
        assertThat(AttentionJob.supportsTf32(136)).isFalse();
        assertThat(AttentionJob.supportsTf32(0)).isFalse();
        for (int hd : new int[] {64, 12}) {
            int heads = 4;
            int kvHeads = 2;
            int[] starts = {0, 40, 97};
            int rows = 97;
            float[] q = AttentionReference.randomF(r, rows * heads * hd, 1.5);
            float[] k = AttentionReference.randomF(r, rows * kvHeads * hd, 1.5);
            float[] v = AttentionReference.randomF(r, rows * kvHeads * hd, 1);
            float scale = (float) (1 / Math.sqrt(hd));
            for (ForwardPrecision p : ForwardPrecision.values()) {
                float[] expected = new float[rows * heads * hd];
                be.attention(new AttentionJob(heads, kvHeads, hd, scale, true, 0, 2, starts, null,
                        new FloatView(q, 0, heads * hd), new FloatView(k, 0, kvHeads * hd),
                        new FloatView(v, 0, kvHeads * hd), new FloatView(expected, 0, heads * hd),
                        p == ForwardPrecision.TF32 && hd % 8 == 0));
                try (HostWorkspace ws = new HostWorkspace(be, p)) {
                    Matrix out = ws.allocate(rows, heads * hd);
                    ws.attention(heads, kvHeads, hd, scale, true, 0, 2, starts, null, ws.wrap(q, rows, heads * hd),
                            ws.wrap(k, rows, kvHeads * hd), ws.wrap(v, rows, kvHeads * hd), out);
                    assertThat(ws.download(out)).as(p + " hd=" + hd).isEqualTo(expected);
                }
            }
        }
    }
}
