-- Log analysis fed from a directory (Spark's textFileStream): every CSV file
-- moved into sluice-data/logs/ is read once, into the next batch.
--   mkdir -p sluice-data/logs
--   cargo run --release -- serve --init queries/log_analysis.sql
--   printf 'ERROR,db,timeout\nINFO,web,ok\n' > /tmp/x.csv && mv /tmp/x.csv sluice-data/logs/
CREATE SOURCE logs (level TEXT, service TEXT, message TEXT) FROM DIRECTORY 'logs' FORMAT CSV;
-- Errors per service, every batch.
CREATE QUERY errors_per_service AS
    SELECT service, count(*) AS errors FROM logs WHERE level = 'ERROR'
    GROUP BY service ORDER BY errors DESC, service;
-- Levels over the last minute, every 10 seconds.
CREATE QUERY levels_last_minute AS
    SELECT level, count(*) AS n FROM logs GROUP BY level
    WINDOW SLIDING 60s EVERY 10s ORDER BY level;
