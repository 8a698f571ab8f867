package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.Backend;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.util.List;

/**
 * Perplexity of a causal language model on a text, by the rule of the SparseGPT paper's evaluation
 * (Frantar &amp; Alistarh 2023, arXiv 2301.00774, §4; github.com/IST-DASLab/sparsegpt,
 * {@code datautils.py} and {@code llama_eval}/{@code opt_eval}):
 * <ol>
 *   <li>the documents are joined with {@code "\n\n"} and tokenized as one text, with the tokenizer's
 *       special tokens (a Llama tokenizer adds BOS once, at the start);</li>
 *   <li>the token stream is cut into {@code nsamples = numel / L} non-overlapping windows of L
 *       tokens, {@code window_i = tokens[i·L, (i+1)·L)}; the remainder is dropped;</li>
 *   <li>each window is scored independently (no context from the previous window): with logits
 *       {@code z} of the window, {@code loss_i = (1/(L-1)) Σ_{t=0}^{L-2} -log softmax(z_t)[window_i[t+1]]}
 *       (the mean next-token NLL of predicting tokens 1..L-1 from the previous ones);</li>
 *   <li>{@code ppl = exp(Σ_i loss_i·L / (nsamples·L))}: the reference multiplies each window's mean
 *       loss by L and divides by {@code nsamples·L}, i.e. {@code ppl = exp(mean_i loss_i)}.</li>
 * </ol>
 * NLLs are computed in fp64 from fp32 logits ({@link Backend#crossEntropy}). Memory: the logits of
 * one batch, {@code windowsPerBatch · L · vocab} floats (262 MB for one window of 2048 tokens and a
 * 32000-token vocabulary).
 */
public final class Perplexity {
    private Perplexity() {
    }

    /**
     * @param perplexity {@code exp(mean window loss)}
     * @param seqLength L
     * @param windowLosses per window, its mean next-token NLL (nats), {@code nsamples} entries
     */
    public record Result(double perplexity, int seqLength, double[] windowLosses) {
        /** @return number of windows, nsamples */
        public int windows() {
            return windowLosses.length;
        }
    }

    /**
     * Perplexity of a token stream.
     *
     * @param model a Llama-family model
     * @param tokens the tokenized text
     * @param seqLength L, ≥ 2
     * @param windowsPerBatch windows run through the model at once, ≥ 1
     * @return the result
     * @throws IllegalArgumentException when the stream is shorter than one window
     * @throws ModelInputException for ids the model cannot take
     */
    public static Result evaluate(TransformerModel model, int[] tokens, int seqLength, int windowsPerBatch) {
        return evaluate(model, tokens, seqLength, windowsPerBatch, ForwardPrecision.FP32);
    }

    /**
     * Perplexity of a token stream with a choice of the forward pass's arithmetic.
     *
     * @param model a Llama-family model
     * @param tokens the tokenized text
     * @param seqLength L, ≥ 2
     * @param windowsPerBatch windows run through the model at once, ≥ 1
     * @param precision products of the blocks' linear layers and attention ({@link TransformerModel#encode(TokenBatch,
     *     ForwardPrecision)}); the LM head and the NLLs stay fp32 / fp64
     * @return the result
     * @throws IllegalArgumentException when the stream is shorter than one window
     * @throws ModelInputException for ids the model cannot take
     */
    public static Result evaluate(TransformerModel model, int[] tokens, int seqLength, int windowsPerBatch,
                                  ForwardPrecision precision) {
        if (seqLength < 2 || windowsPerBatch < 1) {
            throw new IllegalArgumentException("perplexity needs seqLength >= 2 and windowsPerBatch >= 1, got "
                    + seqLength + ", " + windowsPerBatch);
        }
        int nsamples = tokens.length / seqLength;
        if (nsamples == 0) {
            throw new IllegalArgumentException("the text has " + tokens.length + " tokens, fewer than one window of "
                    + seqLength + "; use a longer text or a shorter window");
        }
        int vocab = model.config().vocabSize();
        Backend be = model.backend();
        double[] losses = new double[nsamples];
        for (int w0 = 0; w0 < nsamples; w0 += windowsPerBatch) {
            int nw = Math.min(windowsPerBatch, nsamples - w0);
            TokenBatch batch = TokenBatch.windows(tokens, w0 * seqLength, nw, seqLength);
            float[] logits = model.logits(batch, precision);
            int[] ids = batch.ids();
            double[] nll = new double[seqLength - 1];
            for (int w = 0; w < nw; w++) {
                int base = w * seqLength;
                // row t predicts token t+1
                be.crossEntropy(seqLength - 1, vocab, logits, base * vocab, vocab, ids, base + 1, nll, 0);
                double sum = 0;
                for (double v : nll) {
                    sum += v;
                }
                losses[w0 + w] = sum / (seqLength - 1);
            }
        }
        double total = 0;
        for (double l : losses) {
            total += l * seqLength;
        }
        return new Result(Math.exp(total / ((double) nsamples * seqLength)), seqLength, losses);
    }

    /**
     * Tokenizes documents as the reference does (joined with {@code "\n\n"}, special tokens added)
     * and evaluates {@link #evaluate}.
     *
     * @param model a Llama-family model
     * @param tokenizer its tokenizer
     * @param documents the evaluation text
     * @param seqLength L
     * @param windowsPerBatch windows per forward batch
     * @return the result
     */
    public static Result evaluate(TransformerModel model, HfTokenizer tokenizer, List<String> documents, int seqLength,
                                  int windowsPerBatch) {
        int[] tokens = tokenizer.encode(String.join("\n\n", documents), true);
        return evaluate(model, tokens, seqLength, windowsPerBatch);
    }
}
