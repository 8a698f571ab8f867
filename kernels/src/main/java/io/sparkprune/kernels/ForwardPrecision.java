package io.sparkprune.kernels;

import java.util.Locale;

/**
 * Arithmetic of the linear layers' and attention's products in a forward pass run through a
 * {@link ForwardWorkspace} (calibration forwards and the advance to the next layer's inputs). Norms,
 * activations, the softmax and every reduction stay fp32 with fp64 sums whatever this says.
 */
public enum ForwardPrecision {
    /** fp32 operands and fp32 fused multiply-adds ({@link Backend#sgemm}): the default. */
    FP32,
    /**
     * Both operands rounded to TF32 (10 mantissa bits, nearest with ties away from zero,
     * {@link Tf32#round}, PTX {@code cvt.rna.tf32.f32}), products and sums in fp32; on the GPU the
     * tensor-core kernel {@code sgemm_tf32_*} (about 7× the fp32 rate on an H200, see
     * docs/benchmarks.md). What PyTorch runs with {@code torch.backends.cuda.matmul.allow_tf32 = True}.
     * Attention likewise rounds the operands of its two products (queries, keys, the softmax weights
     * and values: {@link AttentionJob#tf32()}) for head widths that {@link AttentionJob#supportsTf32}
     * allows; on the GPU the tensor-core kernel {@code attention_tf32}.
     */
    TF32;

    /** @return the recipe and CLI spelling, {@code fp32} or {@code tf32} */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * @param key {@code fp32} or {@code tf32}, any case
     * @return the precision
     * @throws IllegalArgumentException for anything else (callers wrap it in their typed error)
     */
    public static ForwardPrecision parse(String key) {
        for (ForwardPrecision p : values()) {
            if (p.id().equalsIgnoreCase(key.trim())) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown forward precision \"" + key + "\": use fp32 or tf32");
    }
}
