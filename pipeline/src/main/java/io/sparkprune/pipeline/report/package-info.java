/**
 * The run report: {@code report.json} (schema {@value io.sparkprune.pipeline.report.ReportFormat#FORMAT},
 * documented field by field in {@code docs/report.md}), {@code metrics.parquet} (one row per pruned
 * tensor, {@link io.sparkprune.pipeline.report.MetricsParquet}), {@code report.html} (a single
 * self-contained page with JFreeChart charts inlined as SVG, {@link io.sparkprune.pipeline.report.HtmlReport}),
 * the quality gates of scheduled runs ({@link io.sparkprune.pipeline.report.QualityGates}), and the
 * all-or-nothing writer of the three files ({@link io.sparkprune.pipeline.report.ReportFiles}).
 * Plain Java: the Spark job and {@code sparkprune validate} build the JSON tree, this package turns
 * it into files.
 */
package io.sparkprune.pipeline.report;
