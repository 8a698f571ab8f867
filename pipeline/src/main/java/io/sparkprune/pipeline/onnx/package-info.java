/**
 * ONNX import and export: reads a BERT-family sentence-embedding export (for example the default
 * all-MiniLM-L6-v2 model) and turns it into a Hugging Face {@code BertModel} checkpoint in memory:
 * a {@code config.json} tree and the parameters under the names and layouts HF uses.
 *
 * <p>The protobuf classes in {@code io.sparkprune.pipeline.onnx.proto} are generated at build time
 * from {@code src/main/proto/onnx.proto}, a copy of the ONNX project's schema (Apache-2.0), so a
 * parsed model serializes back to the same bytes.
 *
 * <p>Entry points: {@link io.sparkprune.pipeline.onnx.OnnxImporter} and its result
 * {@link io.sparkprune.pipeline.onnx.ImportedModel}; {@link io.sparkprune.pipeline.onnx.OnnxExporter}
 * writes (pruned) parameters back into the graph they were imported from, using the importer's
 * {@link io.sparkprune.pipeline.onnx.OnnxParameter} mapping; {@link io.sparkprune.pipeline.onnx.OnnxTensors}
 * converts single tensors between ONNX {@code TensorProto} and {@link io.sparkprune.kernels.HostTensor}.
 * Bad input raises {@link io.sparkprune.pipeline.onnx.OnnxFormatException}; tensors that do not fit
 * the template raise {@link io.sparkprune.pipeline.onnx.OnnxExportException}.
 */
package io.sparkprune.pipeline.onnx;
