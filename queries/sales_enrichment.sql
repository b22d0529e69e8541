-- Sales enriched with a static products table (Spark's transform with a static
-- RDD): revenue per category, every batch. The table is read once from
-- products.csv in the data directory:
--   mkdir -p sluice-data && cp queries/products.csv sluice-data/
--   cargo run --release -- serve --init queries/sales_enrichment.sql
--   curl -X POST localhost:8080/sources/orders -d '{"product_id": 1, "qty": 2, "price": 3.5}'
CREATE TABLE products (id BIGINT, name TEXT, category TEXT) FROM FILE 'products.csv' FORMAT CSV;
CREATE SOURCE orders (product_id BIGINT, qty BIGINT, price DOUBLE) FROM HTTP FORMAT JSON;
CREATE QUERY revenue_by_category AS
    SELECT p.category, sum(o.qty) AS items, sum(o.qty * o.price) AS revenue
    FROM orders o JOIN products p ON o.product_id = p.id
    GROUP BY p.category
    ORDER BY p.category;
