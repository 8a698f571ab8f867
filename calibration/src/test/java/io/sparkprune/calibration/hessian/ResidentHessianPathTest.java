package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.TestMath;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostWorkspace;
import io.sparkprune.kernels.ResidentHessian;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link HessianAccumulator}'s device-resident path (the one it takes on {@code CudaBackend} through
 * {@link ResidentHessian}) on the CPU: a backend whose resident accumulator keeps its own packed sum
 * apart from the accumulator's host sum and adds batches with {@link CpuBackend#syrkPackedUpper}
 * (so its sum is bit for bit the host path's), against the plain CpuBackend. Because the resident sum
 * lives apart, any reader that did not fold it in first would see a sum without those rows: each
 * reader (merge on both sides, hessian, copyHessianTo, inputNorms, toBytes, Java serialization) must
 * equal the host path exactly. Failure paths (a failed device update, a failed fold, discard) must
 * release the handle and leave the accumulator refusing use. The GPU backend's own accumulator is
 * checked against the CPU in the {@code gpu}-tagged tests.
 */
class ResidentHessianPathTest {
    private static final long SEED = new SplittableRandom().nextLong();
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(2);
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    /** A {@link ResidentHessian} whose "device" sums live in host arrays, computed by CpuBackend. */
    static final class HostResident implements ResidentHessian {
        final List<Handle> opened = new ArrayList<>();
        int failAddAfter = Integer.MAX_VALUE; // adds that succeed before one throws
        boolean failAddTo;

        final class Handle implements ResidentHessian.Accumulator {
            final int n;
            double[] s; // packed sum; null once closed
            int adds;

            Handle(int n) {
                this.n = n;
                this.s = new double[n * (n + 1) / 2];
            }

            @Override
            public int features() {
                return n;
            }

            @Override
            public void add(int k, float[] x, int xOff, int ldx) {
                beforeAdd(k, x, xOff, ldx);
                cpu.syrkPackedUpper(n, k, x, xOff, ldx, s);
            }

            @Override
            public void addTf32(int k, float[] x, int xOff, int ldx) {
                beforeAdd(k, x, xOff, ldx);
                cpu.syrkPackedUpperTf32(n, k, x, xOff, ldx, s);
            }

            @Override
            public void add(ForwardWorkspace.Matrix x, boolean tf32) {
                float[] h = ((HostWorkspace.HostMatrix) x).data(); // the "device" memory of the proxy workspace
                beforeAdd(x.rows(), h, 0, n);
                if (tf32) {
                    cpu.syrkPackedUpperTf32(n, x.rows(), h, 0, n, s);
                } else {
                    cpu.syrkPackedUpper(n, x.rows(), h, 0, n, s);
                }
            }

            private void beforeAdd(int k, float[] x, int xOff, int ldx) {
                Checks.window("X", x.length, xOff, ldx, k, n);
                if (s == null) {
                    throw new IllegalStateException("closed");
                }
                if (adds++ >= failAddAfter) {
                    throw new IllegalStateException("injected device failure in add");
                }
            }

            @Override
            public void addTo(double[] c) {
                if (s == null) {
                    throw new IllegalStateException("closed");
                }
                if (failAddTo) {
                    throw new IllegalStateException("injected device failure in addTo");
                }
                for (int i = 0; i < s.length; i++) {
                    c[i] += s[i];
                }
            }

            @Override
            public void close() {
                s = null;
            }

            boolean isOpen() {
                return s != null;
            }
        }

        @Override
        public Accumulator openHessian(int n, String label) {
            Handle h = new Handle(n);
            opened.add(h);
            return h;
        }

        long openCount() {
            return opened.stream().filter(Handle::isOpen).count();
        }
    }

    /** A Backend (CpuBackend's arithmetic) that also offers {@code res}. */
    private static Backend residentBackend(HostResident res) {
        return (Backend) Proxy.newProxyInstance(ResidentHessianPathTest.class.getClassLoader(),
                new Class<?>[] {Backend.class, ResidentHessian.class}, (proxy, m, args) -> {
                    try {
                        if (m.getDeclaringClass() == ResidentHessian.class) {
                            return m.invoke(res, args);
                        }
                        if (m.getName().equals("syrkPackedUpper")) {
                            throw new AssertionError("the resident path must not call syrkPackedUpper");
                        }
                        return m.invoke(cpu, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    /** Adds rows {@code [from, to)} of x (row stride ld, features n at column 1) in random batches, k = 0 and 1 included. */
    private static void feed(SplittableRandom r, HessianAccumulator acc, Backend be, float[] x, int ld, int from, int to) {
        acc.add(be, x, 1 + from * ld, 0, ld);
        int t = from;
        boolean one = false;
        while (t < to) {
            int b = one ? Math.min(to - t, 1 + r.nextInt(40)) : 1;
            one = true;
            acc.add(be, x, 1 + t * ld, b, ld);
            t += b;
        }
    }

    private static float[] strided(SplittableRandom r, int tokens, int n, int ld) {
        float[] dense = TestMath.correlatedActivations(r, tokens, n);
        float[] x = new float[1 + tokens * ld];
        Arrays.fill(x, Float.NaN); // padding that a wrong stride would pick up
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(dense, t * n, x, 1 + t * ld, n);
        }
        return x;
    }

    private static HessianAccumulator javaRoundTrip(HessianAccumulator acc) throws IOException, ClassNotFoundException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(acc);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            return (HessianAccumulator) in.readObject();
        }
    }

    @Test
    void everyReaderFoldsTheResidentSumFirst() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 1 + r.nextInt(90);
        int ld = n + 3;
        int tokens = 60 + r.nextInt(100);
        float[] x = strided(r, tokens, n, ld);
        String seed = "seed=" + SEED + " n=" + n;

        HostResident res = new HostResident();
        Backend be = residentBackend(res);
        HessianAccumulator host = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), host, cpu, x, ld, 0, tokens);
        byte[] want = host.toBytes();

        // toBytes
        HessianAccumulator a = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), a, be, x, ld, 0, tokens);
        assertThat(a.count()).as(seed).isEqualTo(tokens);
        assertThat(a.hasDevicePartial()).isTrue();
        assertThat(res.openCount()).isEqualTo(1);
        assertThat(a.toBytes()).as(seed).isEqualTo(want);
        assertThat(a.hasDevicePartial()).isFalse();
        assertThat(res.openCount()).as("flushed handles are closed").isZero();

        // hessian, copyHessianTo, inputNorms
        HessianAccumulator b = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), b, be, x, ld, 0, tokens);
        assertThat(b.hessian()).as(seed).containsExactly(host.hessian());
        HessianAccumulator c = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), c, be, x, ld, 0, tokens);
        double[] full = new double[n * n];
        c.copyHessianTo(full);
        assertThat(full).as(seed).containsExactly(host.hessian());
        HessianAccumulator d = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), d, be, x, ld, 0, tokens);
        assertThat(d.inputNorms()).as(seed).containsExactly(host.inputNorms());

        // Java serialization: the handle is transient, the sum folded before writing
        HessianAccumulator e = new HessianAccumulator("h", n);
        feed(new SplittableRandom(1), e, be, x, ld, 0, tokens);
        HessianAccumulator back = javaRoundTrip(e);
        assertThat(back.toBytes()).as(seed).isEqualTo(want);
        assertThat(e.hasDevicePartial()).isFalse();
        assertThat(res.openCount()).isZero();
        assertThat(res.opened).hasSize(5);
    }

    /**
     * A host workspace that claims to be resident, so the accumulator takes its device-matrix path; with
     * {@code allowDownload} false a copy to the host fails the test.
     */
    private static ForwardWorkspace residentLooking(HostWorkspace ws, boolean allowDownload) {
        return (ForwardWorkspace) Proxy.newProxyInstance(ResidentHessianPathTest.class.getClassLoader(),
                new Class<?>[] {ForwardWorkspace.class}, (proxy, m, args) -> {
                    if (m.getName().equals("isResident")) {
                        return true;
                    }
                    if (m.getName().equals("download") && !allowDownload) {
                        throw new AssertionError("the resident path must not copy the matrix to the host");
                    }
                    try {
                        return m.invoke(ws, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    @Test
    void workspaceMatricesGoStraightIntoTheResidentSumAndEqualTheHostPath() {
        SplittableRandom r = new SplittableRandom(SEED + 9);
        int n = 1 + r.nextInt(70);
        int tokens = 200 + r.nextInt(200);
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        String seed = "seed=" + (SEED + 9) + " n=" + n;
        for (HessianPrecision p : HessianPrecision.values()) {
            HessianAccumulator host = new HessianAccumulator("h", n, p);
            host.add(cpu, x, 0, 100, n);
            host.add(cpu, x, 100 * n, tokens - 100, n);
            HostResident res = new HostResident();
            Backend be = residentBackend(res);
            HessianAccumulator viaWorkspace = new HessianAccumulator("h", n, p);
            HessianAccumulator viaHostWorkspace = new HessianAccumulator("h", n, p);
            try (HostWorkspace hw = new HostWorkspace(cpu, io.sparkprune.kernels.ForwardPrecision.FP32)) {
                ForwardWorkspace ws = residentLooking(hw, false);
                float[] first = java.util.Arrays.copyOfRange(x, 0, 100 * n);
                float[] rest = java.util.Arrays.copyOfRange(x, 100 * n, tokens * n);
                viaWorkspace.add(be, ws, hw.wrap(first, 100, n));
                viaWorkspace.add(be, ws, hw.wrap(rest, tokens - 100, n));
                assertThat(viaWorkspace.hasDevicePartial()).isTrue();
                // a host workspace (not resident) takes the host-array path, even on a resident backend
                viaHostWorkspace.add(be, hw, hw.wrap(first, 100, n));
                viaHostWorkspace.add(be, hw, hw.wrap(rest, tokens - 100, n));

                float[] bad = first.clone();
                bad[37 * n + (n - 1)] = Float.NaN;
                HessianAccumulator c = new HessianAccumulator("layer.qkv", n, p);
                assertThatThrownBy(() -> c.add(be, residentLooking(hw, true), hw.wrap(bad, 100, n)))
                        .isInstanceOf(io.sparkprune.calibration.NumericsException.class)
                        .hasMessageContaining("layer.qkv").hasMessageContaining("row 37, feature " + (n - 1));
                assertThatThrownBy(() -> c.add(be, ws, hw.wrap(new float[2 * (n + 1)], 2, n + 1)))
                        .isInstanceOf(io.sparkprune.calibration.CalibrationInputException.class).hasMessageContaining(n + " features");
            }
            assertThat(viaWorkspace.count()).isEqualTo(tokens);
            assertThat(viaWorkspace.toBytes()).as(p + " " + seed).isEqualTo(host.toBytes());
            assertThat(viaHostWorkspace.toBytes()).as(p + " " + seed).isEqualTo(host.toBytes());
        }
    }

    @Test
    void tf32AccumulatorsUseTheResidentTf32SumAndMatchTheHostTf32Path() {
        SplittableRandom r = new SplittableRandom(SEED + 6);
        int n = 1 + r.nextInt(80);
        int ld = n + 1;
        int tokens = 300 + r.nextInt(300); // more than one 256-token chunk per batch
        float[] x = strided(r, tokens, n, ld);
        String seed = "seed=" + (SEED + 6) + " n=" + n;

        HostResident res = new HostResident();
        Backend be = residentBackend(res);
        HessianAccumulator host = new HessianAccumulator("h", n, HessianPrecision.TF32);
        feed(new SplittableRandom(2), host, cpu, x, ld, 0, tokens);
        HessianAccumulator dev = new HessianAccumulator("h", n, HessianPrecision.TF32);
        feed(new SplittableRandom(2), dev, be, x, ld, 0, tokens);
        assertThat(dev.hasDevicePartial()).isTrue();
        assertThat(dev.toBytes()).as(seed).isEqualTo(host.toBytes());

        HessianAccumulator exact = new HessianAccumulator("h", n, HessianPrecision.EXACT);
        feed(new SplittableRandom(2), exact, be, x, ld, 0, tokens);
        assertThat(exact.toBytes()).as(seed + ": the precision reaches the resident sum").isNotEqualTo(host.toBytes());
        assertThat(res.openCount()).isZero();
    }

    @Test
    void mergeFoldsBothSidesAndMatchesTheHostPath() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int n = 1 + r.nextInt(70);
        int ld = n;
        int tokens = 80 + r.nextInt(80);
        float[] x = strided(r, tokens, n, ld);
        int cut = 1 + r.nextInt(tokens - 1);
        String seed = "seed=" + SEED + " n=" + n + " cut=" + cut;
        HostResident res = new HostResident();
        Backend be = residentBackend(res);

        HessianAccumulator h1 = new HessianAccumulator("p", n);
        HessianAccumulator h2 = new HessianAccumulator("p", n);
        feed(new SplittableRandom(2), h1, cpu, x, ld, 0, cut);
        feed(new SplittableRandom(3), h2, cpu, x, ld, cut, tokens);
        byte[] want = h1.merge(h2).toBytes();

        HessianAccumulator d1 = new HessianAccumulator("p", n);
        HessianAccumulator d2 = new HessianAccumulator("p", n);
        feed(new SplittableRandom(2), d1, be, x, ld, 0, cut);
        feed(new SplittableRandom(3), d2, be, x, ld, cut, tokens);
        assertThat(res.openCount()).isEqualTo(2);
        // ship d2 as Spark would (serialized), then merge into d1, which still holds its device partial
        HessianAccumulator shipped = javaRoundTrip(d2);
        assertThat(d1.merge(shipped).toBytes()).as(seed).isEqualTo(want);
        assertThat(d1.count()).isEqualTo(tokens);
        assertThat(res.openCount()).isZero();

        // merging a partner that still holds a device partial folds it too
        HessianAccumulator e1 = new HessianAccumulator("p", n);
        HessianAccumulator e2 = new HessianAccumulator("p", n);
        feed(new SplittableRandom(2), e1, be, x, ld, 0, cut);
        feed(new SplittableRandom(3), e2, be, x, ld, cut, tokens);
        assertThat(e1.merge(e2).toBytes()).as(seed).isEqualTo(want);
        assertThat(e2.hasDevicePartial()).isFalse();
        assertThat(res.openCount()).isZero();
    }

    @Test
    void addingAfterAFlushOrAcrossBackendsKeepsEveryRow() {
        SplittableRandom r = new SplittableRandom(SEED + 2);
        int n = 1 + r.nextInt(60);
        int tokens = 90;
        float[] x = strided(r, tokens, n, n);
        HostResident res1 = new HostResident();
        HostResident res2 = new HostResident();
        Backend be1 = residentBackend(res1);
        Backend be2 = residentBackend(res2);
        HessianAccumulator want = new HessianAccumulator("q", n);
        want.add(cpu, x, 1, tokens, n);

        HessianAccumulator acc = new HessianAccumulator("q", n);
        acc.add(be1, x, 1, 30, n);
        acc.flush();
        acc.flush(); // idempotent
        acc.add(be1, x, 1 + 30 * n, 20, n);       // a new device partial after the flush
        acc.add(cpu, x, 1 + 50 * n, 10, n);       // host path while a device partial is held
        acc.add(be2, x, 1 + 60 * n, 30, n);       // another resident backend: the first partial is folded
        assertThat(res1.openCount()).isZero();
        assertThat(res2.openCount()).isEqualTo(1);
        assertThat(acc.count()).isEqualTo(tokens);
        double[] got = acc.hessian();
        double[] ref = want.hessian();
        double err = 0;
        double scale = 0;
        for (int i = 0; i < ref.length; i++) {
            err = Math.max(err, Math.abs(got[i] - ref[i]));
            scale = Math.max(scale, Math.abs(ref[i]));
        }
        assertThat(err / scale).as("seed=%d n=%d", SEED, n).isLessThanOrEqualTo(1e-12);
        assertThat(res2.openCount()).isZero();
    }

    @Test
    void aFailedDeviceUpdateReleasesTheHandleAndPoisonsTheAccumulator() {
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int n = 17;
        float[] x = strided(r, 40, n, n);
        HostResident res = new HostResident();
        res.failAddAfter = 2;
        Backend be = residentBackend(res);
        HessianAccumulator acc = new HessianAccumulator("model.layers.0 down_proj input", n);
        acc.add(be, x, 1, 10, n);
        acc.add(be, x, 1 + 10 * n, 10, n);
        assertThatThrownBy(() -> acc.add(be, x, 1 + 20 * n, 10, n)).hasMessageContaining("injected device failure");
        assertThat(res.openCount()).as("handle released on failure").isZero();
        assertThat(acc.hasDevicePartial()).isFalse();
        assertThat(acc.count()).as("the failed batch is not counted").isEqualTo(20);
        assertThatThrownBy(acc::hessian).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("model.layers.0 down_proj input").hasMessageContaining("recompute");
        assertThatThrownBy(acc::toBytes).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> javaRoundTrip(acc)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> acc.add(cpu, x, 1, 1, n)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new HessianAccumulator("other", n).merge(acc)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void aFailedFoldReleasesTheHandle() {
        SplittableRandom r = new SplittableRandom(SEED + 4);
        int n = 9;
        float[] x = strided(r, 12, n, n);
        HostResident res = new HostResident();
        res.failAddTo = true;
        Backend be = residentBackend(res);
        HessianAccumulator acc = new HessianAccumulator("g", n);
        acc.add(be, x, 1, 12, n);
        assertThatThrownBy(acc::flush).hasMessageContaining("injected device failure in addTo");
        assertThat(res.openCount()).isZero();
        assertThatThrownBy(acc::inputNorms).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("folding the device partial");
    }

    @Test
    void discardInAFinallyReleasesTheHandleAndIsANoOpAfterFlush() {
        SplittableRandom r = new SplittableRandom(SEED + 5);
        int n = 11;
        float[] x = strided(r, 30, n, n);
        HostResident res = new HostResident();
        Backend be = residentBackend(res);
        HessianAccumulator failed = new HessianAccumulator("f", n);
        assertThatThrownBy(() -> {
            try {
                failed.add(be, x, 1, 15, n);
                throw new IllegalStateException("the forward pass failed");
            } finally {
                failed.discard();
            }
        }).hasMessage("the forward pass failed");
        assertThat(res.openCount()).isZero();
        assertThatThrownBy(failed::hessian).isInstanceOf(IllegalStateException.class).hasMessageContaining("discard");

        HessianAccumulator ok = new HessianAccumulator("f", n);
        HessianAccumulator want = new HessianAccumulator("f", n);
        want.add(cpu, x, 1, 30, n);
        try {
            ok.add(be, x, 1, 30, n);
            ok.flush();
        } finally {
            ok.discard();
        }
        assertThat(res.openCount()).isZero();
        assertThat(ok.toBytes()).isEqualTo(want.toBytes());

        HessianAccumulator untouched = new HessianAccumulator("u", n);
        untouched.discard(); // nothing held: no-op
        untouched.add(be, x, 1, 3, n);
        assertThat(untouched.count()).isEqualTo(3);
    }
}
