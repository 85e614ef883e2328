-- common.sql: the reference data and staff accounts that shop_dev and shop_prod share
-- (loaded into both before their own scripts). Uses only columns of the first migration.

INSERT INTO "Unit" ("code", "name", "createdAt") VALUES
	('GRAMS', 'Grams', '2025-06-15 12:05:00'),
	('KILOGRAMS', 'Kilograms', '2025-06-15 12:05:00'),
	('LITERS', 'Liters', '2025-06-15 12:05:00'),
	('PIECES', 'Pieces', '2025-06-15 12:05:00'),
	('SERVING', 'Serving', '2025-06-15 12:05:00');

CREATE TEMP TABLE demo_ingredient (
	n serial, key text, name text, unit text, protein float8, fat float8, carbs float8, kcal int
) ON COMMIT DROP;
INSERT INTO demo_ingredient (key, name, unit, protein, fat, carbs, kcal) VALUES
	('chicken-breast', 'Chicken breast', 'GRAMS', 23.1, 1.2, 0, 110),
	('beef', 'Beef', 'GRAMS', 18.9, 12.4, 0, 187),
	('lamb', 'Lamb', 'GRAMS', 16.3, 15.3, 0, 203),
	('horse-meat', 'Horse meat (kazy)', 'GRAMS', 20.2, 7, 0, 143),
	('rice', 'Rice', 'GRAMS', 7, 1, 74, 344),
	('buckwheat', 'Buckwheat', 'GRAMS', 12.6, 3.3, 62.1, 313),
	('potato', 'Potato', 'GRAMS', 2, 0.4, 16.3, 77),
	('carrot', 'Carrot', 'GRAMS', 1.3, 0.1, 6.9, 35),
	('onion', 'Onion', 'GRAMS', 1.4, 0, 10.4, 47),
	('beetroot', 'Beetroot / Свёкла', 'GRAMS', 1.5, 0.1, 8.8, 42),
	('cabbage', 'Cabbage', 'GRAMS', 1.8, 0.1, 4.7, 27),
	('tomato', 'Tomato', 'GRAMS', 1.1, 0.2, 3.7, 20),
	('cucumber', 'Cucumber', 'GRAMS', 0.8, 0.1, 2.5, 14),
	('egg', 'Egg', 'PIECES', 12.7, 11.5, 0.7, 157),
	('cottage-cheese', 'Cottage cheese / Творог', 'GRAMS', 16.7, 9, 2, 159),
	('sour-cream', 'Sour cream / Сметана', 'GRAMS', 2.8, 20, 3.2, 206),
	('flour', 'Wheat flour', 'GRAMS', 10.3, 1.1, 70.6, 334),
	('butter', 'Butter', 'GRAMS', 0.5, 82.5, 0.8, 748),
	('sunflower-oil', 'Sunflower oil', 'LITERS', 0, 99.9, 0, 899),
	('milk', 'Milk 3.2%', 'LITERS', 3.2, 3.2, 4.7, 60),
	('sugar', 'Sugar', 'GRAMS', 0, 0, 99.8, 399),
	('salt', 'Salt', 'GRAMS', 0, 0, 0, 0),
	('dill', 'Dill', 'GRAMS', 2.5, 0.5, 6.3, 38),
	('garlic', 'Garlic', 'PIECES', 6.5, 0.5, 29.9, 143),
	('romaine', 'Romaine lettuce', 'GRAMS', 1.2, 0.3, 3.3, 17),
	('parmesan', 'Parmesan', 'GRAMS', 33, 28, 0, 392),
	('croutons', 'Croutons', 'GRAMS', 11, 6, 70, 390),
	('noodles', 'Hand-pulled noodles', 'GRAMS', 10.4, 1.1, 69.7, 344),
	('apple', 'Apple', 'PIECES', 0.4, 0.4, 9.8, 47),
	('honey', 'Honey', 'GRAMS', 0.8, 0, 81.5, 329);

INSERT INTO "Ingredient" ("id", "name", "unitCode", "proteinPer100g", "fatPer100g", "carbsPer100g",
                          "kcalPer100g", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('ingredient', key), name, unit, protein, fat, carbs, kcal,
       timestamp '2025-06-15 12:10:00' + n * interval '1 second',
       timestamp '2025-06-15 12:10:00' + n * interval '1 second'
FROM demo_ingredient ORDER BY n;

CREATE TEMP TABLE demo_product (n serial, slug text, name text, price numeric(10,2)) ON COMMIT DROP;
INSERT INTO demo_product (slug, name, price) VALUES
	('caesar-salad', 'Caesar salad', 2490),
	('borscht', 'Borscht / Борщ', 1890),
	('plov', 'Plov / Плов', 2290),
	('beshbarmak', 'Beshbarmak / Бешбармак', 3490),
	('lagman', 'Lagman / Лагман', 2190),
	('manty', 'Manty / Манты (5 pcs)', 2390),
	('syrniki', 'Syrniki / Сырники', 1490),
	('olivier', 'Olivier salad', 1690),
	('chicken-soup', 'Chicken noodle soup', 1590),
	('buckwheat-bowl', 'Buckwheat bowl with beef', 2090),
	('kazy-plate', 'Kazy plate / Қазы', 3990),
	('greek-salad', 'Greek salad', 1990),
	('pelmeni', 'Pelmeni / Пельмени', 1790),
	('vareniki', 'Vareniki with potato', 1590),
	('shashlik-lamb', 'Lamb shashlik', 3290),
	('shashlik-chicken', 'Chicken shashlik', 2590),
	('baursak', 'Baursaks / Бауырсақ (10 pcs)', 990),
	('blini', 'Blini with honey', 1290),
	('apple-pie', 'Apple pie (slice)', 990),
	('omelette', 'Omelette with tomatoes', 1190),
	('vinegret', 'Vinegret salad', 1390),
	('cabbage-rolls', 'Cabbage rolls / Голубцы', 2190),
	('mashed-potato', 'Mashed potatoes', 890),
	('kompot', 'Kompot 0.5 l', 590);

INSERT INTO "Product" ("id", "slug", "name", "description", "price", "image", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('product', slug), slug, name,
       CASE WHEN n % 3 = 0 THEN NULL ELSE name || ', cooked fresh every morning.' END,
       price, '/static/img/products/' || slug || '.jpg',
       timestamp '2025-06-15 12:20:00' + n * interval '1 minute',
       timestamp '2025-06-15 12:20:00' + n * interval '1 minute'
FROM demo_product ORDER BY n;

-- Three ingredients a product: distinct because 11 and 22 are not multiples of 30.
INSERT INTO "ProductIngredient" ("productId", "ingredientId", "quantity")
SELECT pg_temp.demo_cuid('product', p.slug), pg_temp.demo_cuid('ingredient', i.key),
       50 + ((p.n * 31 + j * 17) % 10) * 25
FROM demo_product p
CROSS JOIN generate_series(0, 2) AS j
JOIN demo_ingredient i ON i.n = 1 + (p.n * 7 + j * 11) % 30
ORDER BY p.n, j;

INSERT INTO "User" ("id", "email", "phone", "firstName", "lastName", "role", "createdAt", "updatedAt")
SELECT pg_temp.demo_cuid('user', 'staff:' || n), email, pg_temp.demo_phone(900 + n, n), first, last,
       role::"Role", timestamp '2025-06-15 12:30:00' + n * interval '1 hour',
       timestamp '2025-06-15 12:30:00' + n * interval '1 hour'
FROM (VALUES (1, 'aigerim@shop.example', 'Aigerim', 'Nurlanova', 'ADMIN'),
             (2, 'dias@shop.example', 'Dias', 'Seitkali', 'ADMIN'),
             (3, 'olga@shop.example', 'Olga', 'Ivanova', 'COURIER'),
             (4, 'arman@shop.example', 'Arman', 'Tulegenov', 'COURIER'),
             (5, 'madina@shop.example', 'Madina', 'Akhmetova', 'COURIER'),
             (6, 'sergey@shop.example', 'Sergey', 'Kim', 'CUSTOMER'))
     AS s (n, email, first, last, role);

INSERT INTO "AppSetting" ("key", "value", "updatedAt") VALUES
	('maintenance', 'off', '2025-06-15 12:40:00'),
	('currency', 'KZT', '2025-06-15 12:40:00'),
	('supportPhone', '+7 727 355 00 00', '2025-06-15 12:40:00');
