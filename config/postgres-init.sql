-- Demo data for the sql connector in docker-compose: a customers table.
CREATE TABLE customers (
    id integer PRIMARY KEY,
    email text UNIQUE NOT NULL,
    name text NOT NULL,
    city text,
    balance numeric(12, 2),
    updated_at timestamptz NOT NULL,
    exported boolean NOT NULL DEFAULT false
);
INSERT INTO customers (id, email, name, city, balance, updated_at)
SELECT i, 'customer' || i || '@example.com', 'Customer ' || i,
       (ARRAY['Springfield', 'Riverside', 'Fairview', 'Madison', 'Georgetown'])[1 + i % 5],
       round((i * 37 % 5000)::numeric, 2), timestamptz '2026-01-01' + i * interval '1 hour'
FROM generate_series(1, 1000) AS i;
