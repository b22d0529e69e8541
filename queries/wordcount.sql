-- The seed's word count: run `nc -lk 9999` in one terminal, start
--   cargo run --release -- serve --init queries/wordcount.sql
-- and type lines into nc. Every batch interval, the counts of that batch:
--   sluice tail wordcount
CREATE SOURCE lines (line TEXT) FROM TCP 'localhost:9999';
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
CREATE QUERY wordcount AS SELECT word, count(*) AS n FROM words GROUP BY word;
