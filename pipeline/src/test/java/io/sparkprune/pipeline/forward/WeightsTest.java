package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.HostTensor;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * {@link Weights} keeps loaded parameters in their checkpoint dtype and widens them lazily: nothing is
 * widened by a load; the first {@link Weights#get} widens once (the array then kept and shared, also by
 * {@link Weights#with} copies and across concurrent first requests), to exactly
 * {@link HostTensor#toFloatArray()}'s bits for F32, F16 and BF16 including NaN payloads, infinities,
 * signed zeros and subnormals (F64 is rounded at load); the host memory accounting; the serialized form;
 * the typed load errors.
 */
class WeightsTest {
    private static final long SEED = new SplittableRandom().nextLong();

    /** Special 16-bit patterns of a format, then random ones: n values in all. */
    private static short[] patterns(DType dtype, SplittableRandom r, int n) {
        short[] special = dtype == DType.BF16
                ? new short[] {0x0000, (short) 0x8000, 0x0001, (short) 0x8001, 0x007f, 0x0080, 0x7f80, (short) 0xff80,
                    0x7fc0, (short) 0xffc1, 0x7f81, 0x7fff, 0x3f80, (short) 0xbf80}
                : new short[] {0x0000, (short) 0x8000, 0x0001, (short) 0x8001, 0x03ff, 0x0400, 0x7c00, (short) 0xfc00,
                    0x7e00, (short) 0xfe01, 0x7c01, 0x7fff, 0x3c00, (short) 0xbc00};
        short[] out = new short[n];
        for (int i = 0; i < n; i++) {
            out[i] = i < special.length ? special[i] : (short) r.nextInt(1 << 16);
        }
        return out;
    }

    private static HostTensor halves(DType dtype, long[] shape, short[] bits) {
        ByteBuffer b = ByteBuffer.allocate(2 * bits.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < bits.length; i++) {
            b.putShort(2 * i, bits[i]);
        }
        return new HostTensor(dtype, shape, b);
    }

    /**
     * Asserts two float arrays hold the same bits (NaN payloads included), reporting the first difference
     * (AssertJ's containsExactly diffs in quadratic time, too slow for arrays of millions).
     */
    static void assertSameBits(float[] got, float[] ref, String what) {
        assertThat(got.length).as(what + ": length").isEqualTo(ref.length);
        for (int i = 0; i < got.length; i++) {
            int g = Float.floatToRawIntBits(got[i]);
            int r = Float.floatToRawIntBits(ref[i]);
            if (g != r) {
                throw new AssertionError(what + ": element " + i + " is 0x" + Integer.toHexString(g) + " (" + got[i]
                        + "), expected 0x" + Integer.toHexString(r) + " (" + ref[i] + ")");
            }
        }
    }

    private static final List<ParameterSpec> SPECS = List.of(ParameterSpec.of("f32", 3, 5), ParameterSpec.of("f16", 7, 3),
            ParameterSpec.of("bf16", 5, 5), ParameterSpec.of("f64", 4));

    /** One tensor of every float dtype under {@code p.}, with special values. */
    private static Map<String, HostTensor> tensors(SplittableRandom r) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        float[] f = new float[15];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) r.nextGaussian();
        }
        f[0] = Float.intBitsToFloat(0x7fa00123); // a signalling NaN with a payload
        f[1] = Float.NEGATIVE_INFINITY;
        f[2] = -0f;
        f[3] = Float.MIN_VALUE;
        m.put("p.f32", HostTensor.fromFloats(DType.F32, new long[] {3, 5}, f));
        m.put("p.f16", halves(DType.F16, new long[] {7, 3}, patterns(DType.F16, r, 21)));
        m.put("p.bf16", halves(DType.BF16, new long[] {5, 5}, patterns(DType.BF16, r, 25)));
        ByteBuffer d = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
        double[] dv = {Math.PI, -1e-300, 1e300, 0.1};
        for (int i = 0; i < 4; i++) {
            d.putDouble(8 * i, dv[i]);
        }
        m.put("p.f64", new HostTensor(DType.F64, new long[] {4}, d));
        return m;
    }

    @Test
    void loadedParametersWidenLazilyOnceToTheTensorsExactValues() {
        Map<String, HostTensor> m = tensors(new SplittableRandom(SEED));
        Weights w = Weights.load(TensorSource.of(m, "mem"), "p.", SPECS);
        for (String n : List.of("f32", "f16", "bf16")) {
            assertThat(w.isWidened(n)).as(n + " not widened by the load").isFalse();
            assertThat(w.checkpointTensor(n)).as("kept, not copied").isSameAs(m.get("p." + n));
        }
        assertThat(w.isWidened("f64")).as("F64 is rounded at load").isTrue();
        assertThat(w.checkpointTensor("f64")).isNull();
        assertThat(w.get("f64")).containsExactly((float) Math.PI, (float) -1e-300, Float.POSITIVE_INFINITY, 0.1f);
        for (String n : List.of("f32", "f16", "bf16")) {
            float[] a = w.get(n);
            assertSameBits(a, m.get("p." + n).toFloatArray(), n + ", seed=" + SEED);
            assertThat(w.isWidened(n)).isTrue();
            assertThat(w.get(n)).as("widened once, then kept").isSameAs(a);
            assertThat(w.getOrNull(n)).isSameAs(a);
        }
        // the reference conversions, written out: bf16 is the top half of the fp32 word; f16 per IEEE 754
        short[] bf = new short[25];
        m.get("p.bf16").data().asShortBuffer().get(bf);
        for (int i = 0; i < bf.length; i++) {
            assertThat(Float.floatToRawIntBits(w.get("bf16")[i])).isEqualTo((bf[i] & 0xffff) << 16);
        }
        short[] h = new short[21];
        m.get("p.f16").data().asShortBuffer().get(h);
        for (int i = 0; i < h.length; i++) {
            float v = w.get("f16")[i];
            assertThat(Float.floatToRawIntBits(v)).isEqualTo(Float.floatToRawIntBits(HalfFloats.f16ToFloat(h[i])));
            if (!Float.isNaN(v)) {
                assertThat(HalfFloats.floatToF16(v)).as("an exact widening rounds back to itself").isEqualTo(h[i]);
            }
        }
        assertThat(w.getOrNull("absent")).isNull();
        assertThatThrownBy(() -> w.get("absent")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("absent");
        assertThatThrownBy(() -> w.checkpointTensor("absent")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void hostBytesCountTheCheckpointBytesAndOnlyWhatWasWidened() {
        Weights w = Weights.load(TensorSource.of(tensors(new SplittableRandom(SEED + 1)), "mem"), "p.", SPECS);
        long tensors = 4 * 15 + 2 * 21 + 2 * 25;
        assertThat(w.hostBytes()).isEqualTo(tensors + 4 * 4); // the F64 tensor is an fp32 array now
        w.get("bf16");
        assertThat(w.hostBytes()).isEqualTo(tensors + 4 * 4 + 4 * 25);
        assertThat(w.numel()).isEqualTo(15 + 21 + 25 + 4);
        Map<String, float[]> all = w.asMap();
        assertThat(all.keySet()).containsExactly("f32", "f16", "bf16", "f64");
        assertThat(all.get("bf16")).isSameAs(w.get("bf16"));
        assertThat(w.isWidened("f16")).as("asMap widens every parameter").isTrue();
        assertThat(w.hostBytes()).isEqualTo(tensors + 4 * (15 + 21 + 25 + 4));
    }

    @Test
    void withSharesTheOtherParametersAndTheirWidening() {
        Weights w = Weights.load(TensorSource.of(tensors(new SplittableRandom(SEED + 2)), "mem"), "p.", SPECS);
        float[] pruned = new float[25];
        Weights p = w.with("bf16", pruned);
        assertThat(p.get("bf16")).isSameAs(pruned);
        assertThat(p.checkpointTensor("bf16")).isNull();
        assertThat(p.isWidened("bf16")).isTrue();
        assertThat(w.isWidened("bf16")).isFalse();
        assertThat(p.checkpointTensor("f16")).isSameAs(w.checkpointTensor("f16"));
        float[] viaCopy = p.get("f16");
        assertThat(w.isWidened("f16")).as("widened through the copy, shared").isTrue();
        assertThat(w.get("f16")).isSameAs(viaCopy);
        assertThatThrownBy(() -> w.with("bf16", new float[24])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("needs 25 floats");
    }

    @Test
    void concurrentFirstRequestsWidenOnce() throws Exception {
        float[] v = new float[1 << 20];
        SplittableRandom r = new SplittableRandom(SEED + 3);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        HostTensor t = HostTensor.fromFloats(DType.BF16, new long[] {1024, 1024}, v);
        Weights w = Weights.load(TensorSource.of(Map.of("x", t), "mem"), "", List.of(ParameterSpec.of("x", 1024, 1024)));
        int threads = 6;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<float[]>> got = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                got.add(pool.submit(() -> {
                    start.await();
                    return w.get("x");
                }));
            }
            start.countDown();
            float[] first = got.get(0).get();
            for (Future<float[]> f : got) {
                assertThat(f.get()).isSameAs(first);
            }
            assertSameBits(first, t.toFloatArray(), "widened concurrently");
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void theSerializedFormKeepsDtypesAndValues() throws Exception {
        Weights w = Weights.load(TensorSource.of(tensors(new SplittableRandom(SEED + 4)), "mem"), "p.", SPECS)
                .with("f32", new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(w);
        }
        Weights back;
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            back = (Weights) in.readObject();
        }
        assertThat(back.description()).isEqualTo(w.description());
        assertThat(back.specs()).extracting(ParameterSpec::name).containsExactly("f32", "f16", "bf16", "f64");
        assertThat(back.checkpointTensor("bf16")).isEqualTo(w.checkpointTensor("bf16"));
        assertThat(back.checkpointTensor("f16").dtype()).isEqualTo(DType.F16);
        assertThat(back.isWidened("bf16")).isFalse();
        assertThat(back.checkpointTensor("f32")).isNull();
        for (String n : List.of("f32", "f16", "bf16", "f64")) {
            assertSameBits(back.get(n), w.get(n), n);
        }
    }

    @Test
    void loadErrorsNameTheTensorAndTheFix() {
        Map<String, HostTensor> m = new LinkedHashMap<>(tensors(new SplittableRandom(SEED + 5)));
        assertThatThrownBy(() -> Weights.load(TensorSource.of(m, "mem"), "p.", List.of(ParameterSpec.of("gone", 2))))
                .isInstanceOf(ModelWeightsException.class).hasMessageContaining("\"p.gone\"").hasMessageContaining("Fix");
        assertThatThrownBy(() -> Weights.load(TensorSource.of(m, "mem"), "p.", List.of(ParameterSpec.of("bf16", 25))))
                .isInstanceOf(ModelWeightsException.class).hasMessageContaining("has shape [5, 5]");
        m.put("p.ints", new HostTensor(DType.I32, new long[] {2}, ByteBuffer.allocate(8)));
        assertThatThrownBy(() -> Weights.load(TensorSource.of(m, "mem"), "p.", List.of(ParameterSpec.of("ints", 2))))
                .isInstanceOf(ModelWeightsException.class).hasMessageContaining("I32");
        // a source whose read disagrees with its header
        TensorSource lying = new DelegatingTensorSource(TensorSource.of(m, "mem")) {
            @Override
            public long[] shape(String name) {
                return new long[] {5, 6};
            }
        };
        assertThatThrownBy(() -> Weights.load(lying, "p.", List.of(ParameterSpec.of("bf16", 5, 6))))
                .isInstanceOf(ModelWeightsException.class).hasMessageContaining("\"p.bf16\"")
                .hasMessageContaining("25 elements");
    }
}
