-- The seed's updateStateByKey word count: running totals since the start, the
-- whole table printed every batch (EMIT COMPLETE), as Spark prints it.
--   nc -lk 9999
--   cargo run --release -- serve --init queries/global_wordcount.sql
--   sluice tail global_wordcount
CREATE SOURCE lines (line TEXT) FROM TCP 'localhost:9999';
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
CREATE QUERY global_wordcount AS
    SELECT word, count(*) AS n FROM words GROUP BY word
    WINDOW CUMULATIVE
    ORDER BY n DESC, word;
