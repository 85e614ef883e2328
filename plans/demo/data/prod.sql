-- prod.sql: what production traffic left in shop_prod (and so in shop_staging, its copy):
-- customers, orders with items, Stripe webhook events and the notification log.
-- Sized by the setting pgrunbook.demo_rows (N, `pgrunbook demo --rows N`):
--   customers N/4 (at least 1), orders N, order items 1 + (i % 3) for order i,
--   Stripe events one per order that is not PENDING plus N/50 without an order,
--   notifications one per order plus one more per DELIVERED order.

CREATE TEMP TABLE demo_size ON COMMIT DROP AS
SELECT current_setting('pgrunbook.demo_rows')::int AS n_orders,
       greatest(current_setting('pgrunbook.demo_rows')::int / 4, 1) AS n_users;

INSERT INTO "User" ("id", "email", "phone", "firstName", "lastName", "role", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('user', 'customer:' || i),
       'customer' || i || '@mail.example',
       CASE WHEN i % 11 = 0 THEN NULL ELSE pg_temp.demo_phone(i, i) END,
       (ARRAY['Aigerim', 'Dias', 'Madina', 'Arman', 'Dana', 'Yerlan', 'Olga', 'Sergey', 'Aliya',
              'Timur', 'Zarina', 'Nikita'])[1 + i % 12],
       (ARRAY['Nurlanova', 'Seitkali', 'Ivanova', 'Petrov', 'Akhmetova', 'Kim', 'Tulegenov',
              'Smagulova'])[1 + i % 8],
       'CUSTOMER',
       timestamp '2025-06-16 09:00:00' + ((i::bigint * 12960000) / n_users) * interval '1 second',
       timestamp '2025-06-16 09:00:00' + ((i::bigint * 12960000) / n_users) * interval '1 second'
FROM demo_size, generate_series(1, n_users) AS i
ORDER BY i;

-- Every fifth order is a guest checkout; the phone on an order is typed again at checkout, so its
-- format often differs from the one in the customer's profile.
INSERT INTO "Order" ("id", "userId", "status", "customerPhone", "senderPhone", "recipientPhone",
                     "deliveryAddress", "total", "createdAt", "updatedAt")
SELECT i,
       CASE WHEN i % 5 = 0 THEN NULL ELSE pg_temp.demo_cuid('user', 'customer:' || (1 + (i * 7) % n_users)) END,
       (CASE i % 10 WHEN 0 THEN 'CANCELLED' WHEN 1 THEN 'PENDING' WHEN 2 THEN 'PAID' WHEN 3 THEN 'PAID'
                    WHEN 4 THEN 'SHIPPED' WHEN 5 THEN 'SHIPPED' ELSE 'DELIVERED' END)::"OrderStatus",
       pg_temp.demo_phone(CASE WHEN i % 5 = 0 THEN 100000 + i ELSE 1 + (i * 7) % n_users END, i + 3),
       CASE WHEN i % 4 = 0 THEN pg_temp.demo_phone(200000 + i, i + 1) END,
       CASE WHEN i % 3 = 0 THEN pg_temp.demo_phone(300000 + i, i + 2) END,
       format('Almaty, %s st. %s, apt %s',
              (ARRAY['Abay', 'Dostyk', 'Satpaev', 'Tole bi', 'Zheltoksan', 'Furmanov'])[1 + i % 6],
              1 + i % 180, 1 + i % 97),
       0,
       timestamp '2025-06-20 08:00:00' + ((i::bigint * 12960000) / n_orders) * interval '1 second',
       timestamp '2025-06-20 09:00:00' + ((i::bigint * 12960000) / n_orders) * interval '1 second'
FROM demo_size, generate_series(1, n_orders) AS i
ORDER BY i;
SELECT setval(pg_get_serial_sequence('"Order"', 'id'), (SELECT max("id") FROM "Order"));

INSERT INTO "OrderItem" ("orderId", "productId", "quantity", "unitPrice")
SELECT o, p."id", 1 + (o + j) % 3, p."price"
FROM demo_size
CROSS JOIN generate_series(1, n_orders) AS o
CROSS JOIN LATERAL generate_series(1, 1 + o % 3) AS j
JOIN (SELECT "id", "price", row_number() OVER (ORDER BY "slug") AS rn, count(*) OVER () AS cnt
      FROM "Product") AS p ON p.rn = 1 + (o * 13 + j * 7) % p.cnt
ORDER BY o, j;

UPDATE "Order" AS o SET "total" = s.total
FROM (SELECT "orderId", sum("quantity" * "unitPrice") AS total FROM "OrderItem" GROUP BY "orderId") AS s
WHERE o."id" = s."orderId";

INSERT INTO "StripeEvent" ("id", "type", "orderId", "payload", "receivedAt", "processedAt")
SELECT 'evt_' || substr(md5('evt:' || o."id"), 1, 24),
       CASE o."status" WHEN 'CANCELLED' THEN 'charge.refunded' ELSE 'checkout.session.completed' END,
       o."id",
       jsonb_build_object('object', 'event', 'livemode', true,
                          'data', jsonb_build_object('amount_total', (o."total" * 100)::bigint,
                                                     'currency', 'kzt', 'order_id', o."id")),
       o."createdAt" + interval '2 minutes',
       o."createdAt" + interval '2 minutes 1 second'
FROM "Order" AS o
WHERE o."status" <> 'PENDING'
ORDER BY o."id";

INSERT INTO "StripeEvent" ("id", "type", "orderId", "payload", "receivedAt", "processedAt")
SELECT 'evt_' || substr(md5('evt:customer:' || i), 1, 24), 'customer.created', NULL,
       jsonb_build_object('object', 'event', 'livemode', true),
       timestamp '2025-06-21 00:00:00' + i * interval '1 day', NULL
FROM demo_size, generate_series(1, n_orders / 50) AS i
ORDER BY i;

INSERT INTO "NotificationLog" ("channel", "recipient", "template", "orderId", "userId", "status",
                               "error", "createdAt")
SELECT 'SMS', phone, template, id, "userId",
       CASE WHEN id % 37 = 0 THEN 'FAILED' ELSE 'SENT' END,
       CASE WHEN id % 37 = 0 THEN 'provider rejected the number format' END,
       at
FROM (SELECT o."id", o."userId", o."customerPhone" AS phone, 'order_created' AS template,
             o."createdAt" + interval '1 minute' AS at, 1 AS k
      FROM "Order" AS o
      UNION ALL
      SELECT o."id", o."userId", coalesce(o."recipientPhone", o."customerPhone"), 'order_delivered',
             o."updatedAt" + interval '3 hours', 2
      FROM "Order" AS o WHERE o."status" = 'DELIVERED') AS n
ORDER BY id, k;
