package io.sparkprune.jobs.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.forward.LlamaAdapter;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.ParameterSpec;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * Writes a random-initialised Llama checkpoint directory that SparkPrune (and transformers) can
 * load: {@code config.json} ({@code model_type llama}), the weights as safetensors (one
 * {@code model.safetensors}, or {@code model-0000k-of-0000n.safetensors} plus
 * {@code model.safetensors.index.json} above the shard size) and a byte-level {@code tokenizer.json}
 * ({@link ByteLevelTokenizer}), so the prune job can calibrate and evaluate it on any text.
 *
 * <p><b>Tensors</b>, in transformers' {@code state_dict} order: {@code model.embed_tokens.weight}
 * [V, H]; per layer the block parameters of {@link LlamaAdapter} ({@code input_layernorm} [H],
 * {@code self_attn.{q,k,v,o}_proj} [A, H], [K, H], [K, H], [H, A], {@code post_attention_layernorm}
 * [H], {@code mlp.{gate,up}_proj} [I, H], {@code mlp.down_proj} [H, I]); {@code model.norm.weight}
 * [H]; {@code lm_head.weight} [V, H] unless the embeddings are tied.
 *
 * <p><b>Values.</b> Norm weights are 1; every other element is {@code 0.02 · z} with z standard
 * normal (transformers' {@code initializer_range} 0.02), rounded to the dtype. Row {@code r} of
 * tensor {@code name} draws its values, in column order, from a {@link SplittableRandom} seeded with
 * {@code mix(mix(seed ^ fnv1a64(name)) + r)} (mix = SplitMix64's finaliser), so the output depends only
 * on the spec — not on chunking, thread count or machine.
 *
 * <p><b>Memory</b> is bounded by one chunk of about {@value #CHUNK_ELEMENTS} elements (fp32 plus
 * encoded), whatever the model's size: tensors are generated and written in row chunks (a 7B-shaped
 * bf16 model, about 13 GB, is written with a heap of a few hundred MiB). Rows of a chunk are
 * generated in parallel on the common fork-join pool.
 *
 * <p>All or nothing: files go to a hidden sibling directory that is renamed to the target when
 * complete; on failure it is deleted.
 */
public final class RandomLlama {
    /** Elements generated and written per chunk. */
    static final int CHUNK_ELEMENTS = 1 << 22;
    /** Standard deviation of the non-norm weights. */
    public static final double INIT_STD = 0.02;

    private static final ObjectMapper JSON = new ObjectMapper();

    private RandomLlama() {
    }

    /**
     * What to generate.
     *
     * @param hidden hidden_size H, ≥ 1
     * @param layers num_hidden_layers, ≥ 1
     * @param heads num_attention_heads, dividing H into an even head_dim
     * @param kvHeads num_key_value_heads, dividing heads
     * @param intermediate intermediate_size I, ≥ 1
     * @param vocab vocab_size V, ≥ {@value ByteLevelTokenizer#VOCAB_SIZE} (the tokenizer's byte ids)
     * @param dtype BF16, F16 or F32
     * @param seed seed of every value
     * @param maxShardBytes largest tensor bytes per safetensors file, ≥ 1
     * @param tieWordEmbeddings true to omit {@code lm_head.weight} (the head reuses the embedding)
     * @param maxPositionEmbeddings max_position_embeddings, ≥ 2
     */
    public record Spec(int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab, DType dtype,
                       long seed, long maxShardBytes, boolean tieWordEmbeddings, int maxPositionEmbeddings) {

        /**
         * A spec with untied embeddings, 2048 positions and transformers' 5 GB shards.
         *
         * @param hidden hidden_size
         * @param layers num_hidden_layers
         * @param heads num_attention_heads
         * @param kvHeads num_key_value_heads
         * @param intermediate intermediate_size
         * @param vocab vocab_size
         * @param dtype BF16, F16 or F32
         * @param seed seed
         * @return the spec
         */
        public static Spec of(int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab, DType dtype,
                              long seed) {
            return new Spec(hidden, layers, heads, kvHeads, intermediate, vocab, dtype, seed,
                    HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES, false, 2048);
        }

        /**
         * @param bytes largest tensor bytes per file
         * @return this spec with another shard size
         */
        public Spec withMaxShardBytes(long bytes) {
            return new Spec(hidden, layers, heads, kvHeads, intermediate, vocab, dtype, seed, bytes, tieWordEmbeddings,
                    maxPositionEmbeddings);
        }

        /**
         * @param s another seed
         * @return this spec with that seed
         */
        public Spec withSeed(long s) {
            return new Spec(hidden, layers, heads, kvHeads, intermediate, vocab, dtype, s, maxShardBytes,
                    tieWordEmbeddings, maxPositionEmbeddings);
        }
    }

    /**
     * What was written.
     *
     * @param dir the checkpoint directory
     * @param files the safetensors files, in order
     * @param tensors number of tensors
     * @param parameters number of elements over all tensors
     * @param tensorBytes bytes of tensor data over all files
     */
    public record Summary(Path dir, List<String> files, int tensors, long parameters, long tensorBytes) {
    }

    /**
     * The config.json of a spec (validated by {@link ModelConfigs#parse}).
     *
     * @param spec the model
     * @return UTF-8 JSON
     * @throws GeneratorException for an unsupported dtype, a vocabulary under 256, a shard size
     *     under 1 or fewer than 2 positions
     * @throws io.sparkprune.pipeline.model.ModelConfigException for inconsistent sizes (e.g. heads
     *     not dividing the hidden size)
     */
    public static byte[] configJson(Spec spec) {
        check(spec);
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("LlamaForCausalLM");
        c.put("model_type", "llama");
        c.put("hidden_size", spec.hidden());
        c.put("intermediate_size", spec.intermediate());
        c.put("num_hidden_layers", spec.layers());
        c.put("num_attention_heads", spec.heads());
        c.put("num_key_value_heads", spec.kvHeads());
        c.put("vocab_size", spec.vocab());
        c.put("max_position_embeddings", spec.maxPositionEmbeddings());
        c.put("hidden_act", "silu");
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 10000.0);
        c.putNull("rope_scaling");
        c.put("attention_bias", false);
        c.put("mlp_bias", false);
        c.put("tie_word_embeddings", spec.tieWordEmbeddings());
        c.put("initializer_range", INIT_STD);
        c.put("torch_dtype", torchDtype(spec.dtype()));
        c.put("sparkprune_generator", "random llama, seed " + spec.seed());
        byte[] bytes;
        try {
            bytes = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(c);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
        ModelConfigs.parse(bytes, "generated config.json"); // the sizes must make a valid Llama
        return bytes;
    }

    private static void check(Spec spec) {
        if (spec.dtype() != DType.BF16 && spec.dtype() != DType.F16 && spec.dtype() != DType.F32) {
            throw new GeneratorException("dtype " + spec.dtype() + " is not supported for a generated checkpoint; "
                    + "use bf16, f16 or f32");
        }
        if (spec.vocab() < ByteLevelTokenizer.VOCAB_SIZE) {
            throw new GeneratorException("vocab " + spec.vocab() + " is smaller than the byte-level tokenizer's "
                    + ByteLevelTokenizer.VOCAB_SIZE + " byte ids; use --vocab " + ByteLevelTokenizer.VOCAB_SIZE + " or more");
        }
        if (spec.maxShardBytes() < 1) {
            throw new GeneratorException("max shard bytes must be ≥ 1, got " + spec.maxShardBytes());
        }
        if (spec.maxPositionEmbeddings() < 2) {
            throw new GeneratorException("max_position_embeddings must be ≥ 2, got " + spec.maxPositionEmbeddings());
        }
    }

    private static String torchDtype(DType d) {
        return switch (d) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        };
    }

    /**
     * The tensors of a spec, in file order.
     *
     * @param spec the model
     * @return name → shape
     * @throws GeneratorException or {@link io.sparkprune.pipeline.model.ModelConfigException} as
     *     {@link #configJson(Spec)}
     */
    public static LinkedHashMap<String, long[]> tensorShapes(Spec spec) {
        byte[] config = configJson(spec);
        LlamaConfig cfg = (LlamaConfig) ModelConfigs.parse(config, "generated config.json");
        ModelAdapter a = ModelAdapter.of(cfg);
        LinkedHashMap<String, long[]> shapes = new LinkedHashMap<>();
        shapes.put(LlamaAdapter.EMBED, new long[] {cfg.vocabSize(), cfg.hiddenSize()});
        // transformers' state_dict order: attention, mlp, then the two norms of each layer
        List<ParameterSpec> block = new ArrayList<>(a.blockParameters());
        block.sort(Comparator.comparingInt(p -> p.name().endsWith("layernorm.weight") ? 1 : 0));
        for (int l = 0; l < cfg.numHiddenLayers(); l++) {
            for (ParameterSpec p : block) {
                shapes.put(a.layerPrefix(l) + p.name(), p.shape());
            }
        }
        shapes.put(LlamaAdapter.NORM, new long[] {cfg.hiddenSize()});
        if (!cfg.tieWordEmbeddings()) {
            shapes.put(LlamaAdapter.LM_HEAD, new long[] {cfg.vocabSize(), cfg.hiddenSize()});
        }
        return shapes;
    }

    /**
     * Writes the checkpoint directory.
     *
     * @param spec the model
     * @param target the directory to create; must not exist, or be an empty directory
     * @return what was written
     * @throws GeneratorException when the target exists and is not an empty directory, or the spec
     *     is invalid (see {@link #configJson(Spec)})
     * @throws UncheckedIOException when writing fails (nothing is left behind)
     */
    public static Summary write(Spec spec, Path target) {
        byte[] config = configJson(spec);
        LinkedHashMap<String, long[]> shapes = tensorShapes(spec);
        Path abs = target.toAbsolutePath().normalize();
        if (Files.exists(abs) && !isEmptyDirectory(abs)) {
            throw new GeneratorException(abs + " already exists and is not an empty directory; choose a new output "
                    + "directory or delete it first");
        }
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + System.nanoTime());
        boolean done = false;
        try {
            Files.createDirectories(tmp);
            Files.write(tmp.resolve("config.json"), config);
            Files.write(tmp.resolve("tokenizer.json"), ByteLevelTokenizer.tokenizerJson());
            Map<String, String> weightMap;
            long params = 0;
            long bytes = 0;
            try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(tmp, spec.maxShardBytes())) {
                boolean ok = false;
                try {
                    for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                        w.declare(e.getKey(), spec.dtype(), e.getValue());
                    }
                    w.metadata(Map.of("format", "pt"));
                    weightMap = w.planShards();
                    for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                        long n = HostTensor.numel(e.getValue());
                        writeTensor(w, e.getKey(), e.getValue(), spec);
                        params += n;
                        bytes += n * spec.dtype().byteSize();
                    }
                    ok = true;
                } finally {
                    if (!ok) {
                        w.abort();
                    }
                }
            }
            if (Files.isDirectory(abs)) {
                Files.delete(abs); // empty, checked above
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs);
            }
            done = true;
            List<String> files = weightMap.values().stream().distinct().toList();
            return new Summary(abs, files, shapes.size(), params, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the generated checkpoint to " + abs + ": " + e.getMessage(), e);
        } finally {
            if (!done) {
                deleteTree(tmp);
            }
        }
    }

    private static void writeTensor(ShardedCheckpointWriter w, String name, long[] shape, Spec spec) {
        boolean norm = shape.length == 1;
        long rows = norm ? 1 : shape[0];
        int cols = (int) (norm ? shape[0] : shape[1]);
        int chunkRows = (int) Math.max(1, Math.min(rows, CHUNK_ELEMENTS / Math.max(1, cols)));
        long nameSeed = mix(spec.seed() ^ fnv1a64(name));
        for (long r0 = 0; r0 < rows; r0 += chunkRows) {
            int n = (int) Math.min(chunkRows, rows - r0);
            float[] v = new float[n * cols];
            if (norm) {
                java.util.Arrays.fill(v, 1f);
            } else {
                final long base = r0;
                IntStream.range(0, n).parallel().forEach(i -> fillRow(v, i * cols, cols, rowSeed(nameSeed, base + i)));
            }
            long[] chunkShape = norm ? shape : new long[] {n, cols};
            w.write(name, HostTensor.fromFloats(spec.dtype(), chunkShape, v).data());
        }
    }

    /**
     * The seed of one row's generator.
     *
     * @param nameSeed {@code mix(seed ^ fnv1a64(name))}
     * @param row row index
     * @return the row's seed
     */
    static long rowSeed(long nameSeed, long row) {
        return mix(nameSeed + row);
    }

    private static void fillRow(float[] v, int off, int cols, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int j = 0; j < cols; j++) {
            v[off + j] = (float) (INIT_STD * r.nextGaussian());
        }
    }

    /**
     * The value generator's expected fp32 values of rows of a non-norm tensor, before rounding to
     * the dtype (for tests and tools that need a tensor without reading the file).
     *
     * @param seed the spec's seed
     * @param name the tensor's name
     * @param rowStart first row
     * @param rowCount rows
     * @param cols columns
     * @return {@code rowCount × cols} row-major fp32
     */
    public static float[] rows(long seed, String name, long rowStart, int rowCount, int cols) {
        long nameSeed = mix(seed ^ fnv1a64(name));
        float[] v = new float[rowCount * cols];
        for (int i = 0; i < rowCount; i++) {
            fillRow(v, i * cols, cols, rowSeed(nameSeed, rowStart + i));
        }
        return v;
    }

    /** SplitMix64's finaliser (Steele, Lea &amp; Flood 2014): a bijective 64-bit mix. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** 64-bit FNV-1a of the UTF-8 bytes of {@code s}. */
    static long fnv1a64(String s) {
        long h = 0xcbf29ce484222325L;
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }

    private static boolean isEmptyDirectory(Path p) {
        if (!Files.isDirectory(p)) {
            return false;
        }
        try (Stream<Path> s = Files.list(p)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    private static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: the directory is hidden and named .tmp
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }

    /**
     * A one-line description of a spec, e.g. {@code llama h768 L12 heads 12/4 i2048 v32000 bf16 seed 1}.
     *
     * @param spec the model
     * @return the description
     */
    public static String describe(Spec spec) {
        return String.format(Locale.ROOT, "llama h%d L%d heads %d/%d i%d v%d %s%s seed %d", spec.hidden(), spec.layers(),
                spec.heads(), spec.kvHeads(), spec.intermediate(), spec.vocab(), spec.dtype().safetensorsName(),
                spec.tieWordEmbeddings() ? " tied" : "", spec.seed());
    }
}
