package io.sparkprune.jobs.commit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** File names of shards and layer directories. */
class ShardNamesTest {

    @Test
    void plainTensorNamesStayReadable() {
        assertThat(ShardNames.fileName("model.layers.3.mlp.down_proj.weight", 1, 4))
                .isEqualTo("model.layers.3.mlp.down_proj.weight.shard-00001-of-00004.bin");
    }

    @Test
    void otherBytesAndReservedLeadingCharactersArePercentEncoded() {
        assertThat(ShardNames.encode("a/b:c")).isEqualTo("a%2Fb%3Ac");
        assertThat(ShardNames.encode("_tmp-x")).isEqualTo("%5Ftmp-x");
        assertThat(ShardNames.encode(".hidden")).isEqualTo("%2Ehidden");
        assertThat(ShardNames.encode("100%")).isEqualTo("100%25");
        assertThat(ShardNames.encode("é")).isEqualTo("%C3%A9");
    }

    @Test
    void distinctTensorsGetDistinctFiles() {
        List<String> names = List.of("a/b", "a%2Fb", "a_b", "_a", "%5Fa", "a.b", "a b", "a+b", "A/B", "a//b");
        Set<String> files = new HashSet<>();
        for (String n : names) {
            files.add(ShardNames.fileName(n, 0, 1));
        }
        assertThat(files).hasSameSizeAs(names);
        assertThat(files).allSatisfy(f -> assertThat(f).matches("[A-Za-z0-9%][A-Za-z0-9._%-]*"));
    }

    @Test
    void layerDirectoriesRoundTrip() {
        assertThat(ShardNames.layerDir(12)).isEqualTo("layer-00012");
        assertThat(ShardNames.parseLayerDir("layer-00012")).isEqualTo(12);
        assertThat(ShardNames.parseLayerDir("layer-12")).isEqualTo(-1);
        assertThat(ShardNames.parseLayerDir("_tmp-layer-00012")).isEqualTo(-1);
        assertThatThrownBy(() -> ShardNames.layerDir(-1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void outOfRangeShardsAreRejected() {
        assertThatThrownBy(() -> ShardNames.fileName("w", 2, 2)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ShardNames.fileName("w", 0, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ShardNames.fileName("", 0, 1)).isInstanceOf(IllegalArgumentException.class);
    }
}
