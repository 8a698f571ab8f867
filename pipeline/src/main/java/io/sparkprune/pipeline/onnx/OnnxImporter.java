package io.sparkprune.pipeline.onnx;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.onnx.GraphIndex.WeightRef;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.AttributeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Imports a BERT-family ONNX export (a sentence-embedding {@code BertModel} as written by
 * {@code torch.onnx.export}, e.g. all-MiniLM-L6-v2) as a Hugging Face checkpoint in memory:
 * {@code config.json} plus parameters under HF names and layouts ({@link ImportedModel}).
 *
 * <h2>How the graph is read</h2>
 * <ul>
 *   <li><b>Parameters with HF names.</b> Initializers named like BertModel's state dict
 *       ({@code embeddings.word_embeddings.weight}, {@code encoder.layer.0.attention.self.query.bias},
 *       LayerNorm weights and biases, ...), possibly behind a module prefix such as {@code bert.}, are
 *       kept under the prefix-free name. Legacy {@code LayerNorm.gamma/beta} become
 *       {@code weight/bias}.</li>
 *   <li><b>Linear weights.</b> The torch exporter folds {@code W^T} into an anonymous initializer
 *       ({@code onnx::MatMul_787}) of shape (in x out) that feeds a {@code MatMul} node named after
 *       the module scope, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}. The weight is
 *       named from that node ({@code encoder.layer.0.attention.self.query.weight}; likewise
 *       {@code attention/output/dense}, {@code intermediate/dense}, {@code output/dense},
 *       {@code pooler/dense}) and transposed to the {@code torch.nn.Linear} layout (out x in), bit
 *       for bit. A weight reaching the MatMul through a {@code Transpose} node, or a {@code Gemm}
 *       with {@code transB = 1}, is already (out x in) and is copied as is. When the node name
 *       does not name a module, a BertModel initializer name is used instead.</li>
 *   <li><b>Graph constants</b> (shape vectors, scalars, {@code embeddings.position_ids}, which HF
 *       does not load) are not parameters and are skipped.</li>
 *   <li><b>Config.</b> {@code vocab_size} and {@code hidden_size} come from the word embeddings
 *       (vocab x hidden); {@code max_position_embeddings} and {@code type_vocab_size} from the
 *       position and token-type embeddings; {@code num_hidden_layers} from the encoder layer
 *       indices; {@code intermediate_size} from {@code intermediate.dense.weight} (intermediate x
 *       hidden). {@code num_attention_heads}: the {@code Reshape} applied to the query/key/value
 *       projections (BERT's {@code transpose_for_scores}, target shape {@code [batch, seq, heads,
 *       head_dim]}) has a shape whose trailing entries are constants ({@code [12]}, {@code [32]} in
 *       all-MiniLM-L6-v2, as Constant nodes concatenated with the dynamic batch and sequence
 *       sizes); heads x head_dim must equal hidden. {@code layer_norm_eps}: the {@code epsilon}
 *       attribute of {@code LayerNormalization} nodes (opset 17+; ONNX default 1e-5 when absent),
 *       or, for the decomposed form older opsets produce, the scalar constant added to
 *       {@code ReduceMean((x - mean)^2)} before {@code Sqrt} (float32 {@code 0x2B8CBCCC}, i.e.
 *       1e-12, in all-MiniLM-L6-v2); all LayerNorms must agree. {@code hidden_act}: {@code Erf} (or
 *       an exact {@code Gelu}) outside the pooler gives {@code gelu}, the tanh approximation
 *       {@code gelu_new}, {@code Relu} {@code relu}.</li>
 * </ul>
 *
 * <h2>config.json keys</h2>
 * As HF's {@code BertConfig} writes them (alphabetical): {@code architectures ["BertModel"]},
 * {@code attention_probs_dropout_prob 0.1}, {@code hidden_act}, {@code hidden_dropout_prob 0.1},
 * {@code hidden_size}, {@code initializer_range 0.02}, {@code intermediate_size},
 * {@code layer_norm_eps}, {@code max_position_embeddings}, {@code model_type "bert"},
 * {@code num_attention_heads}, {@code num_hidden_layers}, {@code pad_token_id 0},
 * {@code position_embedding_type "absolute"}, {@code torch_dtype} (of the word embeddings:
 * float32, float16, bfloat16 or float64), {@code type_vocab_size}, {@code vocab_size}. The dropout
 * probabilities, initializer range and pad token id are not recorded in an ONNX graph; these are
 * BertConfig's defaults.
 *
 * <p>Every failure is an {@link OnnxFormatException} naming the file and the tensor or node.
 * Unsupported on purpose: external-data files, fused/optimized graphs (onnxruntime's
 * {@code Attention}, {@code SkipLayerNormalization} with packed QKV), RoBERTa-style position ids,
 * exports whose exporter merged bit-identical parameters into one initializer.
 */
public final class OnnxImporter {

    private static final Logger LOG = LoggerFactory.getLogger(OnnxImporter.class);

    /** Largest file read into one byte array; also the protobuf message size limit (2 GB). */
    private static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 8;

    private static final String EXPORT_HINT = "Fix: export a plain BertModel, e.g. with `optimum-cli export onnx --model <hf-id>"
            + " --task feature-extraction <dir>` or torch.onnx.export, without onnxruntime graph optimization";


    private OnnxImporter() {
    }

    /**
     * Parses and imports an ONNX file.
     *
     * @param file a self-contained {@code .onnx} file (at most 2 GB)
     * @return config and parameters in HF form; {@link ImportedModel#source()} is the path
     * @throws OnnxFormatException when the file is missing, unreadable, not ONNX, or not a
     *     BERT-family graph SparkPrune can map (see {@link #fromModelProto})
     */
    public static ImportedModel importModel(Path file) {
        return fromModelProto(parseModel(file), file.toString());
    }

    /**
     * Parses and imports an ONNX model read from a stream (e.g. a classpath resource); the stream is
     * read to its end and not closed.
     *
     * @param in the model bytes
     * @param source a label for messages, e.g. the resource name
     * @return config and parameters in HF form
     * @throws OnnxFormatException as {@link #importModel(Path)}
     */
    public static ImportedModel importModel(InputStream in, String source) {
        return fromModelProto(parseModel(in, source), source);
    }

    /**
     * Parses an ONNX file into its protobuf tree without interpreting it. Unknown fields are kept,
     * so {@code parseModel(f).toByteArray()} re-serializes the model (byte-identical for files
     * written in field-number order, as the torch exporter and onnx do).
     *
     * @param file a self-contained {@code .onnx} file (at most 2 GB)
     * @return the parsed model; raw tensor bytes alias one array holding the file
     * @throws OnnxFormatException when the file does not exist, is a directory, is empty, is
     *     larger than 2 GB, cannot be read, fails to parse as protobuf (truncated, corrupt, not
     *     ONNX), or parses but has no graph or IR version
     */
    public static ModelProto parseModel(Path file) {
        if (!Files.exists(file)) {
            throw new OnnxFormatException("ONNX file " + file + " does not exist. Fix: pass the path of a .onnx file");
        }
        if (Files.isDirectory(file)) {
            throw new OnnxFormatException("ONNX file " + file + " is a directory. Fix: pass the .onnx file inside it, e.g. "
                    + file.resolve("model.onnx"));
        }
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size == 0) {
                throw new OnnxFormatException("ONNX file " + file + " is empty (0 bytes). Fix: re-download or re-export the model");
            }
            if (size > MAX_FILE_BYTES) {
                throw new OnnxFormatException("ONNX file " + file + " has " + size + " bytes; a single ONNX protobuf cannot exceed"
                        + " 2 GB, so it cannot be a self-contained model, and SparkPrune does not read external data. Fix: import the"
                        + " Hugging Face checkpoint (config.json + safetensors) instead");
            }
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new OnnxFormatException("cannot read ONNX file " + file + ": " + e + ". Fix: check the path and permissions", e);
        }
        CodedInputStream cis = CodedInputStream.newInstance(bytes);
        cis.enableAliasing(true);
        return parse(cis, file.toString());
    }

    /**
     * Parses an ONNX model from a stream (read to its end, not closed).
     *
     * @param in the model bytes
     * @param source a label for messages
     * @return the parsed model
     * @throws OnnxFormatException as {@link #parseModel(Path)}
     */
    public static ModelProto parseModel(InputStream in, String source) {
        return parse(CodedInputStream.newInstance(in), source);
    }

    private static ModelProto parse(CodedInputStream cis, String source) {
        cis.setSizeLimit(Integer.MAX_VALUE);
        ModelProto model;
        try {
            model = ModelProto.parseFrom(cis);
        } catch (InvalidProtocolBufferException e) {
            throw new OnnxFormatException("ONNX file " + source + " is not a valid ONNX model: protobuf parsing failed ("
                    + e.getMessage() + "). The file is truncated, corrupt or not ONNX. Fix: re-download or re-export it", e);
        } catch (IOException e) {
            throw new OnnxFormatException("cannot read ONNX file " + source + ": " + e, e);
        }
        if (!model.hasGraph() || model.getIrVersion() <= 0) {
            throw new OnnxFormatException("ONNX file " + source + " is not an ONNX model: it parses as protobuf but has no "
                    + (model.hasGraph() ? "ir_version" : "graph") + ". Fix: pass a .onnx model file");
        }
        return model;
    }

    /**
     * Locates the Hugging Face {@code tokenizer.json} that belongs to an ONNX file, trying in order
     * {@code <stem>-tokenizer.json}, {@code <stem>_tokenizer.json}, {@code <stem>.tokenizer.json}
     * (stem = file name without {@code .onnx}) and {@code tokenizer.json} in the file's directory,
     * then {@code tokenizer.json} in its parent (the {@code onnx/model.onnx} layout of Hub repos).
     *
     * @param onnxFile path of the {@code .onnx} file (need not exist)
     * @return the first candidate that is a regular file, or empty
     */
    public static Optional<Path> findTokenizer(Path onnxFile) {
        Path abs = onnxFile.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null) {
            return Optional.empty();
        }
        String file = abs.getFileName().toString();
        String stem = file.toLowerCase(Locale.ROOT).endsWith(".onnx") ? file.substring(0, file.length() - 5) : file;
        List<Path> candidates = new ArrayList<>(List.of(
                dir.resolve(stem + "-tokenizer.json"), dir.resolve(stem + "_tokenizer.json"),
                dir.resolve(stem + ".tokenizer.json"), dir.resolve("tokenizer.json")));
        if (dir.getParent() != null) {
            candidates.add(dir.getParent().resolve("tokenizer.json"));
        }
        return candidates.stream().filter(Files::isRegularFile).findFirst();
    }

    /**
     * The mapping {@link #fromModelProto} applies, without decoding any tensor: for each HF
     * {@code BertModel} parameter the ONNX initializer holding it and whether it is stored
     * transposed (in x out). {@link OnnxExporter} inverts it.
     *
     * @param model a parsed ONNX model
     * @param source file or label for messages
     * @return HF parameter name &rarr; its initializer, in graph order (MatMul/Gemm weights first,
     *     then named initializers); shapes are not checked here
     * @throws OnnxFormatException when the graph is not BERT-family, computes RoBERTa-style
     *     position ids, a MatMul/Gemm weight names no BertModel Linear module, or two initializers
     *     map to one parameter
     */
    public static Map<String, OnnxParameter> parameterMap(ModelProto model, String source) {
        return Collections.unmodifiableMap(mapParameters(new GraphIndex(model.getGraph()), source, new HashMap<>()));
    }

    private static Map<String, OnnxParameter> mapParameters(GraphIndex g, String source, Map<String, List<String>> linearOutputs) {
        GraphProto graph = g.graph;
        Map<String, OnnxParameter> sources = new LinkedHashMap<>();
        Set<String> linearInitializers = new HashSet<>();

        // 0. Is it BERT-family at all?
        if (graph.getInitializerList().stream().noneMatch(t -> BertNames.WORD_EMBEDDINGS.equals(BertNames.parameterName(t.getName())))) {
            List<String> some = graph.getInitializerList().stream().map(TensorProto::getName).limit(8).toList();
            throw new OnnxFormatException("ONNX file " + source + " is not a BERT-family model: expected an initializer named "
                    + BertNames.WORD_EMBEDDINGS + " (optionally behind a prefix such as bert.), found "
                    + graph.getInitializerCount() + " initializers" + (some.isEmpty() ? "" : " such as " + some)
                    + ". SparkPrune imports BertModel-style encoders (BERT, MiniLM, sentence-transformers) from ONNX; for other"
                    + " architectures use their Hugging Face checkpoint");
        }
        for (NodeProto node : graph.getNodeList()) {
            if (node.getOpType().equals("CumSum")) {
                throw new OnnxFormatException("ONNX file " + source + ": node '" + node.getName() + "' computes position ids with"
                        + " CumSum, as RoBERTa/XLM-R exports do (positions offset by the padding index); only BERT's absolute"
                        + " position ids map to a BertModel config. Fix: import this model from its Hugging Face checkpoint");
            }
        }
        // 1. Linear weights: the B input of MatMul / Gemm nodes.
        for (NodeProto node : graph.getNodeList()) {
            boolean gemm = GraphIndex.isOp(node, "Gemm");
            if (!(GraphIndex.isOp(node, "MatMul") || gemm) || node.getInputCount() < 2) {
                continue;
            }
            WeightRef w = g.weightInput(node.getInput(1));
            if (w == null || g.initializer(w.initializer()).getDimsCount() != 2) {
                continue;
            }
            boolean storedOutIn = w.viaTranspose();
            if (gemm) {
                AttributeProto transB = GraphIndex.attribute(node, "transB");
                if (transB != null && transB.getI() == 1) {
                    storedOutIn = !storedOutIn;
                }
            }
            String module = BertNames.linearModuleOfNode(node.getName());
            String named = BertNames.parameterName(w.initializer());
            String hf;
            if (module != null) {
                hf = module + ".weight";
            } else if (named != null && BertNames.isLinearWeight(named)) {
                hf = named;
            } else if (named != null) {
                continue; // a BertModel parameter reused by a head (e.g. a tied decoder); imported under its own name below
            } else {
                throw new OnnxFormatException("ONNX file " + source + ": " + node.getOpType() + " node '" + node.getName()
                        + "' multiplies by the anonymous initializer '" + w.initializer() + "' "
                        + g.initializer(w.initializer()).getDimsList() + ", but its node name does not name a BertModel Linear"
                        + " module (expected a name like /encoder/layer.0/attention/self/query/MatMul, or .../attention/self/key,"
                        + " .../attention/self/value, .../attention/output/dense, .../intermediate/dense, .../output/dense,"
                        + " /pooler/dense, possibly behind a prefix such as /bert). Extra heads (classifiers, Dense layers) are"
                        + " not part of BertModel. " + EXPORT_HINT + " (torch >= 1.13 names nodes after their modules)");
            }
            OnnxParameter s = new OnnxParameter(hf, w.initializer(), !storedOutIn, node.getOpType() + " node '" + node.getName() + "'");
            OnnxParameter prev = sources.putIfAbsent(hf, s);
            if (prev != null && !(prev.initializer().equals(s.initializer()) && prev.transposed() == s.transposed())) {
                throw new OnnxFormatException("ONNX file " + source + ": two weights map to '" + hf + "': " + prev.describe()
                        + " and " + s.describe() + ". " + EXPORT_HINT);
            }
            linearOutputs.computeIfAbsent(hf, k -> new ArrayList<>()).add(node.getOutput(0));
            linearInitializers.add(w.initializer());
        }

        // 2. Initializers that carry BertModel names; everything else is a graph constant.
        List<String> skipped = new ArrayList<>();
        for (TensorProto init : graph.getInitializerList()) {
            String name = init.getName();
            if (linearInitializers.contains(name)) {
                continue;
            }
            String hf = BertNames.parameterName(name);
            if (hf == null) {
                skipped.add(name);
                continue;
            }
            OnnxParameter prev = sources.putIfAbsent(hf, new OnnxParameter(hf, name, false, "named initializer"));
            if (prev != null) {
                throw new OnnxFormatException("ONNX file " + source + ": both " + prev.describe() + " and initializer '" + name
                        + "' map to the BertModel parameter '" + hf + "'. " + EXPORT_HINT);
            }
        }
        if (!skipped.isEmpty()) {
            LOG.debug("{}: skipped {} initializers that are graph constants, not BertModel parameters: {}", source,
                    skipped.size(), skipped);
        }
        return sources;
    }

    /**
     * Maps a parsed BERT-family graph to HF form (see the class comment for the rules).
     *
     * @param model a parsed ONNX model
     * @param source file or label for messages; becomes {@link ImportedModel#source()}
     * @return config and parameters; tensors from {@code raw_data} initializers that need no
     *     transpose are read-only views of the model's bytes
     * @throws OnnxFormatException when the graph is not BERT-family (no
     *     {@code embeddings.word_embeddings.weight}), a MatMul/Gemm weight's node name and
     *     initializer name name no BertModel Linear module, parameters are missing, duplicated,
     *     not floating point or of inconsistent shapes, a tensor keeps external data, or heads,
     *     LayerNorm epsilon or activation cannot be inferred
     */
    public static ImportedModel fromModelProto(ModelProto model, String source) {
        GraphProto graph = model.getGraph();
        GraphIndex g = new GraphIndex(graph);
        Map<String, List<String>> linearOutputs = new HashMap<>();
        Map<String, OnnxParameter> sources = mapParameters(g, source, linearOutputs);

        // 3. Decode, transposing MatMul weights to out x in.
        Map<String, HostTensor> tensors = new HashMap<>();
        for (Map.Entry<String, OnnxParameter> e : sources.entrySet()) {
            OnnxParameter s = e.getValue();
            HostTensor t = OnnxTensors.toHostTensor(g.initializer(s.initializer()), source);
            if (!t.dtype().isFloatingPoint()) {
                throw new OnnxFormatException("ONNX file " + source + ": BertModel parameter '" + e.getKey() + "' (" + s.describe()
                        + ") has element type " + t.dtype() + "; parameters must be floating point (quantized exports are not"
                        + " supported). " + EXPORT_HINT + " in float32");
            }
            tensors.put(e.getKey(), s.transposed() ? OnnxTensors.transpose2d(t) : t);
        }

        // 4. Structure and shapes.
        Shapes shapes = new Shapes(source, tensors, sources);
        long[] we = shapes.rank2(BertNames.WORD_EMBEDDINGS);
        long vocab = we[0];
        long hidden = we[1];
        long maxPositions = shapes.rows(BertNames.POSITION_EMBEDDINGS, hidden);
        long typeVocab = shapes.rows(BertNames.TOKEN_TYPE_EMBEDDINGS, hidden);
        shapes.expect(BertNames.EMBEDDINGS_LN_WEIGHT, hidden);
        shapes.expect(BertNames.EMBEDDINGS_LN_BIAS, hidden);
        TreeSet<Integer> layerIndices = new TreeSet<>();
        for (String name : tensors.keySet()) {
            int l = BertNames.layerIndex(name);
            if (l >= 0) {
                layerIndices.add(l);
            }
        }
        if (layerIndices.isEmpty()) {
            throw new OnnxFormatException("ONNX file " + source + " has BERT embeddings but no encoder layers (no parameter named"
                    + " encoder.layer.0.*). " + EXPORT_HINT);
        }
        if (layerIndices.last() >= 100_000) {
            throw new OnnxFormatException("ONNX file " + source + ": encoder layer index " + layerIndices.last()
                    + " is implausible (parameters are named encoder.layer.0 .. encoder.layer.N-1). " + EXPORT_HINT);
        }
        int layers = layerIndices.last() + 1;
        List<String> missing = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            for (String name : BertNames.layerParameters(l)) {
                if (!tensors.containsKey(name)) {
                    missing.add(name);
                }
            }
        }
        if (!missing.isEmpty()) {
            throw new OnnxFormatException("ONNX file " + source + " lacks " + missing.size() + " BertModel parameter(s) of its "
                    + layers + " encoder layers: " + (missing.size() > 12 ? missing.subList(0, 12) + " ..." : missing)
                    + ". Fused or optimized graphs (onnxruntime Attention / SkipLayerNormalization with packed weights) and"
                    + " exports that merged bit-identical parameters into one initializer cannot be mapped. " + EXPORT_HINT);
        }
        long intermediate = shapes.rank2("encoder.layer.0.intermediate.dense.weight")[0];
        for (int l = 0; l < layers; l++) {
            String p = "encoder.layer." + l + ".";
            for (String proj : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense")) {
                shapes.expect(p + proj + ".weight", hidden, hidden);
                shapes.expect(p + proj + ".bias", hidden);
            }
            shapes.expect(p + "intermediate.dense.weight", intermediate, hidden);
            shapes.expect(p + "intermediate.dense.bias", intermediate);
            shapes.expect(p + "output.dense.weight", hidden, intermediate);
            shapes.expect(p + "output.dense.bias", hidden);
            for (String ln : List.of("attention.output.LayerNorm", "output.LayerNorm")) {
                shapes.expect(p + ln + ".weight", hidden);
                shapes.expect(p + ln + ".bias", hidden);
            }
        }
        boolean pooler = tensors.containsKey(BertNames.POOLER_WEIGHT) || tensors.containsKey(BertNames.POOLER_BIAS);
        if (pooler) {
            shapes.expect(BertNames.POOLER_WEIGHT, hidden, hidden);
            shapes.expect(BertNames.POOLER_BIAS, hidden);
        }

        // 5. Hyper-parameters that only the graph records.
        long heads = inferHeads(g, linearOutputs, hidden, layers, source);
        double eps = inferLayerNormEps(g, source);
        String act = inferActivation(graph, source);

        ObjectNode config = JsonNodeFactory.instance.objectNode();
        config.putArray("architectures").add("BertModel");
        config.put("attention_probs_dropout_prob", 0.1);
        config.put("hidden_act", act);
        config.put("hidden_dropout_prob", 0.1);
        config.put("hidden_size", configInt("hidden_size", hidden, source));
        config.put("initializer_range", 0.02);
        config.put("intermediate_size", configInt("intermediate_size", intermediate, source));
        config.put("layer_norm_eps", eps);
        config.put("max_position_embeddings", configInt("max_position_embeddings", maxPositions, source));
        config.put("model_type", "bert");
        config.put("num_attention_heads", configInt("num_attention_heads", heads, source));
        config.put("num_hidden_layers", layers);
        config.put("pad_token_id", 0);
        config.put("position_embedding_type", "absolute");
        config.put("torch_dtype", torchDtype(tensors.get(BertNames.WORD_EMBEDDINGS).dtype()));
        config.put("type_vocab_size", configInt("type_vocab_size", typeVocab, source));
        config.put("vocab_size", configInt("vocab_size", vocab, source));

        LinkedHashMap<String, HostTensor> ordered = new LinkedHashMap<>();
        List<String> order = new ArrayList<>(BertNames.embeddingParameters());
        for (int l = 0; l < layers; l++) {
            order.addAll(BertNames.layerParameters(l));
        }
        if (pooler) {
            order.add(BertNames.POOLER_WEIGHT);
            order.add(BertNames.POOLER_BIAS);
        }
        for (String name : order) {
            ordered.put(name, tensors.get(name));
        }
        LOG.info("{}: imported BERT-family ONNX model, {} layers, hidden {}, {} heads, intermediate {}, vocab {}, {} tensors",
                source, layers, hidden, heads, intermediate, vocab, ordered.size());
        return new ImportedModel(config, ordered, source);
    }

    /** A config size from the graph's shapes: 1 .. Integer.MAX_VALUE, else the graph is corrupt. */
    private static int configInt(String key, long value, String source) {
        if (value < 1 || value > Integer.MAX_VALUE) {
            throw new OnnxFormatException("ONNX file " + source + ": the parameter shapes give " + key + " = " + value
                    + ", outside 1 .. " + Integer.MAX_VALUE + "; the file is corrupt. " + EXPORT_HINT);
        }
        return (int) value;
    }

    /** Shape checks over the decoded parameters, with messages that name the ONNX source. */
    private record Shapes(String source, Map<String, HostTensor> tensors, Map<String, OnnxParameter> sources) {

        HostTensor get(String name) {
            HostTensor t = tensors.get(name);
            if (t == null) {
                throw new OnnxFormatException("ONNX file " + source + " lacks the BertModel parameter '" + name + "'. " + EXPORT_HINT);
            }
            return t;
        }

        long[] rank2(String name) {
            long[] s = get(name).shape();
            if (s.length != 2) {
                throw bad(name, s, "a rank-2 shape");
            }
            return s;
        }

        long rows(String name, long cols) {
            long[] s = rank2(name);
            if (s[1] != cols) {
                throw bad(name, s, "[*, " + cols + "] (hidden_size " + cols + " from " + BertNames.WORD_EMBEDDINGS + ")");
            }
            return s[0];
        }

        void expect(String name, long... dims) {
            long[] s = get(name).shape();
            if (!Arrays.equals(s, dims)) {
                throw bad(name, s, Arrays.toString(dims));
            }
        }

        private OnnxFormatException bad(String name, long[] found, String expected) {
            return new OnnxFormatException("ONNX file " + source + ": BertModel parameter '" + name + "' ("
                    + sources.get(name).describe() + ") has shape " + Arrays.toString(found) + ", expected " + expected
                    + " from the embeddings and encoder.layer.0 shapes. The graph's shapes are inconsistent; it is not a"
                    + " BertModel export SparkPrune can map. " + EXPORT_HINT);
        }
    }

    /**
     * Heads from the attention Reshape: follows each query/key/value projection output (through
     * at most 3 element-wise nodes such as the bias Add) to a Reshape whose target shape ends in
     * constants {@code [heads, head_dim]} (either may be -1) with heads x head_dim = hidden.
     */
    private static long inferHeads(GraphIndex g, Map<String, List<String>> linearOutputs, long hidden, int layers,
            String source) {
        TreeMap<Long, String> found = new TreeMap<>();
        for (int l = 0; l < layers; l++) {
            for (String proj : List.of("query", "key", "value")) {
                List<String> outs = linearOutputs.getOrDefault("encoder.layer." + l + ".attention.self." + proj + ".weight", List.of());
                Deque<Map.Entry<String, Integer>> queue = new ArrayDeque<>();
                outs.forEach(o -> queue.add(Map.entry(o, 0)));
                Set<String> seen = new HashSet<>();
                while (!queue.isEmpty()) {
                    Map.Entry<String, Integer> cur = queue.poll();
                    if (!seen.add(cur.getKey())) {
                        continue;
                    }
                    for (NodeProto c : g.consumers(cur.getKey())) {
                        if (GraphIndex.isOp(c, "Reshape") && c.getInputCount() == 2 && c.getInput(0).equals(cur.getKey())) {
                            Long h = headsFromShape(g, c.getInput(1), hidden);
                            if (h != null) {
                                found.putIfAbsent(h, "Reshape node '" + c.getName() + "'");
                            }
                        } else if (cur.getValue() < 3 && Set.of("Add", "Mul", "Div", "Cast", "Identity").contains(c.getOpType())) {
                            c.getOutputList().forEach(o -> queue.add(Map.entry(o, cur.getValue() + 1)));
                        }
                    }
                }
            }
        }
        if (found.isEmpty()) {
            throw new OnnxFormatException("ONNX file " + source + ": cannot infer num_attention_heads: no Reshape after the"
                    + " query/key/value projections has a constant [.., heads, head_dim] target shape with heads x head_dim = "
                    + hidden + " (BERT's transpose_for_scores). " + EXPORT_HINT);
        }
        if (found.size() > 1) {
            throw new OnnxFormatException("ONNX file " + source + ": attention Reshape nodes disagree on num_attention_heads: "
                    + found + "; a BertModel has one head count. " + EXPORT_HINT);
        }
        return found.firstKey();
    }

    private static Long headsFromShape(GraphIndex g, String shapeValue, long hidden) {
        List<Long> t = trailingConstants(g, shapeValue);
        int n = t.size();
        if (n < 2) {
            return null;
        }
        long h = t.get(n - 2);
        long d = t.get(n - 1);
        if (h > 0 && d > 0) {
            return h * d == hidden ? h : null;
        }
        if (h > 0 && d == -1) {
            return hidden % h == 0 ? h : null;
        }
        if (h == -1 && d > 0) {
            return hidden % d == 0 ? hidden / d : null;
        }
        return null;
    }

    /** Known trailing entries of a shape vector: a constant, or the constant tail of a Concat. */
    private static List<Long> trailingConstants(GraphIndex g, String value) {
        List<Long> whole = intConstant(g, value);
        if (whole != null) {
            return whole;
        }
        NodeProto p = g.producer(value);
        List<Long> tail = new ArrayList<>();
        if (p != null && GraphIndex.isOp(p, "Concat")) {
            for (int i = p.getInputCount() - 1; i >= 0; i--) {
                List<Long> piece = intConstant(g, p.getInput(i));
                if (piece == null) {
                    break;
                }
                tail.addAll(0, piece);
            }
        }
        return tail;
    }

    private static List<Long> intConstant(GraphIndex g, String value) {
        TensorProto c = g.constant(value);
        if (c == null || c.getDimsCount() > 1
                || (c.getDataType() != TensorProto.DataType.INT64_VALUE && c.getDataType() != TensorProto.DataType.INT32_VALUE)) {
            return null;
        }
        HostTensor t;
        try {
            t = OnnxTensors.toHostTensor(c, "<graph>");
        } catch (OnnxFormatException e) {
            return null;
        }
        List<Long> out = new ArrayList<>();
        for (int i = 0; i < t.numel(); i++) {
            out.add(t.dtype() == DType.I64 ? t.data().getLong(8 * i) : (long) t.data().getInt(4 * i));
        }
        return out;
    }

    /**
     * LayerNorm epsilon: {@code epsilon} attributes of (Skip/Embed)LayerNormalization nodes, or
     * the scalar added to a ReduceMean output in the decomposed form; all must agree.
     */
    private static double inferLayerNormEps(GraphIndex g, String source) {
        TreeMap<Double, String> found = new TreeMap<>();
        for (NodeProto n : g.graph.getNodeList()) {
            String op = n.getOpType();
            if (op.equals("LayerNormalization") || op.equals("SkipLayerNormalization") || op.equals("EmbedLayerNormalization")) {
                AttributeProto a = GraphIndex.attribute(n, "epsilon");
                float e = a == null ? 1e-5f : a.getF();
                found.putIfAbsent(Double.parseDouble(Float.toString(e)), op + " node '" + n.getName() + "'");
            } else if (GraphIndex.isOp(n, "Add") && n.getInputCount() == 2) {
                for (int i = 0; i < 2; i++) {
                    NodeProto p = g.producer(n.getInput(i));
                    if (p != null && GraphIndex.isOp(p, "ReduceMean")) {
                        Double e = floatScalar(g, n.getInput(1 - i));
                        if (e != null) {
                            found.putIfAbsent(e, "decomposed LayerNorm Add node '" + n.getName() + "'");
                        }
                    }
                }
            }
        }
        if (found.isEmpty()) {
            throw new OnnxFormatException("ONNX file " + source + ": cannot infer layer_norm_eps: no LayerNormalization node and no"
                    + " decomposed LayerNorm (Add of a scalar constant to a ReduceMean output) found. " + EXPORT_HINT);
        }
        if (found.size() > 1) {
            throw new OnnxFormatException("ONNX file " + source + ": LayerNorm epsilons disagree: " + found
                    + "; a BertModel config has one layer_norm_eps. " + EXPORT_HINT);
        }
        return found.firstKey();
    }

    /** A one-element floating-point constant as the shortest decimal of its stored precision, or null. */
    private static Double floatScalar(GraphIndex g, String value) {
        TensorProto c = g.constant(value);
        if (c == null) {
            return null;
        }
        Optional<DType> dt = OnnxTensors.dtypeOf(c.getDataType());
        if (dt.isEmpty() || !dt.get().isFloatingPoint()) {
            return null;
        }
        HostTensor t;
        try {
            t = OnnxTensors.toHostTensor(c, "<graph>");
        } catch (OnnxFormatException e) {
            return null;
        }
        if (t.numel() != 1) {
            return null;
        }
        return t.dtype() == DType.F64 ? t.data().getDouble(0) : Double.parseDouble(Float.toString(t.toFloatArray()[0]));
    }

    /** hidden_act from the activation ops outside the pooler. */
    private static String inferActivation(GraphProto graph, String source) {
        Set<String> ops = new HashSet<>();
        boolean tanhGelu = false;
        for (NodeProto n : graph.getNodeList()) {
            if (n.getName().contains("pooler")) {
                continue;
            }
            ops.add(n.getOpType());
            if (n.getOpType().equals("Gelu")) {
                AttributeProto a = GraphIndex.attribute(n, "approximate");
                tanhGelu |= a != null && a.getS().toStringUtf8().equals("tanh");
            }
        }
        if (ops.contains("Erf") || ops.contains("BiasGelu") || (ops.contains("Gelu") && !tanhGelu)) {
            return "gelu";
        }
        if (ops.contains("FastGelu") || ops.contains("Gelu") || ops.contains("Tanh")) {
            return "gelu_new";
        }
        if (ops.contains("Relu")) {
            return "relu";
        }
        throw new OnnxFormatException("ONNX file " + source + ": cannot infer hidden_act: no Erf/Gelu (gelu), Tanh/FastGelu"
                + " (gelu_new) or Relu node found in the encoder. " + EXPORT_HINT);
    }

    private static String torchDtype(DType d) {
        return switch (d) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            case F64 -> "float64";
            default -> throw new IllegalStateException("not a float dtype: " + d);
        };
    }
}
