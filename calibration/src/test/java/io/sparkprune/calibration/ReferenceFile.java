package io.sparkprune.calibration;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * Test-only reader for the reference safetensors file (F32 tensors only): 8-byte little-endian
 * header length, JSON header {@code {name: {dtype, shape, data_offsets}}}, then the data. The
 * product's reader lives in the pipeline module, which calibration must not depend on.
 */
public final class ReferenceFile {
    /** Classpath location of the reference outputs of sparsegpt.py on one real layer. */
    public static final String PATH = "/reference/sparsegpt_reference_layer2_down_proj.safetensors";

    private final Map<String, float[]> tensors = new HashMap<>();
    private final Map<String, int[]> shapes = new HashMap<>();

    private ReferenceFile(byte[] bytes) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = b.getLong();
        JsonNode header = new ObjectMapper().readTree(new String(bytes, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8));
        int base = 8 + (int) n;
        for (Map.Entry<String, JsonNode> e : header.properties()) {
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode t = e.getValue();
            if (!t.get("dtype").asText().equals("F32")) {
                throw new IOException("test reader handles F32 only, " + e.getKey() + " is " + t.get("dtype"));
            }
            int[] shape = new int[t.get("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = t.get("shape").get(i).asInt();
            }
            int start = t.get("data_offsets").get(0).asInt();
            int end = t.get("data_offsets").get(1).asInt();
            float[] data = new float[(end - start) / 4];
            ByteBuffer.wrap(bytes, base + start, end - start).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(data);
            tensors.put(e.getKey(), data);
            shapes.put(e.getKey(), shape);
        }
    }

    /**
     * @return the reference file from the test classpath
     * @throws IOException when it is missing or malformed
     */
    public static ReferenceFile load() throws IOException {
        try (InputStream in = ReferenceFile.class.getResourceAsStream(PATH)) {
            if (in == null) {
                throw new IOException("missing test resource " + PATH);
            }
            return new ReferenceFile(in.readAllBytes());
        }
    }

    /**
     * @param name tensor name
     * @return its values, row-major
     */
    public float[] get(String name) {
        float[] t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no tensor " + name + " in " + tensors.keySet());
        }
        return t;
    }

    /**
     * @param name tensor name
     * @return its shape
     */
    public int[] shape(String name) {
        return shapes.get(name).clone();
    }
}
