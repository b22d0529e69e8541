-- Cumulative sales per product since the start, POSTed as JSON lines to
--   POST /sources/sales   {"product": "tea", "qty": 2, "price": 3.5}
-- Only the products a batch changed are emitted (EMIT UPDATES); the whole table
-- is a pull query away: GET /queries/sales_totals/state?order_by=revenue%20desc
CREATE SOURCE sales (product TEXT NOT NULL, qty BIGINT, price DOUBLE) FROM HTTP FORMAT JSON;
CREATE QUERY sales_totals AS
    SELECT product, sum(qty) AS sold, sum(qty * price) AS revenue, count(*) AS orders
    FROM sales GROUP BY product
    WINDOW CUMULATIVE EMIT UPDATES
    ORDER BY product;
