package io.sparkprune.pipeline.forward;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/** Java serialization of activations (how Spark caches and ships them): exact round trip through the bulk proxy. */
class HiddenStatesSerializationTest {

    @Test
    void roundTripKeepsLayoutWidthAndEveryValue() throws Exception {
        SequenceLayout layout = SequenceLayout.ofLengths(7, 1, 300);
        int width = 96;
        float[] data = new float[layout.tokens() * width];
        SplittableRandom r = new SplittableRandom(5);
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) r.nextGaussian();
        }
        HiddenStates h = new HiddenStates(layout, width, data);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(h);
            out.writeObject(h); // a back reference resolves to the same value
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            HiddenStates back = (HiddenStates) in.readObject();
            assertThat(back.width()).isEqualTo(width);
            assertThat(back.tokens()).isEqualTo(layout.tokens());
            assertThat(back.layout().tokens()).isEqualTo(layout.tokens());
            assertThat(back.data()).containsExactly(data);
            assertThat(in.readObject()).isSameAs(back);
        }
        // the values travel as 4 bytes each plus a small header, not as per-element records
        assertThat(bytes.size()).isLessThan(2 * 4 * data.length + 4096);
    }
}
