/**
 * Calibration text: where documents come from and how calibration sequences are drawn from them.
 *
 * <ul>
 *   <li>{@link io.sparkprune.pipeline.data.DocumentSource} streams documents (strings) from text,
 *       JSONL or Parquet files, plain or {@code .gz}, named by a path or a Hadoop glob on any
 *       Hadoop file system ({@code file:}, {@code hdfs:}, {@code s3a:});
 *       {@link io.sparkprune.pipeline.data.DocumentSources} opens one from a spec string.</li>
 *   <li>{@link io.sparkprune.pipeline.data.CalibrationSampler} draws N sequences of L tokens with a
 *       seed: decoder-style windows as in the SparseGPT reference's C4 loader, or encoder-style
 *       whole documents with special tokens, truncation and attention mask.</li>
 *   <li>{@link io.sparkprune.pipeline.data.CalibrationSplit} assigns each document to the calibration
 *       or the held-out part by a hash of its text, independent of file order and partitioning.</li>
 *   <li>{@link io.sparkprune.pipeline.data.EuroparlCorpus} and
 *       {@link io.sparkprune.pipeline.data.EnglishDetector} select the English lines of the Europarl
 *       sample that ships in Lucene's test framework (the default corpus).</li>
 * </ul>
 *
 * <p>Bad input (missing files, malformed lines, a wrong column, a corpus too short for the
 * requested sequences) raises {@link io.sparkprune.pipeline.data.CalibrationDataException} naming
 * the file, line or column and the fix.
 */
package io.sparkprune.pipeline.data;
