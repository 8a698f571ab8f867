package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.data.Offset.offset;

class HessianAccumulatorTest {
    private static final long SEED = new Random().nextLong();
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create(2);
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    private static double maxRelDiff(double[] a, double[] b) {
        double scale = 0;
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            scale = Math.max(scale, Math.abs(b[i]));
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d / scale;
    }

    @Test
    void tf32PrecisionAddsWithTheTf32KernelAndStaysWithinItsRounding() {
        SplittableRandom r = new SplittableRandom(SEED + 7);
        int n = 20 + r.nextInt(100);
        int tokens = 300 + r.nextInt(500);
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        HessianAccumulator acc = new HessianAccumulator("x", n, HessianPrecision.TF32);
        assertThat(acc.precision()).isEqualTo(HessianPrecision.TF32);
        double[] direct = new double[n * (n + 1) / 2];
        int t = 0;
        while (t < tokens) {
            int b = Math.min(tokens - t, 1 + r.nextInt(400));
            float[] batch = java.util.Arrays.copyOfRange(x, t * n, (t + b) * n);
            acc.add(backend, batch, b);
            backend.syrkPackedUpperTf32(n, b, batch, 0, n, direct); // chunks restart at every batch
            t += b;
        }
        double[] h = acc.hessian();
        int p = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++, p++) {
                assertThat(h[i * n + j]).as("(%d,%d) seed=%d", i, j, SEED).isEqualTo(direct[p] * (2.0 / tokens));
            }
        }
        double rel = maxRelDiff(h, TestMath.naiveHessian(x, tokens, n));
        assertThat(rel).as("seed=%d", SEED).isLessThan(2e-3).isGreaterThan(1e-9);
        assertThat(new HessianAccumulator("y", n).precision()).isEqualTo(HessianPrecision.EXACT);
    }

    @Test
    void denseCopiesMirrorThePackedTriangleInFp64AndFp32() {
        SplittableRandom r = new SplittableRandom(SEED + 11);
        for (int n : new int[] {1, 63, 65, 130 + r.nextInt(50), 600}) { // 600: the parallel, tiled path
            int tokens = 30;
            float[] x = new float[tokens * n];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            HessianAccumulator acc = new HessianAccumulator("h", n);
            acc.add(backend, x, tokens);
            double[] d = new double[n * n];
            acc.copyHessianTo(d);
            float[] f = new float[n * n];
            acc.copyHessianTo(f);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    double ref = 0; // (2/tokens) Σ_t x_ti x_tj, independent of the accumulator
                    for (int t = 0; t < tokens; t++) {
                        ref += (double) x[t * n + i] * x[t * n + j];
                    }
                    ref *= 2.0 / tokens;
                    assertThat(d[i * n + j]).as("n=%d (%d, %d) seed=%d", n, i, j, SEED).isCloseTo(ref,
                            org.assertj.core.data.Offset.offset(1e-12 * (1 + Math.abs(ref))));
                    assertThat(d[i * n + j]).isEqualTo(d[j * n + i]);
                    assertThat(f[i * n + j]).isEqualTo((float) d[i * n + j]);
                }
            }
        }
    }

    @Test
    void batchesOfAnySizeGiveTwoOverNTimesTheGram() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 1 + r.nextInt(200);
        int tokens = 1 + r.nextInt(300);
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        HessianAccumulator acc = new HessianAccumulator("x", n);
        int t = 0;
        while (t < tokens) {
            int b = Math.min(tokens - t, 1 + r.nextInt(70));
            acc.add(backend, java.util.Arrays.copyOfRange(x, t * n, (t + b) * n), b);
            t += b;
        }
        assertThat(acc.count()).isEqualTo(tokens);
        assertThat(maxRelDiff(acc.hessian(), TestMath.naiveHessian(x, tokens, n))).as("seed=%d", SEED).isLessThan(1e-12);
    }

    @Test
    void mergedPartialsEqualOneAccumulatorOverAllRows() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 150;
        int tokens = 500;
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        HessianAccumulator all = new HessianAccumulator("all", n);
        all.add(backend, x, tokens);
        HessianAccumulator[] parts = new HessianAccumulator[4];
        int[] cuts = {0, 77, 200, 201, 500};
        for (int p = 0; p < 4; p++) {
            parts[p] = new HessianAccumulator("part" + p, n);
            parts[p].add(backend, x, cuts[p] * n, cuts[p + 1] - cuts[p], n);
        }
        // tree order: (0 + 3) + (2 + 1)
        HessianAccumulator merged = parts[0].merge(parts[3]).merge(parts[2].merge(parts[1]));
        assertThat(merged.count()).isEqualTo(tokens);
        assertThat(maxRelDiff(merged.hessian(), all.hessian())).as("seed=%d", SEED).isLessThan(1e-13);
        assertThatThrownBy(() -> all.merge(new HessianAccumulator("other", n + 1)))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("151 features (other)");
    }

    @Test
    void serializationRoundTripsExactly() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 70;
        float[] x = TestMath.correlatedActivations(r, 90, n);
        HessianAccumulator acc = new HessianAccumulator("model.layers.9 q/k/v input ✓", n);
        acc.add(backend, x, 90);
        HessianAccumulator back = HessianAccumulator.fromBytes(acc.toBytes());
        assertThat(back.name()).isEqualTo(acc.name());
        assertThat(back.count()).isEqualTo(90);
        assertThat(back.hessian()).containsExactly(acc.hessian());

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(acc);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            HessianAccumulator j = (HessianAccumulator) in.readObject();
            assertThat(j.hessian()).containsExactly(acc.hessian());
            assertThat(j.count()).isEqualTo(90);
        }
        byte[] b = acc.toBytes();
        assertThatThrownBy(() -> HessianAccumulator.fromBytes(java.util.Arrays.copyOf(b, b.length - 8)))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("needs");
        b[0] ^= 1;
        assertThatThrownBy(() -> HessianAccumulator.fromBytes(b)).isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("magic");
    }

    @Test
    void tf32PartialsTravelInFp32AndExactOnesInFp64() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int n = 64;
        float[] x = TestMath.correlatedActivations(r, 300, n);
        HessianAccumulator tf32 = new HessianAccumulator("tf32 input", n, HessianPrecision.TF32);
        tf32.add(backend, x, 300);
        HessianAccumulator exact = new HessianAccumulator("exact input", n, HessianPrecision.EXACT);
        exact.add(backend, x, 300);

        byte[] tf32Bytes = javaSerialized(tf32);
        byte[] exactBytes = javaSerialized(exact);
        long packed = (long) n * (n + 1) / 2;
        // fp32 sums: half the bytes of the fp64 ones (plus the same few hundred bytes of fields)
        assertThat((long) exactBytes.length - tf32Bytes.length).isBetween(4 * packed - 64, 4 * packed + 64);

        HessianAccumulator tf32Back = javaDeserialized(tf32Bytes);
        HessianAccumulator exactBack = javaDeserialized(exactBytes);
        assertThat(exactBack.hessian()).containsExactly(exact.hessian());
        assertThat(tf32Back.count()).isEqualTo(300);
        assertThat(tf32Back.precision()).isEqualTo(HessianPrecision.TF32);
        // each packed sum arrives as the fp32 nearest to it (Java's narrowing is the reference), widened exactly
        double[] sentSums = tf32.packedSumShared();
        double[] gotSums = tf32Back.packedSumShared();
        assertThat(gotSums).hasSize(sentSums.length);
        int inexact = 0;
        for (int k = 0; k < sentSums.length; k++) {
            assertThat(gotSums[k]).as("packed sum %d", k).isEqualTo((double) (float) sentSums[k]);
            inexact += gotSums[k] != sentSums[k] ? 1 : 0;
        }
        assertThat(inexact).as("fp64 sums that fp32 cannot hold").isGreaterThan(sentSums.length / 2);
        double[] sent = tf32.hessian();
        // merging the fp32-carried partials happens in fp64 and stays within fp32 rounding of the exact merge
        HessianAccumulator merged = javaDeserialized(tf32Bytes).merge(javaDeserialized(tf32Bytes));
        double[] m = merged.hessian();
        for (int i = 0; i < n * n; i++) {
            assertThat(m[i]).isCloseTo(sent[i], org.assertj.core.data.Offset.offset(Math.abs(sent[i]) * 0x1.0p-23));
        }

        // a sum beyond fp32's range travels in fp64, never as an infinity
        float big = 1e20f; // 1e20² = 1e40 > Float.MAX_VALUE
        float[] huge = new float[n];
        java.util.Arrays.fill(huge, 1f);
        huge[5] = big;
        HessianAccumulator wide = new HessianAccumulator("wide input", n, HessianPrecision.TF32);
        HessianAccumulator bigRow = new HessianAccumulator("wide input", n, HessianPrecision.EXACT);
        bigRow.add(backend, huge, 1); // fp64 products: 1e40 does not overflow (the TF32 kernel's fp32 chunk would)
        wide.merge(bigRow); // a TF32 accumulator holding a sum beyond fp32's range
        assertThat(HessianAccumulator.fitsFloat(new double[] {1, -3e38})).isTrue();
        assertThat(HessianAccumulator.fitsFloat(new double[] {1, 1e40})).isFalse();
        byte[] wideBytes = javaSerialized(wide);
        assertThat(javaDeserialized(wideBytes).hessian()).containsExactly(wide.hessian());
        assertThat(wide.hessian()[5 * n + 5]).isGreaterThan(Float.MAX_VALUE);
    }

    @Test
    void fp32PartialsMergeAsTheyArriveAndEqualTheWidenedMerge() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED + 5);
        int n = 48;
        byte[][] parts = new byte[3][];
        for (int p = 0; p < 3; p++) {
            HessianAccumulator acc = new HessianAccumulator("part", n, HessianPrecision.TF32);
            acc.add(backend, TestMath.correlatedActivations(r, 100 + p, n), 100 + p);
            parts[p] = javaSerialized(acc);
        }
        // merged straight from the fp32 sums (the other side is never widened into an array) ...
        HessianAccumulator direct = javaDeserialized(parts[0]);
        direct.merge(javaDeserialized(parts[1])).merge(javaDeserialized(parts[2]));
        // ... against the same partials each widened first (packedSumShared flushes, which widens)
        HessianAccumulator widened = javaDeserialized(parts[0]);
        for (int p = 1; p < 3; p++) {
            HessianAccumulator other = javaDeserialized(parts[p]);
            other.packedSumShared();
            widened.merge(other);
        }
        assertThat(direct.count()).isEqualTo(100 + 101 + 102);
        assertThat(direct.packedSumShared()).containsExactly(widened.packedSumShared());
        // an independent reference: fp64 sums of the fp32-rounded partial sums, in the same order
        double[] expected = new double[n * (n + 1) / 2];
        for (byte[] part : parts) {
            double[] s = javaDeserialized(part).packedSumShared();
            for (int k = 0; k < expected.length; k++) {
                expected[k] += s[k];
            }
        }
        assertThat(direct.packedSumShared()).containsExactly(expected);
        // a deserialized fp32 partial takes further batches on the host
        HessianAccumulator more = javaDeserialized(parts[0]);
        float[] batch = TestMath.correlatedActivations(r, 10, n);
        more.add(backend, batch, 10);
        assertThat(more.count()).isEqualTo(110);
        HessianAccumulator alone = new HessianAccumulator("batch", n, HessianPrecision.TF32);
        alone.add(backend, batch, 10); // one 256-token chunk: more = part 0 + this chunk's sums, one addition each
        double[] p0 = javaDeserialized(parts[0]).packedSumShared();
        double[] b = alone.packedSumShared();
        double[] m = more.packedSumShared();
        for (int k = 0; k < m.length; k++) {
            assertThat(m[k]).isEqualTo(p0[k] + b[k]);
        }
    }

    @Test
    void settledPartialsHoldWhatTheWireCarriesAndMergeToTheSameBits() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED + 7);
        int n = 40;
        HessianAccumulator[] fresh = new HessianAccumulator[3];
        byte[][] wire = new byte[3][];
        HessianAccumulator[] settled = new HessianAccumulator[3];
        for (int p = 0; p < 3; p++) {
            float[] x = TestMath.correlatedActivations(r, 80 + p, n);
            fresh[p] = new HessianAccumulator("part", n, HessianPrecision.TF32);
            fresh[p].add(backend, x, 80 + p);
            wire[p] = javaSerialized(fresh[p]);
            settled[p] = new HessianAccumulator("part", n, HessianPrecision.TF32);
            settled[p].add(backend, x, 80 + p);
            assertThat(settled[p].settleForExchange()).isSameAs(settled[p]);
            settled[p].settleForExchange(); // a second call changes nothing
            // serializing a settled partial writes the same bytes as serializing the fp64 one
            assertThat(javaSerialized(settled[p])).containsExactly(wire[p]);
        }
        // the reduce of the group task: a fresh sum, then each partial added; settled (read from an
        // executor's memory) and deserialized (fetched from another) partials give the same bits,
        // and the settled ones are left as they were
        HessianAccumulator fromMemory = new HessianAccumulator("sum", n);
        HessianAccumulator fromWire = new HessianAccumulator("sum", n);
        HessianAccumulator mixed = new HessianAccumulator("sum", n);
        for (int p = 0; p < 3; p++) {
            fromMemory.merge(settled[p]);
            fromWire.merge(javaDeserialized(wire[p]));
            mixed.merge(p == 1 ? javaDeserialized(wire[p]) : settled[p]);
        }
        assertThat(fromMemory.packedSumShared()).containsExactly(fromWire.packedSumShared());
        assertThat(mixed.packedSumShared()).containsExactly(fromWire.packedSumShared());
        assertThat(javaSerialized(settled[0])).containsExactly(wire[0]);
        // reads of a settled partial see each fp64 sum rounded to fp32 (Java's narrowing as the reference)
        double[] exactSums = fresh[2].packedSumShared();
        double[] settledSums = settled[2].packedSumShared(); // widens it back
        for (int k = 0; k < exactSums.length; k++) {
            assertThat(settledSums[k]).isEqualTo((double) (float) exactSums[k]);
        }

        // EXACT partials and TF32 ones with a sum beyond fp32's range keep their fp64 sums
        HessianAccumulator exact = new HessianAccumulator("exact", n, HessianPrecision.EXACT);
        exact.add(backend, TestMath.correlatedActivations(r, 30, n), 30);
        double[] before = exact.packedSumShared().clone();
        assertThat(exact.settleForExchange().packedSumShared()).containsExactly(before);
        float[] huge = new float[n];
        java.util.Arrays.fill(huge, 1f);
        huge[3] = 1e20f;
        HessianAccumulator bigRow = new HessianAccumulator("wide", n, HessianPrecision.EXACT);
        bigRow.add(backend, huge, 1);
        HessianAccumulator wide = new HessianAccumulator("wide", n, HessianPrecision.TF32).merge(bigRow);
        double[] wideBefore = wide.packedSumShared().clone();
        assertThat(wide.settleForExchange().packedSumShared()).containsExactly(wideBefore);
        assertThat(javaDeserialized(javaSerialized(wide)).packedSumShared()).containsExactly(wideBefore);
    }

    private static byte[] javaSerialized(HessianAccumulator acc) throws java.io.IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(acc);
        }
        return bytes.toByteArray();
    }

    private static HessianAccumulator javaDeserialized(byte[] b) throws Exception {
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(b))) {
            return (HessianAccumulator) in.readObject();
        }
    }

    @Test
    void inverseFactorSerializesForShippingToExecutors() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 40;
        HessianAccumulator acc = new HessianAccumulator("x", n);
        acc.add(backend, TestMath.correlatedActivations(r, 60, n), 60);
        InverseFactor f = InverseFactor.compute(backend, acc, Dampening.DEFAULT);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(f);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            InverseFactor g = (InverseFactor) in.readObject();
            assertThat(g.upper()).isEqualTo(f.upper());
            assertThat(g.dampeningsTried()).isEqualTo(f.dampeningsTried());
            assertThat(g.lambda()).isEqualTo(f.lambda());
            assertThat(g.name()).isEqualTo("x");
        }
        // U is upper triangular with a positive diagonal and U^T U (H + lambda I) = I
        double[] h = acc.hessian();
        float[] u = f.upper();
        for (int i = 0; i < n; i++) {
            h[i * n + i] += f.lambda();
            assertThat(u[i * n + i]).isPositive();
            for (int j = 0; j < i; j++) {
                assertThat(u[i * n + j]).isZero();
            }
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    double utu = 0;
                    for (int l = 0; l <= Math.min(i, k); l++) {
                        utu += (double) u[l * n + i] * u[l * n + k];
                    }
                    s += utu * h[k * n + j];
                }
                assertThat(s).as("seed=%d (%d,%d)", SEED, i, j).isCloseTo(i == j ? 1 : 0, offset(1e-4));
            }
        }
    }

    @Test
    void inputNormsAreRootSumsOfSquaresAndMatchTheDiagonal() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 33;
        int tokens = 41;
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        HessianAccumulator acc = new HessianAccumulator("x", n);
        acc.add(backend, x, tokens);
        double[] norms = acc.inputNorms();
        double[] h = acc.hessian();
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < tokens; t++) {
                s += (double) x[t * n + j] * x[t * n + j];
            }
            assertThat(norms[j]).isCloseTo(Math.sqrt(s), offset(1e-12 * Math.sqrt(s)));
            assertThat(norms[j]).isCloseTo(Math.sqrt(h[j * n + j] * tokens / 2), offset(1e-12 * Math.sqrt(s)));
        }
    }

    @Test
    void emptyOrMisshapenInputIsATypedError() {
        HessianAccumulator acc = new HessianAccumulator("model.layers.0 input", 8);
        assertThatThrownBy(acc::hessian).isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("model.layers.0 input").hasMessageContaining("no calibration rows");
        assertThatThrownBy(() -> acc.add(backend, new float[17], 2)).isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("needs 16 values, got 17");
        assertThatThrownBy(() -> new HessianAccumulator("huge", 70000)).isInstanceOf(CalibrationInputException.class);
    }
}
