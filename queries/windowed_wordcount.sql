-- The seed's windowed word count: word counts over the last 60 seconds, updated
-- every 5 seconds (Spark's reduceByKeyAndWindow). Start `nc -lk 9999`, then
--   cargo run --release -- serve --init queries/windowed_wordcount.sql
--   sluice tail windowed_wordcount
CREATE SOURCE lines (line TEXT) FROM TCP 'localhost:9999';
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
CREATE QUERY windowed_wordcount AS
    SELECT word, count(*) AS n FROM words GROUP BY word
    WINDOW SLIDING 60s EVERY 5s
    ORDER BY n DESC, word;
