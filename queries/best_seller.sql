-- The seed's best-selling product over the last 10 days, updated every minute.
-- Sales arrive as CSV lines `ts,store,product,qty` on a TCP peer, e.g.
--   2026-11-26T10:00:00Z,north,tea,2
-- The window keeps one pane of partial sums per minute (14 400 panes), not the sales.
CREATE SOURCE sales (ts TIMESTAMP, store TEXT, product TEXT, qty BIGINT)
    FROM TCP 'localhost:9998' FORMAT CSV;
CREATE QUERY best_seller AS
    SELECT product, sum(qty) AS sold FROM sales GROUP BY product
    WINDOW SLIDING 10d EVERY 1m
    ORDER BY sold DESC, product LIMIT 1;
