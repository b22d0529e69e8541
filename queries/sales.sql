-- Sales posted over HTTP as JSON lines, aggregated per batch:
--   curl -X POST localhost:8080/sources/sales --data-binary @sales.ndjson
-- with lines like {"store": "north", "product": "tea", "qty": 2, "price": 3.5}
CREATE SOURCE sales (store TEXT NOT NULL, product TEXT, qty BIGINT, price DOUBLE) FROM HTTP FORMAT JSON;
CREATE QUERY revenue_by_store AS
    SELECT store, sum(qty * price) AS revenue, sum(qty) AS items
    FROM sales GROUP BY store ORDER BY revenue DESC;
CREATE QUERY big_orders AS
    SELECT batch_time() AS at, store, product, qty FROM sales WHERE qty >= 10;
