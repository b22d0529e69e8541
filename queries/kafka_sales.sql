-- Sales fed from Kafka (keyed by store): running totals per product since the
-- start (exactly once across restarts: the offsets are in the checkpoints), and
-- the products' totals written back to Kafka, keyed by product.
--   {"product": "tea", "qty": 2, "price": 3.5}   on topic `sales`
CREATE SOURCE kafka_sales (product TEXT NOT NULL, qty BIGINT, price DOUBLE)
    FROM KAFKA 'localhost:9092' TOPIC 'sales' FORMAT JSON
    WITH (start = 'earliest', group_id = 'sluice-sales');
CREATE QUERY product_totals AS
    SELECT product, sum(qty) AS sold, sum(qty * price) AS revenue, count(*) AS orders,
        max(_timestamp) AS last_sale
    FROM kafka_sales GROUP BY product
    WINDOW CUMULATIVE EMIT UPDATES
    ORDER BY product;
CREATE SINK product_totals_out FROM product_totals
    INTO KAFKA 'localhost:9092' TOPIC 'product_totals' FORMAT JSON KEY product;
