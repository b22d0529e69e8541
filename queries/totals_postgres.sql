-- Cumulative sales totals upserted into PostgreSQL (foreachRDD to a database):
-- the table `product_totals` always holds the current total of every product.
--   cargo run --release -- serve --init queries/totals_postgres.sql
--   curl -X POST localhost:8080/sources/pg_sales -d '{"product": "tea", "qty": 2, "price": 3.5}'
--   psql postgres://postgres@localhost:5432/postgres -c 'SELECT * FROM product_totals'
CREATE SOURCE pg_sales (product TEXT NOT NULL, qty BIGINT, price DOUBLE) FROM HTTP FORMAT JSON;
CREATE QUERY pg_totals AS
    SELECT product, sum(qty) AS sold, sum(qty * price) AS revenue
    FROM pg_sales GROUP BY product
    WINDOW CUMULATIVE EMIT UPDATES;
CREATE SINK pg_totals_out FROM pg_totals
    INTO POSTGRES 'postgres://postgres@localhost:5432/postgres' TABLE 'product_totals';
