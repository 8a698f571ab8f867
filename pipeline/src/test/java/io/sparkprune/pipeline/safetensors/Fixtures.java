package io.sparkprune.pipeline.safetensors;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Test data: random tensors and byte-by-byte file assembly that does not use the code under test. */
final class Fixtures {
    private Fixtures() {
    }

    /** Little-endian encoding of the low {@code n} bytes of {@code v}, by shifts. */
    static byte[] le(long v, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    /** Decodes {@code n} little-endian bytes at {@code off}, by shifts. */
    static long fromLe(byte[] b, int off, int n) {
        long v = 0;
        for (int i = 0; i < n; i++) {
            v |= (b[off + i] & 0xffL) << (8 * i);
        }
        return v;
    }

    /** prefix (u64 LE of the header's UTF-8 length) + header + data, exactly as given. */
    static byte[] assemble(String headerJson, byte[] data) {
        byte[] h = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(h.length, 8));
        out.writeBytes(h);
        out.writeBytes(data);
        return out.toByteArray();
    }

    /** A tensor of random bytes (every bit pattern, NaN payloads included). */
    static HostTensor randomTensor(Random r, DType dtype, long[] shape) {
        byte[] b = new byte[Math.toIntExact(TensorInfo.byteLengthOf(dtype, shape))];
        r.nextBytes(b);
        if (dtype == DType.BOOL) {
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) (b[i] & 1);
            }
        }
        return new HostTensor(dtype, shape, ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN));
    }

    static long[] randomShape(Random r, int maxElems) {
        int rank = r.nextInt(4); // 0..3
        long[] s = new long[rank];
        long n = 1;
        for (int i = 0; i < rank; i++) {
            int d = r.nextInt(10) == 0 ? 0 : 1 + r.nextInt(Math.max(1, (int) Math.max(1, maxElems / n)));
            s[i] = d;
            n = Math.max(1, n * Math.max(1, d));
        }
        return s;
    }

    /** A random set of tensors of every dtype, some empty, one scalar at least sometimes. */
    static LinkedHashMap<String, HostTensor> randomTensors(Random r, int count, int maxElems) {
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        DType[] all = DType.values();
        for (int i = 0; i < count; i++) {
            DType dt = all[r.nextInt(all.length)];
            m.put("layers." + i + ".w" + r.nextInt(100), randomTensor(r, dt, randomShape(r, maxElems)));
        }
        return m;
    }

    static byte[] bytes(HostTensor t) {
        ByteBuffer d = t.data().duplicate();
        byte[] b = new byte[d.remaining()];
        d.get(b);
        return b;
    }

    static byte[] bytes(ByteBuffer buf) {
        ByteBuffer d = buf.duplicate();
        byte[] b = new byte[d.remaining()];
        d.get(b);
        return b;
    }

    static Path writeFile(Path dir, String name, Map<String, String> meta, LinkedHashMap<String, HostTensor> t) {
        Path p = dir.resolve(name);
        SafetensorsWriter.write(p, meta, t);
        return p;
    }

    static Path writeBytes(Path dir, String name, byte[] content) throws java.io.IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }
}
