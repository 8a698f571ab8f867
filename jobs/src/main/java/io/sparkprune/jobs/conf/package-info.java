/**
 * SparkPrune's Spark settings ({@code spark.sparkprune.*}): the registry
 * ({@link io.sparkprune.jobs.conf.SparkPruneConf}, each key declared once as a
 * {@link io.sparkprune.jobs.conf.ConfEntry} with type, default, checks and doc, after spark-rapids'
 * {@code RapidsConf}), a typed, validated view of one job's settings, and
 * {@link io.sparkprune.jobs.conf.ConfigDocs}, which generates {@code docs/configuration.md}.
 * Invalid or unknown settings raise {@link io.sparkprune.jobs.conf.SparkPruneConfException}.
 */
package io.sparkprune.jobs.conf;
