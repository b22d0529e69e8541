-- The seed's word count saved as files (saveAsTextFiles): one CSV file per
-- batch, sluice-data/out/wordcount-<TIME_IN_MS>.csv, and the same batches
-- printed as Spark's print() does.
--   nc -lk 9999
--   cargo run --release -- serve --init queries/wordcount_files.sql
CREATE SOURCE lines (line TEXT) FROM TCP 'localhost:9999';
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
CREATE QUERY wordcount AS SELECT word, count(*) AS n FROM words GROUP BY word ORDER BY n DESC, word;
CREATE SINK wordcount_files FROM wordcount INTO FILES 'out/wordcount' FORMAT CSV;
CREATE SINK wordcount_log FROM wordcount INTO LOG;
