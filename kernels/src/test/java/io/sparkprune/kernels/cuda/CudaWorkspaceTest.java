package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.HostWorkspace;
import io.sparkprune.kernels.ResidentHessian;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.randomF;
import static io.sparkprune.kernels.cuda.CudaBackendParityTest.relErr;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link CudaWorkspace} (the device-resident forward workspace) against {@link HostWorkspace} on
 * {@link CpuBackend}: a decoder block's chain of ops (RMSNorm, q/k/v linears with bias, RoPE, grouped
 * causal attention over packed sequences, o linear, residual add, SiLU·mul, down linear) run in both,
 * every intermediate compared: fp32 within 1e-5 relative (Frobenius) error per op input (each GPU op is
 * fed the CPU's previous result, so errors do not compound), TF32 linears within 5e-4 of the fp32 CPU
 * product; the non-finite scan; the resident Hessian fed straight from a workspace matrix equal to the
 * same accumulator fed from the host array (up to the order of the kernel's fp64 atomic adds); weights
 * uploaded once across workspaces.
 */
@Tag("gpu")
class CudaWorkspaceTest extends CudaSuite {
    private static void requireDevice() {
        device.require();
    }

    /** Runs op on both sides from the same host inputs and compares the written matrix. */
    private static void assertClose(String what, float[] got, float[] ref, double tol) {
        assertThat(relErr(got, ref)).as(what + " seed=" + SEED).isLessThanOrEqualTo(tol);
    }

    @Test
    void blockChainMatchesTheHostWorkspace() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED);
        int[] starts = {0, 70, 71, 200}; // three packed sequences, one of a single token
        int tokens = starts[3];
        int hidden = 96;
        int heads = 6;
        int kvHeads = 2;
        int hd = 16;
        int inter = 160;
        int[] positions = new int[tokens];
        for (int s = 0; s < 3; s++) {
            for (int t = starts[s]; t < starts[s + 1]; t++) {
                positions[t] = t - starts[s];
            }
        }
        int tableRows = 130;
        float[] cos = randomF(r, tableRows * hd / 2);
        float[] sin = randomF(r, tableRows * hd / 2);
        float[] in = randomF(r, tokens * hidden);
        float[] norm = randomF(r, hidden);
        float[] wq = randomF(r, heads * hd * hidden);
        float[] bq = randomF(r, heads * hd);
        float[] wk = randomF(r, kvHeads * hd * hidden);
        float[] wv = randomF(r, kvHeads * hd * hidden);
        float[] wo = randomF(r, hidden * heads * hd);
        float[] wg = randomF(r, inter * hidden);
        float[] wu = randomF(r, inter * hidden);
        float[] wd = randomF(r, hidden * inter);
        try (ForwardWorkspace dev = gpu.openWorkspace(ForwardPrecision.FP32, "test");
             HostWorkspace host = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
            assertThat(dev.isResident()).isTrue();
            // RMSNorm
            Matrix hx = host.upload(in, tokens, hidden);
            Matrix hn = host.allocate(tokens, hidden);
            host.rmsNorm(hx, host.weight(norm, 1, hidden), 1e-5f, hn);
            Matrix dx = dev.upload(in, tokens, hidden);
            Matrix dn = dev.allocate(tokens, hidden);
            dev.rmsNorm(dx, dev.weight(norm, 1, hidden), 1e-5f, dn);
            float[] x = host.download(hn);
            assertClose("rmsNorm", dev.download(dn), x, 1e-5);
            // q (with bias), k, v from the CPU's x
            Matrix dxs = dev.upload(x, tokens, hidden);
            float[][] qkv = new float[3][];
            float[][] w = {wq, wk, wv};
            int[] outs = {heads * hd, kvHeads * hd, kvHeads * hd};
            for (int i = 0; i < 3; i++) {
                Matrix hy = host.allocate(tokens, outs[i]);
                host.linear(host.wrap(x, tokens, hidden), host.weight(w[i], outs[i], hidden),
                        i == 0 ? host.weight(bq, 1, outs[0]) : null, hy);
                Matrix dy = dev.allocate(tokens, outs[i]);
                dev.linear(dxs, dev.weight(w[i], outs[i], hidden), i == 0 ? dev.weight(bq, 1, outs[0]) : null, dy);
                qkv[i] = host.download(hy);
                assertClose("linear " + i, dev.download(dy), qkv[i], 1e-5);
            }
            // RoPE on q and k
            for (int i = 0; i < 2; i++) {
                int nh = i == 0 ? heads : kvHeads;
                float[] ref = qkv[i].clone();
                host.rope(host.wrap(ref, tokens, nh * hd), nh, hd, positions, cos, sin, tableRows);
                Matrix d = dev.upload(qkv[i], tokens, nh * hd);
                dev.rope(d, nh, hd, positions, cos, sin, tableRows);
                assertClose("rope " + i, dev.download(d), ref, 1e-5);
                qkv[i] = ref;
            }
            // grouped causal attention over the packed sequences
            Matrix ho = host.allocate(tokens, heads * hd);
            host.attention(heads, kvHeads, hd, 0.25f, true, 0, 3, starts, null, host.wrap(qkv[0], tokens, heads * hd),
                    host.wrap(qkv[1], tokens, kvHeads * hd), host.wrap(qkv[2], tokens, kvHeads * hd), ho);
            Matrix dout = dev.allocate(tokens, heads * hd);
            dev.attention(heads, kvHeads, hd, 0.25f, true, 0, 3, starts, null, dev.upload(qkv[0], tokens, heads * hd),
                    dev.upload(qkv[1], tokens, kvHeads * hd), dev.upload(qkv[2], tokens, kvHeads * hd), dout);
            float[] att = host.download(ho);
            assertClose("attention", dev.download(dout), att, 1e-5);
            // o linear + residual add
            Matrix hh = host.allocate(tokens, hidden);
            host.linear(host.wrap(att, tokens, heads * hd), host.weight(wo, hidden, heads * hd), null, hh);
            host.add(host.wrap(in, tokens, hidden), hh);
            Matrix dh = dev.allocate(tokens, hidden);
            dev.linear(dev.upload(att, tokens, heads * hd), dev.weight(wo, hidden, heads * hd), null, dh);
            dev.add(dev.upload(in, tokens, hidden), dh);
            float[] h = host.download(hh);
            assertClose("o + residual", dev.download(dh), h, 1e-5);
            // gate/up, SiLU·mul, down
            Matrix hg = host.allocate(tokens, inter);
            Matrix hu = host.allocate(tokens, inter);
            host.linear(host.wrap(h, tokens, hidden), host.weight(wg, inter, hidden), null, hg);
            host.linear(host.wrap(h, tokens, hidden), host.weight(wu, inter, hidden), null, hu);
            float[] g = host.download(hg).clone();
            float[] u = host.download(hu);
            host.siluMul(hg, hu, hg);
            Matrix dg = dev.upload(g, tokens, inter);
            dev.siluMul(dg, dev.upload(u, tokens, inter), dg);
            float[] m = host.download(hg);
            assertClose("siluMul", dev.download(dg), m, 1e-5);
            Matrix hd2 = host.allocate(tokens, hidden);
            host.linear(hg, host.weight(wd, hidden, inter), null, hd2);
            Matrix dd = dev.allocate(tokens, hidden);
            dev.linear(dev.upload(m, tokens, inter), dev.weight(wd, hidden, inter), null, dd);
            assertClose("down", dev.download(dd), host.download(hd2), 1e-5);
        }
    }

    @Test
    void tf32LinearIsWithinTf32ToleranceOfFp32AndMatchesTheHostTwin() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int rows = 300;
        int in = 260;
        int out = 190;
        float[] x = randomF(r, rows * in);
        float[] w = randomF(r, out * in);
        float[] fp32;
        float[] twin;
        try (HostWorkspace h32 = new HostWorkspace(cpu, ForwardPrecision.FP32);
             HostWorkspace htf = new HostWorkspace(cpu, ForwardPrecision.TF32)) {
            Matrix y = h32.allocate(rows, out);
            h32.linear(h32.upload(x, rows, in), h32.weight(w, out, in), null, y);
            fp32 = h32.download(y);
            Matrix yt = htf.allocate(rows, out);
            htf.linear(htf.upload(x, rows, in), htf.weight(w, out, in), null, yt);
            twin = htf.download(yt);
        }
        try (ForwardWorkspace dev = gpu.openWorkspace(ForwardPrecision.TF32, "tf32 test")) {
            Matrix y = dev.allocate(rows, out);
            dev.linear(dev.upload(x, rows, in), dev.weight(w, out, in), null, y);
            float[] got = dev.download(y);
            assertClose("tf32 vs fp32", got, fp32, 5e-4);
            assertClose("tf32 vs its host twin (same rounded operands)", got, twin, 1e-5);
            assertThat(relErr(got, fp32)).as("TF32 rounding is visible, seed=" + SEED).isGreaterThan(1e-6);
        }
    }

    @Test
    void firstNonFiniteFindsTheSmallestIndex() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        float[] x = randomF(r, 1000 * 333);
        try (ForwardWorkspace dev = gpu.openWorkspace(ForwardPrecision.FP32, "finite test")) {
            assertThat(dev.firstNonFinite(dev.upload(x, 1000, 333))).isEqualTo(-1);
            x[250_001] = Float.POSITIVE_INFINITY;
            x[123_457] = Float.NaN;
            x[300_000] = Float.NEGATIVE_INFINITY;
            assertThat(dev.firstNonFinite(dev.upload(x, 1000, 333))).isEqualTo(123_457);
        }
    }

    @Test
    void residentHessianFromAWorkspaceMatrixEqualsTheHostArrayPath() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int n = 200;
        int k = 700;
        float[] x = randomF(r, k * n);
        for (boolean tf32 : new boolean[] {false, true}) {
            long packed = (long) n * (n + 1) / 2;
            double[] viaHost = new double[(int) packed];
            double[] viaMatrix = new double[(int) packed];
            try (ResidentHessian.Accumulator a = gpu.openHessian(n, "host path")) {
                if (tf32) {
                    a.addTf32(k, x, 0, n);
                } else {
                    a.add(k, x, 0, n);
                }
                a.addTo(viaHost);
            }
            try (ForwardWorkspace dev = gpu.openWorkspace(ForwardPrecision.FP32, "hessian test");
                 ResidentHessian.Accumulator a = gpu.openHessian(n, "matrix path")) {
                a.add(dev.upload(x, k, n), tf32);
                a.addTo(viaMatrix);
                assertThatThrownBy(() -> a.add(dev.upload(x, n, k), tf32)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("200 features");
            }
            // the same kernel on the same rows: equal up to the order of the fp64 atomic adds of split token ranges
            assertThat(relErr(viaMatrix, viaHost)).as("tf32=" + tf32 + " seed=" + SEED).isLessThan(1e-13);
        }
    }

    @Test
    void weightsAreUploadedOnceAcrossWorkspacesAndReleasedMatricesAreReused() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        float[] w = randomF(r, 512 * 256);
        long before = gpu.cachedWeightBytes();
        try (ForwardWorkspace a = gpu.openWorkspace(ForwardPrecision.FP32, "a")) {
            a.weight(w, 512, 256);
            a.weight(w, 512, 256);
        }
        long after = gpu.cachedWeightBytes();
        assertThat(after - before).isEqualTo(4L * w.length);
        try (ForwardWorkspace b = gpu.openWorkspace(ForwardPrecision.FP32, "b")) {
            Matrix wm = b.weight(w, 512, 256);
            assertThat(gpu.cachedWeightBytes()).isEqualTo(after);
            assertThatThrownBy(() -> b.add(b.allocate(512, 256), wm)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("read-only");
            CudaWorkspace cw = (CudaWorkspace) b;
            Matrix m1 = b.allocate(100, 100);
            DeviceBuffer buf = cw.bufferOf(m1);
            b.release(m1);
            Matrix m2 = b.allocate(90, 100);
            assertThat(cw.bufferOf(m2)).isSameAs(buf);
            assertThatThrownBy(() -> b.download(m1)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("released");
        }
    }
}
