package io.sparkprune.pipeline.bench;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.ParameterSpec;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.RopeScaling;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * CPU forward-pass throughput, in tokens per second, of
 * <ol>
 *   <li>the default model, all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384; weights imported from its
 *       ONNX file), on a batch of 32 English Europarl documents of exactly 128 tokens
 *       ({@code last_hidden_state});</li>
 *   <li>a random-initialised Llama of about 110M parameters (hidden 768, 12 layers, 12 heads,
 *       intermediate 2048, vocab 32000, tied embeddings) on 2 sequences of 512 tokens (logits).</li>
 * </ol>
 * Each is run twice to warm up, then repeatedly for at least {@code --seconds} (default 20) per
 * model, at least 3 times; the median wall time per forward pass is reported, and throughput =
 * tokens of the batch / median time. Prints the machine (cores, load average before and after) and
 * the backend (threads, SIMD or plain Java). Needs {@code --add-modules jdk.incubator.vector} on the
 * JVM for the SIMD microkernels.
 *
 * <p>Usage: {@code ForwardBench [--models minilm,llama] [--seconds S] [--threads N] [--plain]};
 * {@code --plain} forces the plain-Java kernels.
 */
public final class ForwardBench {
    private ForwardBench() {
    }

    /**
     * @param args optional seconds per model and thread count
     * @throws Exception on I/O failure reading the default assets
     */
    public static void main(String[] args) throws Exception {
        double seconds = 20;
        int threads = Runtime.getRuntime().availableProcessors();
        boolean plain = false;
        List<String> models = List.of("minilm", "llama");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--seconds" -> seconds = Double.parseDouble(value(args, ++i));
                case "--threads" -> threads = Integer.parseInt(value(args, ++i));
                case "--plain" -> plain = true;
                case "--models" -> models = List.of(value(args, ++i).split(","));
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + "; usage: ForwardBench [--models minilm,llama] [--seconds S] [--threads N] [--plain]");
            }
        }
        System.out.printf(Locale.ROOT, "# forward-pass benchmark: %d processors, load average %s, %s %s, Java %s%n",
                Runtime.getRuntime().availableProcessors(), loadAverage(), System.getProperty("os.name"),
                System.getProperty("os.arch"), System.getProperty("java.version"));
        try (CpuBackend backend = plain ? CpuBackend.create(threads, false) : CpuBackend.create(threads)) {
            System.out.println("# backend: " + backend.name());
            System.out.println("| model | params | batch x seq | ms / forward (median of runs; min) | tokens/s |");
            System.out.println("|---|---|---|---|---|");
            for (String m : models) {
                switch (m) {
                    case "minilm" -> miniLm(backend, seconds);
                    case "llama" -> llama(backend, seconds);
                    default -> throw new IllegalArgumentException("unknown model " + m + "; known: minilm, llama");
                }
            }
        }
        System.out.printf(Locale.ROOT, "# load average after: %s%n", loadAverage());
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (Exception e) {
            return String.format(Locale.ROOT, "%.2f", java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        }
    }

    private static void miniLm(CpuBackend backend, double seconds) throws Exception {
        TransformerModel model;
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            model = TransformerModel.fromOnnx(OnnxImporter.importModel(in, DefaultAssets.MODEL_ONNX_RESOURCE), backend);
        }
        List<String> docs = new ArrayList<>();
        try (HfTokenizer tok = DefaultAssets.openTokenizer()) {
            for (String d : DefaultAssets.englishEuroparl().readAll(2000)) {
                if (tok.encode(d, true).length >= 128) {
                    docs.add(d);
                }
                if (docs.size() == 32) {
                    break;
                }
            }
            EncodedBatch enc = tok.encodeBatch(docs, 128);
            TokenBatch batch = TokenBatch.fromEncoded(enc);
            long params = model.globalWeights().numel();
            for (int l = 0; l < model.adapter().numLayers(); l++) {
                params += model.blockWeights(l).numel();
            }
            run("all-MiniLM-L6-v2 (BERT)", params, batch, seconds, () -> model.encode(batch));
        }
    }

    private static void llama(CpuBackend backend, double seconds) {
        LlamaConfig cfg = new LlamaConfig("llama", 768, 2048, 12, 12, 12, 64, 32000, 2048, 1e-5,
                RopeScaling.plain(10000), true, false, false, false, 0, "float32");
        ModelAdapter a = ModelAdapter.of(cfg);
        Map<String, long[]> shapes = new HashMap<>();
        for (ParameterSpec p : a.globalParameters(null)) {
            shapes.put(p.name(), p.shape());
        }
        for (int l = 0; l < cfg.numHiddenLayers(); l++) {
            for (ParameterSpec p : a.blockParameters()) {
                shapes.put(a.layerPrefix(l) + p.name(), p.shape());
            }
        }
        TensorSource random = new TensorSource() {
            @Override
            public String source() {
                return "random llama-110M";
            }

            @Override
            public boolean contains(String name) {
                return shapes.containsKey(name);
            }

            @Override
            public long[] shape(String name) {
                return shapes.get(name).clone();
            }

            @Override
            public HostTensor read(String name) {
                long[] s = shapes.get(name);
                SplittableRandom r = new SplittableRandom(name.hashCode());
                float[] v = new float[(int) HostTensor.numel(s)];
                boolean norm = name.endsWith("norm.weight");
                for (int i = 0; i < v.length; i++) {
                    v[i] = norm ? 1f : (float) (r.nextGaussian() * 0.02);
                }
                return HostTensor.fromFloats(DType.F32, s, v);
            }
        };
        TransformerModel model = TransformerModel.of(cfg, random, backend);
        long params = model.globalWeights().numel();
        for (int l = 0; l < cfg.numHiddenLayers(); l++) {
            params += model.blockWeights(l).numel();
        }
        SplittableRandom r = new SplittableRandom(1);
        int[][] seqs = new int[2][512];
        for (int[] s : seqs) {
            for (int i = 0; i < s.length; i++) {
                s[i] = r.nextInt(cfg.vocabSize());
            }
        }
        TokenBatch batch = TokenBatch.of(seqs);
        run("random Llama (h768, 12L, i2048, v32000, tied)", params, batch, seconds, () -> model.logits(batch));
    }

    private static void run(String name, long params, TokenBatch batch, double seconds, Runnable forward) {
        forward.run();
        forward.run();
        List<Double> times = new ArrayList<>();
        long end = System.nanoTime() + (long) (seconds * 1e9);
        do {
            long t0 = System.nanoTime();
            forward.run();
            times.add((System.nanoTime() - t0) / 1e6);
        } while (System.nanoTime() < end || times.size() < 3);
        times.sort(Double::compare);
        double median = times.get(times.size() / 2);
        int seqs = batch.layout().sequences();
        System.out.printf(Locale.ROOT, "| %s | %.1fM | %d x %d | %.1f (%d runs; %.1f) | %.0f |%n", name, params / 1e6, seqs,
                batch.layout().maxLength(), median, times.size(), times.get(0), batch.tokens() / (median / 1000));
    }
}
