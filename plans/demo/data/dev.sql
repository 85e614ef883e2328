-- dev.sql: what the developers changed in shop_dev since production was seeded: new and edited
-- reference rows (Unit, Ingredient, Product, IngredientPackaging), plus test accounts and orders.
-- Test users and orders: N/20 each (at least 2), N = pgrunbook.demo_rows; one item an order.

-- New units; SERVING renamed (a changed row that `mode: append` leaves alone on prod).
INSERT INTO "Unit" ("code", "name", "createdAt") VALUES
	('MILLILITERS', 'Milliliters', '2025-10-28 10:00:00'),
	('PACK', 'Pack', '2025-10-28 10:00:00');
UPDATE "Unit" SET "name" = 'Portion' WHERE "code" = 'SERVING';

-- New ingredients (two need the new MILLILITERS unit) and corrected ones.
INSERT INTO "Ingredient" ("id", "name", "unitCode", "proteinPer100g", "fatPer100g", "carbsPer100g",
                          "kcalPer100g", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('ingredient', key), name, unit, protein, fat, carbs, kcal,
       timestamp '2025-10-28 10:30:00' + n * interval '1 minute',
       timestamp '2025-10-28 10:30:00' + n * interval '1 minute'
FROM (VALUES (1, 'oat-milk', 'Oat milk', 'MILLILITERS', 1, 1.5, 6.5, 46),
             (2, 'coconut-milk', 'Coconut milk', 'MILLILITERS', 1.8, 17, 3.3, 168),
             (3, 'tofu', 'Tofu', 'GRAMS', 8.1, 4.2, 0.6, 73),
             (4, 'chickpeas', 'Chickpeas', 'GRAMS', 19.3, 6, 61, 364))
     AS s (n, key, name, unit, protein, fat, carbs, kcal);

UPDATE "Ingredient" SET "proteinPer100g" = 23.6, "updatedAt" = '2025-11-02 16:00:00'
WHERE "id" = pg_temp.demo_cuid('ingredient', 'chicken-breast');
UPDATE "Ingredient" SET "name" = 'Buckwheat groats', "updatedAt" = '2025-11-02 16:01:00'
WHERE "id" = pg_temp.demo_cuid('ingredient', 'buckwheat');
UPDATE "Ingredient" SET "unitCode" = 'MILLILITERS', "updatedAt" = '2025-11-02 16:02:00'
WHERE "id" = pg_temp.demo_cuid('ingredient', 'sunflower-oil');

-- New products; plov got more expensive and kompot a new image in dev (prod keeps its own).
INSERT INTO "Product" ("id", "slug", "name", "description", "price", "image", "isActive",
                       "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('product', slug), slug, name, description, price,
       'https://cdn.r2.example/products/' || slug || '.webp', true,
       timestamp '2025-11-03 09:00:00' + n * interval '1 minute',
       timestamp '2025-11-03 09:00:00' + n * interval '1 minute'
FROM (VALUES (1, 'tofu-bowl', 'Tofu bowl', 'Tofu, rice and vegetables.', 2390),
             (2, 'hummus-plate', 'Hummus plate', 'Chickpea hummus with fresh bread.', 1890),
             (3, 'oat-latte', 'Oat milk latte', NULL, 1290))
     AS s (n, slug, name, description, price);
UPDATE "Product" SET "price" = 2490, "updatedAt" = '2025-11-04 12:00:00'
WHERE "slug" = 'plov';
UPDATE "Product" SET "image" = 'https://cdn.r2.example/products/kompot.webp',
                     "updatedAt" = '2025-11-04 12:05:00'
WHERE "slug" = 'kompot';

INSERT INTO "ProductIngredient" ("productId", "ingredientId", "quantity") VALUES
	(pg_temp.demo_cuid('product', 'tofu-bowl'), pg_temp.demo_cuid('ingredient', 'tofu'), 150),
	(pg_temp.demo_cuid('product', 'tofu-bowl'), pg_temp.demo_cuid('ingredient', 'rice'), 120),
	(pg_temp.demo_cuid('product', 'tofu-bowl'), pg_temp.demo_cuid('ingredient', 'carrot'), 40),
	(pg_temp.demo_cuid('product', 'hummus-plate'), pg_temp.demo_cuid('ingredient', 'chickpeas'), 180),
	(pg_temp.demo_cuid('product', 'hummus-plate'), pg_temp.demo_cuid('ingredient', 'garlic'), 1),
	(pg_temp.demo_cuid('product', 'oat-latte'), pg_temp.demo_cuid('ingredient', 'oat-milk'), 250);

INSERT INTO "IngredientPackaging" ("id", "ingredientId", "label", "amount", "unitCode", "createdAt")
SELECT pg_temp.demo_cuid('packaging', ing || ':' || label), pg_temp.demo_cuid('ingredient', ing),
       label, amount, unit, timestamp '2025-11-03 10:00:00' + n * interval '1 minute'
FROM (VALUES (1, 'oat-milk', '1 l carton', 1000, 'MILLILITERS'),
             (2, 'coconut-milk', '400 ml can', 400, 'MILLILITERS'),
             (3, 'chickpeas', '400 g can', 400, 'GRAMS'),
             (4, 'honey', '500 g jar', 500, 'GRAMS'),
             (5, 'egg', 'box of 10', 10, 'PIECES'),
             (6, 'flour', '2 kg bag', 2, 'KILOGRAMS'))
     AS s (n, ing, label, amount, unit);

UPDATE "AppSetting" SET "value" = 'off', "updatedAt" = '2025-11-03 10:00:00' WHERE "key" = 'maintenance';

-- Test accounts and orders, only in dev. Their ids overlap prod's orders but the rows differ.
CREATE TEMP TABLE demo_size ON COMMIT DROP AS
SELECT greatest(current_setting('pgrunbook.demo_rows')::int / 20, 2) AS n_test;

INSERT INTO "User" ("id", "email", "phone", "firstName", "lastName", "role", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('user', 'dev:' || i), 'dev' || i || '@test.example',
       pg_temp.demo_phone(500000 + i, i), 'Test', 'User ' || i, 'CUSTOMER',
       timestamp '2025-10-01 00:00:00' + i * interval '1 minute',
       timestamp '2025-10-01 00:00:00' + i * interval '1 minute'
FROM demo_size, generate_series(1, n_test) AS i
ORDER BY i;

INSERT INTO "Order" ("id", "userId", "status", "customerPhone", "recipientPhone", "deliveryAddress",
                     "total", "createdAt", "updatedAt")
SELECT i, pg_temp.demo_cuid('user', 'dev:' || i),
       (CASE WHEN i % 2 = 0 THEN 'PAID' ELSE 'PENDING' END)::"OrderStatus",
       pg_temp.demo_phone(500000 + i, i + 1), NULL, 'Test street ' || i, 0,
       timestamp '2025-10-02 00:00:00' + i * interval '1 minute',
       timestamp '2025-10-02 00:00:00' + i * interval '1 minute'
FROM demo_size, generate_series(1, n_test) AS i
ORDER BY i;
SELECT setval(pg_get_serial_sequence('"Order"', 'id'), (SELECT max("id") FROM "Order"));

INSERT INTO "OrderItem" ("orderId", "productId", "quantity", "unitPrice")
SELECT o."id", p."id", 1, p."price"
FROM "Order" AS o
JOIN (SELECT "id", "price", row_number() OVER (ORDER BY "slug") AS rn, count(*) OVER () AS cnt
      FROM "Product") AS p ON p.rn = 1 + o."id" % p.cnt
ORDER BY o."id";

UPDATE "Order" AS o SET "total" = s.total
FROM (SELECT "orderId", sum("quantity" * "unitPrice") AS total FROM "OrderItem" GROUP BY "orderId") AS s
WHERE o."id" = s."orderId";

INSERT INTO "StripeEvent" ("id", "type", "orderId", "payload", "receivedAt", "processedAt") VALUES
	('evt_test_' || substr(md5('evt:test:1'), 1, 20), 'checkout.session.completed', 2,
	 '{"object": "event", "livemode": false}', '2025-10-02 00:05:00', '2025-10-02 00:05:01'),
	('evt_test_' || substr(md5('evt:test:2'), 1, 20), 'charge.refunded', 2,
	 '{"object": "event", "livemode": false}', '2025-10-02 00:09:00', NULL);
