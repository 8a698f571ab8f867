package io.sparkprune.jobs.commit;

import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * File names of shards and layer directories. Tensor names are kept readable: letters, digits,
 * {@code .}, {@code -} and {@code _} stay as they are, any other byte of the UTF-8 name becomes
 * {@code %XX}, and so does a leading {@code _} or {@code .} (names starting with those are
 * reserved for temp files, markers and hidden files). The mapping is injective.
 */
public final class ShardNames {
    /** Prefix of every temporary file; such files are never part of a commit. */
    public static final String TEMP_PREFIX = "_tmp-";
    private static final Pattern LAYER_DIR = Pattern.compile("layer-(\\d{5,9})");

    private ShardNames() {
    }

    /**
     * @param tensor tensor name, non-empty
     * @param index shard index, 0 &lt;= index &lt; count
     * @param count number of shards, &gt;= 1, at most 99999
     * @return e.g. {@code model.layers.0.mlp.up_proj.weight.shard-00001-of-00004.bin}
     * @throws IllegalArgumentException if a value is out of range
     */
    public static String fileName(String tensor, int index, int count) {
        if (tensor.isEmpty() || count < 1 || count > 99_999 || index < 0 || index >= count) {
            throw new IllegalArgumentException("shard " + index + " of " + count + " of tensor '" + tensor
                    + "' is out of range (1 <= count <= 99999, 0 <= index < count, non-empty name)");
        }
        return encode(tensor) + String.format(".shard-%05d-of-%05d.bin", index, count);
    }

    /**
     * @param layer layer index, &gt;= 0
     * @return {@code layer-00012}
     */
    public static String layerDir(int layer) {
        if (layer < 0) {
            throw new IllegalArgumentException("layer must be >= 0, got " + layer);
        }
        return String.format("layer-%05d", layer);
    }

    /**
     * @param name a directory name
     * @return the layer index if {@code name} is a layer directory name, else -1
     */
    public static int parseLayerDir(String name) {
        var m = LAYER_DIR.matcher(name);
        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
    }

    static String encode(String tensor) {
        StringBuilder sb = new StringBuilder();
        byte[] utf8 = tensor.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < utf8.length; i++) {
            int b = utf8[i] & 0xff;
            boolean plain = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '-'
                    || ((b == '.' || b == '_') && i > 0);
            if (plain) {
                sb.append((char) b);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(b >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(b & 0xf, 16)));
            }
        }
        return sb.toString();
    }
}
