package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.InvalidInputException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.hadoop.util.HadoopOutputFile;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type.Repetition;
import org.apache.parquet.schema.Types;

/**
 * {@code metrics.parquet}: the report's {@code tensors} array as a Parquet table, one row per
 * pruned tensor, one column per field of {@link #COLUMNS} with the same name, value and unit as in
 * report.json ({@code docs/report.md}). Optional fields that a report leaves out (e.g. the
 * reconstruction error in a {@code validate} report, which has no calibration inputs) are null.
 * Written with parquet-java's example object model ({@link ExampleParquetWriter}), uncompressed
 * (the table is small), readable by Spark ({@code spark.read.parquet}), pandas or DuckDB.
 */
public final class MetricsParquet {

    /** Column types; each maps to one Parquet primitive type. */
    public enum Kind {
        /** 32-bit signed integer, Parquet INT32. */
        INT,
        /** 64-bit signed integer, Parquet INT64. */
        LONG,
        /** IEEE double, Parquet DOUBLE. */
        DOUBLE,
        /** Parquet BOOLEAN. */
        BOOLEAN,
        /** UTF-8 text, Parquet BINARY annotated STRING. */
        STRING
    }

    /**
     * One column.
     *
     * @param name the column name, also the field name in report.json
     * @param kind its type
     * @param required true when every row has a value (the column is REQUIRED, else OPTIONAL)
     */
    public record Column(String name, Kind kind, boolean required) {
    }

    /** The columns, in order. */
    public static final List<Column> COLUMNS = List.of(
            new Column("layer", Kind.INT, true),
            new Column("tensor", Kind.STRING, true),
            new Column("group", Kind.STRING, false),
            new Column("rows", Kind.LONG, true),
            new Column("cols", Kind.LONG, true),
            new Column("dtype", Kind.STRING, true),
            new Column("method", Kind.STRING, false),
            new Column("pattern", Kind.STRING, true),
            new Column("elements", Kind.LONG, true),
            new Column("zeros", Kind.LONG, true),
            new Column("sparsity", Kind.DOUBLE, true),
            new Column("pattern_violations", Kind.LONG, true),
            new Column("pattern_verified", Kind.BOOLEAN, true),
            new Column("all_finite", Kind.BOOLEAN, true),
            new Column("quantization_grid_violations", Kind.LONG, false),
            new Column("quantization_grid_verified", Kind.BOOLEAN, false),
            new Column("relative_reconstruction_error", Kind.DOUBLE, false),
            new Column("solver_loss", Kind.DOUBLE, false),
            new Column("row_loss_min", Kind.DOUBLE, false),
            new Column("row_loss_p50", Kind.DOUBLE, false),
            new Column("row_loss_p90", Kind.DOUBLE, false),
            new Column("row_loss_max", Kind.DOUBLE, false),
            new Column("row_loss_mean", Kind.DOUBLE, false),
            new Column("calibration_tokens", Kind.LONG, false),
            new Column("dampening", Kind.DOUBLE, false),
            new Column("dead_inputs", Kind.LONG, false),
            new Column("shards", Kind.INT, false),
            new Column("seconds", Kind.DOUBLE, false),
            new Column("backend", Kind.STRING, false),
            new Column("bytes_dense", Kind.LONG, true));

    /** The Parquet schema of {@link #COLUMNS}, message name {@code tensor_metrics}. */
    public static final MessageType SCHEMA = schema();

    private MetricsParquet() {
    }

    private static MessageType schema() {
        Types.MessageTypeBuilder b = Types.buildMessage();
        for (Column c : COLUMNS) {
            Repetition rep = c.required() ? Repetition.REQUIRED : Repetition.OPTIONAL;
            switch (c.kind()) {
                case INT -> b.primitive(PrimitiveTypeName.INT32, rep).named(c.name());
                case LONG -> b.primitive(PrimitiveTypeName.INT64, rep).named(c.name());
                case DOUBLE -> b.primitive(PrimitiveTypeName.DOUBLE, rep).named(c.name());
                case BOOLEAN -> b.primitive(PrimitiveTypeName.BOOLEAN, rep).named(c.name());
                case STRING -> b.primitive(PrimitiveTypeName.BINARY, rep).as(LogicalTypeAnnotation.stringType()).named(c.name());
                default -> throw new IllegalStateException(c.kind().toString());
            }
        }
        return b.named("tensor_metrics");
    }

    /**
     * Writes the rows to {@code file}, replacing it.
     *
     * @param tensors the report's {@code tensors} entries (JSON objects)
     * @param file target path (local or any Hadoop file system)
     * @param conf Hadoop configuration
     * @throws InvalidInputException when an entry lacks a required field or a value has the wrong
     *     JSON type (the message names the tensor and the field)
     * @throws IOException when the file cannot be written
     */
    public static void write(List<? extends JsonNode> tensors, Path file, Configuration conf) throws IOException {
        SimpleGroupFactory f = new SimpleGroupFactory(SCHEMA);
        List<Group> rows = new ArrayList<>(tensors.size());
        for (int i = 0; i < tensors.size(); i++) {
            JsonNode t = tensors.get(i);
            String label = "tensors[" + i + "]" + (t.hasNonNull("tensor") ? " (" + t.get("tensor").asText() + ")" : "");
            Group g = f.newGroup();
            for (Column c : COLUMNS) {
                JsonNode v = t.get(c.name());
                if (v == null || v.isNull()) {
                    if (c.required()) {
                        throw new InvalidInputException(label + ": field " + c.name() + " is missing; every tensor entry "
                                + "of a " + ReportFormat.FORMAT + " report has it (docs/report.md)");
                    }
                    continue;
                }
                boolean ok = switch (c.kind()) {
                    case INT, LONG -> v.isIntegralNumber();
                    case DOUBLE -> v.isNumber();
                    case BOOLEAN -> v.isBoolean();
                    case STRING -> v.isTextual();
                };
                if (!ok) {
                    throw new InvalidInputException(label + ": field " + c.name() + " is " + v.getNodeType()
                            + " '" + v.asText() + "', expected " + c.kind());
                }
                switch (c.kind()) {
                    case INT -> g.add(c.name(), v.intValue());
                    case LONG -> g.add(c.name(), v.longValue());
                    case DOUBLE -> g.add(c.name(), v.doubleValue());
                    case BOOLEAN -> g.add(c.name(), v.booleanValue());
                    case STRING -> g.add(c.name(), v.textValue());
                    default -> throw new IllegalStateException(c.kind().toString());
                }
            }
            rows.add(g);
        }
        try (ParquetWriter<Group> w = ExampleParquetWriter.builder(HadoopOutputFile.fromPath(file, conf))
                .withType(SCHEMA).withConf(conf).withWriteMode(ParquetFileWriter.Mode.OVERWRITE)
                .withCompressionCodec(CompressionCodecName.UNCOMPRESSED).build()) {
            for (Group g : rows) {
                w.write(g);
            }
        }
    }

    /**
     * Reads a metrics.parquet back into JSON objects (absent optional values are left out).
     *
     * @param file the file
     * @param conf Hadoop configuration
     * @return one object per row, in file order
     * @throws IOException when it cannot be read
     */
    public static List<ObjectNode> read(Path file, Configuration conf) throws IOException {
        List<ObjectNode> out = new ArrayList<>();
        try (ParquetReader<Group> r = ParquetReader.builder(new GroupReadSupport(), file).withConf(conf).build()) {
            for (Group g = r.read(); g != null; g = r.read()) {
                ObjectNode n = JsonNodeFactory.instance.objectNode();
                for (Column c : COLUMNS) {
                    if (g.getType().containsField(c.name()) && g.getFieldRepetitionCount(c.name()) > 0) {
                        switch (c.kind()) {
                            case INT -> n.put(c.name(), g.getInteger(c.name(), 0));
                            case LONG -> n.put(c.name(), g.getLong(c.name(), 0));
                            case DOUBLE -> n.put(c.name(), g.getDouble(c.name(), 0));
                            case BOOLEAN -> n.put(c.name(), g.getBoolean(c.name(), 0));
                            case STRING -> n.put(c.name(), g.getString(c.name(), 0));
                            default -> throw new IllegalStateException(c.kind().toString());
                        }
                    }
                }
                out.add(n);
            }
        }
        return out;
    }
}
