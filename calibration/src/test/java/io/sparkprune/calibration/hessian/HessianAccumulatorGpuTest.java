package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.TestMath;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link HessianAccumulator} on {@link CudaBackend} (batches summed into the device-resident Hessian)
 * equals the same accumulation on {@link CpuBackend} (≤ 1e-12 relative) after the reads that fold the
 * device partial: Java serialization of a partial, merge with a partial still on the device,
 * {@link HessianAccumulator#toBytes()} round trip, input norms. Skipped, with the reason, without a
 * CUDA device.
 */
@Tag("gpu")
class HessianAccumulatorGpuTest extends io.sparkprune.calibration.GpuSuite {
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
    void residentAccumulationEqualsCpuAfterMergeAndSerialization() throws Exception {
        requireGpu();
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 65 + r.nextInt(400); // rarely a multiple of the 64-wide tile
        int tokens = 700;
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        int cut = 1 + r.nextInt(tokens - 2);
        int[][] parts = {{0, cut}, {cut, tokens}};
        HessianAccumulator[] g = new HessianAccumulator[2];
        HessianAccumulator[] c = new HessianAccumulator[2];
        for (int p = 0; p < 2; p++) {
            g[p] = new HessianAccumulator("part" + p, n);
            c[p] = new HessianAccumulator("part" + p, n);
            int t = parts[p][0];
            g[p].add(gpu, x, t * n, 0, n);
            while (t < parts[p][1]) {
                int b = Math.min(parts[p][1] - t, 1 + r.nextInt(200));
                g[p].add(gpu, x, t * n, b, n);
                c[p].add(cpu, x, t * n, b, n);
                t += b;
            }
            assertThat(g[p].hasDevicePartial()).isTrue();
            assertThat(g[p].count()).isEqualTo(c[p].count());
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(g[1]);
        }
        assertThat(g[1].hasDevicePartial()).isFalse();
        HessianAccumulator shipped;
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            shipped = (HessianAccumulator) in.readObject();
        }
        HessianAccumulator gm = g[0].merge(shipped);
        assertThat(g[0].hasDevicePartial()).isFalse();
        HessianAccumulator cm = c[0].merge(c[1]);
        HessianAccumulator back = HessianAccumulator.fromBytes(gm.toBytes());
        assertThat(back.count()).isEqualTo(tokens);
        String tag = "n=" + n + " cut=" + cut + " seed=" + SEED;
        assertThat(maxRelDiff(back.hessian(), cm.hessian())).as(tag).isLessThanOrEqualTo(1e-12);
        assertThat(maxRelDiff(back.inputNorms(), cm.inputNorms())).as(tag).isLessThanOrEqualTo(1e-12);
        assertThat(maxRelDiff(back.hessian(), TestMath.naiveHessian(x, tokens, n))).as(tag).isLessThanOrEqualTo(1e-12);
    }
}
