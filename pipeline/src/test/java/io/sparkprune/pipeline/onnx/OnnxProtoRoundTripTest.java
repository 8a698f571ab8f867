package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.UnknownFieldSet;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/** Fields this schema does not know (from a newer ONNX) survive parse → serialize unchanged. */
class OnnxProtoRoundTripTest {

    @Test
    void unknownFieldsAtTopLevelAndInsideInitializersSurvive() throws IOException {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "embeddings.LayerNorm.bias");
        UnknownFieldSet extra = UnknownFieldSet.newBuilder()
                .addField(1000, UnknownFieldSet.Field.newBuilder().addVarint(42).build()).build();
        TensorProto tagged = m.getGraph().getInitializer(i).toBuilder().setUnknownFields(extra).build();
        ModelProto nested = m.toBuilder().setGraph(m.getGraph().toBuilder().setInitializer(i, tagged)).build();

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        nested.writeTo(bytes);
        CodedOutputStream tail = CodedOutputStream.newInstance(bytes);
        tail.writeString(2000, "future top-level field"); // not in the schema
        tail.flush();
        byte[] original = bytes.toByteArray();

        ModelProto parsed = OnnxImporter.parseModel(new ByteArrayInputStream(original), "mem");

        assertThat(parsed.getUnknownFields().hasField(2000)).isTrue();
        assertThat(parsed.getGraph().getInitializer(i).getUnknownFields().getField(1000).getVarintList()).containsExactly(42L);
        assertThat(parsed.toByteArray()).isEqualTo(original);
    }
}
