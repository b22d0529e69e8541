-- The word count of the seed, fed from Kafka: every partition of topic `lines`
-- (one line of text per message), counted per batch.
--   cargo run --release -- serve --init queries/kafka_wordcount.sql
--   kcat -P -b localhost:9092 -t lines     (or any producer; librdkafka >= 2.2)
--   sluice tail kafka_wordcount
CREATE SOURCE lines (line TEXT) FROM KAFKA 'localhost:9092' TOPIC 'lines' FORMAT LINES
    WITH (start = 'earliest');
CREATE STREAM kafka_words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
CREATE QUERY kafka_wordcount AS
    SELECT word, count(*) AS n FROM kafka_words GROUP BY word ORDER BY n DESC, word;
