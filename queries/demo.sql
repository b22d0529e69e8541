-- The main job, standalone: the built-in generator writes 1000 random lines a
-- second; a derived stream splits them into words; two per-batch queries count
-- them. Run it with
--   cargo run --release -- serve --init queries/demo.sql
-- then watch it with `sluice tail top_words` or
--   curl -N localhost:8080/queries/top_words/stream
CREATE SOURCE demo (line TEXT) FROM GENERATOR WITH (rate = '1000');
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM demo;
CREATE QUERY wordcount AS SELECT word, count(*) AS n FROM words GROUP BY word;
CREATE QUERY top_words AS SELECT word, count(*) AS n FROM words GROUP BY word ORDER BY n DESC, word LIMIT 5;
CREATE QUERY lines_per_batch AS SELECT batch_time() AS batch, count(*) AS lines FROM demo;
