package io.sparkprune.pipeline.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** Parses published config.json files (copied from their Hugging Face model cards) and bad ones. */
class ModelConfigsTest {

    private static ModelConfig resource(String name) throws IOException {
        try (InputStream in = ModelConfigsTest.class.getResourceAsStream("/configs/" + name)) {
            return ModelConfigs.parse(in.readAllBytes(), name);
        }
    }

    private static ModelConfig json(String json) {
        return ModelConfigs.parse(json.getBytes(StandardCharsets.UTF_8), "test/config.json");
    }

    @Test
    void miniLmIsTheDefaultBert() throws IOException {
        BertConfig c = (BertConfig) resource("all-minilm-l6-v2.json");
        assertThat(c.family()).isEqualTo(ModelFamily.BERT);
        assertThat(c.numHiddenLayers()).isEqualTo(6);
        assertThat(c.hiddenSize()).isEqualTo(384);
        assertThat(c.numAttentionHeads()).isEqualTo(12);
        assertThat(c.headDim()).isEqualTo(32);
        assertThat(c.intermediateSize()).isEqualTo(1536);
        assertThat(c.vocabSize()).isEqualTo(30522);
        assertThat(c.maxPositionEmbeddings()).isEqualTo(512);
        assertThat(c.typeVocabSize()).isEqualTo(2);
        assertThat(c.layerNormEps()).isEqualTo(1e-12);
    }

    @Test
    void llama31HasGqaAndLlama3Rope() throws IOException {
        LlamaConfig c = (LlamaConfig) resource("llama-3.1-8b.json");
        assertThat(c.numKeyValueHeads()).isEqualTo(8);
        assertThat(c.headsPerKvHead()).isEqualTo(4);
        assertThat(c.headDim()).isEqualTo(128);
        assertThat(c.rope()).isEqualTo(new RopeScaling("llama3", 500000.0, 8.0, 1.0, 4.0, 8192));
        assertThat(c.tieWordEmbeddings()).isFalse();
        assertThat(c.qkvBias()).isFalse();
        assertThat(c.rmsNormEps()).isEqualTo(1e-5);
        assertThat(c.torchDtype()).isEqualTo("bfloat16");
    }

    @Test
    void transformers5RopeParametersForm() throws IOException {
        LlamaConfig c = (LlamaConfig) resource("llama-transformers5-rope-parameters.json");
        assertThat(c.rope()).isEqualTo(new RopeScaling("llama3", 500000.0, 32.0, 1.0, 4.0, 8192));
        assertThat(c.headDim()).isEqualTo(64);
        assertThat(c.tieWordEmbeddings()).isTrue();
        assertThat(c.torchDtype()).isEqualTo("bfloat16");
        LlamaConfig plain = (LlamaConfig) json("{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                + "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100,"
                + "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":123.0}}");
        assertThat(plain.rope()).isEqualTo(RopeScaling.plain(123.0));
    }

    @Test
    void qwen2HasQkvBiasAndNoWindowUnlessEnabled() throws IOException {
        LlamaConfig c = (LlamaConfig) resource("qwen2-0.5b.json");
        assertThat(c.modelType()).isEqualTo("qwen2");
        assertThat(c.qkvBias()).isTrue();
        assertThat(c.oBias()).isFalse();
        assertThat(c.numKeyValueHeads()).isEqualTo(2);
        assertThat(c.headDim()).isEqualTo(64);
        assertThat(c.tieWordEmbeddings()).isTrue();
        assertThat(c.slidingWindow()).isZero();
        assertThat(c.rope()).isEqualTo(RopeScaling.plain(1_000_000.0));
    }

    @Test
    void mistralSlidingWindow() throws IOException {
        LlamaConfig c = (LlamaConfig) resource("mistral-7b-v0.1.json");
        assertThat(c.slidingWindow()).isEqualTo(4096);
        assertThat(c.qkvBias()).isFalse();
        assertThat(c.maxPositionEmbeddings()).isEqualTo(32768);
    }

    @Test
    void llamaAttentionBiasAppliesToAllProjections() {
        LlamaConfig c = (LlamaConfig) json("{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                + "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":100,\"attention_bias\":true}");
        assertThat(c.qkvBias()).isTrue();
        assertThat(c.oBias()).isTrue();
        assertThat(c.numKeyValueHeads()).isEqualTo(4);
        assertThat(c.rope()).isEqualTo(RopeScaling.plain(10000.0));
    }

    @Test
    void unknownModelTypeListsSupported() {
        assertThatThrownBy(() -> json("{\"model_type\":\"gpt2\"}"))
                .isInstanceOf(ModelConfigException.class)
                .hasMessageContaining("test/config.json")
                .hasMessageContaining("gpt2")
                .hasMessageContaining("[llama, mistral, qwen2, bert]");
        assertThatThrownBy(() -> json("{\"hidden_size\":1}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("no \"model_type\"");
    }

    @Test
    void badValuesNameTheKey() {
        String base = "\"model_type\":\"llama\",\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":100";
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":64,\"num_attention_heads\":4,\"num_key_value_heads\":3}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("num_key_value_heads (3)");
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":-64,\"num_attention_heads\":4}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("\"hidden_size\" must be an integer >= 1");
        assertThatThrownBy(() -> json("{" + base + ",\"num_attention_heads\":4}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("missing required key \"hidden_size\"");
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":66,\"num_attention_heads\":4}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("set \"head_dim\"");
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("unsupported rope_type \"yarn\"");
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("rope_scaling.low_freq_factor");
        assertThatThrownBy(() -> json("{\"model_type\":\"bert\",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"num_hidden_layers\":2,\"intermediate_size\":128,\"vocab_size\":100,\"hidden_act\":\"relu\"}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("hidden_act \"relu\"");
        assertThatThrownBy(() -> json("{" + base + ",\"hidden_size\":64,\"num_attention_heads\":4,\"hidden_act\":\"gelu\"}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("hidden_act \"gelu\" for llama");
        assertThatThrownBy(() -> json("{\"model_type\":\"bert\",\"model_type\":\"llama\"}"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("malformed JSON");
        assertThatThrownBy(() -> json("[1,2]")).isInstanceOf(ModelConfigException.class);
        assertThatThrownBy(() -> json("{\"model_type\":")).isInstanceOf(ModelConfigException.class);
    }

    @Test
    void transformers5FixtureConfigsParse() throws IOException {
        LlamaConfig gqa = (LlamaConfig) resource("../fixtures/llama/llama-gqa-tied/config.json");
        assertThat(gqa.numKeyValueHeads()).isEqualTo(2);
        assertThat(gqa.tieWordEmbeddings()).isTrue();
        assertThat(gqa.rope()).isEqualTo(RopeScaling.plain(10000.0));
        LlamaConfig qwen = (LlamaConfig) resource("../fixtures/llama/qwen2-bias/config.json");
        assertThat(qwen.qkvBias()).isTrue();
        assertThat(qwen.rope()).isEqualTo(RopeScaling.plain(1_000_000.0));
        assertThat(qwen.slidingWindow()).isZero();
        LlamaConfig l3 = (LlamaConfig) resource("../fixtures/llama/llama3-rope/config.json");
        assertThat(l3.rope()).isEqualTo(new RopeScaling("llama3", 500000.0, 8.0, 1.0, 4.0, 64));
        assertThat(l3.torchDtype()).isEqualTo("float32");
    }
}
