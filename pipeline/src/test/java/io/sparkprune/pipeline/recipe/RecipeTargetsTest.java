package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

import org.junit.jupiter.api.Test;

/** Target selection on real tensor names of the Llama and BERT families. */
class RecipeTargetsTest {

    private static final List<String> LLAMA_LINEAR = List.of(
            "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
            "model.layers.31.mlp.gate_proj.weight", "model.layers.31.mlp.up_proj.weight",
            "model.layers.31.mlp.down_proj.weight");
    private static final List<String> BERT_LINEAR = List.of(
            "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.weight",
            "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.output.dense.weight",
            "encoder.layer.5.intermediate.dense.weight", "encoder.layer.5.output.dense.weight",
            "bert.encoder.layer.11.output.dense.weight");

    @Test
    void defaultsSelectBlockLinearWeightsOfBothFamilies() {
        Recipe r = Recipe.defaults();
        for (String n : LLAMA_LINEAR) {
            assertThat(r.isTarget(n)).as(n).isTrue();
        }
        for (String n : BERT_LINEAR) {
            assertThat(r.isTarget(n)).as(n).isTrue();
        }
    }

    @Test
    void defaultsLeaveOutHeadsEmbeddingsBiasesAndTensorsOutsideBlocks() {
        Recipe r = Recipe.defaults();
        for (String n : List.of("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight",
                "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.LayerNorm.weight", "pooler.dense.weight", "model.layers.0.self_attn.q_proj.bias",
                "encoder.layer.0.attention.self.query.bias", "model.layers.0.mlp.down_proj.weight_scale",
                "model.layers.x.mlp.down_proj.weight")) {
            assertThat(r.isTarget(n)).as(n).isFalse();
        }
        // 1-D norm weights inside blocks match the name pattern; the job drops them as not 2-D
        assertThat(r.isTarget("model.layers.0.input_layernorm.weight")).isTrue();
        assertThat(r.prune().selector().isIgnored("lm_head.weight")).isTrue();
    }

    @Test
    void regexesMatchFromTheStartOfTheTensorOrModuleName() {
        TensorSelector s = TensorSelector.of(List.of("re:.*(q|k|v)_proj$", "re:model\\.layers\\.1\\."),
                List.of("model.layers.1.mlp.up_proj", "re:.*\\.31\\."), "t.yaml", "prune");
        // '$' anchors at the end of the module name (tensor name minus .weight), as in llm-compressor
        assertThat(s.isTarget("model.layers.0.self_attn.q_proj.weight")).isTrue();
        assertThat(s.isTarget("model.layers.0.self_attn.v_proj.weight")).isTrue();
        assertThat(s.isTarget("model.layers.0.self_attn.o_proj.weight")).isFalse();
        assertThat(s.isTarget("model.layers.0.self_attn.q_proj.bias")).isFalse();
        // a regex without '$' is a prefix match (Python re.match), anchored at the start
        assertThat(s.isTarget("model.layers.1.mlp.down_proj.weight")).isTrue();
        assertThat(s.isTarget("xmodel.layers.1.mlp.down_proj.weight")).isFalse();
        // exact names match the tensor or its module name
        assertThat(s.isTarget("model.layers.1.mlp.up_proj.weight")).isFalse();
        assertThat(s.isTarget("model.layers.31.self_attn.k_proj.weight")).isFalse();
        assertThat(s.isIgnored("model.layers.31.self_attn.k_proj.weight")).isTrue();
    }

    @Test
    void exactNamesNeedTheWholeName() {
        TensorSelector s = TensorSelector.of(List.of("model.layers.0.mlp.up_proj.weight", "lm_head"), List.of(),
                "t.yaml", "prune");
        assertThat(s.isTarget("model.layers.0.mlp.up_proj.weight")).isTrue();
        assertThat(s.isTarget("lm_head.weight")).isTrue();
        assertThat(s.isTarget("model.layers.0.mlp.up_proj.weight2")).isFalse();
        assertThat(s.isTarget("model.layers.10.mlp.up_proj.weight")).isFalse();
        assertThat(s.isTarget("model.lm_head.weight")).isFalse();
    }

    @Test
    void recipeTargetsComeFromTheFile() {
        Recipe r = Recipe.parse("""
                prune:
                  targets: ['re:.*mlp\\.(gate|up|down)_proj\\.weight$']
                  ignore: ['re:model\\.layers\\.0\\.']
                """, "mlp.yaml");
        assertThat(r.isTarget("model.layers.3.mlp.gate_proj.weight")).isTrue();
        assertThat(r.isTarget("model.layers.0.mlp.gate_proj.weight")).isFalse();
        assertThat(r.isTarget("model.layers.3.self_attn.q_proj.weight")).isFalse();
        // ignore replaces the default list: lm_head is then selected only if a target names it
        assertThat(r.prune().selector().ignore()).containsExactly("re:model\\.layers\\.0\\.");
        assertThat(r.isTarget("lm_head.weight")).isFalse();
    }

    @Test
    void equalityIsByTheEntries() {
        assertThat(TensorSelector.of(TensorSelector.DEFAULT_TARGETS, TensorSelector.DEFAULT_IGNORE, "a", "x"))
                .isEqualTo(TensorSelector.defaults()).hasSameHashCodeAs(TensorSelector.defaults());
        assertThat(TensorSelector.of(List.of("a"), List.of(), "a", "x"))
                .isNotEqualTo(TensorSelector.of(List.of("a"), List.of("b"), "a", "x"));
    }
}
