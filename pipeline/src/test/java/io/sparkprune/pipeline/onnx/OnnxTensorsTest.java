package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Decoding of raw and typed TensorProto fields against hand-written values. */
class OnnxTensorsTest {

    @Test
    void rawAndTypedFloatsDecodeToTheSameValues() {
        float[] v = {1.5f, -0.0f, Float.MIN_VALUE, 3.0e38f, -2.25f, 7f};
        ByteBuffer raw = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            raw.putFloat(f);
        }
        TensorProto r = TensorProto.newBuilder().setName("r").setDataType(1).addDims(2).addDims(3)
                .setRawData(ByteString.copyFrom(raw.array())).build();
        TensorProto.Builder tb = TensorProto.newBuilder().setName("t").setDataType(1).addDims(2).addDims(3);
        for (float f : v) {
            tb.addFloatData(f);
        }
        HostTensor a = OnnxTensors.toHostTensor(r, "x.onnx");
        HostTensor b = OnnxTensors.toHostTensor(tb.build(), "x.onnx");
        assertThat(a.dtype()).isEqualTo(DType.F32);
        assertThat(a.shape()).containsExactly(2, 3);
        assertThat(a).isEqualTo(b);
        for (int i = 0; i < v.length; i++) {
            assertThat(Float.floatToRawIntBits(a.toFloatArray()[i])).isEqualTo(Float.floatToRawIntBits(v[i]));
        }
    }

    @Test
    void typedIntegerAndHalfFieldsDecode() {
        HostTensor i64 = OnnxTensors.toHostTensor(TensorProto.newBuilder().setDataType(7).addDims(3)
                .addInt64Data(0).addInt64Data(-1).addInt64Data(Long.MAX_VALUE).build(), "x");
        assertThat(i64.dtype()).isEqualTo(DType.I64);
        assertThat(i64.data().getLong(8)).isEqualTo(-1L);
        assertThat(i64.data().getLong(16)).isEqualTo(Long.MAX_VALUE);

        // FLOAT16 values travel as bit patterns in int32_data: 0x3C00 = 1.0, 0xC000 = -2.0.
        HostTensor f16 = OnnxTensors.toHostTensor(TensorProto.newBuilder().setDataType(10).addDims(2)
                .addInt32Data(0x3C00).addInt32Data(0xC000).build(), "x");
        assertThat(f16.dtype()).isEqualTo(DType.F16);
        assertThat(f16.toFloatArray()).containsExactly(1.0f, -2.0f);

        HostTensor i8 = OnnxTensors.toHostTensor(TensorProto.newBuilder().setDataType(3).addDims(2)
                .addInt32Data(-128).addInt32Data(127).build(), "x");
        assertThat(i8.data().get(0)).isEqualTo((byte) -128);
        assertThat(i8.data().get(1)).isEqualTo((byte) 127);

        HostTensor d = OnnxTensors.toHostTensor(TensorProto.newBuilder().setDataType(11).addDoubleData(0.1).build(), "x");
        assertThat(d.shape()).isEmpty();
        assertThat(d.data().getDouble(0)).isEqualTo(0.1);
    }

    @Test
    void unsupportedTypeAndWrongCountsAreTypedErrors() {
        assertThatThrownBy(() -> OnnxTensors.toHostTensor(TensorProto.newBuilder().setName("s").setDataType(8)
                .addStringData(ByteString.copyFromUtf8("a")).build(), "x.onnx"))
                .isInstanceOf(OnnxFormatException.class).hasMessageContaining("'s'").hasMessageContaining("STRING");
        assertThatThrownBy(() -> OnnxTensors.toHostTensor(TensorProto.newBuilder().setName("f").setDataType(1).addDims(3)
                .addFloatData(1f).build(), "x.onnx"))
                .isInstanceOf(OnnxFormatException.class).hasMessageContaining("needs 3 values, found 1 in float_data");
        assertThatThrownBy(() -> OnnxTensors.toHostTensor(TensorProto.newBuilder().setName("n").setDataType(1).addDims(-2)
                .build(), "x.onnx"))
                .isInstanceOf(OnnxFormatException.class).hasMessageContaining("negative dimension");
    }

    @Test
    void toTensorProtoRoundTrips() {
        HostTensor t = HostTensor.fromFloats(DType.BF16, new long[] {2, 2}, new float[] {1f, -0.5f, 2f, 0f});
        TensorProto p = OnnxTensors.toTensorProto("w", t);
        assertThat(p.getName()).isEqualTo("w");
        assertThat(p.getDataType()).isEqualTo(TensorProto.DataType.BFLOAT16_VALUE);
        assertThat(p.getDimsList()).containsExactly(2L, 2L);
        assertThat(OnnxTensors.toHostTensor(p, "x")).isEqualTo(t);
    }

    @Test
    void transpose2dMovesBitsExactly() {
        float nan = Float.intBitsToFloat(0x7FC0_1234);
        HostTensor t = HostTensor.fromFloats(DType.F32, new long[] {2, 3}, new float[] {1, 2, 3, -0.0f, nan, 6});
        HostTensor tt = OnnxTensors.transpose2d(t);
        assertThat(tt.shape()).containsExactly(3, 2);
        int[] bits = new int[6];
        for (int i = 0; i < 6; i++) {
            bits[i] = tt.data().getInt(4 * i);
        }
        assertThat(bits).containsExactly(Float.floatToRawIntBits(1), Float.floatToRawIntBits(-0.0f),
                Float.floatToRawIntBits(2), 0x7FC0_1234, Float.floatToRawIntBits(3), Float.floatToRawIntBits(6));
        HostTensor h = HostTensor.fromFloats(DType.F16, new long[] {1, 3}, new float[] {1, 2, 3});
        assertThat(OnnxTensors.transpose2d(h).toFloatArray()).containsExactly(1, 2, 3);
        assertThat(OnnxTensors.transpose2d(h).shape()).containsExactly(3, 1);
    }
}
