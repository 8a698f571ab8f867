package io.sparkprune.pipeline.onnx;

import com.google.protobuf.ByteString;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.AtomicFile;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes (pruned) parameters back into the BERT-family ONNX graph they were imported from: the
 * inverse of {@link OnnxImporter}.
 *
 * <p>The template's {@link OnnxImporter#parameterMap parameter map} says, for each HF
 * {@code BertModel} parameter, which initializer holds it and whether it is stored transposed. For
 * each entry the exporter takes the tensor of that HF name (a source name with a module prefix such
 * as {@code bert.}, or legacy {@code LayerNorm.gamma/beta}, is matched the way the importer matches
 * initializer names), checks it against the initializer (same dtype; shape equal to the
 * initializer's {@code dims}, reversed for a transposed one), transposes MatMul weights back from
 * (out x in) to the (in x out) ONNX layout, and replaces the initializer's data by {@code raw_data}
 * (little-endian, the bytes of the tensor unchanged; typed {@code float_data}/... fields are cleared).
 * The initializer keeps its name, {@code dims}, {@code data_type} and {@code doc_string}. Every other
 * part of the {@code ModelProto} (IR version, opset imports, producer, metadata, graph inputs and
 * outputs, nodes, graph constants and unmapped initializers, unknown fields) is kept and
 * re-serialized unchanged, so exporting the imported tensors unchanged reproduces a template written
 * in field-number order (as the torch exporter and the onnx library write) byte for byte.
 *
 * <p>Source tensors that the graph does not use (e.g. a pooler the export dropped, a classifier
 * head, {@code position_ids}) are not written; {@link Result#unused()} lists them.
 */
public final class OnnxExporter {

    private static final Logger LOG = LoggerFactory.getLogger(OnnxExporter.class);

    /**
     * What an export did.
     *
     * @param model the model with the initializers replaced
     * @param replaced HF names of the parameters written, in template initializer order
     * @param unused source tensor names the template has no initializer for (not written)
     */
    public record Result(ModelProto model, List<String> replaced, List<String> unused) {
        /**
         * @throws NullPointerException when an argument is null
         */
        public Result {
            Objects.requireNonNull(model, "model");
            replaced = List.copyOf(replaced);
            unused = List.copyOf(unused);
        }
    }

    private OnnxExporter() {
    }

    /**
     * Replaces the template's parameter initializers by the given tensors.
     *
     * @param template the parsed ONNX model the tensors were imported from (not modified)
     * @param templateSource the template's file or label, for messages
     * @param tensors parameters under HF {@code BertModel} names, torch layout (Linear weights
     *     out x in), each in the dtype of the initializer it replaces
     * @return the new model, the parameters written and the source tensors not used
     * @throws OnnxFormatException when the template is not an importable BERT-family graph, or an
     *     initializer it maps has an unsupported element type or external data
     * @throws OnnxExportException when a parameter the template maps is missing from
     *     {@code tensors}, two source tensors carry the same parameter, or a tensor's dtype or shape
     *     differs from its initializer's
     * @throws io.sparkprune.kernels.InvalidInputException whatever {@code tensors.read} throws for
     *     malformed stored data
     */
    public static Result export(ModelProto template, String templateSource, DenseTensors tensors) {
        Objects.requireNonNull(template, "template");
        Objects.requireNonNull(tensors, "tensors");
        Map<String, OnnxParameter> params = OnnxImporter.parameterMap(template, templateSource);

        // source name -> HF parameter name, matched like initializer names
        Map<String, String> byParam = new HashMap<>();
        List<String> unused = new ArrayList<>();
        for (String name : tensors.names()) {
            String p = BertNames.parameterName(name);
            if (p == null || !params.containsKey(p)) {
                unused.add(name);
                continue;
            }
            String prev = byParam.putIfAbsent(p, name);
            if (prev != null) {
                throw new OnnxExportException(tensors.source() + ": tensors '" + prev + "' and '" + name + "' both carry the"
                        + " BertModel parameter '" + p + "' that ONNX template " + templateSource + " maps to one initializer."
                        + " Fix: convert a checkpoint that holds each parameter once");
            }
        }
        List<String> missing = new ArrayList<>();
        for (OnnxParameter op : params.values()) {
            if (!byParam.containsKey(op.hfName())) {
                missing.add(op.hfName() + " (" + op.initializer() + ")");
            }
        }
        if (!missing.isEmpty()) {
            throw new OnnxExportException(tensors.source() + " lacks " + missing.size() + " parameter(s) that ONNX template "
                    + templateSource + " needs: " + (missing.size() > 12 ? missing.subList(0, 12) + " ..." : missing)
                    + ". Fix: pass as --onnx-template the ONNX file this checkpoint was imported from (same architecture and"
                    + " size), and a checkpoint holding every BertModel parameter");
        }

        GraphProto graph = template.getGraph();
        Map<String, Integer> initIndex = new HashMap<>();
        for (int i = 0; i < graph.getInitializerCount(); i++) {
            initIndex.putIfAbsent(graph.getInitializer(i).getName(), i);
        }
        // check every shape and dtype before reading any data
        for (OnnxParameter op : params.values()) {
            check(op, graph.getInitializer(initIndex.get(op.initializer())), byParam.get(op.hfName()), tensors, templateSource);
        }
        GraphProto.Builder gb = graph.toBuilder();
        List<String> replaced = new ArrayList<>();
        for (int i = 0; i < graph.getInitializerCount(); i++) {
            TensorProto init = graph.getInitializer(i);
            for (OnnxParameter op : params.values()) {
                if (!op.initializer().equals(init.getName())) {
                    continue;
                }
                String srcName = byParam.get(op.hfName());
                HostTensor t = tensors.read(srcName);
                HostTensor stored = op.transposed() ? OnnxTensors.transpose2d(t) : t;
                gb.setInitializer(i, init.toBuilder()
                        .clearFloatData().clearDoubleData().clearInt32Data().clearInt64Data().clearUint64Data()
                        .setRawData(ByteString.copyFrom(stored.data().duplicate()))
                        .build());
                replaced.add(op.hfName());
                break;
            }
        }
        if (!unused.isEmpty()) {
            LOG.warn("{}: {} tensor(s) have no initializer in ONNX template {} and are not exported: {}", tensors.source(),
                    unused.size(), templateSource, unused.size() > 12 ? unused.subList(0, 12) + " ..." : unused);
        }
        return new Result(template.toBuilder().setGraph(gb).build(), replaced, unused);
    }

    private static void check(OnnxParameter op, TensorProto init, String srcName, DenseTensors tensors, String templateSource) {
        String what = "tensor '" + srcName + "' (BertModel parameter '" + op.hfName() + "', ONNX " + op.describe() + ")";
        DType want = OnnxTensors.dtypeOf(init.getDataType()).orElseThrow(() -> new OnnxFormatException("ONNX template "
                + templateSource + ": initializer '" + init.getName() + "' has element type "
                + OnnxTensors.typeName(init.getDataType()) + ", which SparkPrune cannot write. Fix: use a float32 export as"
                + " the template"));
        if (init.getDataLocation() == TensorProto.DataLocation.EXTERNAL || init.getExternalDataCount() > 0) {
            throw new OnnxFormatException("ONNX template " + templateSource + ": initializer '" + init.getName() + "' keeps its"
                    + " data in an external file; SparkPrune writes only self-contained ONNX files. Fix: re-save the template"
                    + " with onnx.save_model(m, path, save_as_external_data=False)");
        }
        long[] dims = init.getDimsList().stream().mapToLong(Long::longValue).toArray();
        long[] expected = dims.clone();
        if (op.transposed()) {
            if (dims.length != 2) {
                throw new OnnxFormatException("ONNX template " + templateSource + ": MatMul weight '" + init.getName()
                        + "' has dims " + Arrays.toString(dims) + ", expected rank 2");
            }
            expected = new long[] {dims[1], dims[0]};
        }
        DType got = tensors.dtype(srcName);
        long[] shape = tensors.shape(srcName);
        if (got != want) {
            throw new OnnxExportException(tensors.source() + ": " + what + " has dtype " + got + ", the template stores "
                    + want + ". The exporter keeps the template's dtypes. Fix: convert a checkpoint in " + want
                    + " (the dtype the model was imported in), or use a template exported in " + got);
        }
        if (!Arrays.equals(shape, expected)) {
            throw new OnnxExportException(tensors.source() + ": " + what + " has shape " + Arrays.toString(shape)
                    + ", the template needs " + Arrays.toString(expected)
                    + (op.transposed() ? " (out x in; stored transposed as " + Arrays.toString(dims) + ")" : "")
                    + ". Fix: pass as --onnx-template the ONNX file this checkpoint was imported from");
        }
    }

    /**
     * Writes a model to a file all-or-nothing: the bytes go to a hidden sibling
     * {@code .<name>.tmp-<nanos>}, which is renamed onto {@code file} only once complete (replacing
     * nothing: the file must not exist).
     *
     * @param model the model to write
     * @param file the {@code .onnx} file to create; its directory must exist
     * @throws io.sparkprune.kernels.InvalidInputException when {@code file} already exists
     * @throws UncheckedIOException when writing or renaming fails (nothing is left behind)
     */
    public static void write(ModelProto model, Path file) {
        AtomicFile.write(file, false, tmp -> {
            try (OutputStream out = Files.newOutputStream(tmp)) {
                model.writeTo(out);
            }
        });
    }
}
