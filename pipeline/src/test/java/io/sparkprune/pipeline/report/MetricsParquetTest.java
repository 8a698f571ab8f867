package io.sparkprune.pipeline.report;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.InvalidInputException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** metrics.parquet holds exactly the report's tensor entries; the footer has the documented schema. */
class MetricsParquetTest {
    @TempDir
    Path tmp;

    @Test
    void rowsRoundTripAndTheFooterHasTheSchema() throws Exception {
        ObjectNode r = Reports.encoder(2, 7);
        List<JsonNode> tensors = new ArrayList<>();
        r.get("tensors").forEach(tensors::add);
        org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(tmp.resolve("m.parquet").toUri());
        Configuration conf = new Configuration();
        MetricsParquet.write(tensors, file, conf);
        List<ObjectNode> back = MetricsParquet.read(file, conf);
        assertThat(back).hasSize(12);
        for (int i = 0; i < tensors.size(); i++) {
            assertThat(Reports.normalised(back.get(i))).as("row %d", i).isEqualTo(Reports.normalised(tensors.get(i)));
        }
        assertThat(back.get(4).has("dampening")).isFalse(); // null stays null
        try (ParquetFileReader pr = ParquetFileReader.open(HadoopInputFile.fromPath(file, conf))) {
            assertThat(pr.getRecordCount()).isEqualTo(12);
            MessageType s = pr.getFooter().getFileMetaData().getSchema();
            assertThat(s.getFieldCount()).isEqualTo(MetricsParquet.COLUMNS.size());
            assertThat(s.getType("sparsity").asPrimitiveType().getPrimitiveTypeName()).isEqualTo(PrimitiveTypeName.DOUBLE);
            assertThat(s.getType("zeros").asPrimitiveType().getPrimitiveTypeName()).isEqualTo(PrimitiveTypeName.INT64);
            assertThat(s.getType("tensor").getLogicalTypeAnnotation().toString()).isEqualTo("STRING");
        }
    }

    @Test
    void aMissingRequiredFieldIsNamed() {
        ObjectNode r = Reports.encoder(1, 8);
        ((ObjectNode) r.get("tensors").get(3)).remove("zeros");
        List<JsonNode> tensors = new ArrayList<>();
        r.get("tensors").forEach(tensors::add);
        org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(tmp.resolve("bad.parquet").toUri());
        assertThatThrownBy(() -> MetricsParquet.write(tensors, file, new Configuration()))
                .isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("tensors[3] (encoder.layer.0.attention.output.dense.weight): field zeros is missing");
        assertThat(tmp.resolve("bad.parquet")).doesNotExist();
    }
}
